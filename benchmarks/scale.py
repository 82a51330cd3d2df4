"""Scale-out: steady-state trials per second of many workers on one study, on PostgreSQL
directly and through Optuna's gRPC storage proxy.

Each configuration starts ``w`` worker processes (this script with ``--worker``) on a fresh
study in the PostgreSQL database of ``OPTUNA_NAS_TEST_POSTGRES_URL`` (default: ``postgres``
on 127.0.0.1:5432, database ``test``), either directly or through ``optuna-nas
storage-server`` (``optuna.storages.run_grpc_proxy_server``) started on a free port of
127.0.0.1 in front of it: one server process (``grpc``), or two sharing the port
(``grpc-2p``, ``--processes 2``). Every worker runs :func:`optuna_nas.storage.run_study` with a
sampler of its own (``RegularizedEvolutionSampler`` or TPE, seeded per worker) over a
NAS-Bench-201-shaped space (6 categorical params of 5 choices) and an objective that
sleeps 1 s. Each worker sets up (imports, storage, the study's history read once), says it is
ready and waits; when all are, the driver sets one common deadline and lets them go. A study
may start with ``h`` completed trials (written straight into PostgreSQL), so that samplers
read a long history.

Measured per configuration:

* **trials/s in steady state**: trials finished between the moment the last worker's first
  trial began (plus 1 s) and the deadline (minus 1.5 s, the trial in flight), over that
  window; worker start-up (Python, imports, connections, the first history read) is not
  counted;
* **scaling efficiency**: trials/s over ``w`` times the 1-worker trials/s of the same storage,
  sampler and history (ideal 1.0; with a 1 s objective one worker makes at most 1 trial/s);
* **sampler ms per trial**: the wall time a trial spends in the sampler's hooks that run
  for its ``ask`` and its suggestions (``before_trial``, where our samplers plan the trial,
  ``infer_relative_search_space``, ``sample_relative``, ``sample_independent``), median and
  95th percentile over the window's trials, timed inside each worker; and the CPU time of the
  worker's thread over the same hooks (median), which is what the ask costs without waiting
  for a core or for the storage (on 2 cores shared by 16 workers, the proxy and PostgreSQL,
  most of the wall time is waiting);
* **server CPU ms per trial**: CPU seconds of the PostgreSQL server processes (and of the
  proxy's processes, through gRPC) over the window, read from ``/proc``, per trial of the window;
* **lost / duplicated / stuck**: trials a worker saw finish that the study does not hold as
  finished (lost), trial numbers finished twice (duplicated), trials left ``RUNNING`` after
  every worker exited (stuck). Target 0 each.

The machine is the benchmark VM (2 cores, shared by the server, the proxy and every
worker), so these numbers measure how the protocol scales on one small host, not a cluster.
Targets (issue #17): 16 workers through the proxy at least 10x one worker, 0 lost or
duplicated; a sampler's ask under 50 ms at 2,000 trials with 16 workers.

    python benchmarks/scale.py          # full matrix, 1- and 16-worker rows 3 times, ~29 min
    python benchmarks/scale.py --smoke  # 1 worker on PostgreSQL, 2 via a 2-process proxy, ~1 min

Writes ``benchmarks/results/scale.json`` and regenerates ``benchmarks/RESULTS.md``;
``--smoke`` writes ``scale.json`` only where ``--out`` names a folder, and no RESULTS.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
import contextlib
import json
import os
from pathlib import Path
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any
import uuid

import optuna
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _bulk import bulk_sql_study  # noqa: E402
from _results import machine  # noqa: E402

POSTGRES = os.environ.get(
    "OPTUNA_NAS_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
SPACE = {f"edge{i}": ("none", "skip", "conv1x1", "conv3x3", "pool3x3") for i in range(6)}
SLEEP = 1.0
SERVER_PROCESSES = {"grpc": 1, "grpc-2p": 2}  # storage label -> storage-server --processes
READY = "ready"  # a worker's line once it is set up and waits for the go
STARTUP_TIMEOUT = 300.0  # s for every worker to be set up
CLK_TCK = os.sysconf("SC_CLK_TCK")


def score(params: dict[str, Any]) -> float:
    """A deterministic stand-in for accuracy: conv edges help, ``none`` hurts."""
    gain = {"none": -1.0, "skip": 0.2, "conv1x1": 0.6, "conv3x3": 1.0, "pool3x3": 0.1}
    return sum(gain[v] * (1 + 0.1 * i) for i, v in enumerate(params.values()))


# ----------------------------------------------------------------------------- worker


class TimedSampler(optuna.samplers.BaseSampler):
    """Delegates to ``inner`` and adds up the wall and thread-CPU seconds each trial spends in
    the hooks of its ask and suggestions (all but ``after_trial``)."""

    def __init__(self, inner: optuna.samplers.BaseSampler) -> None:
        self.inner = inner
        self.seconds: dict[int, float] = {}
        self.cpu_seconds: dict[int, float] = {}

    def _timed(self, number: int, call: Any, *args: Any) -> Any:
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return call(*args)
        finally:
            self.seconds[number] = self.seconds.get(number, 0.0) + time.perf_counter() - start
            self.cpu_seconds[number] = self.cpu_seconds.get(number, 0.0) + time.thread_time() - cpu

    def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
        return self._timed(trial.number, self.inner.infer_relative_search_space, study, trial)

    def sample_relative(self, study: Any, trial: Any, space: Any) -> Any:
        return self._timed(trial.number, self.inner.sample_relative, study, trial, space)

    def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
        call = self.inner.sample_independent
        return self._timed(trial.number, call, study, trial, name, dist)

    def before_trial(self, study: Any, trial: Any) -> None:
        self._timed(trial.number, self.inner.before_trial, study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    from optuna_nas.samplers import RegularizedEvolutionSampler

    return RegularizedEvolutionSampler(seed=seed)


def worker(url: str, study_name: str, sampler_name: str, seed: int, go: str) -> None:
    """Set up, print ``ready``, wait for the driver's ``go`` file (holding the common deadline,
    a ``time.time()``), then run trials until the deadline; one JSON line per finished trial."""
    from optuna_nas.storage import open_storage
    from optuna_nas.storage import run_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = TimedSampler(make_sampler(sampler_name, seed))
    study = optuna.load_study(study_name=study_name, storage=open_storage(url), sampler=sampler)
    study.get_trials(deepcopy=False)  # the history read once, as a worker that has run a while

    def objective(trial: optuna.Trial) -> float:
        params = {
            name: trial.suggest_categorical(name, choices) for name, choices in SPACE.items()
        }
        time.sleep(SLEEP)
        return score(params)

    def finished(_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        line = {
            "trial": trial.number,
            "state": trial.state.name,
            "start": trial.datetime_start.timestamp() if trial.datetime_start else None,
            "end": time.time(),
            "sampler_s": sampler.seconds.pop(trial.number, 0.0),
            "sampler_cpu_s": sampler.cpu_seconds.pop(trial.number, 0.0),
        }
        print(json.dumps(line), flush=True)

    print(READY, flush=True)
    while not os.path.exists(go):
        time.sleep(0.02)
    remaining = float(Path(go).read_text()) - time.time()
    if remaining > 0:
        run_study(study, objective, n_trials=10**9, timeout=remaining, callbacks=[finished])


# ----------------------------------------------------------------------------- driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """Each live process's CPU seconds so far (utime + stime), by pid."""
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two readings, of the processes alive at both (a database backend
    that exits in between, e.g. another client's, would otherwise count negative)."""
    return sum(after[p] - before[p] for p in before if p in after)


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
    return pids


@contextlib.contextmanager
def proxy(url: str, processes: int = 1) -> Iterator[tuple[str, list[int]]]:
    """``optuna-nas storage-server --processes N`` in front of ``url`` on a free port; yields
    (URL, the pids of its server processes)."""
    port = free_port()
    command = [sys.executable, "-m", "optuna_nas.cli", "storage-server", "--storage", url]
    proc = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--processes", str(processes)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready: list[str] = []  # "serving ..." once every server process listens
        reader = threading.Thread(target=lambda: ready.append(proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(60)
        if not ready or "serving" not in ready[0]:
            proc.kill()
            raise RuntimeError(f"the storage server did not start: {proc.stderr.read()}")  # type: ignore[union-attr]
        yield f"grpc://127.0.0.1:{port}", [proc.pid, *children_of(proc.pid)]
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def make_study(name: str, history: int) -> None:
    if history == 0:
        optuna.create_study(study_name=name, storage=POSTGRES, direction="maximize")
        return
    dists: dict[str, optuna.distributions.BaseDistribution] = {
        k: optuna.distributions.CategoricalDistribution(v) for k, v in SPACE.items()
    }
    rng = __import__("random").Random(0)
    trials = []
    for _ in range(history):
        params = {k: rng.choice(v) for k, v in SPACE.items()}
        trials.append(
            optuna.trial.create_trial(params=params, distributions=dists, value=score(params))
        )
    bulk_sql_study(POSTGRES, name, trials, direction="maximize")


def run_config(
    storage: str, sampler: str, workers: int, history: int, seconds: float
) -> dict[str, Any]:
    name = f"scale-{uuid.uuid4().hex[:10]}"
    make_study(name, history)
    with contextlib.ExitStack() as stack:
        url, servers = (
            stack.enter_context(proxy(POSTGRES, SERVER_PROCESSES[storage]))
            if storage in SERVER_PROCESSES
            else (POSTGRES, [])
        )
        logs = [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in range(workers)]
        go = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "go"
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", url, name, sampler, str(i), str(go)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"},
            )
            for i, log in enumerate(logs)
        ]
        # Start-up (Python, imports, connections, the first history read) is not counted:
        # every worker waits, set up, for one common go and deadline.
        ready_by = time.time() + STARTUP_TIMEOUT
        while not all(READY in _lines(log) for log in logs):
            if time.time() > ready_by or any(p.poll() is not None for p in procs):
                for p in procs:
                    p.kill()
                raise RuntimeError(
                    f"{workers} workers not all set up within {STARTUP_TIMEOUT:.0f} s: "
                    + "; ".join(ln for log in logs for ln in _lines(log)[-3:])
                )
            time.sleep(0.2)
        deadline = time.time() + seconds + 4
        Path(f"{go}.tmp").write_text(repr(deadline))
        os.replace(f"{go}.tmp", go)
        # Server CPU over the steady window: sample it once every worker has begun a trial.
        first = None
        while time.time() < deadline and first is None:
            time.sleep(0.2)
            starts = [_first_start(log) for log in logs]
            if all(s is not None for s in starts):
                first = max(starts)  # type: ignore[type-var]
        window_start = (first or deadline) + 1.0
        while time.time() < window_start:
            time.sleep(0.05)
        pg = postgres_pids() + servers  # every worker's backend exists now
        cpu0 = cpu_seconds(pg)
        window_end = deadline - 1.5
        while time.time() < window_end:
            time.sleep(0.05)
        cpu1 = cpu_seconds(pg)
        codes = [p.wait(timeout=120) for p in procs]
        lines = [json.loads(ln) for log in logs for ln in _lines(log) if ln.startswith("{")]
        errors = [ln for log in logs for ln in _lines(log) if ln[:1] != "{" and ln != READY]
        study = optuna.load_study(study_name=name, storage=POSTGRES)
        trials = study.get_trials(deepcopy=False)
    held = {t.number: t.state for t in trials}
    seen = [ln for ln in lines if ln["state"] == "COMPLETE"]
    in_window = [ln for ln in seen if window_start <= ln["end"] <= window_end]
    numbers = [ln["trial"] for ln in seen]
    sampler_ms = [1000 * ln["sampler_s"] for ln in in_window]
    sampler_cpu_ms = [1000 * ln["sampler_cpu_s"] for ln in in_window]
    window = window_end - window_start
    optuna.delete_study(study_name=name, storage=POSTGRES)
    return {
        "storage": storage,
        "sampler": sampler,
        "workers": workers,
        "history": history,
        "window_seconds": window,
        "trials_in_window": len(in_window),
        "trials_per_second": len(in_window) / window if window > 0 else 0.0,
        "sampler_ms_median": statistics.median(sampler_ms) if sampler_ms else None,
        "sampler_ms_p95": _quantile(sampler_ms, 0.95),
        "sampler_cpu_ms_median": statistics.median(sampler_cpu_ms) if sampler_cpu_ms else None,
        "server_cpu_ms_per_trial": 1000 * cpu_used(cpu0, cpu1) / max(1, len(in_window)),
        "lost": sum(held.get(n) is not TrialState.COMPLETE for n in numbers),
        "duplicated": len(numbers) - len(set(numbers)),
        "stuck": sum(s is TrialState.RUNNING for s in held.values()),
        "worker_exit_codes": sorted(set(codes)),
        "worker_errors": errors[-5:],
    }


def _lines(log: Any) -> list[str]:
    log.flush()
    log.seek(0)
    return [ln.strip() for ln in log.read().splitlines() if ln.strip()]


def _first_start(log: Any) -> float | None:
    starts = [json.loads(ln)["start"] for ln in _lines(log) if ln.startswith("{")]
    starts = [s for s in starts if s is not None]
    return min(starts) if starts else None


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median trials/s, with every run's trials/s and sampler median, and the
    lost / duplicated / stuck trials of all runs added up (a fault in any run counts)."""
    ordered = sorted(runs, key=lambda r: r["trials_per_second"])
    row = dict(ordered[(len(ordered) - 1) // 2])
    row["runs"] = len(runs)
    row["trials_per_second_runs"] = [r["trials_per_second"] for r in runs]
    row["sampler_ms_median_runs"] = [r["sampler_ms_median"] for r in runs]
    for key in ("lost", "duplicated", "stuck"):
        row[key] = sum(r[key] for r in runs)
    return row


def plan(smoke: bool) -> list[tuple[str, str, int, int]]:
    if smoke:
        return [("postgresql", "tpe", 1, 0), ("grpc-2p", "evolution", 2, 0)]
    configs = [
        (storage, sampler, w, 0)
        for storage in ("postgresql", "grpc")
        for sampler in ("evolution", "tpe")
        for w in (1, 4, 8, 16)
    ]
    configs += [("grpc-2p", sampler, w, 0) for sampler in ("evolution", "tpe") for w in (1, 16)]
    configs += [
        (storage, sampler, w, 2000)
        for storage in ("postgresql", "grpc", "grpc-2p")
        for sampler in ("evolution", "tpe")
        for w in (1, 16)
    ]
    return configs


def section(result: dict[str, Any]) -> str:
    m = result["machine"]
    rows = [
        "## Scale-out: many workers on one study",
        "",
        f"`python benchmarks/scale.py` → `benchmarks/results/scale.json`; {m['cpus']} cores "
        f"({m['platform']}), Python {m['python']}, optuna {m['optuna']}; PostgreSQL, every "
        f"worker and the proxy on this one machine; a 1 s objective, "
        f"{result['seconds']:.0f} s steady window per row; a 1- or 16-worker row (the two "
        f"ends of each ratio) is the median of {result.get('repeats', 1)} runs (all runs' "
        "trials/s in brackets; lost / dup. / stuck add up every run). Sampler ms: wall time in "
        "the sampler's hooks per trial (its ask and suggestions); sampler CPU ms: the worker "
        "thread's CPU time in them (median).",
        "",
        "| storage | sampler | history | workers | trials/s | efficiency | sampler ms "
        "(median / p95) | sampler CPU ms | server CPU ms/trial | lost | dup. | stuck |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = {
        (r["storage"], r["sampler"], r["history"]): r["trials_per_second"]
        for r in result["rows"]
        if r["workers"] == 1
    }
    for r in result["rows"]:
        one = base.get((r["storage"], r["sampler"], r["history"]))
        eff = f"{r['trials_per_second'] / (r['workers'] * one):.2f}" if one else "-"
        med = "-" if r["sampler_ms_median"] is None else f"{r['sampler_ms_median']:.1f}"
        p95 = "-" if r["sampler_ms_p95"] is None else f"{r['sampler_ms_p95']:.1f}"
        cpu = r.get("sampler_cpu_ms_median")
        cpu_ms = "-" if cpu is None else f"{cpu:.1f}"
        runs = r.get("trials_per_second_runs", [])
        spread = f" ({', '.join(f'{x:.2f}' for x in runs)})" if len(runs) > 1 else ""
        rows.append(
            f"| {r['storage']} | {r['sampler']} | {r['history']} | {r['workers']} | "
            f"{r['trials_per_second']:.2f}{spread} | {eff} | {med} / {p95} | {cpu_ms} | "
            f"{r['server_cpu_ms_per_trial']:.0f} | {r['lost']} | {r['duplicated']} | "
            f"{r['stuck']} |"
        )
    rows += ["", "Targets (issue #17):", ""]
    rows += [f"- {'MET' if ok else 'NOT MET'}: {text}" for text, ok in targets(result)]
    return "\n".join(rows)


def speedup(result: dict[str, Any], storage: str, sampler: str, history: int = 0) -> float | None:
    """Steady-state trials/s of 16 workers over 1 worker's, for one storage and sampler;
    None without both rows (``--smoke``)."""
    rate = {
        r["workers"]: r["trials_per_second"]
        for r in result["rows"]
        if (r["storage"], r["sampler"], r["history"]) == (storage, sampler, history)
    }
    if 16 not in rate or 1 not in rate:
        return None
    return float(rate[16] / rate[1])


def targets(result: dict[str, Any]) -> list[tuple[str, bool]]:
    """Issue #17's targets as (statement with the measured numbers, met)."""
    rows = result["rows"]
    out = []
    for storage, server in (("grpc", "the proxy"), ("grpc-2p", "a 2-process proxy")):
        for history in sorted({r["history"] for r in rows}):
            for sampler in ("evolution", "tpe"):
                x = speedup(result, storage, sampler, history)
                if x is None:
                    continue
                out.append(
                    (
                        f"16 workers through {server} >= 10x one worker ({sampler}, "
                        f"{history:,} trials of history: {x:.1f}x)",
                        x >= 10,
                    )
                )
    bad = sum(r["lost"] + r["duplicated"] + r["stuck"] for r in rows)
    out.append((f"0 trials lost, duplicated or stuck over all {len(rows)} rows ({bad})", bad == 0))
    for r in rows:
        if r["workers"] == 16 and r["history"] == 2000 and r["sampler_ms_median"] is not None:
            ms = r["sampler_ms_median"]
            out.append(
                (
                    f"{r['sampler']}'s ask < 50 ms at 2,000 trials, 16 workers, {r['storage']} "
                    f"(median {ms:.1f} ms)",
                    ms < 50,
                )
            )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="2 short rows; no RESULTS.md")
    parser.add_argument("--seconds", type=float, default=None, help="steady window per row")
    parser.add_argument(
        "--out", type=Path, default=None, help="folder of scale.json (default: benchmarks/results)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of each 1- and 16-worker row (the median is kept)",
    )
    args = parser.parse_args(argv)
    seconds = args.seconds or (4.0 if args.smoke else 12.0)
    repeats = 1 if args.smoke else args.repeats
    rows = []
    for storage, sampler, workers, history in plan(args.smoke):
        runs = []
        for _ in range(repeats if workers in (1, 16) else 1):
            runs.append(run_config(storage, sampler, workers, history, seconds))
            print(json.dumps(runs[-1]), flush=True)
        rows.append(median_run(runs))
    result = {"seconds": seconds, "repeats": repeats, "rows": rows, "machine": machine()}
    print(section(result))
    out = args.out if args.smoke or args.out else ROOT / "benchmarks" / "results"
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "scale.json").write_text(json.dumps(result, indent=1) + "\n")
    if not args.smoke:
        from _results import regenerate

        regenerate(out)
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, name, sampler, seed, go = sys.argv[2:7]
        worker(url, name, sampler, int(seed), go)
    else:
        main()
