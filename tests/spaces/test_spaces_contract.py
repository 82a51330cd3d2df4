"""The contract every built-in space keeps, checked over many seeded random trials."""

from __future__ import annotations

from collections.abc import Callable
import re
import sys

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.distributions import IntDistribution
import pytest

from optuna_nas.spaces import CELL_OPS
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import ChainSpace
from optuna_nas.spaces import MixedSpace
from optuna_nas.spaces import MobileSpace
from optuna_nas.spaces import MobileStage
from optuna_nas.spaces import SearchSpace
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import canonical_hash

optuna.logging.set_verbosity(optuna.logging.WARNING)

DIGITS = (1, 8, 8)
CIFAR = (3, 32, 32)

SPACES: dict[str, Callable[[], SearchSpace]] = {
    "chain-digits": lambda: ChainSpace(input_shape=DIGITS, num_outputs=10),
    "chain-cifar-strided": lambda: ChainSpace(
        input_shape=CIFAR, num_outputs=10, max_depth=8, stride_layers=(3, 5)
    ),
    "chain-small-kernels-many-strides": lambda: ChainSpace(
        input_shape=CIFAR,
        num_outputs=100,
        min_depth=3,
        max_depth=7,
        ops=("conv_3x3", "sep_conv_3x3", "max_pool_3x3", "identity"),
        stride_layers=(1, 3, 5),
        skips=("residual", "dense"),
    ),
    "cell-digits": lambda: CellSpace(input_shape=DIGITS, num_outputs=10),
    "cell-nb201-one-cell": lambda: CellSpace.nasbench201(cells_per_stage=1),
    "cell-all-ops": lambda: CellSpace(
        input_shape=(3, 16, 16), num_outputs=5, ops=CELL_OPS, num_nodes=5, cells_per_stage=1
    ),
    "mobile-digits": lambda: MobileSpace(input_shape=DIGITS, num_outputs=10),
    "mobile-cifar": lambda: MobileSpace(
        input_shape=CIFAR,
        num_outputs=10,
        stem_stride=2,
        stages=(
            MobileStage(channels=16, expansions=(1,), max_depth=1),
            MobileStage(channels=24, stride=2, min_depth=2, max_depth=4),
            MobileStage(channels=40, stride=2, kernels=(3,), max_depth=2),
        ),
        se=(True,),
    ),
    "mixed-digits": lambda: MixedSpace(input_shape=DIGITS, num_outputs=10),
}

NAME = re.compile(r"^[a-z][a-z0-9_]*(/[a-z][a-z0-9_]*)*$")


@pytest.fixture(params=sorted(SPACES))
def space(request: pytest.FixtureRequest) -> SearchSpace:
    return SPACES[request.param]()


def test_random_trials_give_valid_specs_that_decode_back(space: SearchSpace) -> None:
    declared = space.distributions()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    asked: set[str] = set()
    specs = []
    for _ in range(120):
        trial = study.ask()
        spec = space.suggest(trial)
        assert isinstance(spec, ArchitectureSpec)  # validated on construction
        assert (spec.input_shape, spec.num_outputs) == (space.input_shape, space.num_outputs)
        assert dict(spec.metadata) == {"space": space.name}
        assert space.decode(trial.params) == spec
        for name, dist in trial.distributions.items():
            assert declared[name] == dist, name
        asked |= set(trial.params)
        specs.append(spec)
        study.tell(trial, float(len(spec.nodes)))
    # Every declared parameter is reachable: distributions() lists no phantom names.
    assert asked == set(declared)
    # The stored params (what a resumed process sees) decode to the same specs.
    for frozen, spec in zip(study.trials, specs, strict=True):
        assert space.decode(frozen.params) == spec
        assert ArchitectureSpec.from_json(spec.to_json()) == spec
    assert len({canonical_hash(s) for s in specs}) > 1


def test_decode_equals_suggest_on_any_base_trial(space: SearchSpace) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    spec = space.suggest(trial)
    params = {**trial.params, "lr": 0.1}  # other hyperparameters of the trial are not read
    assert space.decode(params) == spec
    assert space.suggest(optuna.trial.FixedTrial(trial.params)) == spec


def test_parameter_names_are_hierarchical(space: SearchSpace) -> None:
    for name in space.distributions():
        assert NAME.match(name), name


def test_every_parameter_is_categorical_or_int(space: SearchSpace) -> None:
    for dist in space.distributions().values():
        assert isinstance(dist, (CategoricalDistribution, IntDistribution))


def test_decode_names_a_missing_parameter(space: SearchSpace) -> None:
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2)).ask()
    space.suggest(trial)
    for name in trial.params:
        params = {k: v for k, v in trial.params.items() if k != name}
        with pytest.raises(ValueError, match=f"{re.escape(repr(name))} is missing"):
            space.decode(params)


def test_decode_rejects_a_value_outside_its_distribution(space: SearchSpace) -> None:
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3)).ask()
    space.suggest(trial)
    for name, dist in trial.distributions.items():
        bad: object = "no-such-choice"
        if isinstance(dist, IntDistribution):
            bad = dist.high + 1
        with pytest.raises(ValueError, match=re.escape(repr(name))):
            space.decode({**trial.params, name: bad})


def test_tpe_drives_the_space(space: SearchSpace) -> None:
    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=4)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: float(len(space.suggest(t).nodes)), n_trials=10)
    assert len(study.trials) == 10
    for t in study.trials:
        space.decode(t.params)


def test_nsga2_drives_the_space(space: SearchSpace) -> None:
    sampler = optuna.samplers.NSGAIISampler(seed=0, population_size=4)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        spec = space.suggest(trial)
        return float(len(spec.nodes)), float(len(spec.edges))

    study.optimize(objective, n_trials=12)
    assert len(study.trials) == 12
    for t in study.trials:
        space.decode(t.params)


def test_spaces_do_not_import_torch() -> None:
    # The spaces only need Optuna and the spec package; checked in a clean interpreter.
    import subprocess

    code = "import sys, optuna_nas.spaces; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
