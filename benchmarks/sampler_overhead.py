"""Seconds per sampled trial with 100 / 1,000 / 5,000 COMPLETE trials in the study's history.

The history is NAS-Bench-201-shaped (the six ``cell/edge_{j}_{i}/op`` categorical params of
``CellSpace.nasbench201()``, random values) and built with ``study.add_trials``. One sampled
trial is ``study.ask()``, the six suggestions and ``study.tell()``; the time is the median over
``--trials`` of them after one warm-up trial (which pays the one-off reading of the history into
our samplers' per-study caches; reported separately). RandomSampler, in the same process and
storage, is the baseline: the ratio to it is the sampler's own cost.

    python benchmarks/sampler_overhead.py [--smoke] [--sqlite-dir /dev/shm]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import json
import os
from pathlib import Path
import platform
import shutil
import sys
import tempfile
import time
from typing import Any

import numpy as np
import optuna

from optuna_nas.samplers import KernelPredictor
from optuna_nas.samplers import create_sampler
from optuna_nas.spaces import CellSpace

ROOT = Path(__file__).resolve().parents[1]
DISTS = CellSpace.nasbench201().distributions()
SAMPLERS: dict[str, Callable[[], optuna.samplers.BaseSampler]] = {
    "random": lambda: optuna.samplers.RandomSampler(seed=0),
    "tpe_default": lambda: optuna.samplers.TPESampler(seed=0),
    "evolution": lambda: create_sampler("evolution", seed=0),
    "evolution_predictor": lambda: create_sampler(
        "evolution", predictor=KernelPredictor(), num_candidates=20, seed=0
    ),
    "reinforce": lambda: create_sampler("reinforce", seed=0),
    "progressive": lambda: create_sampler("progressive", seed=0),
}
OURS = ("evolution", "evolution_predictor", "reinforce", "progressive")


def history(n: int, seed: int) -> list[optuna.trial.FrozenTrial]:
    rng = np.random.RandomState(seed)
    return [
        optuna.trial.create_trial(
            params={k: d.choices[rng.randint(len(d.choices))] for k, d in DISTS.items()},
            distributions=DISTS,
            value=float(rng.uniform(80, 92)),
        )
        for _ in range(n)
    ]


def measure(name: str, study: optuna.Study, trials: int) -> dict[str, float]:
    study.sampler = SAMPLERS[name]()

    def one() -> float:
        start = time.perf_counter()
        trial = study.ask()
        for k, d in DISTS.items():
            trial.suggest_categorical(k, d.choices)
        study.tell(trial, 85.0)
        return time.perf_counter() - start

    warm = one()
    times = [one() for _ in range(trials)]
    return {
        "per_trial_s": float(np.median(times)),
        "mean_s": float(np.mean(times)),
        "warmup_s": warm,
    }


def run_backend(backend: str, n: int, trials: int, sqlite_dir: Path | None) -> dict[str, Any]:
    """Every sampler on a copy of one history of ``n`` trials."""
    out: dict[str, Any] = {}
    if backend == "memory":
        past = history(n, seed=n)
        for name in SAMPLERS:
            study = optuna.create_study(direction="maximize")
            study.add_trials(past)
            out[name] = measure(name, study, trials)
        return out
    with tempfile.TemporaryDirectory(dir=sqlite_dir) as d:
        source = Path(d) / "history.db"
        optuna.create_study(
            storage=f"sqlite:///{source}", study_name="h", direction="maximize"
        ).add_trials(history(n, seed=n))
        for name in SAMPLERS:
            copy = Path(d) / f"{name}.db"
            shutil.copyfile(source, copy)
            study = optuna.load_study(storage=f"sqlite:///{copy}", study_name="h")
            out[name] = measure(name, study, trials)
            del study
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[100, 1000, 5000])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument(
        "--sqlite-dir",
        type=Path,
        default=Path("/dev/shm"),
        help="where the SQLite files go (default tmpfs: the disk is fsync-bound)",
    )
    p.add_argument("--sqlite-sizes", type=int, nargs="*", default=[100, 1000, 5000])
    p.add_argument("--smoke", action="store_true", help="sizes 20 and 50, 3 trials, no files")
    args = p.parse_args(argv)
    if args.smoke:
        args.sizes, args.sqlite_sizes, args.trials = [20], [20], 2
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows: dict[str, Any] = {}
    start = time.perf_counter()
    for backend, sizes in (("memory", args.sizes), ("sqlite", args.sqlite_sizes)):
        for n in sizes:
            by_name = run_backend(backend, n, args.trials, args.sqlite_dir)
            rows.setdefault(backend, {})[str(n)] = by_name
            for name, r in by_name.items():
                print(backend, n, name, f"{r['per_trial_s'] * 1e3:.2f} ms", flush=True)
            base = rows[backend][str(n)]["random"]["per_trial_s"]
            for r in rows[backend][str(n)].values():
                r["ratio_to_random"] = r["per_trial_s"] / base
    result = {
        "command": "python benchmarks/sampler_overhead.py " + " ".join(argv or sys.argv[1:]),
        "wall_seconds": time.perf_counter() - start,
        "rows": rows,
        "target_5ms_at_1000_memory": {
            name: rows["memory"]["1000"][name]["per_trial_s"] <= 5e-3
            for name in OURS
            if "1000" in rows.get("memory", {})
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "sqlite_dir": str(args.sqlite_dir or tempfile.gettempdir()),
        },
        "versions": {"optuna": optuna.__version__, "numpy": np.__version__},
    }
    section = markdown(result)
    print(section)
    if not args.smoke:
        (ROOT / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
        (ROOT / "benchmarks" / "results" / "sampler_overhead.json").write_text(
            json.dumps(result, indent=1)
        )
        from nb201 import write_section

        write_section(ROOT / "benchmarks" / "RESULTS.md", section)
    return 0


def _cell(r: dict[str, float]) -> str:
    return f"{r['per_trial_s'] * 1e3:.2f} ({r['ratio_to_random']:.1f}x)"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "## Sampler overhead",
        "",
        f"`{result['command'].strip()}` → `benchmarks/results/sampler_overhead.json` "
        f"({result['wall_seconds'] / 60:.1f} min). Milliseconds per sampled trial (ask, six "
        "categorical suggestions, tell; median over the trials after one warm-up trial) with "
        "`n` COMPLETE trials "
        "in the history, and in brackets the ratio to RandomSampler measured in the same "
        "process and storage. SQLite files on "
        f"`{result['machine']['sqlite_dir']}` (tmpfs here; the VM's shared disk made every SQLite "
        "commit fsync-bound, ~0.3 s per trial even for RandomSampler, which would hide the "
        "samplers' cost). The VM was loaded by other engineers' jobs: single timings are noisy.",
        "",
    ]
    for backend, by_n in result["rows"].items():
        ns = list(by_n)
        lines += [
            f"**{backend}**",
            "",
            "| sampler | " + " | ".join(f"n={n}" for n in ns) + " |",
            "|---|" + "---|" * len(ns),
        ]
        for name in next(iter(by_n.values())):
            cells = [_cell(by_n[n][name]) for n in ns]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    missing = sorted(set(result["rows"].get("memory", {})) - set(result["rows"].get("sqlite", {})))
    if missing:
        lines += [
            f"SQLite with n = {', '.join(missing)} was not run (`--sqlite-sizes`): building "
            "that history with `add_trials` costs minutes on this VM.",
            "",
        ]
    met = result["target_5ms_at_1000_memory"]
    lines.append(
        "Target ≤ 5 ms per trial at 1,000 trials in memory: "
        + ", ".join(f"{k} {'MET' if v else 'NOT MET'}" for k, v in met.items())
        + "."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
