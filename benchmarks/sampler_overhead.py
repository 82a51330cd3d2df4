"""Seconds per sampled trial with 100 / 1,000 / 5,000 COMPLETE trials in the study's history.

The history is NAS-Bench-201-shaped (the six ``cell/edge_{j}_{i}/op`` categorical params of
``CellSpace.nasbench201()``, random values). In memory it is built with ``study.add_trials``; in
SQLite it is written straight into Optuna's tables by :func:`_bulk.bulk_sql_study` (the same
params, distributions and values; ``add_trials`` would take minutes at n = 5,000), then the file
is copied once per sampler. One sampled
trial is ``study.ask()``, the six suggestions and ``study.tell()``; the time is the median over
``--trials`` of them after one warm-up trial (which pays the one-off reading of the history into
our samplers' per-study caches; reported separately). RandomSampler, in the same process and
storage, is the baseline: the ratio to it is the sampler's own cost.

BLAS runs on one thread (``OPENBLAS_NUM_THREADS`` etc. default to 1 here, before numpy loads):
the predictor's 150 x 150 factorisations gain nothing from threads, and on a shared, loaded VM
threaded BLAS spins against other jobs and measures the load instead of the sampler.

    python benchmarks/sampler_overhead.py [--smoke] [--sqlite-dir /dev/shm]
"""

from __future__ import annotations

import os

BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
for _var in BLAS_THREADS:
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
from collections.abc import Callable  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from _bulk import bulk_sql_study  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402

from optuna_nas.samplers import KernelPredictor  # noqa: E402
from optuna_nas.samplers import create_sampler  # noqa: E402
from optuna_nas.spaces import CellSpace  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DISTS = CellSpace.nasbench201().distributions()
SAMPLERS: dict[str, Callable[[], optuna.samplers.BaseSampler]] = {
    "random": lambda: optuna.samplers.RandomSampler(seed=0),
    "tpe_default": lambda: optuna.samplers.TPESampler(seed=0),
    "evolution": lambda: create_sampler("evolution", seed=0),
    "evolution_predictor": lambda: create_sampler(
        "evolution", predictor=KernelPredictor(), num_candidates=20, seed=0
    ),
    "evolution_predictor_r1": lambda: create_sampler(
        "evolution", predictor=KernelPredictor(reselect_every=1), num_candidates=20, seed=0
    ),
    "reinforce": lambda: create_sampler("reinforce", seed=0),
    "progressive": lambda: create_sampler("progressive", seed=0),
}
OURS = ("evolution", "evolution_predictor", "evolution_predictor_r1", "reinforce", "progressive")


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

    def one() -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        trial = study.ask()
        for k, d in DISTS.items():
            trial.suggest_categorical(k, d.choices)
        study.tell(trial, 85.0)
        return time.perf_counter() - start, time.process_time() - cpu

    warm, _ = one()
    times, cpus = zip(*(one() for _ in range(trials)), strict=True)
    return {
        "per_trial_s": float(np.median(times)),
        "per_trial_cpu_s": float(np.median(cpus)),
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
        bulk_sql_study(f"sqlite:///{source}", "h", history(n, seed=n), direction="maximize")
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
                wall, cpu = r["per_trial_s"] * 1e3, r["per_trial_cpu_s"] * 1e3
                print(backend, n, name, f"{wall:.2f} ms (cpu {cpu:.2f} ms)", flush=True)
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
        "target_5ms_at_1000_memory_cpu": {
            name: rows["memory"]["1000"][name]["per_trial_cpu_s"] <= 5e-3
            for name in OURS
            if "1000" in rows.get("memory", {})
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "sqlite_dir": str(args.sqlite_dir or tempfile.gettempdir()),
            "blas_threads": {v: os.environ.get(v) for v in BLAS_THREADS},
            "load_average_at_end": list(os.getloadavg()),
        },
        "versions": {
            "optuna": optuna.__version__,
            "numpy": np.__version__,
            "sqlalchemy": _version("sqlalchemy"),
            "sqlite": _sqlite_version(),
        },
    }
    section = markdown(result)
    print(section)
    if not args.smoke:
        (ROOT / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
        (ROOT / "benchmarks" / "results" / "sampler_overhead.json").write_text(
            json.dumps(result, indent=1)
        )
        from _results import regenerate

        regenerate(ROOT / "benchmarks" / "results")
    return 0


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def _random_ms(result: dict[str, Any]) -> str:
    r = result["rows"].get("memory", {}).get("1000", {}).get("random")
    return "?" if r is None else f"{r['per_trial_s'] * 1e3:.2f}"


def _cell(r: dict[str, float]) -> str:
    return (
        f"{r['per_trial_s'] * 1e3:.2f} ({r['ratio_to_random']:.1f}x; "
        f"cpu {r['per_trial_cpu_s'] * 1e3:.2f})"
    )


def _blas(machine: dict[str, Any]) -> str:
    return ", ".join(f"`{k}={v}`" for k, v in machine.get("blas_threads", {}).items())


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    load = "/".join(f"{x:.1f}" for x in m.get("load_average_at_end", [])) or "unknown"
    lines = [
        "## Sampler overhead",
        "",
        f"`{result['command'].strip()}` → `benchmarks/results/sampler_overhead.json` "
        f"({result['wall_seconds'] / 60:.1f} min). Milliseconds per sampled trial (ask, six "
        "categorical suggestions, tell; median over the trials after one warm-up trial) with "
        "`n` COMPLETE trials "
        "in the history, and in brackets the ratio to RandomSampler measured in the same "
        "process and storage and the median CPU time of this process per trial (less "
        "sensitive than wall time to other jobs on the VM, though not immune to them). "
        "SQLite files on "
        f"`{result['machine']['sqlite_dir']}` (tmpfs here: on the VM's shared disk every SQLite "
        "commit is fsync-bound, which would hide the samplers' cost). The SQLite history is "
        "written straight into Optuna's tables "
        "(`benchmarks/_bulk.py`: the same params, distributions and values as `add_trials` "
        "writes, in a few statements) and the file copied once per sampler; the in-memory one "
        "is built with `add_trials`. BLAS on one thread "
        f"({_blas(result['machine'])}). The VM was loaded by other engineers' jobs "
        f"(load average {load} at the end): single timings are noisy.",
        "",
        f"Machine: {m['cpu_count']} CPUs, {m['platform']}, Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items())
        + ".",
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
            f"SQLite with n = {', '.join(missing)} was not run (`--sqlite-sizes`).",
            "",
        ]
    met = result["target_5ms_at_1000_memory"]
    met_cpu = result.get("target_5ms_at_1000_memory_cpu", {})
    lines.append(
        "Target ≤ 5 ms per trial at 1,000 trials in memory: "
        + "; ".join(
            f"{k} {'MET' if v else 'NOT MET'} by wall time, "
            f"{'MET' if met_cpu.get(k) else 'NOT MET'} by CPU time"
            for k, v in met.items()
        )
        + f" (RandomSampler itself took {_random_ms(result)} ms here)."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
