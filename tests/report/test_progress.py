"""The progress bar: its summary names only trials that the report's front lists, and it
shows the training trial's epochs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal
import warnings

import optuna
from optuna.distributions import FloatDistribution
import pytest

from optuna_nas.data import load_digits
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.objective import NASObjective
from optuna_nas.report import ProgressBar
from optuna_nas.report import best_so_far
from optuna_nas.report import summarize_study
from optuna_nas.spaces import ChainSpace


def _study(
    tmp_path: Path,
    directions: list[Literal["minimize", "maximize"]],
    rows: list[tuple[list[float], float]],
) -> optuna.Study:
    """Trial i has values ``rows[i][0]`` and constraint ``rows[i][1]`` (> 0: infeasible)."""
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'p.db'}", study_name="p", directions=directions
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["val_accuracy", "params"][: len(directions)])
    for values, constraint in rows:
        study.add_trial(
            optuna.trial.create_trial(
                values=values,
                params={"x": 0.5},
                distributions={"x": FloatDistribution(0, 1)},
                system_attrs={"constraints:latency_ms": constraint},
            )
        )
    return study


def test_ties_on_the_best_value_name_the_trial_on_the_front(tmp_path: Path) -> None:
    # Trials 0 and 2 share the best accuracy; 0 has more params, so only 2 is on the front.
    # Trial 3 is better in both but infeasible; trial 1 is the smallest feasible one.
    rows = [
        ([0.97, 5000.0], -1.0),
        ([0.90, 1000.0], -1.0),
        ([0.97, 3000.0], -1.0),
        ([0.99, 500.0], 1.0),
    ]
    study = _study(tmp_path, ["maximize", "minimize"], rows)
    front = [r.number for r in summarize_study(study).rows]
    assert front == [2, 1]
    assert best_so_far(study) == (
        "front of 2 trials; on it val_accuracy=0.97 (trial 2), params=1000 (trial 1)"
    )


def test_one_objective_names_the_earliest_best_trial(tmp_path: Path) -> None:
    study = _study(tmp_path, ["maximize"], [([0.9], -1.0), ([0.95], -1.0), ([0.95], -1.0)])
    assert best_so_far(study) == "best val_accuracy=0.95 (trial 1)"
    assert summarize_study(study).rows[0].number == 1


def test_no_feasible_trial_and_a_front_of_one(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    none = _study(tmp_path / "a", ["maximize", "minimize"], [([0.9, 100.0], 1.0)])
    assert best_so_far(none) == "no feasible complete trial yet"
    one = _study(tmp_path / "b", ["maximize", "minimize"], [([0.9, 100.0], 0.0)])
    assert (
        best_so_far(one)
        == "front of 1 trial; on it val_accuracy=0.9 (trial 0), params=100 (trial 0)"
    )


def test_the_bar_shows_each_epoch_of_the_training_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = load_digits(seed=0)
    space = ChainSpace(input_shape=data.input_shape, num_outputs=data.num_classes)
    objective = NASObjective(space, FullTraining(data, training=TrainingConfig(epochs=2)))
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'e.db'}", directions=objective.directions
    )
    training = logging.getLogger("optuna_nas.training")
    with ProgressBar(study, n_trials=1) as bar:
        assert training.level == logging.INFO and not training.propagate
        study.optimize(objective, n_trials=1, callbacks=[bar])
    err = capsys.readouterr().err
    assert "training: epoch 1/2: loss " in err and "training: epoch 2/2: loss " in err
    assert " img/s" in err
    # Closed: the logger is as it was (no level, propagating, no handler of ours).
    assert training.level == logging.NOTSET and training.propagate and not training.handlers


def test_a_training_logger_the_user_configured_keeps_its_output(tmp_path: Path) -> None:
    training = logging.getLogger("optuna_nas.training")
    training.setLevel(logging.DEBUG)
    try:
        study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'u.db'}")
        with ProgressBar(study, n_trials=0):
            assert training.level == logging.DEBUG and training.propagate
        assert training.level == logging.DEBUG
    finally:
        training.setLevel(logging.NOTSET)
