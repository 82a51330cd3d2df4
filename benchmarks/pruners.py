"""Epochs saved against best accuracy lost, for pruners replaying the same recorded curves.

The full per-epoch validation curves of the ground-truth architectures of
``benchmarks/weight_sharing.py`` (digits, 10 epochs, cell and chain spaces; read from
``benchmarks/results/ground_truth_<space>.json``) are replayed as studies: each study feeds the
same architectures in one seeded random order, trial ``i`` reports epoch ``e``'s recorded
accuracy as step ``e`` through ``trial.report`` and stops when ``trial.should_prune()`` says
so; a completed trial's value is its last epoch's accuracy. Every pruner sees exactly the same
trials in exactly the same order, so the comparison isolates the pruning decision (no noise
from retraining). For each pruner and space, over ``--orders`` orders:

* ``epochs_saved``: 1 - (epochs run) / (epochs run without pruning);
* ``points_lost``: 100 x (best final accuracy without pruning - best final accuracy of the
  completed trials with pruning), mean and worst over orders.

``learning_curve`` is the pruner's default (``threshold=0.05``, Domhan et al.'s choice);
``learning_curve(threshold=0.2)`` was chosen after looking at these same curves (thresholds
0.05, 0.1, 0.2, 0.3 were tried), so its row is not a held-out estimate.

Run: ``python benchmarks/pruners.py`` (seconds; the curves must exist, so run
``benchmarks/weight_sharing.py`` first); ``--smoke`` replays the first 8 recorded chain curves
(or, without them, trains 6 tiny chain curves of 3 epochs) and writes nothing under
``benchmarks/``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import json
from pathlib import Path
import platform
import sys
import time
from typing import Any
import warnings

import numpy as np
import optuna
from optuna.pruners import BasePruner
import torch

from optuna_nas.data import load_digits
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.pruners import LearningCurvePruner
from optuna_nas.pruners import patience_pruner
from optuna_nas.spaces import ChainSpace

RESULTS = Path(__file__).resolve().parent / "results"


def pruners(epochs: int) -> dict[str, Callable[[], BasePruner]]:
    return {
        "none": optuna.pruners.NopPruner,
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=epochs, reduction_factor=3
        ),
        "patience(min 3, patience 2)": lambda: patience_pruner(min_epochs=3, patience=2),
        "learning_curve": lambda: LearningCurvePruner(
            final_step=epochs, threshold=0.05, n_warmup_steps=3
        ),
        "learning_curve(threshold=0.2)": lambda: LearningCurvePruner(
            final_step=epochs, threshold=0.2, n_warmup_steps=3
        ),
        "learning_curve(k=3)": lambda: LearningCurvePruner(
            final_step=epochs, k=3, threshold=0.05, n_warmup_steps=3
        ),
    }


def replay(
    curves: list[list[float]], order: list[int], pruner: BasePruner, name: str
) -> tuple[int, float]:
    """Epochs run and best completed final value when ``curves`` are replayed in ``order``."""
    study = optuna.create_study(direction="maximize", pruner=pruner, study_name=name)
    epochs_run = 0
    for i in order:
        trial = study.ask()
        curve = curves[i]
        pruned = False
        for step, value in enumerate(curve, start=1):
            trial.report(value, step)
            epochs_run += 1
            if step < len(curve) and trial.should_prune():
                pruned = True
                break
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, curve[-1])
    return epochs_run, study.best_value


def load_curves(space: str) -> list[list[float]]:
    path = RESULTS / f"ground_truth_{space}.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run benchmarks/weight_sharing.py first.")
    entries = json.loads(path.read_text())
    curves = [e["val_accuracy_curve"] for e in entries if "val_accuracy_curve" in e]
    if len(curves) != len(entries):
        raise SystemExit(
            f"{path} has entries without 'val_accuracy_curve'; this benchmark replays curves."
        )
    return curves


def smoke_curves() -> list[list[float]]:
    data = load_digits(seed=0)
    space = ChainSpace(input_shape=data.input_shape, num_outputs=data.num_classes, max_depth=3)
    evaluator = FullTraining(data, training=TrainingConfig(epochs=3))
    sampler = optuna.samplers.RandomSampler(seed=0)
    curves = []
    for i in range(6):
        trial = optuna.create_study(sampler=sampler).ask()
        result = evaluator.evaluate(space.suggest(trial), report=None, seed=i)
        curves.append(list(result.metrics["val_accuracy_curve"]))
    return curves


def run_space(curves: list[list[float]], orders: int) -> dict[str, Any]:
    epochs = len(curves[0])
    if any(len(c) != epochs for c in curves):
        raise SystemExit("every recorded curve must have the same number of epochs.")
    rows: dict[str, Any] = {}
    baseline: list[tuple[int, float]] = []
    for name, make in pruners(epochs).items():
        runs = []
        start = time.perf_counter()
        for r in range(orders):
            order = np.random.default_rng(r).permutation(len(curves)).tolist()
            runs.append(replay(curves, order, make(), f"order-{r}"))
        if name == "none":
            baseline = runs
        saved = [1 - e / b[0] for (e, _), b in zip(runs, baseline, strict=True)]
        lost = [100 * (b[1] - v) for (_, v), b in zip(runs, baseline, strict=True)]
        rows[name] = {
            "epochs_saved": round(float(np.mean(saved)), 4),
            "points_lost_mean": round(float(np.mean(lost)), 3),
            "points_lost_worst": round(float(np.max(lost)), 3),
            "decision_seconds": round(time.perf_counter() - start, 2),
        }
        print(f"  {name:28s} {json.dumps(rows[name])}", flush=True)
    return {"trials": len(curves), "epochs": epochs, "orders": orders, "pruners": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny run in seconds; writes nothing under benchmarks/",
    )
    parser.add_argument("--orders", type=int, default=10)
    parser.add_argument("--spaces", nargs="+", default=["cell", "chain"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if args.smoke:
        recorded = RESULTS / "ground_truth_chain.json"
        if recorded.exists():  # the first 8 recorded curves: seconds, no training
            spaces = {"chain-smoke": load_curves("chain")[:8]}
        else:
            spaces = {"chain-smoke": smoke_curves()}
        args.orders = 2
    else:
        spaces = {name: load_curves(name) for name in args.spaces}
    results = {}
    for name, curves in spaces.items():
        print(f"[{name}] {len(curves)} curves", flush=True)
        results[name] = run_space(curves, args.orders)
    result = {
        "benchmark": "pruners",
        "smoke": args.smoke,
        "spaces": results,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "optuna": optuna.__version__,
            "platform": platform.platform(),
            "note": "replayed curves: no timing enters the comparison; 2 shared cores",
        },
    }
    out = args.out
    if out is None and not args.smoke:
        out = RESULTS / "pruners.json"
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    else:
        json.dump(result, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
