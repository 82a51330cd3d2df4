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

``learning_curve`` is the pruner's default (``calibrate=True, threshold=0.2``: the forecast's
spread comes from the study's completed curves). Both forecasts are swept over ``THRESHOLDS``:
``bootstrap`` (Domhan et al.'s rule, ``calibrate=False``; their threshold is 0.05) and
``calibrate``; and a held-out choice is reported for each: for the curves of one space (or
data set), the threshold is chosen on the *other* spaces' curves (the largest mean epochs
saved with at most ``MAX_POINTS_LOST`` mean points lost on each of their curve sets), so that
row is not tuned on the curves it is scored on. Curve sets: ``ground_truth_<space>.json`` and,
where it exists, ``ground_truth_<space>_seed2.json`` (the same architectures trained with
other seeds).

Run: ``python benchmarks/pruners.py`` (minutes; the curves must exist, so run
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
THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4)
MAX_POINTS_LOST = 0.5  # the target: >= 40% of epochs saved with <= 0.5 points lost
HELD_OUT = "learning_curve(bootstrap, held-out threshold)"
HELD_OUT_CAL = "learning_curve(calibrate, held-out threshold)"


def pruners(epochs: int) -> dict[str, Callable[[], BasePruner]]:
    return {
        "none": optuna.pruners.NopPruner,
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=epochs, reduction_factor=3
        ),
        "patience(min 3, patience 2)": lambda: patience_pruner(min_epochs=3, patience=2),
        "learning_curve": lambda: LearningCurvePruner(final_step=epochs),
        "learning_curve(k=3)": lambda: LearningCurvePruner(final_step=epochs, k=3),
        **{
            f"learning_curve(bootstrap, threshold={t})": (
                lambda t=t: LearningCurvePruner(
                    final_step=epochs, threshold=t, n_warmup_steps=3, calibrate=False
                )
            )
            for t in THRESHOLDS
        },
        **{
            f"learning_curve(calibrate, threshold={t})": (
                lambda t=t: LearningCurvePruner(
                    final_step=epochs, threshold=t, n_warmup_steps=3, calibrate=True
                )
            )
            for t in THRESHOLDS
        },
    }


FAMILY_PREFIX = {
    HELD_OUT: "learning_curve(bootstrap, ",
    HELD_OUT_CAL: "learning_curve(calibrate, ",
}


def threshold_of(name: str, held_out: str) -> float | None:
    """The threshold of a swept learning-curve row of the family of ``held_out``, else None."""
    prefix = FAMILY_PREFIX[held_out]
    if not name.startswith(prefix) or "held-out" in name:
        return None
    return float(name.rsplit("threshold=", 1)[1].rstrip(")"))


def held_out_choice(results: dict[str, Any]) -> None:
    """Adds, per curve set and learning-curve variant, the row whose threshold was chosen on
    the other space's curve sets (see the module doc)."""
    for held_out in FAMILY_PREFIX:
        _held_out_choice(results, held_out)


def _held_out_choice(results: dict[str, Any], held_out: str) -> None:
    space_of = {name: name.split("_seed")[0] for name in results}
    for name, res in results.items():
        selection = [r for n, r in results.items() if space_of[n] != space_of[name]]
        if not selection:
            continue
        best: tuple[float, str] | None = None
        for row in res["pruners"]:
            if threshold_of(row, held_out) is None:
                continue
            rows = [r["pruners"][row] for r in selection]
            if any(r["points_lost_mean"] > MAX_POINTS_LOST for r in rows):
                continue
            saved = float(np.mean([r["epochs_saved"] for r in rows]))
            if best is None or saved > best[0]:
                best = (saved, row)
        if best is None:
            continue
        chosen = dict(res["pruners"][best[1]])
        chosen["threshold"] = threshold_of(best[1], held_out)
        chosen["chosen_on"] = sorted(n for n in results if space_of[n] != space_of[name])
        res["pruners"][held_out] = chosen


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
    return curves_of(path)


def curves_of(path: Path) -> list[list[float]]:
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


def markdown(result: dict[str, Any]) -> str:
    sets = list(result["spaces"])
    rows = [r for r in next(iter(result["spaces"].values()))["pruners"] if r not in FAMILY_PREFIX]
    first = result["spaces"][sets[0]]
    lines = [
        "## Pruners",
        "",
        f"`{result['command'].strip()}` ({result['wall_seconds']:.0f} s) → "
        "`benchmarks/results/pruners.json`.",
        "",
        f"Replays the recorded {first['epochs']}-epoch validation curves of the ground-truth "
        "architectures of `benchmarks/weight_sharing.py` (digits, and `chain_mnist12`: the "
        "chain space on MNIST-5k at 12x12; `<space>` trained with seeds "
        "1000 + i, `<space>_seed2` the same architectures with seeds 2000 + i), "
        f"{first['orders']} seeded orders each: every pruner sees the same trials in the same "
        "order, reported with `trial.report` epoch by epoch; a pruned trial stops consuming "
        "epochs. Epochs saved are against no pruning; points lost = 100 x (best final accuracy "
        "without pruning - best final accuracy of the completed trials with pruning), mean "
        "(worst) over the orders. One validation image is 0.28 points on digits (359 images) "
        "and 0.1 on MNIST-5k (1,000).",
        "",
        "| pruner | " + " | ".join(f"{s}: epochs saved | {s}: points lost" for s in sets) + " |",
        "|---|" + "---|---|" * len(sets),
    ]
    for row in [*rows, *FAMILY_PREFIX]:
        cells = []
        for s in sets:
            r = result["spaces"][s]["pruners"].get(row)
            if r is None:
                cells += ["-", "-"]
                continue
            label = f" (t={r['threshold']})" if row in FAMILY_PREFIX else ""
            cells += [
                f"{100 * r['epochs_saved']:.1f}%{label}",
                f"{r['points_lost_mean']:g} ({r['points_lost_worst']:g})",
            ]
        lines.append(f"| `{row}` | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Held-out rows: for each curve set, the threshold among "
        f"{list(THRESHOLDS)} with the most epochs saved and at most {MAX_POINTS_LOST} mean "
        "points lost on every curve set of the *other* spaces / data sets (not the curves it "
        "is scored "
        "on). `calibrate`: the point forecast is corrected by the mean error of the same "
        "extrapolation on the study's completed curves, and its spread is their standard "
        "deviation (a normal predictive; after Chandrashekaran & Lane 2017), instead of the "
        "bootstrap. `learning_curve` (the defaults) is `calibrate, threshold=0.2`.",
        "",
        "Not held out: the *form* of the calibrated predictive (a normal one) was chosen "
        "after replaying these curve sets ([NOTES.md](NOTES.md#pruners)); only the threshold rows "
        "are a held-out check.",
        "",
    ]
    median = [
        v["pruners"]["median"] for v in result["spaces"].values() if "median" in v["pruners"]
    ]
    if median:
        saved = [100 * m["epochs_saved"] for m in median]
        lines += [
            f"On these quickly saturating curves MedianPruner saves {min(saved):.0f}-"
            f"{max(saved):.0f}% of the epochs, losing at most "
            f"{max(m['points_lost_mean'] for m in median):g} points on average.",
            "",
        ]
    for held_out in FAMILY_PREFIX:
        met = {
            s: (r := result["spaces"][s]["pruners"].get(held_out)) is not None
            and r["epochs_saved"] >= 0.4
            and r["points_lost_mean"] <= MAX_POINTS_LOST
            for s in sets
        }
        lines.append(
            f"- Target (>= 40% epochs saved, <= 0.5 points lost), `{held_out}`: "
            + ", ".join(f"{s} {'MET' if ok else 'NOT MET'}" for s, ok in met.items())
            + "."
        )
    lines += [
        "",
        f"Machine: {result['machine']['platform']}, Python {result['machine']['python']}, "
        f"torch {result['machine']['torch']}, optuna {result['machine']['optuna']}.",
        "",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny run in seconds; writes nothing under benchmarks/",
    )
    parser.add_argument("--orders", type=int, default=10)
    parser.add_argument("--spaces", nargs="+", default=["cell", "chain", "chain_mnist12"])
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
        spaces = {}
        for name in args.spaces:
            spaces[name] = load_curves(name)
            other = RESULTS / f"ground_truth_{name}_seed2.json"
            if other.exists():
                spaces[f"{name}_seed2"] = curves_of(other)
    results = {}
    start = time.perf_counter()
    for name, curves in spaces.items():
        print(f"[{name}] {len(curves)} curves", flush=True)
        results[name] = run_space(curves, args.orders)
    held_out_choice(results)
    result = {
        "benchmark": "pruners",
        "command": "python benchmarks/pruners.py " + " ".join(sys.argv[1:]),
        "wall_seconds": round(time.perf_counter() - start, 1),
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
        if not args.smoke:
            from _results import regenerate

            regenerate(out.parent)
    else:
        json.dump(result, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
