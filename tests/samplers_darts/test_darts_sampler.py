from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import optuna
from optuna.testing.pytest_samplers import BasicSamplerTestCase
from optuna.testing.pytest_samplers import MultiObjectiveSamplerTestCase
import pytest

from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.objective import NASObjective
from optuna_nas.samplers._darts import DartsSampler
from optuna_nas.samplers._darts import DartsSearchConfig
from optuna_nas.samplers._darts import _persist as persist
from optuna_nas.samplers._darts import export_choices
from optuna_nas.spaces import ChainSpace
from optuna_nas.storage import JobOwner
from optuna_nas.storage import claim_board
from tests.samplers_darts._helpers import TINY_CONFIG
from tests.samplers_darts._helpers import tiny_digits
from tests.samplers_darts._helpers import tiny_space


def _tiny(seed: int | None = 0, **kwargs: Any) -> DartsSampler:
    return DartsSampler(
        space=tiny_space(), data=tiny_digits(), search_config=TINY_CONFIG, seed=seed, **kwargs
    )


class TestBasicContract(BasicSamplerTestCase):
    """Optuna's shipped suite: its params are not the space's, so they are delegated."""

    @pytest.fixture
    def sampler(self) -> Any:
        return _tiny


class TestMultiObjectiveContract(MultiObjectiveSamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Any:
        return _tiny


def _arch_objective(trial: optuna.Trial) -> float:
    spec = tiny_space().suggest(trial)
    lr = trial.suggest_float("lr", 1e-3, 1e-1, log=True)  # not the space's: delegated
    return float(len(spec.nodes)) + lr


def test_first_trial_is_the_argmax_then_distinct_draws_from_softmax() -> None:
    sampler = _tiny()
    study = optuna.create_study(sampler=sampler)
    study.optimize(_arch_objective, n_trials=6)
    alpha = sampler.alpha(study)
    assert alpha is not None
    arch_names = [p.name for p in sampler.plan.params]
    first = study.trials[0]
    assert {n: first.params[n] for n in arch_names} == export_choices(sampler.plan, alpha)
    assert [t.system_attrs["darts:proposal"] for t in study.trials] == ["argmax"] + ["softmax"] * 5
    archs = {tuple(t.params[n] for n in arch_names) for t in study.trials}
    assert len(archs) == 6  # draws avoid architectures already in the study
    assert len({t.params["lr"] for t in study.trials}) == 6
    result = persist.attrs(study)[persist.RESULT]
    assert result["epochs"] == TINY_CONFIG.epochs and result["alpha"] == alpha
    json.dumps(persist.attrs(study)[persist.HISTORY])  # plain JSON for any Optuna tool


def test_chain_space_trials_carry_the_fixed_params() -> None:
    space = ChainSpace(
        input_shape=(1, 8, 8), num_outputs=10, min_depth=2, max_depth=2, stride_layers=(2,)
    )
    fixed: dict[str, Any] = {"depth": 2, "activation": "relu", "layer2/stride": 1}
    fixed |= {f"layer{i}/{k}": v for i in (1, 2) for k, v in (("width", 16), ("skip", "none"))}
    sampler = DartsSampler(
        space=space, data=tiny_digits(), fixed_params=fixed, search_config=TINY_CONFIG, seed=0
    )
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: float(len(space.suggest(t).nodes)), n_trials=3)
    for t in study.trials:
        assert {k: t.params[k] for k in ("depth", "activation")} == {
            "depth": 2,
            "activation": "relu",
        }
        assert t.params["layer1/op"] in space.ops


def test_several_objectives_are_handled() -> None:
    study = optuna.create_study(sampler=_tiny(), directions=["maximize", "minimize"])
    study.optimize(lambda t: (_arch_objective(t), 1.0), n_trials=2)
    assert len(study.trials) == 2


def test_same_seed_same_trials_and_reseed_changes_the_draws() -> None:
    def run(sampler: DartsSampler) -> list[dict[str, Any]]:
        study = optuna.create_study(sampler=sampler)
        study.optimize(_arch_objective, n_trials=4)
        return [t.params for t in study.trials]

    first = run(_tiny(seed=5))
    assert run(_tiny(seed=5)) == first
    reseeded = _tiny(seed=5)
    reseeded.reseed_rng()
    changed = run(reseeded)
    # The search itself stays seeded (all workers share it), so the argmax trial agrees.
    assert {k: v for k, v in changed[0].items() if k != "lr"} == {
        k: v for k, v in first[0].items() if k != "lr"
    }
    assert changed != first


def test_seed_gives_the_same_trials_in_a_fresh_process(tmp_path: Any) -> None:
    code = (
        "import json, optuna, torch\n"
        "torch.set_num_threads(1)\n"
        "optuna.logging.disable_default_handler()\n"
        "from tests.samplers_darts.test_darts_sampler import _tiny, _arch_objective\n"
        "s = optuna.create_study(sampler=_tiny(seed=11))\n"
        "s.optimize(_arch_objective, n_trials=3)\n"
        "print(json.dumps([t.params for t in s.trials]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="."
    )
    study = optuna.create_study(sampler=_tiny(seed=11))
    study.optimize(_arch_objective, n_trials=3)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [t.params for t in study.trials]


def test_parallel_threads_share_one_search() -> None:
    sampler = _tiny()
    study = optuna.create_study(sampler=sampler)
    study.optimize(_arch_objective, n_trials=4, n_jobs=2)
    assert len(study.trials) == 4
    assert len(persist.attrs(study)[persist.HISTORY]) == TINY_CONFIG.epochs


def test_a_worker_waits_for_another_workers_search_and_takes_over_a_stale_claim() -> None:
    # Another host's claim (no pid check possible) that never beats: taken over after two
    # missed heartbeats and the grace period.
    study = optuna.create_study()
    board = claim_board(study._storage)
    other = JobOwner("other", "elsewhere", "", 1, 0.2, 0, time.time())
    assert board.claim_job(study._study_id, persist.JOB, other) == other
    sampler = _tiny(claim_heartbeat_s=1.0, poll_interval=0.05)
    start = time.perf_counter()
    sampler.search(study)
    assert time.perf_counter() - start >= 0.4  # it waited for 2 * 0.2 s + grace
    assert board.job(study._study_id, persist.JOB) is None  # released after the result

    # With a live claim, it waits and then uses the other worker's result.
    study = optuna.create_study()
    board = claim_board(study._storage)
    alive = JobOwner("alive", socket.gethostname(), "", os.getpid(), 60.0, 0, time.time())
    board.claim_job(study._study_id, persist.JOB, alive)
    waiting = _tiny(poll_interval=0.05)
    found: list[Any] = []
    thread = threading.Thread(target=lambda: found.append(waiting.search(study)))
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive()
    alpha = {p.name: [0.0] * len(p.choices) for p in waiting.plan.params}
    persist.put(study, persist.RESULT, {"epochs": 2, "stopped_early": False, "alpha": alpha})
    thread.join(timeout=10)
    assert found == [alpha]


def test_resuming_with_other_settings_is_refused() -> None:
    study = optuna.create_study()
    _tiny().search(study)
    other = DartsSampler(
        space=tiny_space(),
        data=tiny_digits(),
        search_config=DartsSearchConfig(epochs=3, relaxation="softmax"),
        seed=0,
    )
    with pytest.raises(ValueError, match=r"other settings \(differing: \['config'\]\)"):
        other.search(study)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0.0}, "temperature"),
        ({"claim_heartbeat_s": -1.0}, "claim_heartbeat_s"),
        ({"fixed_params": {"nope": 1}}, "'nope'"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _tiny(**kwargs)


def test_data_must_match_the_space() -> None:
    with pytest.raises(ValueError, match="num_outputs=3"):
        DartsSampler(space=ChainSpace(input_shape=(1, 8, 8), num_outputs=3), data=tiny_digits())


def test_darts_trials_are_checked_by_real_training() -> None:
    data = tiny_digits()
    space = tiny_space()
    sampler = _tiny()
    objective = NASObjective(
        space,
        FullTraining(data, training=TrainingConfig(epochs=1)),
        objectives=("val_accuracy",),
    )
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(objective, n_trials=2)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert (
        study.trials[0].user_attrs["spec"]
        == sampler.plan.decode(export_choices(sampler.plan, sampler.alpha(study) or {})).to_json()
    )
