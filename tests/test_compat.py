"""Every private Optuna symbol optuna_nas uses, checked against the installed Optuna: each
helper of :mod:`optuna_nas._compat` exists and behaves as the code relies on (on real SQLite
files, journal files and a real gRPC server where it matters). CI runs this file on the oldest
and the newest supported Optuna. The boundary itself (no private Optuna name outside
``_compat.py``) is checked by ``tests/test_compat_boundary.py``."""

from __future__ import annotations

from collections.abc import Callable
import io
from pathlib import Path
import pickle
import re
import threading
import time
from typing import Any
import warnings

import numpy as np
import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts import upload_artifact
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.storages import InMemoryStorage
from optuna.storages import RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal import JournalRedisBackend
from optuna.storages.journal import JournalStorage
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
from packaging.specifiers import SpecifierSet
from packaging.version import Version
import pytest

from optuna_nas import _compat
from optuna_nas._compat import set_trial_user_attrs
from optuna_nas._compat import started_system_attrs
from optuna_nas.storage import open_storage
from tests.storage.backends import ALL_BACKENDS
from tests.storage.backends import cleanup
from tests.storage.backends import make_url
from tests.storage.backends import new_name

ROOT = Path(__file__).resolve().parent.parent
ATTRS = {"spec": '{"nodes": []}', "canonical_hash": "ab" * 32, "params": 1234, "flops": 5678}


@pytest.mark.parametrize("kind", [*ALL_BACKENDS, "sqlite-bare", "in-memory"])
def test_set_trial_user_attrs_equals_one_set_user_attr_per_key(kind: str, tmp_path: Path) -> None:
    # sqlite, postgresql: one multi-row upsert; mysql: Optuna's upsert per key, one commit;
    # journal, redis, in-memory: set_user_attr per key. "sqlite" goes through Optuna's cache.
    url = None if kind == "in-memory" else make_url(kind.removesuffix("-bare"), tmp_path)
    storage: optuna.storages.BaseStorage | None = None  # Optuna caches an RDB opened by URL
    if kind == "sqlite-bare":
        storage = RDBStorage(str(url))
    elif kind in ("journal", "redis"):
        storage = open_storage(str(url), heartbeat_interval=None)
    study_names: list[str] = []
    name = new_name(study_names)
    try:
        study = optuna.create_study(storage=storage or url, study_name=name)
        batched, single = study.ask(), study.ask()
        single.set_user_attr("params", 1)  # overwritten by the batch, as set_user_attr would
        batched.set_user_attr("params", 1)
        set_trial_user_attrs(batched, ATTRS)
        for key, value in ATTRS.items():
            single.set_user_attr(key, value)
        assert batched.user_attrs == single.user_attrs == ATTRS  # the trial sees them at once
        study.tell(batched, 1.0)
        study.tell(single, 2.0)
        if url is not None:  # a fresh storage object: what another process reads
            fresh = open_storage(url, heartbeat_interval=None)
            study = optuna.load_study(study_name=name, storage=fresh)
        first, second = study.trials
        assert first.user_attrs == second.user_attrs == ATTRS
    finally:
        if url is not None:
            cleanup(url, study_names)


def test_set_trial_user_attrs_on_a_finished_trial_writes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'done.db'}"
    study = optuna.create_study(storage=url)
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        set_trial_user_attrs(trial, ATTRS)
    (stored,) = optuna.load_study(study_name=study.study_name, storage=url).trials
    assert stored.state is TrialState.COMPLETE
    assert stored.user_attrs == {}


def test_started_system_attrs_are_those_of_the_retry_template(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'r.db'}")
    study.add_trial(
        optuna.trial.create_trial(state=TrialState.WAITING, system_attrs={"failed_trial": 7})
    )
    retry, fresh = study.ask(), study.ask()
    assert started_system_attrs(retry)["failed_trial"] == 7
    assert "failed_trial" not in started_system_attrs(fresh)


def test_set_trial_user_attrs_on_an_rdb_writes_all_or_none(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'atomic.db'}"
    study = optuna.create_study(storage=url)
    trial = study.ask()
    with pytest.raises(TypeError, match="JSON serializable"):
        set_trial_user_attrs(trial, {**ATTRS, "unstorable": object()})
    assert trial.user_attrs == {}
    study.tell(trial, 1.0)
    (stored,) = optuna.load_study(study_name=study.study_name, storage=url).trials
    assert stored.user_attrs == {}  # the keys before the bad one were rolled back too


def test_the_installed_optuna_is_supported_and_ci_tests_the_oldest() -> None:
    (spec,) = re.findall(r'"optuna(>=[^"]+)"', (ROOT / "pyproject.toml").read_text())
    supported = SpecifierSet(spec)
    assert supported == SpecifierSet(">=5.0,<6")
    assert Version(optuna.__version__) in supported
    ci = (ROOT / ".ci" / "run").read_text()
    (oldest,) = re.findall(r"^OLDEST_OPTUNA=(\S+)$", ci, re.MULTILINE)
    assert Version(oldest) == Version(spec.split(",")[0].removeprefix(">="))
    assert f"'optuna{spec}'" in ci  # the range the first run's version is checked against


# --- studies and trials ---------------------------------------------------------------------


def test_study_storage_and_id_are_what_the_study_reads_and_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=url, study_name="s")
    storage, sid = _compat.study_storage(study), _compat.study_id(study)
    assert storage.get_study_id_from_name("s") == sid
    storage.set_study_system_attr(sid, "k", [1, 2])
    assert RDBStorage(url).get_study_system_attrs(sid)["k"] == [1, 2]  # another process's view
    memory = InMemoryStorage()
    assert _compat.study_storage(optuna.create_study(storage=memory)) is memory


def test_trial_id_of_a_trial_and_a_frozen_trial_is_the_storage_id(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 't.db'}")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    trial = study.ask()
    storage, sid = _compat.study_storage(study), _compat.study_id(study)
    for t in [*study.trials, trial]:
        tid = _compat.trial_id(t)
        assert tid == storage.get_trial_id_from_study_id_trial_number(sid, t.number)
        assert storage.get_trial(tid).number == t.number
    assert len({_compat.trial_id(t) for t in study.trials}) == 3


def test_study_trials_cached_are_the_trials_read_once_until_tell(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'c.db'}")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    seen: list[list[FrozenTrial]] = []

    def objective(trial: optuna.Trial) -> float:
        seen.append(_compat.study_trials_cached(study, states=(TrialState.COMPLETE,)))
        seen.append(_compat.study_trials_cached(study, states=(TrialState.COMPLETE,)))
        return trial.suggest_float("x", 0, 1)

    study.optimize(objective, n_trials=1)
    first, second = seen
    assert [t.number for t in first] == [0, 1, 2]  # the filter, in trial-number order
    assert all(a is b for a, b in zip(first, second, strict=True))  # no copies, no re-read
    everything = _compat.study_trials_cached(study)
    assert [t.number for t in everything] == [0, 1, 2, 3]  # tell dropped the old list


# --- distributions and multi-objective maths ----------------------------------------------


def test_distribution_contains_takes_the_internal_representation() -> None:
    floats = FloatDistribution(0.0, 1.0, step=0.5)
    assert _compat.distribution_contains(floats, 0.5)
    assert not _compat.distribution_contains(floats, 0.25)
    assert not _compat.distribution_contains(floats, 1.5)
    ints = IntDistribution(1, 5, step=2)
    assert _compat.distribution_contains(ints, 3.0)
    assert not _compat.distribution_contains(ints, 4.0)
    choices = CategoricalDistribution(["a", "b"])  # internal: the index
    assert _compat.distribution_contains(choices, 1.0)
    assert not _compat.distribution_contains(choices, 2.0)


def test_compute_hypervolume_is_the_dominated_volume() -> None:
    front = np.array([[1.0, 2.0], [2.0, 1.0]])
    ref = np.array([3.0, 3.0])
    # Two 2x1 boxes overlapping in a 1x1 square.
    assert _compat.compute_hypervolume(front, ref) == pytest.approx(3.0)
    assert _compat.compute_hypervolume(front, ref, assume_pareto=True) == pytest.approx(3.0)
    dominated = np.vstack([front, [[2.5, 2.5]]])
    assert _compat.compute_hypervolume(dominated, ref) == pytest.approx(3.0)
    cube = _compat.compute_hypervolume(np.array([[0.0, 0.0, 0.0]]), np.array([1.0, 2.0, 3.0]))
    assert cube == pytest.approx(6.0)


def test_fast_non_domination_rank_ranks_successive_fronts() -> None:
    loss = np.array([[1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [3.0, 3.0], [1.0, 2.0]])
    ranks = _compat.fast_non_domination_rank(loss)
    assert ranks.tolist() == [0, 0, 1, 2, 0]  # equal points share a rank


# --- storages -------------------------------------------------------------------------------


def test_cached_storage_wraps_an_rdb_as_optuna_does_for_a_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    rdb = RDBStorage(url)
    assert _compat.uncached_storage(rdb) is rdb
    by_url = optuna.storages.get_storage(url)
    assert type(by_url) is type(_compat.cached_storage(rdb))  # Optuna's own cache class
    assert isinstance(_compat.uncached_storage(by_url), RDBStorage)
    cached = _compat.cached_storage(rdb)
    assert _compat.uncached_storage(cached) is rdb
    study = optuna.create_study(storage=cached, study_name="c")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="c", storage=RDBStorage(url)).trials) == 2
    memory = InMemoryStorage()
    assert _compat.uncached_storage(memory) is memory


class _SlowRDB(RDBStorage):
    """An RDB whose reads of new and unfinished trials are counted and take ``delay`` seconds
    after the query, and whose param writes wait for ``param_gate``."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reads = 0
        self.single_reads = 0
        self.delay = 0.0
        self.fail_next = False
        self.param_gate = threading.Event()
        self.param_gate.set()
        self.param_entered = threading.Event()

    def _get_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        self.reads += 1
        if self.fail_next:
            self.fail_next = False
            raise OSError("the database went away")
        trials = super()._get_trials(*args, **kwargs)
        time.sleep(self.delay)  # the query has run: writes after this moment are not in it
        return trials

    def get_trial(self, trial_id: int) -> FrozenTrial:
        self.single_reads += 1
        return super().get_trial(trial_id)

    def _set_trial_param(self, *args: Any, **kwargs: Any) -> None:
        self.param_entered.set()
        assert self.param_gate.wait(10)
        super()._set_trial_param(*args, **kwargs)


def _summary(trials: list[FrozenTrial]) -> list[tuple[Any, ...]]:
    return [(t.number, t.state, t.values, t.params, t.user_attrs) for t in trials]


def test_shared_read_cache_returns_what_optuna_cache_returns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    shared = _compat.SharedReadCache(RDBStorage(url))
    plain = _compat.cached_storage(RDBStorage(url))
    sampler = optuna.samplers.RandomSampler(seed=0)
    study = optuna.create_study(storage=shared, study_name="s", sampler=sampler)
    other = optuna.load_study(study_name="s", storage=RDBStorage(url))  # another worker, direct
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("n", 0, 3), n_trials=3)
    other.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    running = study.ask()
    running.suggest_categorical("c", ["a", "b"])
    running.set_user_attr("k", 1)
    sid = shared.get_study_id_from_name("s")
    assert _summary(shared.get_all_trials(sid)) == _summary(plain.get_all_trials(sid))
    assert len(shared.get_all_trials(sid)) == 6
    study.tell(running, 0.5)
    other.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert _summary(shared.get_all_trials(sid)) == _summary(plain.get_all_trials(sid))
    assert shared.get_trial(running._trial_id).params in ({"c": "a"}, {"c": "b"})
    restored = pickle.loads(pickle.dumps(shared))
    assert _summary(restored.get_all_trials(sid)) == _summary(plain.get_all_trials(sid))


def test_shared_read_cache_shares_concurrent_reads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    rdb = _SlowRDB(url)
    shared = _compat.SharedReadCache(rdb)
    study = optuna.create_study(storage=shared, study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    sid = study._study_id
    rdb.reads, rdb.delay = 0, 0.2
    barrier = threading.Barrier(8)
    seen: list[int] = []

    def read() -> None:
        barrier.wait()
        seen.append(len(shared.get_all_trials(sid)))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert seen == [2] * 8
    # The first read, then one that every call arriving during it shares (a third at most,
    # for a call the scheduler delays past the second's start); Optuna's cache reads 8 times.
    assert 2 <= rdb.reads <= 3


def test_shared_read_cache_answers_running_trials_from_shared_reads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    rdb = _SlowRDB(url)
    shared = _compat.SharedReadCache(rdb)
    study = optuna.create_study(storage=shared, study_name="s")
    running = [study.ask() for _ in range(8)]
    direct = RDBStorage(url)  # another process writes to a running trial
    direct.set_trial_user_attr(running[0]._trial_id, "seen", 1)
    assert shared.get_trial(running[0]._trial_id).user_attrs == {"seen": 1}
    rdb.reads, rdb.single_reads, rdb.delay = 0, 0, 0.2
    barrier = threading.Barrier(8)
    got: dict[int, FrozenTrial] = {}

    def read(trial: optuna.Trial) -> None:
        barrier.wait()
        got[trial.number] = shared.get_trial(trial._trial_id)

    threads = [threading.Thread(target=read, args=(t,)) for t in running]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(got) == list(range(8))
    assert all(got[n].number == n and got[n].state == TrialState.RUNNING for n in got)
    assert rdb.single_reads == 0 and 2 <= rdb.reads <= 3  # Optuna's cache: 8 single reads
    study.tell(running[1], 1.0)
    assert shared.get_trial(running[1]._trial_id).state == TrialState.COMPLETE
    unknown = direct.create_new_trial(study._study_id)  # not in this cache yet
    assert shared.get_trial(unknown).state == TrialState.RUNNING and rdb.single_reads == 1


def test_shared_read_cache_call_sees_writes_finished_before_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    rdb = _SlowRDB(url)
    shared = _compat.SharedReadCache(rdb)
    optuna.create_study(storage=shared, study_name="s")
    sid = shared.get_study_id_from_name("s")
    direct = optuna.load_study(study_name="s", storage=RDBStorage(url))
    rdb.delay = 0.5
    early = threading.Thread(target=shared.get_all_trials, args=(sid,))
    early.start()
    time.sleep(0.2)  # the early call's read has queried and now sleeps
    direct.add_trial(optuna.trial.create_trial(value=1.0))  # finished before the next call
    assert len(shared.get_all_trials(sid)) == 1  # not the in-flight read's empty answer
    early.join(10)
    assert rdb.reads == 2


def test_shared_read_cache_failed_read_raises_and_the_next_call_reads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    rdb = _SlowRDB(url)
    shared = _compat.SharedReadCache(rdb)
    optuna.create_study(storage=shared, study_name="s").add_trial(
        optuna.trial.create_trial(value=1.0)
    )
    sid = shared.get_study_id_from_name("s")
    rdb.fail_next = True
    with pytest.raises(OSError, match="went away"):
        shared.get_all_trials(sid)
    assert len(shared.get_all_trials(sid)) == 1


def test_shared_read_cache_param_write_does_not_block_reads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    rdb = _SlowRDB(url)
    shared = _compat.SharedReadCache(rdb)
    study = optuna.create_study(storage=shared, study_name="s")
    trial = study.ask()
    rdb.param_gate.clear()
    writer = threading.Thread(target=trial.suggest_float, args=("x", 0.0, 1.0))
    writer.start()
    assert rdb.param_entered.wait(10)
    reader = threading.Thread(target=shared.get_all_trials, args=(study._study_id,))
    reader.start()
    reader.join(5)
    assert not reader.is_alive()  # Optuna's cache holds its lock over the param write
    rdb.param_gate.set()
    writer.join(10)
    assert "x" in shared.get_trial(trial._trial_id).params


def test_journal_backend_and_file_path(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    backend = JournalFileBackend(str(path))
    storage = JournalStorage(backend)
    assert _compat.journal_backend(storage) is backend
    assert _compat.journal_file_path(backend) == str(path)
    optuna.create_study(storage=storage, study_name="j")
    assert path.stat().st_size > 0  # the storage writes its log at that path


def test_redis_client_and_prefix() -> None:
    pytest.importorskip("redis")
    import redis

    backend = JournalRedisBackend("redis://127.0.0.1:1/0", prefix="p")  # connects lazily
    assert isinstance(_compat.redis_client(backend), redis.Redis)
    assert _compat.redis_prefix(backend) == "p"
    assert _compat.redis_client(backend).connection_pool.connection_kwargs["port"] == 1


def test_redis_client_is_the_one_the_log_is_written_with(tmp_path: Path) -> None:
    url = make_url("redis", tmp_path)  # skips if no Redis server answers
    study_names: list[str] = []
    try:
        storage = open_storage(url, heartbeat_interval=None)
        assert isinstance(storage, JournalStorage)
        backend = _compat.journal_backend(storage)
        assert isinstance(backend, JournalRedisBackend)
        optuna.create_study(storage=storage, study_name=new_name(study_names))
        client, prefix = _compat.redis_client(backend), _compat.redis_prefix(backend)
        assert prefix.startswith("optuna-nas-test-")
        assert client.exists(f"{prefix}:log_number") == 1
        seconds, micros = client.time()  # the shared clock of JournalHeartbeatStorage
        assert seconds > 1e9 and 0 <= micros < 1e6
    finally:
        cleanup(url, study_names)


def test_artifact_store_path_is_where_artifacts_are_written(tmp_path: Path) -> None:
    (tmp_path / "artifacts").mkdir()
    store = FileSystemArtifactStore(tmp_path / "artifacts")
    assert _compat.artifact_store_path(store) == str(tmp_path / "artifacts")
    study = optuna.create_study()
    src = tmp_path / "a.txt"
    src.write_text("hello")
    artifact_id = upload_artifact(artifact_store=store, file_path=str(src), study_or_trial=study)
    assert (tmp_path / "artifacts" / artifact_id).read_text() == "hello"


def test_artifact_store_is_the_protocol_of_optunas_stores(tmp_path: Path) -> None:
    methods = {"open_reader", "write", "remove"}
    assert methods <= set(dir(_compat.ArtifactStore))
    store: _compat.ArtifactStore = FileSystemArtifactStore(tmp_path)
    store.write("x", io.BytesIO(b"data"))
    with store.open_reader("x") as reader:
        assert reader.read() == b"data"
    store.remove("x")
    assert not (tmp_path / "x").exists()


# --- heartbeats -----------------------------------------------------------------------------


class _StaleMemory(InMemoryStorage, _compat.Heartbeat):
    """An in-memory storage whose running trials are all stale."""

    def __init__(self, interval: int | None) -> None:
        super().__init__()
        self.interval = interval
        self.beats: list[int] = []
        self.failed: list[int] = []

    def record_heartbeat(self, trial_id: int) -> None:
        self.beats.append(trial_id)

    def stale_trial_ids(self, study_id: int) -> list[int]:
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        return [_compat.trial_id(t) for t in running]

    def get_heartbeat_interval(self) -> int | None:
        return self.interval

    def get_heartbeat_stale_trial_callback(
        self,
    ) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return lambda study, trial: self.failed.append(trial.number)


def test_heartbeat_storages_are_what_optuna_beats_and_fails_stale_trials_of() -> None:
    storage = _StaleMemory(interval=60)
    assert _compat.is_heartbeat_enabled(storage)
    assert not _compat.is_heartbeat_enabled(_StaleMemory(interval=None))
    assert not _compat.is_heartbeat_enabled(InMemoryStorage())
    study = optuna.create_study(storage=storage)
    with pytest.warns(UserWarning, match="Heartbeat of storage is supposed to be used with"):
        left = study.ask()  # a trial of a worker that died; Optuna sees the heartbeat storage
    optuna.storages.fail_stale_trials(study)  # through Optuna's private _get_stale_trial_ids
    assert study.trials[left.number].state is TrialState.FAIL
    assert storage.failed == [left.number]
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert storage.beats  # Study.optimize recorded heartbeats of the new trial
    assert study.trials[-1].state is TrialState.COMPLETE


def test_is_heartbeat_enabled_on_an_rdb(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    assert _compat.is_heartbeat_enabled(RDBStorage(url, heartbeat_interval=60))
    assert not _compat.is_heartbeat_enabled(RDBStorage(url))


def test_retry_follows_when_the_retry_callback_will_queue_a_retry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with warnings.catch_warnings():  # experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
    storage = RDBStorage(url, heartbeat_interval=60, heartbeat_stale_trial_callback=callback)
    study = optuna.create_study(storage=storage)
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))  # as failed as stale
    failed = study.trials[0]
    assert _compat.retry_follows(storage, failed)
    callback(study, failed)  # queues its retry
    (retry,) = study.get_trials(states=(TrialState.WAITING,))
    study.add_trial(
        optuna.trial.create_trial(state=TrialState.FAIL, system_attrs=retry.system_attrs)
    )
    failed_again = study.trials[-1]
    assert not _compat.retry_follows(storage, failed_again)  # max_retry=1 used up
    callback(study, failed_again)
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1  # as the callback decided
    assert _compat.retry_follows(_compat.cached_storage(storage), failed)  # as Optuna wraps it
    assert not _compat.retry_follows(RDBStorage(url, heartbeat_interval=60), failed)
    assert not _compat.retry_follows(InMemoryStorage(), failed)


# --- Optuna's gRPC storage proxy ------------------------------------------------------------


def test_grpc_api_module_has_the_storage_service() -> None:
    pytest.importorskip("grpc")
    api = _compat.grpc_api_module()
    assert callable(api.add_StorageServiceServicer_to_server)
    assert callable(api.StorageServiceStub)


class _Hooked(_compat.HookedGrpcStorageProxy):
    """A proxy that counts what goes through each hook."""

    calls: list[str]
    cached: list[int]

    def wrap_stub(self, stub: Any) -> Any:
        calls = self.calls = getattr(self, "calls", [])

        class Counting:
            def __getattr__(self, name: str) -> Any:
                calls.append(name)
                return getattr(stub, name)

        return Counting()

    @staticmethod
    def on_cached_trial(trial: FrozenTrial) -> FrozenTrial:
        trial.set_user_attr("seen_by_hook", True)
        return trial

    def on_channel(self, channel: Any) -> None:
        assert channel is not None
        self.setups = getattr(self, "setups", 0) + 1


def test_a_hooked_proxy_talks_to_the_proxy_service_through_its_hooks(tmp_path: Path) -> None:
    grpc = pytest.importorskip("grpc")
    from concurrent.futures import ThreadPoolExecutor

    rdb = RDBStorage(f"sqlite:///{tmp_path / 'g.db'}")
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    port = server.add_insecure_port("127.0.0.1:0")
    _compat.add_storage_proxy_service(server, _compat.cached_storage(rdb))
    server.start()
    try:
        proxy = _Hooked(host="127.0.0.1", port=port)
        proxy.wait_server_ready(timeout=30)
        assert proxy.setups == 1
        study = optuna.create_study(storage=proxy, study_name="g")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        assert {"CreateNewStudy", "CreateNewTrial", "GetTrials"} <= set(proxy.calls)
        trials = study.get_trials()  # read through the client cache: each went through the hook
        assert [t.user_attrs for t in trials] == [{"seen_by_hook": True}] * 2
        assert [t.state for t in optuna.load_study(study_name="g", storage=rdb).trials] == [
            TrialState.COMPLETE
        ] * 2
        again = pickle.loads(pickle.dumps(proxy))  # unpickling sets the client up anew
        assert again.setups == 2
        assert len(optuna.load_study(study_name="g", storage=again).trials) == 2
        proxy.close()
        again.close()
    finally:
        server.stop(None)
