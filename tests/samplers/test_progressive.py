from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
import pytest

from optuna_nas.samplers import KernelPredictor
from optuna_nas.samplers import ProgressiveSampler
from optuna_nas.samplers import default_complexity
from optuna_nas.samplers._base import PLAN_ATTR

from ._toy import conditional
from ._toy import matches


def test_levels_grow_on_schedule_and_bound_the_complexity() -> None:
    sampler = ProgressiveSampler(trials_per_level=4, start_complexity=2, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(matches, n_trials=30)
    levels = [t.system_attrs[PLAN_ATTR]["level"] for t in study.trials]
    assert levels == [k // 4 for k in range(30)]
    for t in study.trials[1:]:  # the first trial knows no space yet: a plain random draw
        assert default_complexity(t.params) <= t.system_attrs[PLAN_ATTR]["bound"]
    early = max(t.value for t in study.trials[1:8])  # trial 0 is unbounded
    assert study.best_value > early


def test_a_level_that_stops_improving_ends_early() -> None:
    sampler = ProgressiveSampler(trials_per_level=100, patience=2, seed=0)
    study = optuna.create_study(sampler=sampler)  # minimising the matches: no improvement soon
    study.optimize(lambda t: -float(t.suggest_int("depth", 0, 9) == 0), n_trials=15)
    levels = [t.system_attrs[PLAN_ATTR]["level"] for t in study.trials]
    assert max(levels) >= 2


def test_progressive_search_beats_random_on_a_toy_space() -> None:
    results = []
    for seed in range(3):
        prog = optuna.create_study(
            direction="maximize",
            sampler=ProgressiveSampler(predictor=KernelPredictor(), seed=seed),
        )
        prog.optimize(matches, n_trials=80)
        rnd = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.RandomSampler(seed)
        )
        rnd.optimize(matches, n_trials=80)
        results.append(prog.best_value - rnd.best_value)
    assert min(results) >= 1


def test_user_complexity_and_conditional_spaces() -> None:
    def depth(params: Mapping[str, Any]) -> int:
        return int(params.get("mlp/depth", params.get("conv/kernel", 1)))

    sampler = ProgressiveSampler(complexity=depth, trials_per_level=3, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(conditional, n_trials=30)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert study.trials[-1].system_attrs[PLAN_ATTR]["level"] == 9


def test_a_complexity_that_returns_no_int_raises() -> None:
    sampler = ProgressiveSampler(complexity=lambda p: 1.5, trials_per_level=1, seed=0)  # type: ignore[arg-type,return-value]
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(ValueError, match="must return an int"):
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)


def test_default_complexity_counts_active_choices() -> None:
    assert default_complexity({"a": "none", "b": "conv", "c": "zero", "d": 3, "e": 0.5}) == 4
    assert default_complexity({"a": None, "b": True, "c": False}) == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"trials_per_level": 0}, "trials_per_level"),
        ({"start_complexity": -1}, "start_complexity"),
        ({"patience": 0}, "patience"),
        ({"complexity": 3}, "complexity"),
        ({"predictor": "kernel"}, "predictor"),
    ],
)
def test_bad_arguments_raise_one_clear_error(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ProgressiveSampler(**kwargs)
