"""Fault suite: randomised ``kill -9`` rounds against real studies on SQLite and PostgreSQL.

Each round runs one of two real study scripts on a fresh storage (a SQLite file, or a fresh
study in the PostgreSQL database of ``OPTUNA_NAS_TEST_POSTGRES_URL``), with 1 or 2 worker
processes started by this script (one torch thread each), and ``kill -9``s one of them:

* ``quickstart``: ``studies/quickstart.py`` (full training, per-epoch checkpoints). The kill
  comes a random (seeded) time after the study's first trial started, so it lands
  mid-training, between epochs, or between trials.
* ``ws-supernet``: ``studies/weight_sharing.py``, killed *while it trains the supernet*: the
  victim is the process named in the study's job claim (``optuna_nas_jobs``) while the study
  has no supernet recorded, a random time into its training; if the record is there
  after the kill, the round is run again.
* ``ws-trials``: ``studies/weight_sharing.py``, killed a random time after the supernet was
  recorded, while candidates are scored.

Right after the kill the same command is started again (the rerun) and the round waits for
every worker; if the study then still lacks its ``n`` finished trials, the command is rerun
(at most twice more). Measured per round:

* **completed trials lost**: trials ``COMPLETE`` at the kill that are not ``COMPLETE`` with the
  same values at the end;
* **duplicate evaluations**: finished trials with the same canonical hash that were both
  evaluated (neither has ``user_attrs["duplicate_of"]``), plus supernets uploaded more than once;
* **stuck claims**: job claims left in ``optuna_nas_jobs`` and trials left ``RUNNING`` or
  ``WAITING`` after the last worker exited;
* **time to recover**, from the kill until the dead worker's work is back in a live worker's
  hands: for a trial kill, until its stale trial is failed (and its retry enqueued; read from
  the trial's ``datetime_complete``); for a supernet kill, until another process holds the job
  claim (its first beat's ``beat_at``, or when this script, polling every 0.1 s, saw it).
  The bound is two heartbeats plus the grace period: ``2 h + 2 h`` for trials (the scripts
  leave Optuna's grace period at its default, twice the heartbeat ``h``), ``2 h + h / 2`` for
  the job claim (``run_job``'s default grace). When the retried trial started is recorded too.

Run ``python benchmarks/faults.py`` (about 15 minutes on 2 cores) or ``--smoke`` (2 SQLite
rounds, about a minute; writes only ``--out``'s ``faults.json``, if given). Writes
``benchmarks/results/faults.json`` and its section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
import contextlib
import dataclasses
import json
import os
from pathlib import Path
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any
import uuid

from _results import machine
import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import sqlalchemy as sa

from optuna_nas.evaluation._supernet_evaluator import ATTR_PREFIX
from optuna_nas.storage import DUPLICATE_OF
from optuna_nas.storage import JobOwner
from optuna_nas.storage import claim_board
from optuna_nas.storage import open_storage
from optuna_nas.storage._claims import JOBS_TABLE

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get(
    "OPTUNA_NAS_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
HEARTBEAT = 2  # s, of trials and of the supernet job
TRIAL_BOUND = 2 * HEARTBEAT + 2 * HEARTBEAT
JOB_BOUND = 2 * HEARTBEAT + HEARTBEAT / 2
EPOCHS = 2  # quickstart's training epochs per trial
SUPERNET_EPOCHS = 3
POLL = 0.1
ROUND_TIMEOUT = 300.0  # s, per command run of a round
MAX_RERUNS = 3
optuna.logging.set_verbosity(optuna.logging.ERROR)


@dataclasses.dataclass(frozen=True)
class Round:
    storage: str  # "sqlite" or "postgresql"
    kind: str  # "quickstart", "ws-supernet" or "ws-trials"
    workers: int
    seed: int
    epochs: int = 0  # quickstart rounds: training epochs per trial (0: EPOCHS)

    @property
    def n_trials(self) -> int:
        return (3 + self.workers - 1) if self.kind == "quickstart" else 10


def plan(smoke: bool, seed: int) -> list[Round]:
    """The rounds, in a seeded random order, with 1 or 2 workers drawn per round."""
    rng = random.Random(seed)
    if smoke:
        kinds = [("sqlite", "quickstart"), ("sqlite", "ws-supernet")]
        return [Round(s, k, 1, seed + i) for i, (s, k) in enumerate(kinds)]
    kinds = (
        [("sqlite", "quickstart")] * 14
        + [("sqlite", "ws-supernet")] * 6
        + [("sqlite", "ws-trials")] * 4
        + [("postgresql", "quickstart")] * 4
        + [("postgresql", "ws-supernet")] * 2
        + [("postgresql", "ws-trials")] * 2
    )
    rng.shuffle(kinds)
    return [Round(s, k, rng.choice((1, 2)), seed + i) for i, (s, k) in enumerate(kinds)]


def command(r: Round, url: str, name: str, artifacts: Path) -> list[str]:
    common = ["--storage", url, "--study-name", name, "--trials", str(r.n_trials)]
    common += [
        "--seed",
        str(r.seed),
        "--heartbeat",
        str(HEARTBEAT),
        "--artifact-dir",
        str(artifacts),
    ]
    if r.kind == "quickstart":
        return [
            sys.executable,
            str(ROOT / "studies" / "quickstart.py"),
            *common,
            "--epochs",
            str(r.epochs or EPOCHS),
        ]
    script = str(ROOT / "studies" / "weight_sharing.py")
    return [sys.executable, script, *common, "--supernet-epochs", str(SUPERNET_EPOCHS)]


class Observer:
    """Reads one study's trials, supernet record and job claims, as the workers write them."""

    def __init__(self, url: str, name: str) -> None:
        self.storage = open_storage(url, heartbeat_interval=None)
        claim_board(self.storage)  # creates the claims tables if no worker did yet
        self.name = name
        self.study_id: int | None = None

    def ready(self) -> bool:
        return self._id() is not None

    def _id(self) -> int | None:
        if self.study_id is None:
            with contextlib.suppress(KeyError):
                self.study_id = self.storage.get_study_id_from_name(self.name)
        return self.study_id

    def trials(self) -> list[FrozenTrial]:
        study_id = self._id()
        return [] if study_id is None else self.storage.get_all_trials(study_id, deepcopy=False)

    def attrs(self) -> dict[str, Any]:
        study_id = self._id()
        return {} if study_id is None else self.storage.get_study_system_attrs(study_id)

    def supernet_recorded(self) -> bool:
        return any(k.startswith(ATTR_PREFIX) for k in self.attrs())

    def jobs(self) -> list[JobOwner]:
        if not self.ready():
            return []
        with self.storage.engine.connect() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(
                sa.text(f"SELECT owner FROM {JOBS_TABLE} WHERE study_id = :s"),
                {"s": self.study_id},
            )
            return [JobOwner.from_json(row[0]) for row in rows]


class Missed(RuntimeError):
    """The study finished before the round's moment to kill came; the round is run again."""


def _until(what: str, check: Callable[[], Any], timeout: float, procs: list[Any]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if all(p.poll() is not None for p in procs):
            raise Missed(f"every worker exited before {what}")
        time.sleep(POLL)
    raise TimeoutError(f"no {what} within {timeout:.0f} s")


def _start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent, env=env)


def _kill(
    r: Round, rng: random.Random, obs: Observer, procs: list[Any], train_s: float
) -> dict[str, Any]:
    """Wait for the round's moment, ``kill -9`` one worker; what was seen at the kill.

    A supernet's trainer is killed after a random share (10-70 %) of ``train_s``, the training
    time of the previous round's supernet."""
    if r.kind == "ws-supernet":

        def training() -> JobOwner | None:
            mine = [j for j in obs.jobs() if j.pid in {p.pid for p in procs}]
            return mine[0] if mine and not obs.supernet_recorded() else None

        holder = _until("supernet training", training, 120, procs)
        victim = next(p for p in procs if p.pid == holder.pid)
        time.sleep(rng.uniform(0.1, 0.7) * train_s)
    else:
        if r.kind == "ws-trials":
            _until("a recorded supernet", obs.supernet_recorded, 180, procs)
        _until(
            "a running trial",
            lambda: any(t.state is TrialState.RUNNING for t in obs.trials()),
            120,
            procs,
        )
        time.sleep(rng.uniform(0.0, 5.0 if r.kind == "quickstart" else 1.0))
        holder = None
        victim = rng.choice(procs)
    if victim.poll() is not None:
        raise Missed(f"the victim (pid {victim.pid}) exited before the kill")
    if sum(t.state is TrialState.COMPLETE for t in obs.trials()) >= r.n_trials:
        raise Missed("the study had its trials before the kill")
    recorded_before = obs.supernet_recorded()
    os.kill(victim.pid, signal.SIGKILL)
    killed = time.time()
    victim.wait(timeout=30)
    if holder is not None and obs.supernet_recorded():
        raise Missed("the supernet was recorded before the kill")
    trials = obs.trials()
    return {
        "killed_at": killed,
        "victim": victim,
        "holder": holder,
        "during_supernet": holder is not None,
        "supernet_recorded_before": recorded_before,
        "complete": {t.number: t.values for t in trials if t.state is TrialState.COMPLETE},
        "running": [t.number for t in trials if t.state is TrialState.RUNNING],
    }


def _takeover(obs: Observer, holder: JobOwner, killed: float, procs: list[Any]) -> float | None:
    """Seconds from the kill until another process held the supernet job (None: never)."""

    def taken() -> float | None:
        for job in obs.jobs():
            if job.token != holder.token:
                return (job.beat_at if job.beat == 0 else time.time()) - killed
        return time.time() - killed if obs.supernet_recorded() else None

    try:
        return float(_until("a supernet takeover", taken, 120, procs))
    except (TimeoutError, Missed):
        return None


def run_round(r: Round, rng: random.Random, workdir: Path, train_s: float) -> dict[str, Any]:
    name = f"optuna-nas-faults-{uuid.uuid4().hex[:12]}"
    url = PG_URL if r.storage == "postgresql" else f"sqlite:///{workdir / 'study.db'}"
    cmd = command(r, url, name, workdir / "artifacts")
    obs = Observer(url, name)
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []

    def start() -> None:
        logs.append(workdir / f"worker{len(logs)}.log")
        procs.append(_start(cmd, logs[-1]))

    started = time.monotonic()
    try:
        for _ in range(r.workers):
            start()
        seen = _kill(r, rng, obs, procs, train_s)
        start()  # the rerun, at once
        takeover = None
        if seen["during_supernet"]:
            takeover = _takeover(obs, seen["holder"], seen["killed_at"], procs)
        runs = 1
        while True:
            for p in procs:
                try:
                    p.wait(timeout=ROUND_TIMEOUT)
                except subprocess.TimeoutExpired:  # a hung worker: an error of the round
                    p.kill()
                    p.wait(timeout=30)
            finished = sum(
                t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in obs.trials()
            )
            if finished >= r.n_trials or runs >= MAX_RERUNS:
                break
            runs += 1
            start()
        return _check(r, obs, seen, takeover, procs, logs, runs, time.monotonic() - started)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
        if r.storage == "postgresql":
            with contextlib.suppress(KeyError):
                optuna.delete_study(study_name=name, storage=obs.storage)
        obs.storage.engine.dispose()  # type: ignore[attr-defined]


def _check(
    r: Round,
    obs: Observer,
    seen: dict[str, Any],
    takeover: float | None,
    procs: list[Any],
    logs: list[Path],
    runs: int,
    seconds: float,
) -> dict[str, Any]:
    trials = {t.number: t for t in obs.trials()}
    done = [t for t in trials.values() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    lost = [
        n
        for n, values in seen["complete"].items()
        if trials[n].state is not TrialState.COMPLETE or trials[n].values != values
    ]
    trained = Counter(
        t.user_attrs.get("canonical_hash") for t in done if DUPLICATE_OF not in t.user_attrs
    )
    records = [v for k, v in obs.attrs().items() if k.startswith(ATTR_PREFIX)]
    supernets = sum(
        k.startswith("artifacts:") and json.loads(v).get("filename") == "supernet.pt"
        for k, v in obs.attrs().items()
    )
    killed = seen["killed_at"]
    recovered = []  # the victim's trials: running at the kill, failed as stale afterwards
    for n in seen["running"]:
        t = trials[n]
        if t.state is not TrialState.FAIL or t.datetime_complete is None:
            continue
        retry = [u for u in trials.values() if u.system_attrs.get("failed_trial") == n]
        start = retry[0].datetime_start if retry and retry[0].datetime_start else None
        recovered.append(
            {
                "trial": n,
                "failed_after_s": round(t.datetime_complete.timestamp() - killed, 3),
                "retry_started_after_s": None
                if start is None
                else round(start.timestamp() - killed, 3),
            }
        )
    starts = [
        t.datetime_start.timestamp() - killed
        for t in trials.values()
        if t.datetime_start is not None and t.datetime_start.timestamp() > killed
    ]
    supernet = r.kind == "ws-supernet"
    recover = takeover if supernet else (recovered[0]["failed_after_s"] if recovered else None)
    errors = [
        f"worker {i} exited {p.returncode}: {logs[i].read_text()[-600:]}"
        for i, p in enumerate(procs)
        if p is not seen["victim"] and p.returncode != 0
    ]
    return {
        **dataclasses.asdict(r),
        "n_trials": r.n_trials,
        "finished": len(done),
        "runs": runs,
        "seconds": round(seconds, 1),
        "during_supernet": seen["during_supernet"],
        "complete_at_kill": len(seen["complete"]),
        "running_at_kill": seen["running"],
        "lost": lost,
        "duplicates": sum(c - 1 for h, c in trained.items() if h is not None)
        + max(0, supernets - 1),
        "supernets_uploaded": supernets,
        "supernet_train_s": records[0]["train_seconds"] if records else None,
        "stuck_jobs": len(obs.jobs()),
        "stuck_trials": [
            t.number
            for t in trials.values()
            if t.state in (TrialState.RUNNING, TrialState.WAITING)
        ],
        "recover_s": None if recover is None else round(recover, 3),
        "bound_s": JOB_BOUND if supernet else TRIAL_BOUND,
        "trial_recovery": recovered,
        "first_trial_after_kill_s": round(min(starts), 3) if starts else None,
        "errors": errors,
    }


def summary(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per storage and round kind."""
    rows = []
    for storage in ("sqlite", "postgresql"):
        for kind in ("quickstart", "ws-supernet", "ws-trials"):
            rs = [x for x in rounds if (x["storage"], x["kind"]) == (storage, kind)]
            if not rs:
                continue
            times = [x["recover_s"] for x in rs if x["recover_s"] is not None]
            retries = [
                t["retry_started_after_s"]
                for x in rs
                for t in x["trial_recovery"]
                if t["retry_started_after_s"] is not None
            ]
            rows.append(
                {
                    "storage": storage,
                    "kind": kind,
                    "kills": len(rs),
                    "two_workers": sum(x["workers"] == 2 for x in rs),
                    "during_supernet": sum(x["during_supernet"] for x in rs),
                    "finished_ok": sum(x["finished"] == x["n_trials"] for x in rs),
                    "lost": sum(len(x["lost"]) for x in rs),
                    "duplicates": sum(x["duplicates"] for x in rs),
                    "stuck": sum(x["stuck_jobs"] + len(x["stuck_trials"]) for x in rs),
                    "errors": sum(len(x["errors"]) for x in rs),
                    "recovered": len(times),
                    "recover_median_s": statistics.median(times) if times else None,
                    "recover_max_s": max(times) if times else None,
                    "retry_median_s": statistics.median(retries) if retries else None,
                    "bound_s": rs[0]["bound_s"],
                    "within_bound": sum(t <= rs[0]["bound_s"] for t in times),
                }
            )
    return rows


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def section(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "## Fault suite: kill -9 rounds",
        "",
        f"`python benchmarks/faults.py` (seed {result['seed']}), {result['minutes']:.0f} min wall "
        f"on {m['cpus']} CPU cores ({m['processor'] or m['platform']}), python {m['python']}, "
        f"torch {m['torch']}, optuna {m['optuna']}, {m['postgresql']}. Each round starts 1 or 2 "
        "workers of a real study script on a fresh storage, `kill -9`s one at a seeded random "
        "moment, reruns the same command at once and waits for the study's n finished trials "
        f"(quickstart: {EPOCHS} epochs per trial, n = 3 or 4; weight sharing: a "
        f"{SUPERNET_EPOCHS}-epoch supernet, n = 10); heartbeat h = {HEARTBEAT} s for trials and "
        "the supernet job, one torch thread per worker. `ws-supernet`: the supernet's trainer is "
        "killed while it trains (after 10-70 % of the previous round's supernet training time); "
        "`ws-trials`: a worker is killed while candidates are scored. A round whose study had "
        "all its trials before the kill is run again with a fresh study (at most 3 attempts). "
        "Time to recover: from the kill until the killed trial was failed as stale (its retry "
        "enqueued), or until another process held the supernet job; bound: two heartbeats plus "
        f"the grace period ({TRIAL_BOUND:g} s for trials, grace 2 h; {JOB_BOUND:g} s for the job, "
        "grace h / 2). A kill between two trials leaves nothing to recover (not counted in "
        "'recovered'). Retry started: from the kill until the failed trial's retry began.",
        "",
        "| storage | study | kills (2 workers, during supernet training) | studies finished | "
        "completed trials lost | duplicate evaluations | stuck claims | worker errors | "
        "recovered | recover median / max (s) | bound (s) | within bound | retry started, "
        "median (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["summary"]:
        lines.append(
            f"| {row['storage']} | {row['kind']} | {row['kills']} ({row['two_workers']}, "
            f"{row['during_supernet']}) | {row['finished_ok']}/{row['kills']} | {row['lost']} | "
            f"{row['duplicates']} | {row['stuck']} | {row['errors']} | {row['recovered']} | "
            f"{_s(row['recover_median_s'])} / {_s(row['recover_max_s'])} | {row['bound_s']:g} | "
            f"{row['within_bound']}/{row['recovered']} | {_s(row['retry_median_s'])} |"
        )
    total = result["totals"]
    starts = [
        x["first_trial_after_kill_s"]
        for x in result["rounds"]
        if x["workers"] == 1 and x["first_trial_after_kill_s"] is not None
    ]
    if starts:
        lines += [
            "",
            "With one worker nothing recovers before the rerun has started: in the 1-worker "
            "rounds its first trial began a median "
            f"{statistics.median(starts):.1f} s (max {max(starts):.1f} s) after the kill "
            "(Python, torch, the data, the study).",
        ]
    lines += [
        "",
        f"Totals: {total['kills']} kills ({total['sqlite']} SQLite, {total['postgresql']} "
        f"PostgreSQL, {total['during_supernet']} during supernet training); completed trials "
        f"lost {total['lost']}, duplicate evaluations {total['duplicates']}, stuck claims "
        f"{total['stuck']}; {total['within_bound']} of {total['recovered']} recoveries within "
        "the bound. Per round: `benchmarks/results/faults.json`.",
    ]
    missed = [_missed(i, x) for i, x in enumerate(result["rounds"])]
    if any(missed):
        lines += ["", "Rounds that missed a target:", ""]
        lines += [f"- {m}" for m in missed if m]
    return "\n".join(lines)


def _missed(i: int, x: dict[str, Any]) -> str:
    """What round ``i`` missed, or an empty string."""
    what = []
    if x["lost"]:
        what.append(f"completed trials {x['lost']} lost")
    if x["duplicates"]:
        what.append(f"{x['duplicates']} duplicate evaluation(s)")
    if x["stuck_jobs"]:
        what.append(f"{x['stuck_jobs']} job claim(s) left")
    if x["stuck_trials"]:
        what.append(f"trial(s) {x['stuck_trials']} left running or waiting")
    if x["errors"]:
        what.append(f"{len(x['errors'])} worker error(s)")
    if x["finished"] != x["n_trials"]:
        what.append(f"{x['finished']} of {x['n_trials']} trials finished")
    if x["recover_s"] is not None and x["recover_s"] > x["bound_s"]:
        what.append(
            f"recovered after {x['recover_s']:.1f} s > {x['bound_s']:g} s (the first trial after "
            f"the kill began after {_s(x['first_trial_after_kill_s'])} s)"
        )
    if not what:
        return ""
    return (
        f"round {i} ({x['storage']}, {x['kind']}, {x['workers']} worker(s); trials running at "
        f"the kill: {x['running_at_kill']}): " + "; ".join(what)
    )


def _postgres_version() -> str:
    try:
        storage = open_storage(PG_URL, heartbeat_interval=None)
    except (ConnectionError, ValueError) as err:
        return f"PostgreSQL unreachable ({err})"
    with storage.engine.connect() as conn:  # type: ignore[attr-defined]
        version = str(conn.execute(sa.text("SHOW server_version")).scalar())
    storage.engine.dispose()  # type: ignore[attr-defined]
    return f"PostgreSQL {version}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="2 SQLite rounds; no RESULTS.md")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder of faults.json (default: benchmarks/results)",
    )
    args = parser.parse_args(argv)
    rounds = plan(args.smoke, args.seed)
    rng = random.Random(args.seed)
    postgres = _postgres_version() if any(r.storage == "postgresql" for r in rounds) else "-"
    if postgres.startswith("PostgreSQL unreachable"):
        raise ConnectionError(f"the PostgreSQL rounds need {PG_URL}: {postgres}")
    start = time.monotonic()
    results = []
    train_s = 2.0  # s, a first guess of the supernet's training time
    for i, r in enumerate(rounds):
        missed: list[str] = []
        while True:  # bounded: at most 3 attempts per round
            with tempfile.TemporaryDirectory(prefix="optuna-nas-faults-") as tmp:
                try:
                    x = run_round(r, rng, Path(tmp), train_s)
                    break
                except Missed as err:
                    missed.append(str(err))
                    train_s /= 2  # a supernet trained before the kill: kill it sooner
                    if r.kind == "quickstart":  # trials ran out before the kill: longer ones
                        r = dataclasses.replace(r, epochs=4 * (r.epochs or EPOCHS))
                    if len(missed) == 3:
                        raise
        x["missed_attempts"] = missed
        train_s = x["supernet_train_s"] or train_s
        results.append(x)
        print(
            f"[{i + 1}/{len(rounds)}] {r.storage} {r.kind} x{r.workers}: "
            f"finished {x['finished']}/{x['n_trials']}, lost {len(x['lost'])}, "
            f"duplicates {x['duplicates']}, stuck {x['stuck_jobs'] + len(x['stuck_trials'])}, "
            f"recover {_s(x['recover_s'])} s (bound {x['bound_s']:g}), "
            f"errors {len(x['errors'])}, {x['seconds']:.0f} s",
            flush=True,
        )
    rows = summary(results)
    times = [x["recover_s"] for x in results if x["recover_s"] is not None]
    result: dict[str, Any] = {
        "seed": args.seed,
        "heartbeat_s": HEARTBEAT,
        "minutes": (time.monotonic() - start) / 60,
        "totals": {
            "kills": len(results),
            "sqlite": sum(x["storage"] == "sqlite" for x in results),
            "postgresql": sum(x["storage"] == "postgresql" for x in results),
            "during_supernet": sum(x["during_supernet"] for x in results),
            "lost": sum(len(x["lost"]) for x in results),
            "duplicates": sum(x["duplicates"] for x in results),
            "stuck": sum(x["stuck_jobs"] + len(x["stuck_trials"]) for x in results),
            "errors": sum(len(x["errors"]) for x in results),
            "recovered": len(times),
            "within_bound": sum(
                x["recover_s"] <= x["bound_s"] for x in results if x["recover_s"] is not None
            ),
        },
        "summary": rows,
        "rounds": results,
        "machine": machine(postgresql=postgres),
    }
    out = args.out if args.smoke or args.out else ROOT / "benchmarks" / "results"
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "faults.json").write_text(json.dumps(result, indent=1) + "\n")
    if not args.smoke:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from _results import regenerate

        regenerate(out)
    print(section(result))
    return result


if __name__ == "__main__":
    main()
