"""grpc:// storage URLs through ``optuna-nas storage-server`` (Optuna's gRPC proxy in front of an
RDB), started in-process on a free port of 127.0.0.1.

Workers are the torch-free ``storage_worker.py`` processes of the fault tests (dedup, slots,
heartbeats every second with a 2 s grace period), so a proxied study is checked by the same
account of evaluations as a direct one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
import os
from pathlib import Path
import signal
import socket
import subprocess
import sys
import threading
import time

import optuna
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState
import pytest

from optuna_nas.samplers import SAMPLER_NAMES
from optuna_nas.samplers import create_sampler
from optuna_nas.storage import DUPLICATE_OF
from optuna_nas.storage import GrpcHeartbeatStorage
from optuna_nas.storage import JobOwner
from optuna_nas.storage import StorageServer
from optuna_nas.storage import claim_board
from optuna_nas.storage import open_storage
from optuna_nas.storage import run_job
from optuna_nas.storage import run_study
from optuna_nas.storage import start_storage_server
from tests.samplers._toy import matches
from tests.storage.backends import cleanup
from tests.storage.backends import make_url
from tests.storage.backends import new_name
from tests.storage.test_storage_dedup import _race
from tests.storage.test_storage_faults import _check_no_double_training
from tests.storage.test_storage_faults import _command
from tests.storage.test_storage_faults import _env
from tests.storage.test_storage_faults import _evaluations
from tests.storage.test_storage_faults import _load
from tests.storage.test_storage_faults import _many_workers


@pytest.fixture(params=["sqlite", "postgresql"])
def rdb_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database behind the proxy (PostgreSQL is skipped, with the reason, if down)."""
    return make_url(request.param, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return make_url("sqlite", tmp_path)


@pytest.fixture
def proxy(sqlite_url: str) -> Iterator[StorageServer]:
    with start_storage_server(sqlite_url, port=0) as server:
        yield server


def _closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_url_opens_a_heartbeat_storage_with_the_claim_board(
    proxy: StorageServer, sqlite_url: str
) -> None:
    assert proxy.url == f"grpc://127.0.0.1:{proxy.port}"
    beating = open_storage(proxy.url, heartbeat_interval=5, grace_period=7)
    assert isinstance(beating, GrpcHeartbeatStorage)
    assert is_heartbeat_enabled(beating) and beating.get_heartbeat_interval() == 5
    assert abs(beating._now() - time.time()) < 5  # the server's clock (here: ours)
    storage = open_storage(proxy.url, heartbeat_interval=None)
    assert not is_heartbeat_enabled(storage)

    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    board = claim_board(storage)
    assert board.claim(study._study_id, "k", trial._trial_id) == trial._trial_id
    other = study.ask()
    assert board.claim(study._study_id, "k", other._trial_id) == trial._trial_id
    # The server's board is the RDB's own: a worker on the database URL sees the same claim.
    direct = open_storage(sqlite_url, heartbeat_interval=None)
    assert claim_board(direct).claim(study._study_id, "k", 999) == trial._trial_id
    assert not board.take_over(study._study_id, "k", other._trial_id, other._trial_id)
    assert board.take_over(study._study_id, "k", trial._trial_id, other._trial_id)
    assert claim_board(direct).claim(study._study_id, "k", 999) == other._trial_id


def test_a_job_runs_once_through_the_proxy(proxy: StorageServer) -> None:
    storage = open_storage(proxy.url, heartbeat_interval=None)
    study_id = optuna.create_study(study_name="jobs", storage=storage)._study_id
    ran: list[str] = []
    results: list[str] = []
    errors: list[BaseException] = []

    def result() -> str | None:
        return storage.get_study_system_attrs(study_id).get("job-result")

    def record(value: str) -> str:
        storage.set_study_system_attr(study_id, "job-result", value)
        return value

    def job(worker: str) -> None:
        def work(lease: object) -> str:
            ran.append(worker)
            time.sleep(0.3)
            return worker

        try:
            kwargs = {"done": result, "work": work, "record": record, "poll_s": 0.05}
            results.append(run_job(storage, study_id, "train", **kwargs))  # type: ignore[arg-type]
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=job, args=(w,)) for w in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert len(ran) == 1 and results == [ran[0], ran[0]]
    assert claim_board(storage).job(study_id, "train") is None  # released
    owner = JobOwner("t", "h", "ns", 1, 1.0, 0, 0.0)
    assert claim_board(storage).claim_job(study_id, "x", owner) == owner
    assert claim_board(storage).job(study_id, "x") == owner


@pytest.mark.parametrize("fail_first_owner", [False, True], ids=["owner-completes", "owner-fails"])
def test_simultaneous_claims_train_once(proxy: StorageServer, fail_first_owner: bool) -> None:
    results = _race(proxy.url, "race", fail_first_owner=fail_first_owner)
    assert sum(r["role"] == "owner" for r in results) == 1
    assert sum(r["role"] == "copy" for r in results) == len(results) - 1 - fail_first_owner


_SAMPLER_OPTIONS = {
    "evolution": {"population_size": 4, "sample_size": 2},
    "progressive": {"trials_per_level": 2},
}


@pytest.mark.parametrize("name", [n for n in SAMPLER_NAMES if n != "darts"])
def test_every_sampler_proposes_through_the_proxy_what_it_does_on_the_rdb(
    name: str, proxy: StorageServer, tmp_path: Path
) -> None:
    """Samplers keep their state in the study (system attrs, history): with one seed, the same
    trials come out of a study behind the proxy as out of one opened directly. (``darts``
    trains a supernet; its one-worker search runs on the claim board tested above.)"""

    def trials(storage: optuna.storages.BaseStorage) -> list[dict[str, object]]:
        sampler = create_sampler(name, seed=3, **_SAMPLER_OPTIONS.get(name, {}))
        study = optuna.create_study(storage=storage, direction="maximize", sampler=sampler)
        study.optimize(matches, n_trials=6)
        return [t.params for t in study.trials]

    direct = open_storage(f"sqlite:///{tmp_path / 'direct.db'}", heartbeat_interval=None)
    assert trials(open_storage(proxy.url, heartbeat_interval=None)) == trials(direct)


def test_nas_objective_workers_through_the_proxy(
    proxy: StorageServer, sqlite_url: str, tmp_path: Path
) -> None:
    """The whole per-trial pipeline (spec attrs, dedup, diagrams in the artifact store, the
    report) through the proxy, from two threads with a connection each."""
    from optuna.artifacts import FileSystemArtifactStore

    from optuna_nas.data import load_digits
    from optuna_nas.evaluation import Evaluation
    from optuna_nas.evaluation import Evaluator
    from optuna_nas.objective import NASObjective
    from optuna_nas.report import report
    from optuna_nas.spaces import ChainSpace

    data = load_digits()

    class Constant(Evaluator):
        def __init__(self) -> None:
            self.data = data

        def evaluate(self, spec: object, *, report: object, seed: int) -> Evaluation:
            return Evaluation(values={"val_accuracy": 0.5})

    (tmp_path / "artifacts").mkdir()
    store = FileSystemArtifactStore(str(tmp_path / "artifacts"))
    space = ChainSpace(
        input_shape=data.input_shape,
        num_outputs=10,
        min_depth=1,
        max_depth=2,
        ops=("conv_3x3", "identity"),
        widths=(8,),
        skips=("none",),
        activations=("relu",),
        stride_layers=(2,),
    )  # a handful of architectures: 10 trials must repeat some
    objective = NASObjective(space, Constant(), objectives=("val_accuracy",), artifact_store=store)
    optuna.create_study(storage=open_storage(proxy.url), study_name="nas", direction="maximize")
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            storage = open_storage(proxy.url, heartbeat_interval=2)
            sampler = optuna.samplers.RandomSampler(seed=seed)
            study = optuna.load_study(study_name="nas", storage=storage, sampler=sampler)
            run_study(study, objective, n_trials=10, poll_interval=0.1)
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    study = optuna.load_study(study_name="nas", storage=open_storage(proxy.url))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 10
    hashes = [t.user_attrs["canonical_hash"] for t in complete if DUPLICATE_OF not in t.user_attrs]
    assert len(hashes) == len(set(hashes)) < 10  # each architecture evaluated once
    assert all("spec" in t.user_attrs for t in complete)
    assert len(list((tmp_path / "artifacts").iterdir())) >= len(hashes)  # diagrams uploaded
    direct = optuna.load_study(study_name="nas", storage=open_storage(sqlite_url))
    assert report(study).to_text() == report(direct).to_text()


def test_four_workers_share_one_study(rdb_url: str, tmp_path: Path) -> None:
    names: list[str] = []
    try:
        with start_storage_server(rdb_url, port=0) as server:
            _many_workers(server.url, new_name(names), tmp_path, workers=4, trials=12)
    finally:
        cleanup(rdb_url, names)


def _server_pids(url: str, connections: int) -> Counter[int]:
    """The pid of the server process that answers each of ``connections`` new connections."""
    import grpc

    from optuna_nas.storage._grpc import SERVICE
    from optuna_nas.storage._grpc import dumps
    from optuna_nas.storage._grpc import loads

    pids: Counter[int] = Counter()
    for _ in range(connections):
        # A channel of its own (no shared subchannel): a new TCP connection each time.
        options = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(url.removeprefix("grpc://"), options=options) as channel:
            hello = channel.unary_unary(
                f"/{SERVICE}/Hello", request_serializer=dumps, response_deserializer=loads
            )
            pids[hello({}, timeout=10)["pid"]] += 1
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreads on Linux")
def test_several_server_processes_share_the_port_and_one_study(
    rdb_url: str, tmp_path: Path
) -> None:
    names: list[str] = []
    try:
        with start_storage_server(rdb_url, port=0, processes=3) as server:
            children = list(server._children)
            assert len(children) == 2 and all(c.poll() is None for c in children)
            pids = _server_pids(server.url, 24)
            assert set(pids) <= {os.getpid(), *(c.pid for c in children)}
            assert len(pids) >= 2, pids  # the kernel spreads connections (1 in 10**11 fails)
            _many_workers(server.url, new_name(names), tmp_path, workers=4, trials=12)
        assert all(c.poll() is not None for c in children)  # stopped with the server
    finally:
        cleanup(rdb_url, names)


def test_extra_server_processes_stop_on_request_while_a_copy_holds_their_pipe(
    sqlite_url: str,
) -> None:
    server = start_storage_server(sqlite_url, port=0, processes=2)
    # A fork of the parent (a DataLoader worker, say) would hold the pipe's write end open.
    copies = [os.dup(c.stdin.fileno()) for c in server._children]  # type: ignore[union-attr]
    try:
        started = time.monotonic()
        server.stop(grace=0)
        assert time.monotonic() - started < 8  # not the 10 s wait for a kill
        assert all(c.returncode == 0 for c in server._children)
    finally:
        for fd in copies:
            os.close(fd)


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name; None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _children_of(pid: int) -> list[int]:
    stats = {int(e.name): _stat(int(e.name)) for e in Path("/proc").iterdir() if e.name.isdigit()}
    return [child for child, stat in stats.items() if stat and int(stat[1]) == pid]


def _gone(pid: int) -> bool:
    stat = _stat(pid)
    return stat is None or stat[0] == "Z"  # a zombie of the killed parent serves no one


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
def test_server_processes_stop_when_their_parent_dies(sqlite_url: str) -> None:
    port = _closed_port()
    cmd = [sys.executable, "-m", "optuna_nas.cli", "storage-server", "--storage", sqlite_url]
    parent = subprocess.Popen(
        [*cmd, "--port", str(port), "--processes", "2"],
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "serving" in parent.stdout.readline()  # type: ignore[union-attr]
        children = _children_of(parent.pid)
        assert len(children) == 1
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 20
        while not _gone(children[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(children[0])
        with socket.socket() as s:  # nobody listens any more
            assert s.connect_ex(("127.0.0.1", port)) != 0
    finally:
        parent.kill()
        parent.wait(timeout=10)
        parent.stdout.close()  # type: ignore[union-attr]


def test_kill_9_mid_trial_then_rerun_resumes(proxy: StorageServer, tmp_path: Path) -> None:
    log = tmp_path / "evaluations.log"
    cmd = _command(proxy.url, "resume", log, trials=4, choices=10_000, sleep=0.3)
    worker = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL)
    _wait_for_evaluations(log, 3)
    time.sleep(0.2)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    before = {t.number: t for t in _load(proxy.url, "resume")}
    killed = [t for t in before.values() if t.state is TrialState.RUNNING]
    assert len(killed) == 1, [t.state for t in before.values()]

    rerun = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=90)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = {t.number: t for t in _load(proxy.url, "resume")}
    states = Counter(t.state for t in after.values())
    surplus = [t for t in after.values() if t.system_attrs.get("optuna_nas:surplus")]
    assert states == {TrialState.COMPLETE: 4, TrialState.FAIL: 1 + len(surplus)}, states
    for number, t in before.items():
        if t.state is TrialState.COMPLETE:
            assert after[number].value == t.value
    retry = [t for t in after.values() if t.system_attrs.get("failed_trial") == killed[0].number]
    assert len(retry) == 1 and retry[0].params == killed[0].params
    _check_no_double_training(list(after.values()), log)


def test_proxy_killed_mid_study_then_restarted_loses_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "evaluations.log"
    server = start_storage_server(sqlite_url, port=0)
    url, port = server.url, server.port
    cmd = _command(url, "outage", log, trials=10, choices=10_000, sleep=0.3)
    workers = [
        subprocess.Popen(
            cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    try:
        _wait_for_evaluations(log, 4)
        server.stop()  # the proxy dies; the database behind it is intact
        for w in workers:
            _, err = w.communicate(timeout=60)
            assert w.returncode != 0
            # Optuna's _run_trial can mask it with an UnboundLocalError when the tell fails too.
            message = f"ConnectionError: the gRPC storage proxy {url} does not answer"
            assert message in err, err[-3000:]
            assert f"optuna-nas storage-server --storage <RDB URL> --port {port}" in err
    finally:
        for w in workers:
            w.kill()
            w.wait(timeout=10)
    before = {t.number: t for t in _load(sqlite_url, "outage")}  # read the database directly
    completed = {n: t.value for n, t in before.items() if t.state is TrialState.COMPLETE}
    assert completed and len(completed) < 10
    cut_off = [t.number for t in before.values() if t.state is TrialState.RUNNING]

    with start_storage_server(sqlite_url, port=port):  # the same URL again
        reruns = [
            subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        for r in reruns:
            _, err = r.communicate(timeout=120)
            assert r.returncode == 0, err[-3000:]
    after = {t.number: t for t in _load(sqlite_url, "outage")}
    states = Counter(t.state for t in after.values())
    assert states[TrialState.COMPLETE] == 10, states
    for number, value in completed.items():  # nothing completed before the outage is lost
        assert after[number].state is TrialState.COMPLETE and after[number].value == value
    for number in cut_off:  # each trial cut off was failed by its heartbeat and retried
        assert after[number].state is TrialState.FAIL
        retries = [t for t in after.values() if t.system_attrs.get("failed_trial") == number]
        assert retries and retries[0].params == after[number].params
    surplus = [t for t in after.values() if t.system_attrs.get("optuna_nas:surplus")]
    assert states[TrialState.FAIL] == len(cut_off) + len(surplus)
    _check_no_double_training(list(after.values()), log)


def _wait_for_evaluations(log: Path, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(_evaluations(log)) < n:
        assert time.monotonic() < deadline, f"fewer than {n} evaluations in {timeout} s"
        time.sleep(0.05)


def test_a_proxy_that_is_down_names_the_url_and_the_fix() -> None:
    url = f"grpc://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    with pytest.raises(ConnectionError) as info:
        open_storage(url)
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert f"the gRPC storage proxy {url} does not answer" in message
    assert "optuna-nas storage-server --storage <RDB URL>" in message


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("grpc://127.0.0.1", r"'grpc://127\.0\.0\.1' names no port; write e\.g\. grpc://"),
        ("grpc://127.0.0.1:99999", r"`1 <= port <= 65535`, but got '99999'"),
        ("grpc://127.0.0.1:http", r"`1 <= port <= 65535`, but got 'http'"),
        ("grpc://127.0.0.1:13000/db", r"a gRPC storage URL is grpc://host:port, but got"),
    ],
)
def test_malformed_urls_are_refused(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        open_storage(url)


def test_a_port_that_is_not_a_grpc_server_is_named() -> None:
    """E.g. the database's own port: something answers, but not HTTP/2."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"grpc://127.0.0.1:{listener.getsockname()[1]}"

        def answer() -> None:
            listener.settimeout(10)
            for _ in range(3):  # gRPC may try again once or twice within the call
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        with pytest.raises(ConnectionError, match=f"the gRPC storage proxy {url} does not answer"):
            open_storage(url)


def test_a_plain_optuna_proxy_is_named() -> None:
    from optuna.storages._grpc.server import make_server

    port = _closed_port()
    server = make_server(optuna.storages.InMemoryStorage(), "127.0.0.1", port)
    server.start()
    try:
        with pytest.raises(ConnectionError, match="is not an optuna-nas storage server"):
            open_storage(f"grpc://127.0.0.1:{port}")
    finally:
        server.stop(None)


def test_without_grpcio_the_fix_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "grpc", None)  # `import grpc` raises ImportError
    with pytest.raises(
        ValueError, match=r"'grpc://127\.0\.0\.1:1' needs grpcio .*optuna-nas\[grpc\]"
    ):
        open_storage("grpc://127.0.0.1:1")
    with pytest.raises(ValueError, match=r"storage-server needs grpcio .*optuna-nas\[grpc\]"):
        start_storage_server("sqlite:///x.db", port=0)


def test_the_server_refuses_what_it_cannot_serve(proxy: StorageServer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"serves an RDB .* but got 'journal:///x\.log'"):
        start_storage_server("journal:///x.log", port=0)
    with pytest.raises(ValueError, match=r"but got 'grpc://127\.0\.0\.1:1'"):
        start_storage_server("grpc://127.0.0.1:1", port=0)
    url = f"sqlite:///{tmp_path / 'other.db'}"
    for processes in (1, 2):  # with 2, the port is shared only among its own processes
        with pytest.raises(
            OSError, match=f"cannot listen on 127.0.0.1:{proxy.port}: the port is in"
        ):
            start_storage_server(url, port=proxy.port, processes=processes)
    assert not (tmp_path / "other.db").exists()  # refused before the database was touched
    with pytest.raises(ValueError, match="`processes >= 1` must hold, but got processes=0"):
        start_storage_server(url, port=0, processes=0)
