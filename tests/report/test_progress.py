"""The progress bar's summary names only trials that the report's front lists."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
import warnings

import optuna
from optuna.distributions import FloatDistribution

from optuna_nas.report import best_so_far
from optuna_nas.report import summarize_study


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
