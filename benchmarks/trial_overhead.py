"""Per-trial overhead of ``run_study`` + ``NASObjective`` over plain Optuna (issue #17, part 3).

Both paths sample the same chain space (``ChainSpace`` for 1x8x8 inputs, 10 classes) with
``RandomSampler``, in a two-objective study (``val_accuracy`` up, ``params`` down), and do no
training:

* **plain**: ``study.optimize`` on a plain Optuna storage for the URL, with an objective that
  makes the space's suggestions (``space.suggest(trial)``, the same ``trial.suggest_*`` calls
  and the spec they decode to) and returns constants;
* **nas**: :func:`~optuna_nas.storage.run_study` on :func:`~optuna_nas.storage.open_storage`
  with its defaults (heartbeats every 60 s, so ``run_study`` also claims a trial slot and a
  heartbeat thread runs) and :class:`~optuna_nas.objective.NASObjective` with its defaults
  (deduplication on) and a trivial evaluator that returns a constant accuracy at once. Every
  user attr, constraint-free cost metric and claim of a real study is written;
* **nas_no_heartbeat**: the same on ``open_storage(url, heartbeat_interval=None)`` (no slot
  claims, no heartbeat thread), to show what heartbeats cost.

Each storage runs ``--rounds`` alternated rounds (plain, nas, nas_no_heartbeat, ...) after
one untimed warm-up round, each on a fresh study of ``--trials`` trials in the same process;
the figure is the median over rounds of milliseconds per trial, and the ratio is nas / plain
of those medians (the target's ratio; nas_no_heartbeat / plain is reported beside it). SQLite
is a file in a fresh temporary directory (``--dir``, default the system's temporary
directory); PostgreSQL is ``postgresql+psycopg2://postgres@127.0.0.1:5432/test``
(``OPTUNA_NAS_TEST_POSTGRES_URL`` overrides it) and is skipped, with the reason, when it does
not answer. Target (issue #17): a ratio of at most 1.5 on both.

    python benchmarks/trial_overhead.py [--smoke] [--no-record] [--profile sqlite|postgresql]

Writes ``benchmarks/results/trial_overhead.json`` and its section of ``benchmarks/RESULTS.md``
(not with ``--smoke``, ``--no-record`` or ``--profile``). ``--profile`` prints a cProfile of
the nas path.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
from pathlib import Path
import pstats
import statistics
import sys
import tempfile
import time
from typing import Any
import uuid
import warnings

import optuna

from optuna_nas.evaluation import Evaluation
from optuna_nas.evaluation import Evaluator
from optuna_nas.evaluation import Report
from optuna_nas.objective import NASObjective
from optuna_nas.spaces import ChainSpace
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.storage import open_storage
from optuna_nas.storage import run_study

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _results import machine  # noqa: E402

POSTGRES_URL = os.environ.get(
    "OPTUNA_NAS_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
TARGET = 1.5
SPACE = ChainSpace(input_shape=(1, 8, 8), num_outputs=10)
OBJECTIVES = ("val_accuracy", "params")


class TrivialEvaluator(Evaluator):
    """Scores every candidate 0.5 at once: the pipeline's own cost is all that is left."""

    def evaluate(self, spec: ArchitectureSpec, *, report: Report | None, seed: int) -> Evaluation:
        return Evaluation(values={"val_accuracy": 0.5})


def _plain_objective(trial: optuna.Trial) -> tuple[float, float]:
    SPACE.suggest(trial)
    return 0.5, 1.0


MODES = ("plain", "nas", "nas_no_heartbeat")


def _study(url: str, mode: str, seed: int) -> optuna.Study:
    storage: Any = (
        optuna.storages.RDBStorage(url)
        if mode == "plain"
        else open_storage(url, heartbeat_interval=None if mode == "nas_no_heartbeat" else 60)
    )
    return optuna.create_study(
        study_name=f"trial-overhead-{mode}-{uuid.uuid4().hex}",
        storage=storage,
        directions=["maximize", "minimize"],
        sampler=optuna.samplers.RandomSampler(seed=seed),
    )


def _run(study: optuna.Study, mode: str, n: int) -> float:
    """Seconds per trial of ``n`` trials of ``mode`` on ``study``."""
    start = time.perf_counter()
    if mode == "plain":
        study.optimize(_plain_objective, n_trials=n)
    else:
        run_study(
            study, NASObjective(SPACE, TrivialEvaluator(), objectives=OBJECTIVES), n_trials=n
        )
    seconds = (time.perf_counter() - start) / n
    if len(study.get_trials(deepcopy=False)) != n:
        raise RuntimeError(f"{mode} ran {len(study.trials)} trials, not {n}.")
    return seconds


def _delete(url: str, study: optuna.Study) -> None:
    optuna.delete_study(study_name=study.study_name, storage=url)


def measure(url: str, *, trials: int, rounds: int) -> dict[str, Any]:
    """Alternated rounds of plain and nas on fresh studies of ``url``; medians in ms/trial."""
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for round_ in range(rounds + 1):  # round 0 warms connections, imports and caches
        for mode in MODES:
            study = _study(url, mode, seed=round_)
            seconds = _run(study, mode, trials if round_ else min(trials, 5))
            if round_:
                times[mode].append(seconds * 1e3)
            _delete(url, study)
    ms = {mode: statistics.median(times[mode]) for mode in MODES}
    return {
        **{f"{mode}_ms": ms[mode] for mode in MODES},
        "ratio": ms["nas"] / ms["plain"],
        "ratio_no_heartbeat": ms["nas_no_heartbeat"] / ms["plain"],
        **{f"{mode}_rounds_ms": times[mode] for mode in MODES},
    }


def _postgres_reason() -> str | None:
    """None if PostgreSQL answers at ``POSTGRES_URL``, else why not."""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as e:  # any failure means: not measurable here
        return f"PostgreSQL at {POSTGRES_URL} did not answer: {type(e).__name__}: {e}"
    return None


def profile(url: str, trials: int) -> None:
    """Print the cProfile of ``trials`` nas trials on ``url`` (after a warm-up)."""
    warm = _study(url, "nas", 0)
    _run(warm, "nas", 3)
    _delete(url, warm)
    study = _study(url, "nas", 1)
    profiler = cProfile.Profile()
    profiler.enable()
    _run(study, "nas", trials)
    profiler.disable()
    _delete(url, study)
    stats = pstats.Stats(profiler).sort_stats("cumulative")
    stats.print_stats(45)
    stats.sort_stats("tottime").print_stats(25)


def section(result: dict[str, Any]) -> str:
    m = result["machine"]
    rows = []
    for name, r in result["storages"].items():
        if "skipped" in r:
            rows.append(f"| {name} | skipped: {r['skipped']} | | | |")
            continue
        ok = "yes" if r["ratio"] <= TARGET else "**no**"
        per_round = [n / p for n, p in zip(r["nas_rounds_ms"], r["plain_rounds_ms"], strict=True)]
        rows.append(
            f"| {name} | {r['plain_ms']:.1f} | {r['nas_ms']:.1f} | **{r['ratio']:.2f}x** ({ok}; "
            f"rounds {min(per_round):.2f}-{max(per_round):.2f}x) "
            f"| {r['nas_no_heartbeat_ms']:.1f} ({r['ratio_no_heartbeat']:.2f}x) |"
        )
    return "\n".join(
        [
            "## Per-trial overhead over plain Optuna",
            "",
            "`python benchmarks/trial_overhead.py` → `benchmarks/results/trial_overhead.json` "
            f"({result['trials']} trials x {result['rounds']} alternated rounds per path and "
            "storage, after a warm-up round; medians of ms per trial). Plain: `study.optimize` "
            "on a plain Optuna storage with an objective making the chain space's suggestions. "
            "optuna-nas: `run_study` on `open_storage(url)` (heartbeats on, so a slot claim per "
            "trial) with `NASObjective` (deduplication on, every user attr written) and an "
            "evaluator that returns a constant. Both use `RandomSampler` on a two-objective "
            "study. Target (issue #17): at most 1.5x.",
            "",
            "| storage | plain ms/trial | optuna-nas ms/trial | ratio (target met; per round) "
            "| without heartbeats: ms/trial (ratio) |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Machine: {m['cpus']} CPUs ({m['processor'] or m['platform']}), Python "
            f"{m['python']}, torch {m['torch']}, Optuna {m['optuna']}; load average "
            f"{result['load_average']} at the start (other engineers' jobs share the CPUs). "
            f"SQLite file in `{result['sqlite_dir']}`. The gap between the two optuna-nas "
            "columns is the heartbeat path of `run_study` (a slot claim, Optuna's heartbeat "
            "write and its stale-trial check per trial). What was cut to get here: "
            "[NOTES.md](NOTES.md#per-trial-overhead).",
        ]
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="5 trials x 1 round, no files")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--profile", choices=("sqlite", "postgresql"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--no-record", action="store_true", help="print only: no JSON, no RESULTS.md section"
    )
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    trials, rounds = (5, 1) if args.smoke else (args.trials, args.rounds)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        sqlite_url = f"sqlite:///{Path(tmp) / 'overhead.db'}"
        if args.profile is not None:
            profile(sqlite_url if args.profile == "sqlite" else POSTGRES_URL, trials)
            return {}
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        storages: dict[str, Any] = {"sqlite": measure(sqlite_url, trials=trials, rounds=rounds)}
    reason = _postgres_reason()
    if reason is None:
        storages["postgresql"] = measure(POSTGRES_URL, trials=trials, rounds=rounds)
    else:
        print(f"skipping PostgreSQL: {reason}", file=sys.stderr)
        storages["postgresql"] = {"skipped": reason}
    result: dict[str, Any] = {
        "trials": trials,
        "rounds": rounds,
        "target_ratio": TARGET,
        "sqlite_dir": str(args.dir),
        "load_average": load,
        "storages": storages,
        "machine": machine(),
    }
    if not (args.smoke or args.no_record):
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "trial_overhead.json").write_text(json.dumps(result, indent=1) + "\n")
        from _results import regenerate

        regenerate(args.out)
    print(section(result))
    return result


if __name__ == "__main__":
    main()
