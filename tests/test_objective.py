"""The per-trial pipeline and the quickstart study, end to end on real data and real SQLite."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState
import pytest

from optuna_nas.data import load_digits
from optuna_nas.evaluation import Evaluation
from optuna_nas.evaluation import Evaluator
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import Report
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.metrics import count_flops
from optuna_nas.metrics import count_params
from optuna_nas.nn import build_model
from optuna_nas.objective import NASObjective
from optuna_nas.spaces import ChainSpace
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import canonical_hash
from optuna_nas.storage import DUPLICATE_OF

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    return load_digits(seed=0)


def test_trial_records_spec_hash_and_metrics(digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    space = ChainSpace(input_shape=digits.input_shape, num_outputs=digits.num_classes)
    objective = NASObjective(
        space,
        FullTraining(digits, training=TrainingConfig(epochs=2)),
        objectives=("val_accuracy", "params"),
    )
    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    study = optuna.create_study(
        storage=storage,
        directions=objective.directions,
        sampler=optuna.samplers.RandomSampler(seed=1),
    )
    study.optimize(objective, n_trials=3)

    again = optuna.load_study(study_name=study.study_name, storage=storage)
    for t in again.trials:
        assert t.state is TrialState.COMPLETE
        spec = ArchitectureSpec.from_json(t.user_attrs["spec"])
        assert spec == space.decode(t.params)
        assert t.user_attrs["canonical_hash"] == canonical_hash(spec)
        assert t.values[1] == t.user_attrs["params"] == count_params(spec)
        assert len(t.user_attrs["val_accuracy_curve"]) == 2
        assert t.values[0] == t.user_attrs["val_accuracy_curve"][-1]
        assert 0.0 <= t.values[0] <= 1.0
        assert t.user_attrs["flops"] > 0


def test_single_objective_reports_and_prunes(digits) -> None:  # type: ignore[no-untyped-def]
    space = ChainSpace(input_shape=digits.input_shape, num_outputs=digits.num_classes)
    objective = NASObjective(
        space,
        FullTraining(digits, training=TrainingConfig(epochs=3)),
        objectives=("val_accuracy",),
    )
    # No 1-epoch network reaches 100% validation accuracy, so every trial is pruned at epoch 1.
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.ThresholdPruner(lower=1.0),
    )
    study.optimize(objective, n_trials=2)
    for t in study.trials:
        assert t.state is TrialState.PRUNED
        assert list(t.intermediate_values) == [1]
        assert t.user_attrs["epochs_run"] == 1


def test_objective_rejects_bad_arguments(digits) -> None:  # type: ignore[no-untyped-def]
    space = ChainSpace(input_shape=(3, 8, 8), num_outputs=10)
    with pytest.raises(ValueError, match=r"the space builds networks for input_shape=\(3, 8, 8\)"):
        NASObjective(space, FullTraining(digits, training=TrainingConfig(epochs=1)))
    space = ChainSpace(input_shape=digits.input_shape, num_outputs=10)
    with pytest.raises(ValueError, match=r"`objectives` must be distinct names from"):
        NASObjective(
            space,
            FullTraining(digits, training=TrainingConfig(epochs=1)),
            objectives=("accuracy",),
        )


def test_quickstart_resumes_and_plain_optuna_reads_it(tmp_path: Path) -> None:
    db = tmp_path / "quickstart.db"
    cmd = [sys.executable, str(ROOT / "studies" / "quickstart.py"), "--storage", f"sqlite:///{db}"]
    first = subprocess.run(
        [*cmd, "--trials", "2", "--epochs", "1"], capture_output=True, text=True, check=True
    )
    assert "Pareto front" in first.stdout
    assert f"optuna-dashboard sqlite:///{db}" in first.stdout
    subprocess.run([*cmd, "--trials", "3", "--epochs", "1"], capture_output=True, check=True)

    # The plain `optuna trials` command, in a process where importing optuna_nas fails.
    blocked = (
        "import sys; sys.modules['optuna_nas'] = None; from optuna.cli import main; "
        "sys.argv[0] = 'optuna'; sys.exit(main())"
    )
    listed = subprocess.run(
        [
            sys.executable,
            "-c",
            blocked,
            "trials",
            "--storage",
            f"sqlite:///{db}",
            "--study-name",
            "quickstart",
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    trials = json.loads(listed.stdout)
    assert [t["number"] for t in trials] == [0, 1, 2]  # resumed to 3 in all, not 2 + 3
    assert all(t["state"] == "COMPLETE" for t in trials)


def _one_architecture_space(digits):  # type: ignore[no-untyped-def]
    return ChainSpace(
        input_shape=digits.input_shape,
        num_outputs=digits.num_classes,
        min_depth=1,
        max_depth=1,
        ops=("conv_3x3",),
        widths=(8,),
        skips=("none",),
        activations=("relu",),
        stride_layers=(),
    )


class _CountingTraining(FullTraining):
    calls = 0

    def evaluate(self, spec, *, report, seed):  # type: ignore[no-untyped-def]
        type(self).calls += 1
        return super().evaluate(spec, report=report, seed=seed)


def test_same_architecture_is_trained_once_and_copied(digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    space = _one_architecture_space(digits)
    evaluator = _CountingTraining(digits, training=TrainingConfig(epochs=1))
    objective = NASObjective(space, evaluator, objectives=("val_accuracy", "params"))
    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    study = optuna.create_study(storage=storage, directions=objective.directions)
    study.optimize(objective, n_trials=3)
    assert _CountingTraining.calls == 1
    first, *copies = study.trials
    assert DUPLICATE_OF not in first.user_attrs
    for t in copies:
        assert t.state is TrialState.COMPLETE
        assert t.values == first.values
        assert t.user_attrs[DUPLICATE_OF] == 0
        assert t.user_attrs["val_accuracy_curve"] == first.user_attrs["val_accuracy_curve"]
        assert t.user_attrs["canonical_hash"] == first.user_attrs["canonical_hash"]

    again = NASObjective(
        space, evaluator, objectives=("val_accuracy", "params"), deduplicate=False
    )
    study.optimize(again, n_trials=1)
    assert _CountingTraining.calls == 2
    assert DUPLICATE_OF not in study.trials[-1].user_attrs


# ----------------------------------------------------------------------------- cheap bookkeeping
# A trial's own bookkeeping (cost attrs, deduplication, the retry seed) is checked with an
# evaluator that trains nothing, on real SQLite files.


class _Instant(Evaluator):
    """Scores every spec 0.5 at once and records the seeds and specs it was given."""

    def __init__(self) -> None:
        self.seeds: list[int] = []
        self.specs: list[ArchitectureSpec] = []

    def evaluate(self, spec: ArchitectureSpec, *, report: Report | None, seed: int) -> Evaluation:
        self.seeds.append(seed)
        self.specs.append(spec)
        return Evaluation(values={"val_accuracy": 0.5}, metrics={"evaluated": True})


DIGITS_SHAPE = (1, 8, 8)


def _two_width_space() -> ChainSpace:
    return ChainSpace(
        input_shape=DIGITS_SHAPE,
        num_outputs=10,
        min_depth=1,
        max_depth=1,
        ops=("conv_3x3",),
        widths=(8, 16),
        skips=("none",),
        activations=("relu",),
        stride_layers=(),
    )


def _params(space: ChainSpace, width: int) -> dict[str, Any]:
    params = {
        name: dist.choices[0] if isinstance(dist, CategoricalDistribution) else dist.low  # type: ignore[attr-defined]
        for name, dist in space.distributions().items()
    }
    return {**params, "layer1/width": width}


def test_cost_attrs_match_the_built_model_and_are_the_same_on_every_storage(
    tmp_path: Path,
) -> None:
    space = ChainSpace(input_shape=DIGITS_SHAPE, num_outputs=10)
    url = f"sqlite:///{tmp_path / 'costs.db'}"
    attrs = {}
    for where in (url, None):  # SQLite (attrs in one transaction) and in-memory (one per key)
        objective = NASObjective(space, _Instant(), objectives=("val_accuracy", "params", "flops"))
        study = optuna.create_study(
            storage=where,
            directions=objective.directions,
            sampler=optuna.samplers.RandomSampler(seed=4),
        )
        study.optimize(objective, n_trials=4)
        if where is not None:
            study = optuna.load_study(study_name=study.study_name, storage=where)
        attrs[where] = [t.user_attrs for t in study.trials]
        for t in study.trials:
            spec = ArchitectureSpec.from_json(t.user_attrs["spec"])
            model = build_model(spec)
            assert t.user_attrs["params"] == sum(p.numel() for p in model.parameters())
            assert t.user_attrs["flops"] == count_flops(model)  # FlopCounterMode on the model
            assert t.values == [0.5, t.user_attrs["params"], t.user_attrs["flops"]]
            assert t.user_attrs["canonical_hash"] == canonical_hash(spec)
    assert attrs[url] == attrs[None]


def test_trials_finished_before_the_first_trial_without_claims_are_still_copied(
    tmp_path: Path,
) -> None:
    # A COMPLETE trial recorded without a claim (before claims existed, or by a plain Optuna
    # tool) is found by the one history read a worker makes on its first trial.
    space = _two_width_space()
    spec = space.decode(_params(space, 8))
    url = f"sqlite:///{tmp_path / 'legacy.db'}"
    study = optuna.create_study(storage=url, directions=["maximize", "minimize"])
    study.add_trial(
        optuna.trial.create_trial(
            params=_params(space, 8),
            distributions=space.distributions(),
            values=[0.75, 123.0],
            user_attrs={"canonical_hash": canonical_hash(spec), "val_accuracy_curve": [0.75]},
        )
    )
    evaluator = _Instant()
    objective = NASObjective(space, evaluator, objectives=("val_accuracy", "params"))
    study.enqueue_trial(_params(space, 8))
    study.optimize(objective, n_trials=1)
    copy = optuna.load_study(study_name=study.study_name, storage=url).trials[1]
    assert evaluator.specs == []
    assert copy.values == [0.75, 123.0]
    assert copy.user_attrs[DUPLICATE_OF] == 0
    assert copy.user_attrs["val_accuracy_curve"] == [0.75]


def test_a_worker_copies_an_architecture_another_worker_finished_after_its_first_trial(
    tmp_path: Path,
) -> None:
    space = _two_width_space()
    url = f"sqlite:///{tmp_path / 'workers.db'}"
    name = optuna.create_study(storage=url, directions=["maximize", "minimize"]).study_name
    a, b = _Instant(), _Instant()
    worker_a, worker_b = (
        (NASObjective(space, e), optuna.load_study(study_name=name, storage=url)) for e in (a, b)
    )
    for (objective, study), width in ((worker_b, 16), (worker_a, 8), (worker_b, 8)):
        study.enqueue_trial(_params(space, width))
        study.optimize(objective, n_trials=1)
    # B read the history on its first trial, before A trained width 8; the claim A holds
    # makes B copy it rather than train it again.
    assert [s.node("layer1").config["channels"] for s in a.specs + b.specs] == [8, 16]
    trials = optuna.load_study(study_name=name, storage=url).trials
    assert trials[2].user_attrs[DUPLICATE_OF] == 1
    assert trials[2].values == trials[1].values
    assert trials[2].user_attrs["evaluated"] is True


def test_a_retry_is_evaluated_with_the_seed_of_the_trial_it_replaces(tmp_path: Path) -> None:
    space = _two_width_space()
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'retry.db'}", directions=["maximize", "minimize"]
    )
    study.add_trial(  # what RetryFailedTrialCallback enqueues for a failed trial 7
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=_params(space, 8),
            distributions=space.distributions(),
            system_attrs={"failed_trial": 7},
        )
    )
    evaluator = _Instant()
    study.enqueue_trial(_params(space, 16))
    study.optimize(NASObjective(space, evaluator, seed=100), n_trials=2)
    assert evaluator.seeds == [107, 101]  # the retry as trial 7; the fresh trial 1 as itself
