"""Evaluator fidelity: how well cheap evaluation strategies rank architectures like full training.

Ground truth: ``--archs`` distinct architectures of each space (chain, cell), sized to train in
a few seconds each on the bundled 8x8 digits, trained standalone with ``FullTraining``
(``--epochs`` epochs, SGD cosine) under ``--seeds`` seeds; the ground truth is the mean final
validation accuracy. Every strategy scores the same architectures, and the
table gives Kendall's tau and Spearman's rho between its scores and the ground truth, and its
cost per candidate relative to one full training: CPU seconds of every strategy, interleaved on
the same ``--cost-archs`` architectures in the same process (see ``measure_costs``).
Strategies (this file's sections; the supernet and pruners are benchmarked elsewhere):

* proxy tasks (``ProxyTraining``): fewer epochs, a data fraction, a lower resolution, a width
  multiplier, and all of them combined;
* the performance predictor (``MLPEnsemble``): fitted on n = 10, 20, 30 trained
  architectures and scored on the remaining ones, over ``--splits`` random splits;
* each zero-cost proxy (``ZeroCostEvaluator``) on one mini-batch of 64;
* the latency lookup table (``LatencyTable``): MAPE and Spearman of its predicted latency
  against measured latency (CPU, batch 1, one thread) over the same architectures;
* the predictor on NAS-Bench-201 (``valid_acc_200ep``): tau after 50, 100, 200 training
  architectures, scored on 2,000 other architectures.

Training results are cached in ``benchmarks/results/evaluators_cache.json`` (keyed by space,
strategy, seed and spec), so a rerun only trains what is missing. ``--smoke`` runs a tiny
version in seconds and writes nothing under ``benchmarks/results``.

Run: ``python benchmarks/evaluators.py`` (about 10-15 minutes on 2 loaded cores, first run).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
from pathlib import Path
import platform
import statistics
import sys
import tempfile
import time
from typing import Any

import numpy as np
import optuna
import torch

from optuna_nas.constraints import LatencyTable
from optuna_nas.data import DataSplits
from optuna_nas.data import load_digits
from optuna_nas.evaluation import ZERO_COST_PROXIES
from optuna_nas.evaluation import Evaluator
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import MLPEnsemble
from optuna_nas.evaluation import ProxyTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.evaluation import ZeroCostEvaluator
from optuna_nas.evaluation import kendall_tau
from optuna_nas.evaluation import spearman_rho
from optuna_nas.evaluation import subsample_splits
from optuna_nas.metrics import measure_latency
from optuna_nas.nn import build_model
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import ChainSpace
from optuna_nas.spaces import SearchSpace
from optuna_nas.spaces import nb201_arch_to_params
from optuna_nas.spec import ArchitectureSpec

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SECTION = "## Evaluator fidelity: proxy tasks, predictor, zero-cost proxies, latency table"

# name -> ProxyTraining settings (the training recipe and data come from the run).
PROXIES: dict[str, dict[str, Any]] = {
    "proxy: 3 epochs": {"epochs": 3},
    "proxy: 25% data": {"data_fraction": 0.25},
    "proxy: resolution 6x6": {"resolution": 6},
    "proxy: width x0.5": {"width_multiplier": 0.5},
    "proxy: 5 epochs + 50% data + width x0.5": {
        "epochs": 5,
        "data_fraction": 0.5,
        "width_multiplier": 0.5,
    },
}


def make_spaces(data: DataSplits) -> dict[str, SearchSpace]:
    """Small versions of the chain and cell spaces (7x7 kernels left out: 6x6 proxies)."""
    chain_ops = ("conv_3x3", "conv_5x5", "sep_conv_3x3", "sep_conv_5x5")
    return {
        "chain": ChainSpace(
            input_shape=data.input_shape,
            num_outputs=data.num_classes,
            max_depth=4,
            ops=(*chain_ops, "max_pool_3x3", "avg_pool_3x3", "identity"),
            widths=(8, 16, 32),
            stem_channels=8,
        ),
        "cell": CellSpace(
            input_shape=data.input_shape,
            num_outputs=data.num_classes,
            init_channels=8,
            num_stages=2,
            cells_per_stage=1,
        ),
    }


def sample_archs(space: SearchSpace, n: int, seed: int) -> list[tuple[dict[str, Any], Any]]:
    """``n`` architectures with distinct specs, drawn by Optuna's RandomSampler."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out: list[tuple[dict[str, Any], ArchitectureSpec]] = []
    seen = set()
    while len(out) < n:
        trial = study.ask()
        spec = space.suggest(trial)
        study.tell(trial, 0.0)
        if spec.to_json() not in seen:
            seen.add(spec.to_json())
            out.append((dict(trial.params), spec))
    return out


def spec_key(spec: ArchitectureSpec) -> str:
    return hashlib.sha256(spec.to_json().encode()).hexdigest()[:16]


class Cache:
    """Training results by key, persisted as JSON after every new entry."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        if path is not None and path.exists():
            self.data = json.loads(path.read_text())

    def get(self, key: str, compute: Any) -> Any:
        if key not in self.data:
            self.data[key] = compute()
            if self.path is not None:  # merge with entries another run wrote; replace atomically
                if self.path.exists():
                    self.data = {**json.loads(self.path.read_text()), **self.data}
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps(self.data, indent=0, sort_keys=True))
                tmp.replace(self.path)
        return self.data[key]


def run_evaluator(evaluator: Evaluator, spec: ArchitectureSpec, seed: int) -> dict[str, float]:
    start = time.perf_counter()
    result = evaluator.evaluate(spec, report=None, seed=seed)
    seconds = time.perf_counter() - start
    (value,) = [v for k, v in result.values.items() if k in ("val_accuracy", "zero_cost")]
    return {"value": float(value), "seconds": seconds}


def _finite_mean(xs: list[float]) -> float:
    finite = [x for x in xs if np.isfinite(x)]
    return statistics.fmean(finite) if finite else float("nan")


def _finite_std(xs: list[float]) -> float:
    finite = [x for x in xs if np.isfinite(x)]
    return statistics.pstdev(finite) if finite else float("nan")


def correlations(scores: list[float], truth: list[float]) -> dict[str, float]:
    pairs = [(s, t) for s, t in zip(scores, truth, strict=True) if np.isfinite(s)]
    s, t = zip(*pairs, strict=True)
    return {
        "kendall_tau": kendall_tau(s, t),
        "spearman_rho": spearman_rho(s, t),
        "n": len(pairs),
    }


def measure_costs(
    archs: list[tuple[dict[str, Any], ArchitectureSpec]],
    data: DataSplits,
    training: TrainingConfig,
) -> tuple[dict[str, float], float]:
    """CPU seconds per candidate of each strategy relative to full training, and full's seconds.

    Every strategy runs on the same architectures, interleaved per architecture, and is timed
    with ``time.process_time`` (this process's CPU time, one torch thread), so machine load
    from other jobs, which dominates wall time on the shared VM, barely moves the ratios.
    """
    evaluators: dict[str, Evaluator] = {"full": FullTraining(data, training=training)}
    for name, settings in PROXIES.items():
        evaluators[name] = ProxyTraining(data, training=training, **settings)
    for name in ZERO_COST_PROXIES:
        evaluators[f"zero-cost: {name}"] = ZeroCostEvaluator(data, proxy=name, batch_size=64)
    times: dict[str, list[float]] = {name: [] for name in evaluators}
    for _, spec in archs:
        for name, evaluator in evaluators.items():
            start = time.process_time()
            evaluator.evaluate(spec, report=None, seed=0)
            times[name].append(time.process_time() - start)
    full = statistics.fmean(times["full"])
    return {name: statistics.fmean(t) / full for name, t in times.items()}, full


def bench_space(
    name: str,
    space: SearchSpace,
    data: DataSplits,
    args: argparse.Namespace,
    cache: Cache,
) -> dict[str, Any]:
    n_archs, n_seeds = args.archs, args.seeds
    archs = sample_archs(space, n_archs, seed=args.arch_seed)
    training = TrainingConfig(epochs=args.epochs)
    tag = f"{name}|e{args.epochs}"
    full = FullTraining(data, training=training)
    runs = {
        seed: [
            cache.get(
                f"{tag}|full|{seed}|{spec_key(s)}",
                lambda s=s, seed=seed: run_evaluator(full, s, seed),
            )
            for _, s in archs
        ]
        for seed in range(n_seeds)
    }
    truth = [statistics.fmean(runs[seed][i]["value"] for seed in runs) for i in range(len(archs))]
    costs, full_cpu = measure_costs(archs[: args.cost_archs], data, training)
    rows: dict[str, Any] = {}
    if n_seeds > 1:
        rows["full training, seed 0 vs seed 1 (noise ceiling)"] = {
            **correlations([r["value"] for r in runs[0]], [r["value"] for r in runs[1]]),
            "cost_ratio": 1.0,
        }
    for proxy_name, settings in PROXIES.items():
        proxy = ProxyTraining(data, training=training, **settings)
        res = [
            cache.get(
                f"{tag}|{proxy_name}|0|{spec_key(s)}",
                lambda s=s, proxy=proxy: run_evaluator(proxy, s, 0),
            )
            for _, s in archs
        ]
        rows[proxy_name] = {
            **correlations([r["value"] for r in res], truth),
            "cost_ratio": costs[proxy_name],
        }
    for proxy_name in ZERO_COST_PROXIES:
        zc = ZeroCostEvaluator(data, proxy=proxy_name, batch_size=64)
        res = [run_evaluator(zc, s, 0) for _, s in archs]
        rows[f"zero-cost: {proxy_name}"] = {
            **correlations([r["value"] for r in res], truth),
            "cost_ratio": costs[f"zero-cost: {proxy_name}"],
        }
    params = [p for p, _ in archs]
    for n_train in args.train_sizes:
        if n_train > len(archs) - 4:
            continue
        taus, rhos, seconds = [], [], []
        for split in range(args.splits):
            order = np.random.default_rng(split).permutation(len(archs))
            tr, te = order[:n_train], order[n_train:]
            start = time.process_time()
            predictor = MLPEnsemble(space.distributions(), seed=split)
            predictor.fit([params[i] for i in tr], [truth[i] for i in tr])
            pred, _ = predictor.predict([params[i] for i in te])
            seconds.append((time.process_time() - start) / len(te))
            taus.append(kendall_tau(pred, [truth[i] for i in te]))
            rhos.append(spearman_rho(pred, [truth[i] for i in te]))
        rows[f"predictor, {n_train} trained"] = {
            "kendall_tau": _finite_mean(taus),
            "kendall_tau_std": _finite_std(taus),
            "spearman_rho": _finite_mean(rhos),
            "undefined_splits": int(np.isnan(taus).sum()),  # constant predictions
            "n": len(archs) - n_train,
            "splits": args.splits,
            "cost_ratio": statistics.fmean(seconds) / full_cpu,
        }
    accs = [r["value"] for r in runs[0]]
    return {
        "archs": len(archs),
        "full_training_cpu_seconds_mean": full_cpu,
        "full_training_wall_seconds_mean": statistics.fmean(r["seconds"] for r in runs[0]),
        "ground_truth_seeds": n_seeds,
        "ground_truth_accuracy": {
            "min": min(truth),
            "median": statistics.median(truth),
            "max": max(truth),
            "accuracy_seed0_stdev": statistics.pstdev(accs),
        },
        "rows": rows,
        "latency_table": bench_latency_table([s for _, s in archs], args),
    }


def bench_latency_table(specs: list[ArchitectureSpec], args: argparse.Namespace) -> dict[str, Any]:
    """Build a table from ``specs`` on CPU (batch 1) and compare its sums with measurements."""
    table = LatencyTable(device="cpu", batch_size=1)
    start = time.perf_counter()
    added = table.measure(specs, repeats=args.latency_repeats)
    build_seconds = time.perf_counter() - start
    predicted, measured = [], []
    for spec in specs:
        torch.manual_seed(0)
        model = build_model(spec)
        measured.append(
            measure_latency(
                model, input_shape=spec.input_shape, repeats=args.latency_repeats
            ).median_ms
        )
        predicted.append(table.predict(spec))
    errors = [abs(p - m) / m for p, m in zip(predicted, measured, strict=True)]
    return {
        "entries": added,
        "build_seconds": build_seconds,
        "mape": statistics.fmean(errors),
        "max_ape": max(errors),
        "mean_signed_error": statistics.fmean(
            (p - m) / m for p, m in zip(predicted, measured, strict=True)
        ),
        "spearman_rho": spearman_rho(predicted, measured),
        "kendall_tau": kendall_tau(predicted, measured),
        "measured_ms_median": statistics.median(measured),
        "n": len(specs),
    }


def bench_nb201(args: argparse.Namespace) -> dict[str, Any] | None:
    path = Path(args.nb201)
    if not path.exists():
        print(f"NAS-Bench-201 table not found at {path}; skipping that section.", file=sys.stderr)
        return None
    with path.open() as f:
        rows = list(csv.DictReader(f))
    params = [nb201_arch_to_params(r["arch"]) for r in rows]
    target = np.array([float(r["valid_acc_200ep"]) for r in rows])
    space = CellSpace.nasbench201()
    out: dict[str, Any] = {}
    for n_train in args.nb201_sizes:
        taus, rhos = [], []
        for split in range(args.nb201_splits):
            order = np.random.default_rng(100 + split).permutation(len(rows))
            tr, te = order[:n_train], order[n_train : n_train + args.nb201_test]
            predictor = MLPEnsemble(space.distributions(), seed=split)
            predictor.fit([params[i] for i in tr], target[tr])
            pred, _ = predictor.predict([params[i] for i in te])
            taus.append(kendall_tau(pred, target[te]))
            rhos.append(spearman_rho(pred, target[te]))
        out[str(n_train)] = {
            "kendall_tau": _finite_mean(taus),
            "kendall_tau_std": _finite_std(taus),
            "spearman_rho": _finite_mean(rhos),
            "undefined_splits": int(np.isnan(taus).sum()),
            "test_archs": args.nb201_test,
            "splits": args.nb201_splits,
        }
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [
        SECTION,
        "",
        f"`python benchmarks/evaluators.py` → `benchmarks/results/evaluators.json` "
        "(cache: `evaluators_cache.json`). Architectures drawn at random from each space "
        f"and trained on digits for {result['config']['epochs']} epochs (ground truth: final "
        "validation accuracy, mean over the seeds given per space); torch limited to 1 "
        "thread. Cost = mean CPU seconds (`time.process_time`) per candidate"
        f" / mean CPU seconds of one full training, all strategies interleaved on the "
        f"same {result['config']['cost_archs']} architectures; CPU time rather than wall time "
        f"because of the machine ({result['machine'].get('note', 'shared')}). The "
        "predictor's cost is its fit plus prediction, per scored candidate, on top of the n "
        "full trainings it needs first.",
        "",
    ]
    for name, space in result["spaces"].items():
        acc = space["ground_truth_accuracy"]
        lines += [
            f"**{name}**: {space['archs']} architectures, {space['ground_truth_seeds']} "
            f"ground-truth seed(s), full training {space['full_training_cpu_seconds_mean']:.2f} "
            f"CPU s per candidate; ground-truth accuracy {acc['min']:.3f} to {acc['max']:.3f}, "
            f"median {acc['median']:.3f}.",
            "",
            "| strategy | Kendall τ | Spearman ρ | cost vs full training |",  # noqa: RUF001
            "|---|---|---|---|",
        ]
        for row, v in space["rows"].items():
            tau = f"{v['kendall_tau']:.3f}"
            if "kendall_tau_std" in v:
                tau += f" ± {v['kendall_tau_std']:.3f}"
            lines.append(f"| {row} | {tau} | {v['spearman_rho']:.3f} | {v['cost_ratio']:.4f} |")
        lat = space["latency_table"]
        lines += [
            "",
            f"Latency table ({name}, CPU, batch 1, {lat['entries']} entries measured in "
            f"{lat['build_seconds']:.1f} s): MAPE {100 * lat['mape']:.1f}% (max "
            f"{100 * lat['max_ape']:.1f}%, mean signed {100 * lat['mean_signed_error']:+.1f}%), "
            f"Spearman {lat['spearman_rho']:.3f}, Kendall {lat['kendall_tau']:.3f} over "
            f"{lat['n']} architectures (median measured {lat['measured_ms_median']:.3f} ms).",
            "",
        ]
    if result.get("nb201"):
        lines += [
            "**Predictor on NAS-Bench-201** (target `valid_acc_200ep`; fitted on n random "
            "architectures, scored on other random ones):",
            "",
            "| n trained | Kendall τ | Spearman ρ |",  # noqa: RUF001
            "|---|---|---|",
        ]
        for n, v in result["nb201"].items():
            lines.append(
                f"| {n} | {v['kendall_tau']:.3f} ± {v['kendall_tau_std']:.3f} | "
                f"{v['spearman_rho']:.3f} |"
            )
        lines.append("")
    return "\n".join(lines)


def update_results_md() -> None:
    """Regenerate ``benchmarks/RESULTS.md`` from the JSON files (this section: ``markdown``)."""
    if str(ROOT / "benchmarks") not in sys.path:  # also when loaded from its file path
        sys.path.insert(0, str(ROOT / "benchmarks"))
    from _results import regenerate

    regenerate(RESULTS)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run in seconds")
    parser.add_argument("--archs", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=2, help="ground-truth training seeds")
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--arch-seed", type=int, default=0)
    parser.add_argument("--cost-archs", type=int, default=4, help="archs timed for the cost")
    parser.add_argument("--latency-repeats", type=int, default=30)
    parser.add_argument(
        "--nb201",
        default=os.environ.get(
            "NASBENCH201_CSV", str(ROOT.parent / "shared" / "nasbench" / "nb201_cifar10.csv")
        ),
    )
    parser.add_argument("--nb201-splits", type=int, default=5)
    parser.add_argument("--nb201-test", type=int, default=2000)
    args = parser.parse_args(argv)
    args.train_sizes = (10, 20, 30)
    args.nb201_sizes = (50, 100, 200)
    if args.smoke:
        args.archs, args.epochs, args.seeds, args.splits, args.cost_archs = 6, 1, 2, 1, 2
        args.latency_repeats, args.train_sizes = 3, (2,)
        args.nb201_sizes, args.nb201_splits, args.nb201_test = (20,), 1, 200
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out_dir = Path(tempfile.mkdtemp()) if args.smoke else RESULTS
    cache = Cache(out_dir / "evaluators_cache.json")
    data = load_digits(seed=0)
    if args.smoke:  # a fifth of the training images: seconds, not minutes
        data = subsample_splits(data, fraction=0.2, seed=0)
    start = time.perf_counter()
    result: dict[str, Any] = {
        "config": {k: v for k, v in vars(args).items() if k != "nb201"},
        "spaces": {
            name: bench_space(name, space, data, args, cache)
            for name, space in make_spaces(data).items()
        },
        "nb201": bench_nb201(args),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "optuna": optuna.__version__,
            "torch_threads": torch.get_num_threads(),
            "note": "2-core VM shared with other engineers' jobs while this ran",
        },
    }
    result["wall_seconds"] = time.perf_counter() - start
    (out_dir / "evaluators.json").write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    print(text)
    if not args.smoke:
        update_results_md()
    return result


if __name__ == "__main__":
    main()
