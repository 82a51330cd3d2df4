"""Storage throughput, resume time and the per-trial overhead optuna-nas adds to plain Optuna.

Three measurements, on every storage whose server answers (others are listed as skipped):

1. **Throughput**: trials per second with a trivial objective (one ``suggest_float``) and
   ``RandomSampler`` (so the sampler costs nothing), for 1, 2 and 4 workers. Workers are
   separate processes started by this script (``--worker``), each running
   ``study.optimize(timeout=T)`` on one shared study after a common start time; the rate is
   the sum of their completed trials over ``T``. In-memory storage lives in one process, so its
   "workers" are threads (``n_jobs``), which share the GIL.
2. **Resume**: a study of 10,000 completed trials (each with params and the user attrs
   optuna-nas writes: spec JSON, canonical hash, parameter count, FLOPs, curve) is built
   directly in the storage's own format (``add_trials`` into SQL with commits not waiting for
   the disk, or the journal's log lines written in one go), then timed: open the storage, load
   the study and run one new trial through :func:`optuna_nas.storage.run_study` with the
   deduplication lookup, in a fresh storage object (no cache).
3. **Overhead**: seconds per trial of the optuna-nas path (the attrs ``NASObjective`` writes,
   :func:`~optuna_nas.storage.find_or_claim` and slot claims through ``run_study``) over plain
   ``study.optimize`` with the same trivial objective, same storage, same process, alternated
   ABAB with fresh studies; the ratio is median(nas) / median(plain).

Run ``python benchmarks/storage.py`` (about 5 minutes) or ``--smoke`` (seconds). Writes
``benchmarks/results/storage.json`` and replaces its section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any
import uuid
import warnings

import optuna
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _bulk import bulk_sql_study  # noqa: E402

from optuna_nas.storage import copy_duplicate  # noqa: E402
from optuna_nas.storage import find_or_claim  # noqa: E402
from optuna_nas.storage import open_storage  # noqa: E402
from optuna_nas.storage import run_study  # noqa: E402
from optuna_nas.storage._claims import CLAIMS_TABLE  # noqa: E402

SERVERS = {
    "postgresql": (
        "OPTUNA_NAS_TEST_POSTGRES_URL",
        "postgresql+psycopg2://postgres@127.0.0.1:5432/test",
    ),
    "mysql": ("OPTUNA_NAS_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
    "redis": ("OPTUNA_NAS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
}
_CREATED: list[tuple[str | None, str | None]] = []  # (url, study name) to delete at the end
KINDS = ("inmemory", "sqlite", "postgresql", "mysql", "journal", "redis")
SPEC = {
    "format": 1,
    "nodes": [
        {"id": f"n{i}", "op": "conv", "config": {"channels": 32, "kernel": 3}} for i in range(8)
    ],
}
warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.ERROR)


def url_for(kind: str, workdir: Path) -> str | None:
    """A fresh URL of ``kind`` (None for in-memory); raises ConnectionError if unreachable."""
    tag = uuid.uuid4().hex[:12]
    if kind == "inmemory":
        return None
    if kind == "sqlite":
        return f"sqlite:///{workdir / f'{tag}.db'}"
    if kind == "journal":
        return f"journal:///{workdir / f'{tag}.log'}"
    variable, default = SERVERS[kind]
    url = os.environ.get(variable, default)
    if kind == "redis":
        url += f"?prefix=optuna-nas-bench-{tag}"
    _CREATED.append((url, None))
    open_storage(url, heartbeat_interval=None)  # raises ConnectionError if down
    return url


def _trivial(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", 0.0, 1.0)


def _nas_like(trial: optuna.Trial) -> float:
    """What the optuna-nas pipeline adds around an evaluation, minus the evaluation itself."""
    arch = trial.suggest_int("arch", 0, 10**9)
    trial.set_user_attr("spec", SPEC)
    trial.set_user_attr("canonical_hash", f"h{arch}")
    trial.set_user_attr("params", 1234)
    trial.set_user_attr("flops", 56789)
    source = find_or_claim(trial, f"h{arch}", poll_interval=0.05)
    if source is not None:
        value = copy_duplicate(trial, source)
        assert isinstance(value, float)
        return value
    trial.set_user_attr("val_accuracy_curve", [0.5, 0.7, 0.8])
    return arch / 1e9


# ----------------------------------------------------------------------------- throughput


def worker_main(args: argparse.Namespace) -> None:
    storage = open_storage(args.worker_url, heartbeat_interval=None)
    study = optuna.load_study(
        study_name=args.study, storage=storage, sampler=optuna.samplers.RandomSampler()
    )
    time.sleep(max(0.0, args.start_at - time.time()))
    before = time.perf_counter()
    counted: list[int] = []
    study.optimize(_trivial, timeout=args.seconds, callbacks=[lambda s, t: counted.append(1)])
    print(json.dumps({"trials": len(counted), "seconds": time.perf_counter() - before}))


def throughput(kind: str, url: str | None, workers: int, seconds: float) -> float:
    name = f"bench-{uuid.uuid4().hex}"
    _CREATED.append((url, name))
    if url is None:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler())
        start = time.perf_counter()
        study.optimize(_trivial, timeout=seconds, n_jobs=workers)
        return len(study.trials) / (time.perf_counter() - start)
    optuna.create_study(study_name=name, storage=open_storage(url, heartbeat_interval=None))
    start_at = time.time() + 2.5  # every worker has imported and connected by then
    cmd = [
        sys.executable,
        __file__,
        "--worker-url",
        url,
        "--study",
        name,
        "--start-at",
        str(start_at),
        "--seconds",
        str(seconds),
    ]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    outs = [
        json.loads(p.communicate(timeout=seconds + 120)[0].strip().splitlines()[-1]) for p in procs
    ]
    return sum(o["trials"] for o in outs) / max(o["seconds"] for o in outs)


# ----------------------------------------------------------------------------- resume


def _prepared(n: int) -> list[optuna.trial.FrozenTrial]:
    dist = {"arch": optuna.distributions.IntDistribution(0, 10**9)}
    return [
        optuna.trial.create_trial(
            params={"arch": i},
            distributions=dist,
            value=i / n,
            user_attrs={
                "spec": SPEC,
                "canonical_hash": f"h{i}",
                "params": 1234,
                "flops": 56789,
                "val_accuracy_curve": [0.5, 0.7],
            },
        )
        for i in range(n)
    ]


class _ListBackend(optuna.storages.journal.BaseJournalBackend):
    """Collects journal log lines in memory, to write them to a file or Redis in one go."""

    def __init__(self) -> None:
        self.logs: list[dict[str, Any]] = []

    def read_logs(self, log_number_from: int) -> Any:
        yield from self.logs[log_number_from:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.logs.extend(logs)


def build_study(kind: str, url: str, name: str, n: int) -> None:
    """Write an ``n``-trial study in the storage's own format, without waiting on the disk."""
    trials = _prepared(n)
    if kind in ("journal", "redis"):
        backend = _ListBackend()
        study = optuna.create_study(
            study_name=name, storage=optuna.storages.JournalStorage(backend)
        )
        study.add_trials(trials)
        lines = [json.dumps(log, separators=(",", ":")) for log in backend.logs]
        if kind == "journal":
            Path(url[len("journal:///") :]).write_text("\n".join(lines) + "\n")
        else:
            import redis

            base, _, prefix = url.partition("?prefix=")
            client = redis.Redis.from_url(base)
            pipe = client.pipeline()
            for i, line in enumerate(lines):
                pipe.set(f"{prefix}:log:{i}", line)
            pipe.set(f"{prefix}:log_number", len(lines) - 1)
            pipe.execute()
        return
    bulk_sql_study(url, name, trials)


def _arch_only(trial: optuna.Trial) -> float:
    return trial.suggest_int("arch", 0, 10**9) / 1e9


def _resume_once(url: str, name: str, sampler: optuna.samplers.BaseSampler, nas: bool) -> float:
    """Seconds to open ``url`` afresh, load the study and finish one more trial."""
    start = time.perf_counter()
    storage = open_storage(url, heartbeat_interval=60 if nas else None)
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    if nas:
        run_study(study, _nas_like, n_trials=len(study.trials) + 1)
    else:
        study.optimize(_arch_only, n_trials=1)
    return time.perf_counter() - start


def resume_seconds(kind: str, url: str, n: int) -> dict[str, float]:
    """Resume an ``n``-trial study: plain Optuna (random / TPE sampler) vs optuna-nas."""
    name = f"bench-resume-{uuid.uuid4().hex}"
    _CREATED.append((url, name))
    build_start = time.perf_counter()
    build_study(kind, url, name, n)
    build = time.perf_counter() - build_start
    plain_random = _resume_once(url, name, optuna.samplers.RandomSampler(seed=0), nas=False)
    plain_tpe = _resume_once(url, name, optuna.samplers.TPESampler(seed=0), nas=False)
    nas = _resume_once(url, name, optuna.samplers.RandomSampler(seed=0), nas=True)
    check = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat_interval=None))
    assert len(check.get_trials(states=(TrialState.COMPLETE,))) == n + 3
    return {
        "build_s": build,
        "plain_random_s": plain_random,
        "plain_tpe_s": plain_tpe,
        "nas_s": nas,
    }


# ----------------------------------------------------------------------------- overhead


def overhead(
    kind: str, url: str | None, n: int, rounds: int, *, heartbeat: int | None
) -> dict[str, float]:
    plain: list[float] = []
    nas: list[float] = []
    for round_ in range(rounds + 1):  # round 0 warms up connections and caches, untimed
        for mode in ("plain", "nas"):
            beat = (
                heartbeat if mode == "nas" else None
            )  # plain Optuna: a plain RDB/journal storage
            storage: Any = (
                optuna.storages.InMemoryStorage()
                if url is None
                else open_storage(url, heartbeat_interval=beat)
            )
            name = f"bench-{uuid.uuid4().hex}"
            _CREATED.append((url, name))
            study = optuna.create_study(
                study_name=name,
                storage=storage,
                sampler=optuna.samplers.RandomSampler(),
            )
            count = n if round_ else min(n, 5)
            start = time.perf_counter()
            if mode == "plain":
                study.optimize(_trivial, n_trials=count)
            else:
                run_study(study, _nas_like, n_trials=count)
            if round_ > 0:
                (plain if mode == "plain" else nas).append((time.perf_counter() - start) / count)
    p, q = statistics.median(plain), statistics.median(nas)
    return {"plain_ms": p * 1e3, "nas_ms": q * 1e3, "ratio": q / p}


# ----------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    import sqlalchemy

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        "python": platform.python_version(),
        "optuna": optuna.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "platform": platform.platform(),
    }


def table(result: dict[str, Any]) -> str:
    tp, rs, ov = result["throughput"], result["resume"], result["overhead"]
    workers = result["settings"]["workers"]
    lines = [
        "| storage | "
        + " | ".join(f"{w} worker{'s' * (w > 1)} (trials/s)" for w in workers)
        + " | resume 10k (s): nas (plain random / TPE) | plain ms/trial"
        + " | nas ms/trial (ratio) | nas + heartbeat ms/trial (ratio) |",
        "|---" * (len(workers) + 5) + "|",
    ]
    for kind in KINDS:
        if kind in result["skipped"]:
            lines.append(f"| {kind} | skipped: {result['skipped'][kind]} |")
            continue
        cells = [f"{tp[kind][str(w)]:.0f}" if str(w) in tp.get(kind, {}) else "-" for w in workers]
        r = rs.get(kind)
        cells.append(
            f"{r['nas_s']:.1f} ({r['plain_random_s']:.1f} / {r['plain_tpe_s']:.1f})" if r else "-"
        )
        o = ov.get(kind)
        if o:
            cells += [
                f"{o['plain_ms']:.1f}",
                f"{o['nas_ms']:.1f} ({o['ratio']:.2f})",
                f"{o['nas_hb_ms']:.1f} ({o['hb_ratio']:.2f})" if "nas_hb_ms" in o else "-",
            ]
        else:
            cells += ["-", "-", "-"]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section(result: dict[str, Any]) -> str:
    """The "Storage" section of ``benchmarks/RESULTS.md``, from ``storage.json``."""
    s = result["settings"]
    m = result["machine"]
    servers = s["servers"]
    head = (
        f"`python benchmarks/storage.py` (about {result['wall_s'] / 60:.0f} minutes) -> "
        "`benchmarks/results/storage.json`."
    )
    versions = (
        f"PostgreSQL {servers.get('postgresql', '?')}, MariaDB {servers.get('mysql', '?')}, "
        f"Redis {servers.get('redis', '?')}; optuna {m['optuna']}, SQLAlchemy {m['sqlalchemy']}"
    )
    load = f"{m['load_average_at_start']:.1f} on {m['cores']} cores"
    extra = {
        k: o["nas_hb_ms"] - o["plain_ms"]
        for k, o in result["overhead"].items()
        if "nas_hb_ms" in o
    }
    low, high = min(extra, key=extra.__getitem__), max(extra, key=extra.__getitem__)
    return f"""## Storage

{head}

How fast each storage runs trials, how long a 10,000-trial study takes to resume, and what
optuna-nas adds per trial on top of plain Optuna. Trivial objective (one `suggest_float`),
`RandomSampler`, servers on this machine ({versions}).

- **trials/s**: workers are processes ({s["throughput_seconds"]} s each, common start);
  in-memory workers are threads of one process (`n_jobs`).
- **resume 10k**: {s["resume_trials"]:,} completed trials with optuna-nas's user attrs; seconds
  from a fresh storage object to one more finished trial: through `run_study` and the
  deduplication lookup (nas), and with plain `study.optimize` using `RandomSampler` (which
  never reads the history) and `TPESampler` (which reads all of it, as the deduplication
  lookup and most samplers do). Journal studies were built by writing their log in one go;
  SQL ones by inserting the rows into Optuna's tables in one
  transaction (`add_trials` takes a transaction per trial, minutes for 10,000).
- **overhead**: ms per trial of plain `study.optimize` vs the optuna-nas path (the attrs that
  `NASObjective` writes + `find_or_claim` + `run_study`), without and with heartbeats (with
  them, `run_study` also claims a slot per trial and a heartbeat thread runs);
  {s["overhead_trials"]} trials x {s["overhead_rounds"]} alternated rounds, medians.

{table(result)}

Load average when it started: {load} (other engineers' jobs ran throughout), so absolute
rates are low and noisy. SQLite and the journal file pay an `fsync` per write on a shared disk;
the servers ran on the same cores as the workers, so more workers mostly share the same CPU.
The overhead is a fixed number of storage round trips per trial: with heartbeats
{extra[low]:.0f} ms ({low}) to {extra[high]:.0f} ms ({high}) more per trial than plain Optuna on
this loaded machine, small next to a trial that trains a network. These columns come from a
trivial objective and {s["overhead_rounds"]} rounds; the dedicated measurement of the
per-trial overhead is the "Per-trial overhead over plain Optuna" section.
"""


def server_versions(urls: dict[str, str | None]) -> dict[str, str]:
    import redis
    import sqlalchemy

    out = {}
    for kind in ("postgresql", "mysql"):
        if urls.get(kind):
            with sqlalchemy.create_engine(str(urls[kind])).connect() as conn:
                text = str(conn.execute(sqlalchemy.text("SELECT version()")).scalar())
                # "PostgreSQL 15.20 (Debian ...) on ...", "10.11.19-MariaDB-0+deb12u1"
                out[kind] = text.split()[1] if kind == "postgresql" else text.split("-")[0]
    if urls.get("redis"):
        out["redis"] = str(
            redis.Redis.from_url(str(urls["redis"]).split("?")[0]).info()["redis_version"]
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny version that runs in seconds")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--worker-url", help=argparse.SUPPRESS)
    parser.add_argument("--study", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_url:
        worker_main(args)
        return
    began = time.perf_counter()
    if args.smoke:
        kinds, workers, seconds, n_resume, n_over, rounds = (
            ("inmemory", "journal"),
            (1, 2),
            0.5,
            50,
            5,
            1,
        )
    else:
        kinds, workers, seconds, n_resume, n_over, rounds = KINDS, (1, 2, 4), 5.0, 10_000, 30, 2
    result: dict[str, Any] = {
        "machine": machine(),
        "skipped": {},
        "throughput": {},
        "resume": {},
        "overhead": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        urls: dict[str, str | None] = {}
        for kind in kinds:
            try:
                urls[kind] = url_for(kind, workdir)
            except ConnectionError as err:
                result["skipped"][kind] = str(err).split(". Check")[0]
        result["settings"] = {
            "workers": list(workers),
            "throughput_seconds": seconds,
            "resume_trials": n_resume,
            "overhead_trials": n_over,
            "overhead_rounds": rounds,
            "servers": server_versions(urls),
            "smoke": args.smoke,
        }
        for kind in urls:
            result["throughput"][kind] = {}
            for w in workers:
                if args.smoke and kind != "inmemory" and w > 1:
                    continue
                rate = throughput(kind, url_for(kind, workdir), w, seconds)
                result["throughput"][kind][str(w)] = rate
                print(f"throughput {kind} {w} workers: {rate:.1f} trials/s", flush=True)
        for kind in urls:
            if kind == "inmemory":
                continue  # nothing to resume
            url = url_for(kind, workdir)
            assert url is not None
            result["resume"][kind] = resume_seconds(kind, url, n_resume)
            print(f"resume {kind}: {result['resume'][kind]}", flush=True)
        for kind in urls:
            result["overhead"][kind] = overhead_all(kind, url_for(kind, workdir), n_over, rounds)
            print(f"overhead {kind}: {result['overhead'][kind]}", flush=True)
    result["wall_s"] = time.perf_counter() - began
    cleanup()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "storage.json").write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    if not args.smoke:
        from _results import regenerate

        regenerate(args.out)


def cleanup() -> None:
    """Delete the studies and Redis keys this run made on the shared servers."""
    import redis

    for url, name in _CREATED:
        if url is None or url.startswith(("sqlite", "journal")):
            continue  # in the temporary directory
        if url.startswith("redis"):
            base, _, prefix = url.partition("?prefix=")
            client = redis.Redis.from_url(base)
            for key in client.scan_iter(match=f"{prefix}:*", count=10_000):
                client.delete(key)
        elif name is not None:
            _bulk_delete(url, name)


def _bulk_delete(url: str, name: str) -> None:
    """Delete a study's rows table by table (``delete_study`` takes minutes for 10k trials)."""
    from optuna.storages._rdb import models
    import sqlalchemy as sa

    storage = optuna.storages.RDBStorage(url)
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return
    trials = models.TrialModel.__table__
    ids = sa.select(trials.c.trial_id).where(trials.c.study_id == study_id)
    per_trial = [
        models.TrialParamModel,
        models.TrialValueModel,
        models.TrialUserAttributeModel,
        models.TrialSystemAttributeModel,
        models.TrialIntermediateValueModel,
        models.TrialHeartbeatModel,
    ]
    per_study = [
        models.StudyDirectionModel,
        models.StudyUserAttributeModel,
        models.StudySystemAttributeModel,
    ]
    with storage.engine.begin() as conn:
        claims = sa.Table(CLAIMS_TABLE, sa.MetaData(), autoload_with=conn)
        conn.execute(sa.delete(claims).where(claims.c.study_id == study_id))
        for model in per_trial:
            table = model.__table__
            conn.execute(sa.delete(table).where(table.c.trial_id.in_(ids)))
        conn.execute(sa.delete(trials).where(trials.c.study_id == study_id))
        for model in per_study:
            table = model.__table__
            conn.execute(sa.delete(table).where(table.c.study_id == study_id))
        studies = models.StudyModel.__table__
        conn.execute(sa.delete(studies).where(studies.c.study_id == study_id))


def overhead_all(kind: str, url: str | None, n: int, rounds: int) -> dict[str, float]:
    """Plain Optuna vs optuna-nas without heartbeats, and with heartbeats + slots."""
    out = overhead(kind, url, n, rounds, heartbeat=None)
    if url is not None:
        hb = overhead(kind, url, n, rounds, heartbeat=60)
        out["nas_hb_ms"], out["hb_ratio"] = hb["nas_ms"], hb["nas_ms"] / out["plain_ms"]
    return out


if __name__ == "__main__":
    main()
