"""patience_pruner: the seed's rule (minimum epochs, then patience) built from Optuna's pruners."""

from __future__ import annotations

from collections.abc import Sequence
import json
import os
from pathlib import Path
import subprocess
import sys
from typing import Any

import optuna
import pytest

from optuna_nas.pruners import patience_pruner

ROOT = Path(__file__).resolve().parents[2]


def first_pruned_step(pruner: optuna.pruners.BasePruner, curve: Sequence[float]) -> int | None:
    study = optuna.create_study(direction="maximize", pruner=pruner)
    trial = study.ask()
    for step, value in enumerate(curve, start=1):
        trial.report(value, step)
        if trial.should_prune():
            return step
    return None


def test_stops_a_declining_curve_after_patience_but_not_before_min_epochs() -> None:
    falling = [0.5, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    # best 0.9 at epoch 2; epochs 3..5 (patience 2 + 1) are all below it: stop at epoch 5.
    assert first_pruned_step(patience_pruner(min_epochs=1, patience=2), falling) == 5
    assert first_pruned_step(patience_pruner(min_epochs=6, patience=2), falling) == 6
    rising = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97]
    assert first_pruned_step(patience_pruner(min_epochs=1, patience=2), rising) is None


def test_a_wrapped_pruner_must_agree() -> None:
    never = optuna.pruners.ThresholdPruner(lower=0.0)
    falling = [0.5, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    assert (
        first_pruned_step(patience_pruner(min_epochs=1, patience=2, wrapped=never), falling)
        is None
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_epochs": -1, "patience": 1}, "min_epochs"),
        ({"min_epochs": 1, "patience": -1}, "patience"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        patience_pruner(**kwargs)


@pytest.mark.slow
def test_pruner_benchmark_smoke() -> None:
    out = subprocess.run(
        [sys.executable, "benchmarks/pruners.py", "--smoke"],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result = json.loads(out.stdout[out.stdout.index("{\n") :])
    rows = result["spaces"]["chain-smoke"]["pruners"]
    assert rows["none"]["epochs_saved"] == 0.0
    assert set(rows) >= {"median", "hyperband", "learning_curve"}
