from __future__ import annotations

import optuna
import pytest

from optuna_nas.samplers import PREDICTOR_NAMES
from optuna_nas.samplers import SAMPLER_NAMES
from optuna_nas.samplers import KernelPredictor
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


@pytest.mark.parametrize("name", ["evolution", "progressive"])
def test_predictor_guided_samplers_by_name(name: str) -> None:
    sampler = create_sampler(name, predictor="kernel", seed=0)
    assert isinstance(sampler._predictor, KernelPredictor)  # type: ignore[attr-defined]
    # The same sampler as benchmarks/nb201.py's `<name>_predictor` row.
    assert sampler._num_candidates == 20  # type: ignore[attr-defined]
    assert create_sampler(name, predictor=None)._predictor is None  # type: ignore[attr-defined]


def test_predictor_options_and_instances_reach_the_sampler() -> None:
    mine = KernelPredictor(exploration=0.5)
    evo = create_sampler("evolution", predictor=mine, num_candidates=5)
    assert evo._predictor is mine and evo._num_candidates == 5  # type: ignore[attr-defined]
    assert create_sampler("evolution")._num_candidates == 1  # type: ignore[attr-defined]
    assert PREDICTOR_NAMES == ("kernel",)


def test_predictor_guided_evolution_searches_a_study() -> None:
    study = optuna.create_study(
        direction="maximize", sampler=create_sampler("evolution", predictor="kernel", seed=0)
    )
    choices = ["a", "b", "c", "d"]
    score = {"a": 0.0, "b": 1.0, "c": 2.0, "d": 3.0}
    study.optimize(
        lambda t: sum(score[t.suggest_categorical(f"x{i}", choices)] for i in range(4)),
        n_trials=40,
    )
    guided = [t for t in study.trials if t.number >= 20]
    assert len(guided) == 20 and study.best_value >= 9


def test_bad_predictor_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"`predictor` must be one of \['kernel'\].*'mlp'"):
        create_sampler("evolution", predictor="mlp")
    with pytest.raises(ValueError, match=r"`predictor` must be one of .* but got 3"):
        create_sampler("progressive", predictor=3)
    with pytest.raises(
        ValueError, match=r"`predictor` is accepted by \['evolution', 'progressive'\] only.*'tpe'"
    ):
        create_sampler("tpe", predictor="kernel")
    with pytest.raises(ValueError, match="unknown option"):
        create_sampler("random", predictor=None)
