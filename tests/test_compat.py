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

    def read(self, call: Callable[[], list[FrozenTrial]]) -> list[FrozenTrial]:
        """A read of new and unfinished trials (``_compat.read_trials``) of this RDB."""
        self.reads += 1
        if self.fail_next:
            self.fail_next = False
            raise OSError("the database went away")
        trials = call()
        time.sleep(self.delay)  # the query has run: writes after this moment are not in it
        return trials

    def get_trial(self, trial_id: int) -> FrozenTrial:
        self.single_reads += 1
        return super().get_trial(trial_id)

    def _set_trial_param(self, *args: Any, **kwargs: Any) -> None:
        self.param_entered.set()
        assert self.param_gate.wait(10)
        super()._set_trial_param(*args, **kwargs)


@pytest.fixture(autouse=True)
def _slow_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """``SharedReadCache``'s reads of a ``_SlowRDB`` go through its ``read``."""
    real = _compat.read_trials

    def read_trials(rdb: RDBStorage, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        if isinstance(rdb, _SlowRDB):
            return rdb.read(lambda: real(rdb, *args, **kwargs))
        return real(rdb, *args, **kwargs)

    monkeypatch.setattr(_compat, "read_trials", read_trials)


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


def _fields(trial: FrozenTrial, params_in_order: bool = True) -> tuple[Any, ...]:
    """Every field of a trial, NaN made comparable (and the params' order, which a gRPC
    message does not keep, if ``params_in_order``)."""
    intermediate = {k: "nan" if v != v else v for k, v in trial.intermediate_values.items()}
    return (
        trial._trial_id,
        trial.number,
        trial.state,
        trial.values,
        trial.datetime_start,
        trial.datetime_complete,
        list(trial.params.items()) if params_in_order else trial.params,
        trial.distributions,
        trial.user_attrs,
        trial.system_attrs,
        intermediate,
    )


def _varied_study(storage: RDBStorage, name: str) -> optuna.Study:
    """A two-objective study with trials in every state, params of every distribution, attrs,
    intermediate values (NaN and infinities among them) and infinite values."""
    study = optuna.create_study(storage=storage, study_name=name, directions=["minimize"] * 2)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", -1.0, 1.0)
        trial.suggest_float("lr", 1e-4, 1.0, log=True)
        trial.suggest_int("n", 0, 10, step=2)
        trial.suggest_categorical("c", [None, True, "conv", 2.5])
        trial.set_user_attr("spec", {"nodes": [1, 2], "name": "ü"})
        storage.set_trial_system_attr(trial._trial_id, "nas:hash", "ab" * 8)
        for step, value in enumerate([0.5, float("nan"), float("inf"), -float("inf")]):
            storage.set_trial_intermediate_value(trial._trial_id, step, value)
        if trial.number % 5 == 3:
            raise optuna.TrialPruned()
        if trial.number % 5 == 4:
            raise ValueError("a failing trial")
        return x, float("inf") if trial.number == 2 else -x

    study.optimize(objective, n_trials=10, catch=(ValueError,))
    running = study.ask()
    running.suggest_float("x", -1.0, 1.0)
    running.set_user_attr("k", [1, None])
    study.enqueue_trial({"x": 0.25})  # after the ask, which would have taken it: waiting
    return study


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mysql"])
def test_read_trials_is_optunas_read(kind: str, tmp_path: Path) -> None:
    url = make_url(kind, tmp_path)
    name = new_name([])
    try:
        rdb = RDBStorage(url)
        study = _varied_study(rdb, name)
        sid = study._study_id
        ids = [t._trial_id for t in study.get_trials()]
        unfinished = {t._trial_id for t in study.get_trials() if not t.state.is_finished()}
        for included, after in [
            (set(), -1),
            (unfinished, ids[5]),
            (unfinished, ids[-1]),
            (set(), ids[3]),
            ({ids[0], ids[4]}, ids[8]),
        ]:
            ours = _compat.read_trials(rdb, sid, included, after)
            optunas = rdb._get_trials(sid, None, included, after)
            assert [_fields(t) for t in ours] == [_fields(t) for t in optunas]
        assert len(_compat.read_trials(rdb, sid, set(), -1)) == 12
        with pytest.raises(KeyError):
            _compat.read_trials(rdb, sid + 10_000, set(), -1)
    finally:
        cleanup(url, [name])


def test_read_trials_keeps_the_object_of_an_unchanged_running_trial(tmp_path: Path) -> None:
    rdb = RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(storage=rdb, study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    trials = [study.ask() for _ in range(3)]
    sid = study._study_id
    running = {t._trial_id for t in trials}
    after = trials[0]._trial_id - 1
    kept: dict[int, tuple[Any, FrozenTrial]] = {}
    first = _compat.read_trials(rdb, sid, set(), after, kept)
    assert set(kept) == running
    trials[1].suggest_float("y", 0, 1)  # a param row more
    trials[2].set_user_attr("k", 1)  # an attr row more
    again = _compat.read_trials(rdb, sid, running, after, kept)
    assert again[0] is first[0]  # nothing changed: the same object
    assert again[1] is not first[1] and again[1].params == {"y": again[1].params["y"]}
    assert again[2] is not first[2] and again[2].user_attrs == {"k": 1}
    study.tell(trials[0], 1.0)
    last = _compat.read_trials(rdb, sid, running, after, kept)
    assert last[0].state == TrialState.COMPLETE and last[0].values == [1.0]
    assert set(kept) == running - {trials[0]._trial_id}  # finished: no longer kept
    assert [_fields(t) for t in last] == [
        _fields(t) for t in rdb._get_trials(sid, None, running, after)
    ]


def test_read_trials_of_more_ids_than_an_in_list_is_optunas_read(tmp_path: Path) -> None:
    rdb = RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(storage=rdb, study_name="s")
    for _ in range(_compat._IN_CHUNK + 20):  # waiting trials, all unfinished
        study.enqueue_trial({"x": 0.5}, skip_if_exists=False)
    study.add_trial(optuna.trial.create_trial(value=1.0))
    sid = study._study_id
    ids = [t._trial_id for t in study.get_trials()]
    included = set(ids[:-1])
    ours = _compat.read_trials(rdb, sid, included, ids[-1] - 1)
    assert [_fields(t) for t in ours] == [
        _fields(t) for t in rdb._get_trials(sid, None, included, ids[-1] - 1)
    ]
    everything = _compat.read_trials(rdb, sid, set(), -1)  # child rows read in chunks
    assert [_fields(t) for t in everything] == [
        _fields(t) for t in rdb._get_trials(sid, None, set(), -1)
    ]


def test_storage_proxy_service_turns_each_trial_object_into_a_message_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grpc = pytest.importorskip("grpc")
    from concurrent.futures import ThreadPoolExecutor

    from optuna.storages._grpc import servicer

    made: list[int] = []
    real = servicer._to_proto_trial

    def to_proto(trial: FrozenTrial) -> Any:
        made.append(trial.number)
        return real(trial)

    monkeypatch.setattr(servicer, "_to_proto_trial", to_proto)
    url = f"sqlite:///{tmp_path / 'g.db'}"
    _varied_study(RDBStorage(url), "g")
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    port = server.add_insecure_port("127.0.0.1:0")
    _compat.add_storage_proxy_service(server, _compat.SharedReadCache(RDBStorage(url)))
    server.start()
    try:
        clients = [optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port) for _ in "ab"]
        expected = [_fields(t, False) for t in RDBStorage(url).get_all_trials(1)]
        for client in clients:  # each client's first read asks for every trial
            sid = client.get_study_id_from_name("g")
            assert [_fields(t, False) for t in client.get_all_trials(sid)] == expected
        # Two answers of 12 trials: the 10 finished ones made once, the two unfinished ones
        # once too (unchanged between the reads, the same objects).
        assert sorted(made) == list(range(12))
        running = [t for t in clients[0].get_all_trials(sid) if t.state == TrialState.RUNNING]
        again = clients[1].get_trial(running[0]._trial_id)
        assert _fields(again, False) == _fields(running[0], False)
        assert len(made) == 12
        for client in clients:
            client.close()
    finally:
        server.stop(None)


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
