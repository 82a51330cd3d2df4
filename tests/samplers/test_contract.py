"""Optuna's shipped sampler contract suites, run on each of our samplers."""

from __future__ import annotations

from collections.abc import Callable

from optuna.samplers import BaseSampler
from optuna.testing.pytest_samplers import BasicSamplerTestCase
from optuna.testing.pytest_samplers import MultiObjectiveSamplerTestCase
from optuna.testing.pytest_samplers import RelativeSamplerTestCase
import pytest

from optuna_nas.samplers import KernelPredictor
from optuna_nas.samplers import ProgressiveSampler
from optuna_nas.samplers import RegularizedEvolutionSampler
from optuna_nas.samplers import ReinforceSampler

# Small populations and levels so the suites' short studies reach the non-random phase.
FACTORIES: dict[str, Callable[[], BaseSampler]] = {
    "evolution": lambda: RegularizedEvolutionSampler(population_size=2, sample_size=2, seed=0),
    "evolution_predictor": lambda: RegularizedEvolutionSampler(
        population_size=2, sample_size=2, predictor=KernelPredictor(), num_candidates=4, seed=0
    ),
    "reinforce": lambda: ReinforceSampler(seed=0),
    "progressive": lambda: ProgressiveSampler(
        trials_per_level=2, predictor=KernelPredictor(), seed=0
    ),
}
# Several objectives: the same factories (ReinforceSampler() rewards hypervolume improvement
# by default), and ReinforceSampler's two other rewards.
MULTI_FACTORIES: dict[str, Callable[[], BaseSampler]] = {
    **FACTORIES,
    "reinforce_weights": lambda: ReinforceSampler(weights=(1.0, 1.0), seed=0),
    "reinforce_reference": lambda: ReinforceSampler(reference_point=(10.0, 10.0), seed=0),
}


@pytest.fixture(params=sorted(FACTORIES))
def factory_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=sorted(MULTI_FACTORIES))
def multi_factory_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class TestBasic(BasicSamplerTestCase):
    @pytest.fixture
    def sampler(self, factory_name: str) -> Callable[[], BaseSampler]:
        return FACTORIES[factory_name]


class TestRelative(RelativeSamplerTestCase):
    @pytest.fixture
    def sampler(self, factory_name: str) -> Callable[[], BaseSampler]:
        return FACTORIES[factory_name]


class TestMultiObjective(MultiObjectiveSamplerTestCase):
    @pytest.fixture
    def sampler(self, multi_factory_name: str) -> Callable[[], BaseSampler]:
        return MULTI_FACTORIES[multi_factory_name]
