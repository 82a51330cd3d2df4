"""How faithful and how cheap is weight sharing (SPOS) against standalone training, on digits?

For the cell and the chain space: ``N`` architectures drawn uniformly (seed 0, distinct
canonical hashes) are trained standalone (the ground truth) and scored by a
``WeightSharingEvaluator`` whose supernet lives in a real SQLite study's artifact store. The
table gives Kendall's tau-b and Spearman's rho between the two scores and the cost per
candidate: the evaluator's seconds per candidate against standalone training's seconds per
candidate, both measured in this process, plus the same ratio with the supernet's training
time shared over the ``N`` candidates.

Ground truth: ``benchmarks/results/ground_truth_<space>.json`` (a list of ``{params,
val_accuracy, train_seconds, ...}``) is read if it exists, whoever wrote it; otherwise this
script writes it with this setting: digits (``load_digits(seed=0)``), ``TrainingConfig(
epochs=10)`` (SGD, lr 0.05, Nesterov momentum 0.9, cosine, weight decay 5e-4), batch size 64,
seed ``1000 + i`` for architecture ``i``, one torch thread, and the smaller skeletons of
:data:`SPACE_CONFIG` (cell: 8 initial channels, 1 cell per stage; chain: depth <= 5, widths
8/16/32), with the spaces' default choices; each entry also keeps its
per-epoch validation curve (``val_accuracy_curve``), which ``benchmarks/pruners.py`` replays.
When the ground truth is read from a file, standalone training is re-timed here on its first
3 architectures so that both costs come from this process.

Run: ``python benchmarks/weight_sharing.py`` (several minutes on 2 shared cores when the ground
truth must be trained, about 2 minutes otherwise); ``--smoke`` runs a tiny version in seconds
and writes nothing under ``benchmarks/``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import platform
import sys
import tempfile
import time
from typing import Any

import numpy as np
import optuna
import torch

from optuna_nas.data import DataSplits
from optuna_nas.data import load_digits
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.evaluation import WeightSharingEvaluator
from optuna_nas.evaluation import kendall_tau
from optuna_nas.evaluation import spearman_rho
from optuna_nas.evaluation._supernet import sample_uniform
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import ChainSpace
from optuna_nas.spaces import SearchSpace
from optuna_nas.spec import canonical_hash

RESULTS = Path(__file__).resolve().parent / "results"


SPACE_CONFIG: dict[str, dict[str, Any]] = {
    # Smaller skeletons than the spaces' defaults, so that 60 standalone trainings fit in a
    # few minutes of a shared 2-core machine; the searched choices are the defaults'.
    "cell": {"init_channels": 8, "cells_per_stage": 1},
    "chain": {"max_depth": 5, "widths": (8, 16, 32)},
}


def make_space(name: str, data: DataSplits) -> SearchSpace:
    kwargs = {
        "input_shape": data.input_shape,
        "num_outputs": data.num_classes,
        **SPACE_CONFIG[name],
    }
    return CellSpace(**kwargs) if name == "cell" else ChainSpace(**kwargs)


def sample_archs(space: SearchSpace, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` uniformly drawn params with distinct canonical hashes (only the params read)."""
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    while len(out) < n:
        params = sample_uniform(space.distributions(), rng)
        spec = space.decode(params)
        h = canonical_hash(spec)
        if h not in seen:
            seen.add(h)
            trial = optuna.trial.FixedTrial(params)
            space.suggest(trial)  # keep only the params this architecture asks for
            out.append({k: params[k] for k in trial.params})
    return out


def train_standalone(
    space: SearchSpace, data: DataSplits, params: dict[str, Any], *, epochs: int, seed: int
) -> dict[str, Any]:
    evaluator = FullTraining(data, training=TrainingConfig(epochs=epochs), batch_size=64)
    start = time.perf_counter()
    result = evaluator.evaluate(space.decode(params), report=None, seed=seed)
    return {
        "params": params,
        "val_accuracy": result.values["val_accuracy"],
        "train_seconds": round(time.perf_counter() - start, 3),
        "val_accuracy_curve": result.metrics["val_accuracy_curve"],
        "epochs": epochs,
        "seed": seed,
    }


def read_ground_truth(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text())
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if len(lists) != 1:
            raise ValueError(
                f"{path}: expected a list of architectures (or one such list in a dict)."
            )
        data = lists[0]
    return [e for e in data if "params" in e and "val_accuracy" in e]


def ground_truth(
    space_name: str,
    space: SearchSpace,
    data: DataSplits,
    *,
    n: int,
    epochs: int,
    cache: Path | None,
) -> tuple[list[dict[str, Any]], bool]:
    """The ground truth and whether it was trained in this process."""
    if cache is not None and cache.exists():
        entries = read_ground_truth(cache)
        if len(entries) >= n:
            print(
                f"[{space_name}] ground truth read from {cache} ({len(entries)} archs)", flush=True
            )
            return entries, False
    entries = []
    for i, params in enumerate(sample_archs(space, n)):
        entries.append(train_standalone(space, data, params, epochs=epochs, seed=1000 + i))
        print(
            f"[{space_name}] standalone {i + 1}/{n}: {entries[-1]['val_accuracy']:.4f} "
            f"in {entries[-1]['train_seconds']:.1f}s",
            flush=True,
        )
    if cache is not None and not cache.exists():  # never overwrite one written meanwhile
        cache.write_text(json.dumps(entries, indent=1) + "\n")
    return entries, True


def noise_ceiling(
    space_name: str,
    space: SearchSpace,
    data: DataSplits,
    truth: list[dict[str, Any]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Rank agreement of the ground truth with itself retrained under other seeds.

    No proxy can rank the architectures better than standalone training agrees with itself,
    so this is the ceiling for tau and rho. Trained only with ``--train-noise-ceiling``.
    """
    if args.smoke:
        return {}
    path = RESULTS / f"ground_truth_{space_name}_seed2.json"
    if args.train_noise_ceiling and not path.exists():
        again = []
        for i, entry in enumerate(truth):
            again.append(
                train_standalone(
                    space, data, entry["params"], epochs=args.gt_epochs, seed=2000 + i
                )
            )
            print(f"[{space_name}] seed-2 {i + 1}/{len(truth)}", flush=True)
        path.write_text(json.dumps(again, indent=1) + "\n")
    if not path.exists():
        return {}
    second = read_ground_truth(path)[: len(truth)]
    if [e["params"] for e in second] != [e["params"] for e in truth]:
        return {}
    a = [e["val_accuracy"] for e in truth]
    b = [e["val_accuracy"] for e in second]
    return {
        "ground_truth_seed_kendall_tau": round(kendall_tau(a, b), 4),
        "ground_truth_seed_spearman_rho": round(spearman_rho(a, b), 4),
    }


def run_space(
    space_name: str, data: DataSplits, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    space = make_space(space_name, data)
    cache = None if args.smoke else RESULTS / f"ground_truth_{space_name}.json"
    truth, trained_here = ground_truth(
        space_name, space, data, n=args.archs, epochs=args.gt_epochs, cache=cache
    )
    truth = truth[: args.archs]
    if trained_here:
        full_seconds = float(np.mean([e["train_seconds"] for e in truth]))
        timing = "ground truth trained in this process"
    else:
        redo = [
            train_standalone(space, data, e["params"], epochs=args.gt_epochs, seed=1000 + i)
            for i, e in enumerate(truth[:3])
        ]
        full_seconds = float(np.mean([e["train_seconds"] for e in redo]))
        timing = f"standalone training re-timed here on 3 archs ({args.gt_epochs} epochs)"

    storage = f"sqlite:///{workdir / f'ws_{space_name}.db'}"
    store = optuna.artifacts.FileSystemArtifactStore(str(workdir / f"artifacts_{space_name}"))
    (workdir / f"artifacts_{space_name}").mkdir(exist_ok=True)
    study = optuna.create_study(
        storage=storage, study_name=f"ws-{space_name}", direction="maximize"
    )
    evaluator = WeightSharingEvaluator(
        data,
        space=space,
        artifact_store=store,
        training=TrainingConfig(epochs=args.supernet_epochs),
        calibration_batches=args.calibration_batches,
        seed=0,
        claim_settle_s=0.0,
    )
    start = time.perf_counter()
    evaluator.attach(study)
    supernet_seconds = time.perf_counter() - start
    scores, seconds = [], []
    for i, entry in enumerate(truth):
        t0 = time.perf_counter()
        result = evaluator.evaluate(space.decode(entry["params"]), report=None, seed=i)
        seconds.append(time.perf_counter() - t0)
        scores.append(result.values["val_accuracy"])
    ws = np.array(scores)
    gt = np.array([e["val_accuracy"] for e in truth])
    per_candidate = float(np.mean(seconds))
    amortised = (supernet_seconds + float(np.sum(seconds))) / len(truth)
    row = {
        "archs": len(truth),
        "kendall_tau": round(kendall_tau(ws.tolist(), gt.tolist()), 4),
        "spearman_rho": round(spearman_rho(ws.tolist(), gt.tolist()), 4),
        "ws_seconds_per_candidate": round(per_candidate, 4),
        "full_training_seconds_per_candidate": round(full_seconds, 3),
        "cost_ratio_per_candidate": round(full_seconds / per_candidate, 1),
        "supernet_train_seconds": round(supernet_seconds, 2),
        "supernet_steps": evaluator.training_steps_run,
        "cost_ratio_amortised": round(full_seconds / amortised, 2),
        "ground_truth_accuracy_range": [round(float(gt.min()), 4), round(float(gt.max()), 4)],
        "ws_accuracy_range": [round(float(ws.min()), 4), round(float(ws.max()), 4)],
        "timing": timing,
        "top5_overlap": len(set(np.argsort(-ws)[:5]) & set(np.argsort(-gt)[:5])),
    }
    row.update(noise_ceiling(space_name, space, data, truth, args))
    print(f"[{space_name}] {json.dumps(row)}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny run in seconds; writes nothing under benchmarks/",
    )
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument("--gt-epochs", type=int, default=10)
    parser.add_argument("--supernet-epochs", type=int, default=40)
    parser.add_argument("--calibration-batches", type=int, default=4)
    parser.add_argument("--spaces", nargs="+", default=["cell", "chain"])
    parser.add_argument("--out", type=Path, default=None, help="where the JSON goes")
    parser.add_argument(
        "--train-noise-ceiling",
        action="store_true",
        help="retrain the ground truth with a second seed (ground_truth_<space>_seed2.json)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.archs, args.gt_epochs, args.supernet_epochs = 3, 1, 1
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_digits(seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        rows = {name: run_space(name, data, args, Path(tmp)) for name in args.spaces}
    result = {
        "benchmark": "weight_sharing",
        "smoke": args.smoke,
        "setting": {
            "data": "digits (load_digits(seed=0))",
            "ground_truth_epochs": args.gt_epochs,
            "supernet_epochs": args.supernet_epochs,
            "calibration_batches": args.calibration_batches,
            "batch_size": 64,
            "space_config": {
                k: {a: list(v) if isinstance(v, tuple) else v for a, v in c.items()}
                for k, c in SPACE_CONFIG.items()
            },
        },
        "spaces": rows,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "optuna": optuna.__version__,
            "platform": platform.platform(),
            "torch_threads": 1,
            "note": "2 shared cores, loaded by other jobs while this ran",
        },
    }
    out = args.out
    if out is None and not args.smoke:
        out = RESULTS / "weight_sharing.json"
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    else:
        json.dump(result, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
