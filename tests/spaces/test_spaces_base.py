"""The SearchSpace contract on a toy space: one description drives suggest and decode."""

from __future__ import annotations

import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest

from optuna_nas.spaces import SearchSpace
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import spec_from_layers

optuna.logging.set_verbosity(optuna.logging.WARNING)


class ToySpace(SearchSpace):
    """A conv of searched width and kernel, dropout of searched rate, an optional second conv."""

    def __init__(self, *, undeclared: bool = False) -> None:
        self.undeclared = undeclared
        self.input_shape = (1, 4, 4)
        self.num_outputs = 2

    @property
    def name(self) -> str:
        return "toy"

    def distributions(self) -> dict[str, BaseDistribution]:
        return {
            "conv/width": IntDistribution(4, 16, step=4),
            "conv/kernel": CategoricalDistribution((1, 3)),
            "conv/bn": CategoricalDistribution((False, True)),
            "drop/p": FloatDistribution(0.0, 0.5, step=0.1),
            "drop/scale": FloatDistribution(0.01, 1.0, log=True),
        }

    def build(self, choose: object) -> ArchitectureSpec:
        assert callable(choose)
        cfg = {"channels": choose("conv/width"), "kernel": choose("conv/kernel")}
        rows = [("conv", "conv", {**cfg, "bn": choose("conv/bn")}, ["input"])]
        p = choose("drop/p") * choose("drop/scale")
        if self.undeclared:
            choose("not/declared")
        rows += [
            ("drop", "dropout", {"p": p}, ["conv"]),
            ("pool", "global_pool", {}, ["drop"]),
            ("fc", "linear", {"features": 2}, ["pool"]),
        ]
        return spec_from_layers(
            rows, input_shape=self.input_shape, num_outputs=self.num_outputs, metadata={}
        )


PARAMS = {
    "conv/width": 8,
    "conv/kernel": 3,
    "conv/bn": True,
    "drop/p": 0.2,
    "drop/scale": 0.5,
}


def test_suggest_and_decode_share_the_description() -> None:
    space = ToySpace()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        spec = space.suggest(trial)
        assert space.decode(trial.params) == spec
        assert trial.distributions == space.distributions()
        study.tell(trial, 0.0)


def test_decode_reads_values_of_the_distribution_type() -> None:
    spec = ToySpace().decode(PARAMS)
    assert spec.node("conv").config["channels"] == 8
    assert spec.node("drop").config["p"] == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("conv/width", 6, r"in \[4, 16\] with step 4"),
        ("conv/width", 20, r"in \[4, 16\] with step 4"),
        ("conv/width", 8.0, "an int"),
        ("conv/width", True, "an int"),
        ("conv/kernel", True, r"one of \[1, 3\]"),  # True == 1, but it is not the choice 1
        ("conv/kernel", "3", r"one of \[1, 3\]"),
        ("conv/bn", 1, r"one of \[False, True\]"),
        ("drop/p", 0.25, r"in \[0.0, 0.5\] with step 0.1"),
        ("drop/p", 0.6, r"in \[0.0, 0.5\]"),
        ("drop/p", "0.2", "a float"),
        ("drop/scale", 2.0, r"in \[0.01, 1.0\]"),
    ],
)
def test_decode_rejects_values_outside_the_distribution(
    name: str, value: object, rule: str
) -> None:
    with pytest.raises(ValueError, match=f"parameter '{name}' of space 'toy' must be .*{rule}"):
        ToySpace().decode({**PARAMS, name: value})


def test_decode_names_the_missing_parameter_and_the_space() -> None:
    params = {k: v for k, v in PARAMS.items() if k != "drop/p"}
    with pytest.raises(ValueError, match="space 'toy': parameter 'drop/p' is missing"):
        ToySpace().decode(params)


def test_decode_needs_a_mapping() -> None:
    with pytest.raises(TypeError, match="`params` must be a mapping"):
        ToySpace().decode([("conv/width", 8)])  # type: ignore[arg-type]


def test_asking_an_undeclared_parameter_is_a_bug_of_the_space() -> None:
    with pytest.raises(LookupError, match="'not/declared', which its distributions"):
        ToySpace(undeclared=True).decode(PARAMS)
    trial = optuna.create_study().ask()
    with pytest.raises(LookupError, match="'not/declared'"):
        ToySpace(undeclared=True).suggest(trial)
