"""Issue #14, samplers, against real SQLite and PostgreSQL storages: trials whose params are
fixed (enqueued, heartbeat-retried) get no invented lineage; ReinforceSampler searches several
objectives with its default constructor; evolution says when it keeps a duplicate child."""

from __future__ import annotations

from collections.abc import Iterator
import logging
from pathlib import Path
import time
from typing import Any

import numpy as np
import optuna
from optuna.distributions import IntDistribution
from optuna.trial import TrialState
import pytest

from optuna_nas.samplers import ProgressiveSampler
from optuna_nas.samplers import RegularizedEvolutionSampler
from optuna_nas.samplers import ReinforceSampler
from optuna_nas.samplers import default_complexity
from optuna_nas.samplers._base import PLAN_ATTR
from optuna_nas.samplers._mutation import mutate_value
from optuna_nas.samplers._reinforce import POLICY_ATTR
from optuna_nas.storage import open_storage
from tests.samplers._toy import TARGET
from tests.samplers._toy import matches
from tests.storage.backends import cleanup
from tests.storage.backends import make_url
from tests.storage.backends import new_name


@pytest.fixture
def names() -> Iterator[list[str]]:
    yield []


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path, names: list[str]) -> Iterator[str]:
    url = make_url(request.param, tmp_path)  # skips, with the reason, if the server is down
    yield url
    cleanup(url, names)


def _study(
    url: str,
    names: list[str],
    sampler: optuna.samplers.BaseSampler,
    directions: list[str] | None = None,
    **storage_kwargs: Any,
) -> optuna.Study:
    return optuna.create_study(
        study_name=new_name(names),
        storage=open_storage(url, **storage_kwargs),
        sampler=sampler,
        directions=directions or ["maximize"],
    )


def test_enqueued_trials_get_no_plan_or_lineage(url: str, names: list[str]) -> None:
    sampler = RegularizedEvolutionSampler(population_size=2, sample_size=2, seed=0)
    study = _study(url, names, sampler, heartbeat_interval=None)
    study.optimize(matches, n_trials=3)  # past the random phase: trials are mutated children
    assert "parent" in study.trials[-1].system_attrs[PLAN_ATTR]
    fixed = {f"x{i}": t for i, t in enumerate(TARGET)}
    study.enqueue_trial(fixed)
    study.enqueue_trial({"x0": "none"})  # partly fixed: the rest drawn at random
    study.optimize(matches, n_trials=2)
    full, partial = study.trials[-2:]
    # Before: both got {"parent": ..., "mutated": [...]}, as if mutated from a population member.
    assert full.params == fixed and PLAN_ATTR not in full.system_attrs
    assert partial.params["x0"] == "none" and PLAN_ATTR not in partial.system_attrs


def test_enqueued_trials_do_not_count_in_a_progressive_level(url: str, names: list[str]) -> None:
    sampler = ProgressiveSampler(trials_per_level=3, start_complexity=1, seed=0)
    study = _study(url, names, sampler, heartbeat_interval=None)
    study.optimize(matches, n_trials=2)
    study.enqueue_trial({f"x{i}": t for i, t in enumerate(TARGET)})  # complexity 10 > bound 1
    study.optimize(matches, n_trials=2)
    enqueued, after = study.trials[2:]
    assert default_complexity(enqueued.params) == 10
    # Before: the enqueued trial was recorded as level 0 with bound 1, and counted as the third
    # member of level 0, so the next trial already planned level 1.
    assert PLAN_ATTR not in enqueued.system_attrs
    assert after.system_attrs[PLAN_ATTR]["level"] == 0


def test_a_heartbeat_retried_trial_keeps_its_original_lineage(url: str, names: list[str]) -> None:
    sampler = RegularizedEvolutionSampler(population_size=3, sample_size=3, seed=0)
    study = _study(url, names, sampler, heartbeat_interval=1, grace_period=1)
    study.optimize(matches, n_trials=4)
    with pytest.warns(UserWarning, match="Heartbeat of storage"):  # ask() beats no heart
        stale = study.ask()  # its worker "dies" after suggesting and one heartbeat
    matches(stale)
    study._storage.record_heartbeat(stale._trial_id)  # type: ignore[attr-defined]
    original = study._storage.get_trial(stale._trial_id)
    time.sleep(2.5)  # past the grace period
    study.optimize(matches, n_trials=1)  # fails the stale trial, re-runs it as a retry
    retry = study.trials[-1]
    assert study.trials[original.number].state == TrialState.FAIL
    assert retry.state == TrialState.COMPLETE
    assert retry.system_attrs["failed_trial"] == original.number
    assert retry.params == original.params
    # Before: the retry was planned again, so its lineage named another parent / mutation than
    # the params it re-ran (which Optuna copied from the failed trial, with their lineage).
    assert retry.system_attrs[PLAN_ATTR] == original.system_attrs[PLAN_ATTR]


def _two_objectives(trial: optuna.Trial) -> tuple[float, float]:
    return matches(trial), float(sum(trial.params[f"x{i}"] != "none" for i in range(10)))


def test_reinforce_searches_several_objectives_by_default(url: str, names: list[str]) -> None:
    sampler = ReinforceSampler(seed=0)
    study = _study(url, names, sampler, ["maximize", "minimize"], heartbeat_interval=None)
    # Before: ValueError "a study with 2 objectives needs `weights` ... or `reference_point`".
    study.optimize(_two_objectives, n_trials=25)
    policy = study._storage.get_study_system_attrs(study._study_id)[POLICY_ATTR]
    assert policy["consumed_below"] == 24  # all but the last, so far
    assert policy["baseline"] > 0  # hypervolume improvements were rewarded


def test_reinforce_default_reward_is_hypervolume_improvement_over_the_report_reference(
    url: str, names: list[str]
) -> None:
    sampler = ReinforceSampler(baseline_decay=0.5, seed=0)
    study = _study(url, names, sampler, ["maximize", "minimize"], heartbeat_interval=None)
    dist = {"x": optuna.distributions.CategoricalDistribution(["a", "b"])}
    for x, values, violation in [
        ("a", (-1.0, 2.0), 0.0),  # losses (1, 2): reference (1.1, 2.2), reward 0.1 * 0.2
        ("b", (-50.0, 90.0), 1.0),  # infeasible: no say in the reference; the lowest reward
        ("b", (-2.0, 1.0), 0.0),  # losses (2, 1): reference (2.2, 2.2), reward 0.44 - 0.24
    ]:
        study.add_trial(
            optuna.create_trial(
                params={"x": x},
                distributions=dist,
                values=values,
                constraints={"c": violation},
            )
        )
    sampler.policy_probabilities(study)
    policy = study._storage.get_study_system_attrs(study._study_id)[POLICY_ATTR]
    assert policy["min_reward"] == pytest.approx(0.02)
    # baseline: 0.02, then 0.5 * 0.02 + 0.5 * 0.02 (infeasible), then 0.5 * 0.02 + 0.5 * 0.2
    assert policy["baseline"] == pytest.approx(0.11)


def test_evolution_says_when_it_keeps_a_duplicate_child(
    url: str, names: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    sampler = RegularizedEvolutionSampler(population_size=2, sample_size=2, seed=0)
    study = _study(url, names, sampler, heartbeat_interval=None)

    def objective(trial: optuna.Trial) -> float:  # four architectures in all
        return float(trial.suggest_int("a", 0, 1) + trial.suggest_int("b", 0, 1))

    with caplog.at_level(logging.WARNING):
        study.optimize(objective, n_trials=10)
    seen: dict[tuple[int, int], int] = {}
    duplicates = 0
    for t in study.trials:
        key = (t.params["a"], t.params["b"])
        lineage = t.system_attrs.get(PLAN_ATTR, {})
        if "parent" in lineage and key in seen:
            # Before: kept after 20 tries without a word.
            assert lineage["duplicate_of"] == seen[key]
            duplicates += 1
        else:
            assert "duplicate_of" not in lineage
        seen.setdefault(key, t.number)
    assert duplicates >= 2
    warned = [r for r in caplog.records if "duplicate" in r.getMessage()]
    assert len(warned) == 1  # once per study, not once per trial
    assert "RegularizedEvolutionSampler" in warned[0].getMessage()
    assert "avoid_duplicates" in warned[0].getMessage()


@pytest.mark.parametrize(
    ("distribution", "value"),
    [(IntDistribution(0, 1), 1), (IntDistribution(0, 1), 0), (IntDistribution(0, 8, step=2), 8)],
)
def test_an_int_mutation_at_either_end_of_its_range_moves(
    distribution: IntDistribution, value: int
) -> None:
    # Before: from the top of the range a step of 2 or more overshot both ways and was clamped
    # back onto the value (half the time for 0..1), so children repeated their parents.
    rng = np.random.RandomState(0)
    moved = [mutate_value(distribution, value, rng) for _ in range(200)]
    assert value not in moved
    assert all(distribution._contains(v) for v in moved)
