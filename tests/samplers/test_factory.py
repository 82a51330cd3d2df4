from __future__ import annotations

import optuna
import pytest

from optuna_nas.samplers import SAMPLER_NAMES
from optuna_nas.samplers import ProgressiveSampler
from optuna_nas.samplers import RegularizedEvolutionSampler
from optuna_nas.samplers import ReinforceSampler
from optuna_nas.samplers import create_sampler


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("random", optuna.samplers.RandomSampler),
        ("tpe", optuna.samplers.TPESampler),
        ("gp", optuna.samplers.GPSampler),
        ("nsga2", optuna.samplers.NSGAIISampler),
        ("nsga3", optuna.samplers.NSGAIIISampler),
        ("evolution", RegularizedEvolutionSampler),
        ("reinforce", ReinforceSampler),
        ("progressive", ProgressiveSampler),
    ],
)
def test_every_name_builds_its_sampler(name: str, cls: type) -> None:
    assert isinstance(create_sampler(name, seed=0), cls)


def test_every_name_is_listed() -> None:
    assert SAMPLER_NAMES == (
        "random",
        "tpe",
        "gp",
        "nsga2",
        "nsga3",
        "evolution",
        "reinforce",
        "progressive",
        "darts",
    )


def test_tpe_gets_nas_defaults_that_options_override() -> None:
    tpe = create_sampler("tpe")
    assert tpe._multivariate and tpe._group and tpe._constant_liar  # type: ignore[attr-defined]
    assert not create_sampler("tpe", group=False)._group  # type: ignore[attr-defined]


def test_options_reach_the_sampler() -> None:
    evo = create_sampler("evolution", population_size=7, sample_size=2)
    assert evo._population_size == 7  # type: ignore[attr-defined]


def test_gp_handles_categorical_params() -> None:
    study = optuna.create_study(sampler=create_sampler("gp", seed=0, n_startup_trials=3))
    study.optimize(
        lambda t: (
            {"a": 1.0, "b": 0.0, "c": 2.0}[t.suggest_categorical("op", ["a", "b", "c"])]
            + t.suggest_float("x", 0, 1)
        ),
        n_trials=6,
    )
    assert len(study.trials) == 6


def test_unknown_names_and_options_raise_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"`name` must be one of .*'evolution'.* but got 'cmaes'"):
        create_sampler("cmaes")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['population'\]"):
        create_sampler("evolution", population=3)
    with pytest.raises(ValueError, match="unknown option"):
        create_sampler("tpe", population_size=3)
