"""Acceptance on real data: DARTS's architecture is at least as good as the median random one.

A reduced version of ``benchmarks/darts.py`` (which runs 5 search seeds against 16 random
architectures, every architecture trained with 3 seeds): one search, 7 random architectures,
one training each, equal training.
"""

from __future__ import annotations

import statistics

import optuna

from optuna_nas.data import load_digits
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.objective import NASObjective
from optuna_nas.samplers._darts import DartsSampler
from optuna_nas.samplers._darts import DartsSearchConfig
from optuna_nas.spaces import CellSpace


def test_darts_architecture_scores_at_least_the_random_median_on_digits() -> None:
    data = load_digits(seed=0)
    space = CellSpace(
        input_shape=data.input_shape,
        num_outputs=data.num_classes,
        init_channels=8,
        num_stages=2,
        cells_per_stage=1,
    )
    objective = NASObjective(
        space,
        FullTraining(data, training=TrainingConfig(epochs=5)),
        objectives=("val_accuracy",),
    )
    sampler = DartsSampler(
        space=space, data=data, search_config=DartsSearchConfig(epochs=12), seed=0
    )
    darts = optuna.create_study(sampler=sampler, direction="maximize")
    darts.optimize(objective, n_trials=1)  # trial 0: the argmax architecture
    assert darts.trials[0].system_attrs["darts:proposal"] == "argmax"

    rand = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    rand.optimize(objective, n_trials=7)
    median = statistics.median(t.value for t in rand.trials if t.value is not None)
    assert darts.trials[0].value is not None
    assert darts.trials[0].value >= median, (darts.trials[0].value, median)
