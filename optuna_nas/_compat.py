"""Private Optuna symbols optuna_nas relies on where no public API does the job, in one place.

Optuna keeps no promise about names that start with ``_`` (modules, functions, attributes), so
the rest of optuna_nas never touches one: it calls the helpers here, each of which names the
private part it wraps and the public behaviour it stands for. ``tests/test_compat.py`` checks
every one of them against the installed Optuna (CI runs the suite on the oldest and the newest
release that ``pyproject.toml`` allows) and ``tests/test_compat_boundary.py`` that no other
module of the package reaches past this boundary. Checked against Optuna 5.0 and 5.1.
"""

from __future__ import annotations

import abc
from collections.abc import Container
from collections.abc import Mapping
import datetime
import functools
import json
import os
import sqlite3
import threading
from typing import Any

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume as _compute_hypervolume
from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts._protocol import ArtifactStore
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage
from optuna.storages import GrpcStorageProxy
from optuna.storages import RDBStorage
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._cached_storage import _StudyInfo
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages._heartbeat import is_heartbeat_enabled as _is_heartbeat_enabled
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.storages.journal import BaseJournalBackend
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal import JournalRedisBackend
from optuna.storages.journal import JournalStorage
from optuna.study._multi_objective import _fast_non_domination_rank
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import sqlalchemy
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

__all__ = [
    "ArtifactStore",
    "Heartbeat",
    "HookedGrpcStorageProxy",
    "add_storage_proxy_service",
    "artifact_store_path",
    "cached_storage",
    "compute_hypervolume",
    "distribution_contains",
    "fast_non_domination_rank",
    "grpc_api_module",
    "is_heartbeat_enabled",
    "journal_backend",
    "journal_file_path",
    "redis_client",
    "redis_prefix",
    "retry_follows",
    "set_trial_user_attrs",
    "started_system_attrs",
    "study_id",
    "study_storage",
    "study_trials_cached",
    "trial_id",
    "uncached_storage",
]

# --- studies and trials ---------------------------------------------------------------------


def study_storage(study: optuna.Study) -> BaseStorage:
    """``Study._storage``: the storage the study reads and writes (no public accessor)."""
    return study._storage


def study_id(study: optuna.Study) -> int:
    """``Study._study_id``: the study's id in its storage, what ``BaseStorage`` calls take."""
    return study._study_id


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """``_trial_id`` of a ``Trial`` or ``FrozenTrial``: its id in the storage (``number`` is the
    public per-study index; storage calls take the id)."""
    return trial._trial_id


def study_trials_cached(
    study: optuna.Study, states: Container[TrialState] | None = None
) -> list[FrozenTrial]:
    """``Study._get_trials(deepcopy=False, states=states, use_cache=True)``: the study's trials,
    not copied, from the list Optuna's samplers share: read on the first call after ``ask``, kept
    (per thread) until ``tell``; the public ``get_trials`` reads the storage on every call."""
    return study._get_trials(deepcopy=False, states=states, use_cache=True)


# --- distributions and multi-objective maths ----------------------------------------------


def distribution_contains(distribution: BaseDistribution, internal_value: float) -> bool:
    """``BaseDistribution._contains``: whether a value in Optuna's internal representation (the
    number itself for int/float, the index for categorical) lies in ``distribution``."""
    return bool(distribution._contains(internal_value))


def compute_hypervolume(
    loss_values: np.ndarray, reference_point: np.ndarray, *, assume_pareto: bool = False
) -> float:
    """``optuna._hypervolume.compute_hypervolume``: the exact (WFG) hypervolume that points to
    minimise dominate up to ``reference_point``, as Optuna's hypervolume history plot computes."""
    return float(_compute_hypervolume(loss_values, reference_point, assume_pareto=assume_pareto))


def fast_non_domination_rank(loss_values: np.ndarray) -> np.ndarray:
    """``optuna.study._multi_objective._fast_non_domination_rank``: each row's non-domination
    rank (0: the Pareto front) among rows of losses to minimise, as NSGA-II ranks trials."""
    return np.asarray(_fast_non_domination_rank(loss_values))


# --- storages -------------------------------------------------------------------------------


def cached_storage(rdb: RDBStorage) -> BaseStorage:
    """``optuna.storages._CachedStorage(rdb)``: the trial cache ``optuna.storages.get_storage``
    puts in front of an RDB opened by URL."""
    return _CachedStorage(rdb)


_IN_CHUNK = 500  # ids per IN list, as SQLAlchemy's selectin loader batches them


@functools.lru_cache(maxsize=4096)
def _distribution(distribution_json: str) -> BaseDistribution:
    return optuna.distributions.json_to_distribution(distribution_json)


def _local_naive(utc: datetime.datetime | None) -> datetime.datetime | None:
    # What TrialModel.datetime_start / datetime_complete make of the stored naive UTC.
    if utc is None:
        return None
    return utc.replace(tzinfo=datetime.timezone.utc).astimezone().replace(tzinfo=None)


# FrozenTrial attribute -> (model, its columns as (name, num, float, text) of the union below)
_CHILDREN: dict[str, tuple[Any, tuple[str | None, ...]]] = {
    "params": (models.TrialParamModel, ("param_name", None, "param_value", "distribution_json")),
    "values": (models.TrialValueModel, (None, "objective", "value", "value_type")),
    "user_attrs": (models.TrialUserAttributeModel, ("key", None, None, "value_json")),
    "system_attrs": (models.TrialSystemAttributeModel, ("key", None, None, "value_json")),
    "intermediate_values": (
        models.TrialIntermediateValueModel,
        (None, "step", "intermediate_value", "intermediate_value_type"),
    ),
}
_CHILD_NAMES = tuple(_CHILDREN)
_CHILD_TYPES = (sqlalchemy.String, sqlalchemy.Integer, sqlalchemy.Float, sqlalchemy.Text)
_VALUE_TYPES = models.TrialValueModel.TrialValueType.__members__
_INTERMEDIATE_TYPES = models.TrialIntermediateValueModel.TrialIntermediateValueType.__members__


def _child_row(table: str, name: str, num: int, value: float, text: str) -> tuple[Any, ...]:
    """The columns read_trials keeps of a row of ``table``, from a row of the union below."""
    if table == "params":
        return name, value, text
    if table == "values":
        return num, value, _VALUE_TYPES[text]
    if table == "intermediate_values":
        return num, value, _INTERMEDIATE_TYPES[text]
    return name, text  # user_attrs, system_attrs


def _children_query() -> Any:
    """The child rows of the trials whose ids are bound to ``ids`` (an expanding parameter) in
    the five tables of :data:`_CHILDREN`, as one UNION ALL of ``(table index, trial_id,
    primary key, name, num, float, text)`` ordered by table and primary key (the order Optuna's
    read gives). Enum columns come back as their names (SQLAlchemy stores an ``Enum`` by name),
    so every dialect unions plain types. Built once: SQLAlchemy caches its compiled form."""
    ids = sqlalchemy.bindparam("ids", expanding=True, type_=sqlalchemy.Integer)
    selects = []
    for kind, (model, names) in enumerate(_CHILDREN.values()):
        table = model.__table__
        (key,) = table.primary_key.columns
        cols = [
            sqlalchemy.type_coerce(sqlalchemy.null(), t)  # a bare NULL: every dialect unions it
            if c is None
            else sqlalchemy.cast(table.c[c], t)
            if isinstance(table.c[c].type, sqlalchemy.Enum)
            else table.c[c]
            for c, t in zip(names, _CHILD_TYPES, strict=True)
        ]
        selects.append(
            sqlalchemy.select(
                sqlalchemy.literal_column(str(kind), sqlalchemy.Integer).label("kind"),
                table.c.trial_id.label("trial_id"),
                key.label("pk"),
                *(c.label(f"c{i}") for i, c in enumerate(cols)),
            ).where(table.c.trial_id.in_(ids))
        )
    union = sqlalchemy.union_all(*selects).subquery()
    return sqlalchemy.select(union).order_by(union.c.kind, union.c.pk)


_CHILDREN_QUERY = _children_query()
_TRIAL_TABLE = models.TrialModel.__table__
# A study's trials with an id in ``included`` or above ``after`` (-1: all), by id.
_TRIALS_QUERY = (
    sqlalchemy.select(
        *(
            _TRIAL_TABLE.c[c]
            for c in ("trial_id", "number", "state", "datetime_start", "datetime_complete")
        )
    )
    .where(
        (_TRIAL_TABLE.c.study_id == sqlalchemy.bindparam("study_id"))
        & (
            _TRIAL_TABLE.c.trial_id.in_(sqlalchemy.bindparam("included", expanding=True))
            | (_TRIAL_TABLE.c.trial_id > sqlalchemy.bindparam("after"))
        )
    )
    .order_by(_TRIAL_TABLE.c.trial_id)
)
_STUDY_QUERY = sqlalchemy.select(models.StudyModel.__table__.c.study_id).where(
    models.StudyModel.__table__.c.study_id == sqlalchemy.bindparam("study_id")
)


def read_trials(
    rdb: RDBStorage,
    study_id: int,
    included_trial_ids: set[int],
    trial_id_greater_than: int,
    unfinished: dict[int, tuple[Any, FrozenTrial]] | None = None,
) -> list[FrozenTrial]:
    """``RDBStorage._get_trials(study_id, None, included_trial_ids, trial_id_greater_than)``:
    the study's trials whose id is in ``included_trial_ids`` or above ``trial_id_greater_than``
    (all of them for -1), by id, read with SQLAlchemy Core from the tables of Optuna's models
    (``optuna.storages._rdb.models``) and built as Optuna's
    ``_build_frozen_trial_from_trial_model`` builds them; raises ``KeyError`` for a study that
    does not exist. It makes two statements (the trials, then one UNION ALL over the five
    tables of their rows) where Optuna's ORM query makes seven and an object per row; the
    storage server reads a study's running trials for most calls it serves. Measured for 16
    running trials of a 2,000-trial PostgreSQL study (runs of 300 reads, the two versions
    interleaved): 1.1-1.7 ms CPU and 2.1-3.2 ms wall per read, against 2.7-3.7 and 4.2-5.5 ms
    with one statement per table; the ORM read took 5.3 ms CPU.

    ``unfinished`` (trial id -> (rows, trial)), kept by the caller between reads of one study,
    makes a trial not finished whose rows are the same as at the last read come back as the
    same ``FrozenTrial`` object; finished trials leave it. More included ids than one IN list
    holds go to Optuna's own read.
    """
    included = {i for i in included_trial_ids if i <= trial_id_greater_than}
    if len(included) > _IN_CHUNK:
        return rdb._get_trials(study_id, None, included, trial_id_greater_than)
    with rdb.engine.connect() as conn:
        found = conn.execute(
            _TRIALS_QUERY,
            {"study_id": study_id, "included": sorted(included), "after": trial_id_greater_than},
        ).all()
        if not found:
            if conn.execute(_STUDY_QUERY, {"study_id": study_id}).first() is None:
                raise KeyError(f"No study with study_id {study_id} exists.")
            return []
        ids = [row[0] for row in found]
        rows: dict[str, dict[int, list[Any]]] = {name: {} for name in _CHILDREN}
        # One statement per chunk of ids for the five child tables (a UNION ALL): a read of the
        # running trials is two round trips, not six, which under load is most of its time.
        chunk = _IN_CHUNK // len(_CHILDREN)
        for start in range(0, len(ids), chunk):
            for kind, *row in conn.execute(_CHILDREN_QUERY, {"ids": ids[start : start + chunk]}):
                name = _CHILD_NAMES[kind]
                rows[name].setdefault(row[0], []).append(_child_row(name, *row[2:]))
    out = []
    for trial_row in found:
        tid = trial_row[0]
        its = {n: rows[n].get(tid, []) for n in _CHILDREN}
        if unfinished is None or trial_row[2].is_finished():
            if unfinished is not None:
                unfinished.pop(tid, None)
            out.append(_frozen_trial(trial_row, its))
            continue
        signature = (tuple(trial_row), *(tuple(v) for v in its.values()))
        kept = unfinished.get(tid)
        if kept is None or kept[0] != signature:
            kept = unfinished[tid] = (signature, _frozen_trial(trial_row, its))
        out.append(kept[1])
    return out


def _frozen_trial(trial_row: Any, rows: dict[str, list[Any]]) -> FrozenTrial:
    tid, number, state, start, complete = trial_row
    value_of = models.TrialValueModel.stored_repr_to_value
    values: list[float] | None = None
    if rows["values"]:
        values = [0.0] * len(rows["values"])
        for objective, value, kind in rows["values"]:
            values[objective] = value_of(value, kind)
    params = rows["params"]  # by param_id, as Optuna sorts them
    intermediate_of = models.TrialIntermediateValueModel.stored_repr_to_intermediate_value
    return FrozenTrial(
        number=number,
        state=state,
        value=None,
        values=values,
        datetime_start=_local_naive(start),
        datetime_complete=_local_naive(complete),
        params={n: _distribution(d).to_external_repr(v) for n, v, d in params},
        distributions={n: _distribution(d) for n, _, d in params},
        user_attrs={key: json.loads(value) for key, value in rows["user_attrs"]},
        system_attrs={key: json.loads(value) for key, value in rows["system_attrs"]},
        intermediate_values={
            step: intermediate_of(value, kind) for step, value, kind in rows["intermediate_values"]
        },
        trial_id=tid,
    )


class SharedReadCache(_CachedStorage):
    """Optuna's ``_CachedStorage`` for the one process that serves many workers (the storage
    server), with five changes for concurrency and speed, and the same results.

    * **Shared reads.** Optuna's cache reads a study's new and unfinished trials from the
      database on every ``get_all_trials``, holding the cache's lock over the round trip, so
      concurrent calls queue and each repeats the read. Here a call that arrives while a read
      of its study is in flight waits for the *next* read, which starts after the call arrived
      and so sees every write finished before it; that one read serves every call that waited
      for it. A failed read raises in its caller; a waiter then starts a read of its own.
    * **Running trials from the shared read.** ``get_trial`` of a trial the cache knows and
      that is not finished waits for the study's next shared read and answers from it, instead
      of loading that one trial from the database (Optuna's cache does; with lazy loads of its
      params and attrs, it was the storage server's most expensive call, twice per trial). A
      trial the cache does not know yet, or that a read did not cover, is read alone as before.
    * **No lock over the database.** The read runs Optuna's query and cache update
      (``_read_trials_from_remote_storage``) but holds the cache's lock only to take what it
      starts from and to update the cache, so lookups and writes go on while it waits.
    * **Param writes outside the lock.** ``set_trial_param`` holds the cache's lock only to
      look up and record the param's distribution (Optuna holds it over the database write).
      Two first writes of one param name both check the distribution in the database.
    * **Reads without the ORM.** The read is :func:`read_trials` (same query, same trials),
      and a running trial none of whose rows changed since the last read stays the same
      ``FrozenTrial`` object (what the storage server's answers are cached by).

    Relies on the cache's private state (``_studies``: ``_StudyInfo`` with ``trials``,
    ``unfinished_trial_ids``, ``last_finished_trial_id``, ``param_distribution``), the RDB's
    ``_set_trial_param`` (the call Optuna's own method makes) and :func:`read_trials`'s tables.
    """

    def __init__(self, backend: RDBStorage) -> None:
        super().__init__(backend)
        self._reads = threading.Condition()
        self._read_counts: dict[int, list[int]] = {}  # study id -> [started, finished, running]
        self._unfinished_rows: dict[int, dict[int, tuple[Any, FrozenTrial]]] = {}  # read_trials

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        del state["_reads"]
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._reads = threading.Condition()

    def _read_trials_from_remote_storage(self, study_id: int) -> None:
        with self._reads:
            counts = self._read_counts.setdefault(study_id, [0, 0, 0])
            need = counts[0] + 1  # a read that starts from now on
            while counts[1] < need:
                if counts[2]:
                    self._reads.wait()
                    continue
                counts[0] += 1
                counts[2] = 1
                self._reads.release()
                try:
                    self._read_once(study_id)
                except BaseException:
                    self._reads.acquire()
                    counts[2] = 0
                    self._reads.notify_all()
                    raise
                self._reads.acquire()
                counts[1] = counts[0]
                counts[2] = 0
                self._reads.notify_all()

    def _read_once(self, study_id: int) -> None:
        # Optuna's read and cache update, without its lock over the database round trip (one
        # read of a study runs at a time, so what it starts from stays what it read after).
        with self._lock:
            study = self._studies.setdefault(study_id, _StudyInfo())
            included = set(study.unfinished_trial_ids)
            after = study.last_finished_trial_id
            rows = self._unfinished_rows.setdefault(study_id, {})
        trials = read_trials(self._backend, study_id, included, after, rows)
        with self._lock:
            self._add_trials_to_cache(study_id, trials)
            for trial in trials:
                if not trial.state.is_finished():
                    study.unfinished_trial_ids.add(trial._trial_id)
                    continue
                study.last_finished_trial_id = max(study.last_finished_trial_id, trial._trial_id)
                study.unfinished_trial_ids.discard(trial._trial_id)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            trial = self._get_cached_trial(trial_id)
            known = self._trial_id_to_study_id_and_number.get(trial_id)
        if trial is not None:
            return trial
        if known is None:
            return self._backend.get_trial(trial_id)
        study_id, number = known
        self._read_trials_from_remote_storage(study_id)
        with self._lock:
            trial = self._studies[study_id].trials[number]
            # The read covered the trial if it is finished now or among the unfinished ones it
            # returned; else (another process committed a later trial first) ask the database.
            if (
                trial.state.is_finished()
                or trial_id in self._studies[study_id].unfinished_trial_ids
            ):
                return trial
        return self._backend.get_trial(trial_id)

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        with self._lock:
            study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
            cached = self._studies[study_id].param_distribution.get(param_name)
        self._backend._set_trial_param(
            trial_id, param_name, param_value_internal, distribution, cached
        )
        if cached is None:
            with self._lock:
                self._studies[study_id].param_distribution.setdefault(param_name, distribution)


def uncached_storage(storage: BaseStorage) -> BaseStorage:
    """The storage under Optuna's ``_CachedStorage`` (its ``_backend``), else ``storage``."""
    return storage._backend if isinstance(storage, _CachedStorage) else storage


def _rdb_backend(storage: BaseStorage) -> RDBStorage | None:
    """The RDB behind ``storage`` (bare, or under Optuna's cache), else None."""
    storage = uncached_storage(storage)
    return storage if isinstance(storage, RDBStorage) else None


def journal_backend(storage: JournalStorage) -> BaseJournalBackend:
    """``JournalStorage._backend``: the log backend (file, Redis) the storage writes to."""
    return storage._backend


def journal_file_path(backend: JournalFileBackend) -> str:
    """``JournalFileBackend._file_path``: the path of the journal file, as given to it."""
    return backend._file_path


def redis_client(backend: JournalRedisBackend) -> Any:
    """``JournalRedisBackend._redis``: the ``redis.Redis`` client the backend writes with."""
    return backend._redis


def redis_prefix(backend: JournalRedisBackend) -> str:
    """``JournalRedisBackend._prefix``: the prefix of the backend's Redis keys."""
    return str(backend._prefix)


def artifact_store_path(store: FileSystemArtifactStore) -> str:
    """``FileSystemArtifactStore._base_path``: the directory the store writes artifacts to."""
    return os.fspath(store._base_path)


# --- heartbeats -----------------------------------------------------------------------------


def is_heartbeat_enabled(storage: BaseStorage) -> bool:
    """``optuna.storages._heartbeat.is_heartbeat_enabled``: whether ``Study.optimize`` records
    heartbeats on ``storage`` and fails its stale trials (a heartbeat storage with an interval)."""
    return bool(_is_heartbeat_enabled(storage))


class Heartbeat(BaseHeartbeat):
    """``optuna.storages._heartbeat.BaseHeartbeat`` for a storage to mix in: ``Study.optimize``
    then records heartbeats and ``optuna.storages.fail_stale_trials`` fails stale trials on it.

    A subclass implements the public methods of Optuna's interface (``record_heartbeat``,
    ``get_heartbeat_interval``, ``get_heartbeat_stale_trial_callback``) and
    :meth:`stale_trial_ids`, which stands in for Optuna's private ``_get_stale_trial_ids``.
    """

    @abc.abstractmethod
    def stale_trial_ids(self, study_id: int) -> list[int]:
        """The ids of ``study_id``'s running trials whose heartbeat is older than the grace."""

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return self.stale_trial_ids(study_id)


def retry_follows(storage: BaseStorage, failed: FrozenTrial) -> bool:
    """Whether failing ``failed`` as stale queues a retry of it: ``storage``'s stale-trial
    callback is a :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` whose ``max_retry``
    (``_max_retry``) the trial's retry history has not used up."""
    get_callback = getattr(storage, "get_heartbeat_stale_trial_callback", None)
    callback = get_callback() if callable(get_callback) else None
    if not isinstance(callback, RetryHeartbeatStaleTrialCallback):
        return False
    max_retry = callback._max_retry
    done = len(failed.system_attrs.get("retry_history", ()))
    return max_retry is None or done + 1 <= max_retry


# --- Optuna's gRPC storage proxy ------------------------------------------------------------


def grpc_api_module() -> Any:
    """``optuna.storages._grpc.auto_generated.api_pb2_grpc``, the generated code of Optuna's
    storage proxy service; raises ``ImportError`` (or ``RuntimeError`` for a grpcio too old for
    it) where ``optuna.storages.run_grpc_proxy_server`` could not run."""
    from optuna.storages._grpc.auto_generated import api_pb2_grpc

    return api_pb2_grpc


def add_storage_proxy_service(server: Any, storage: BaseStorage) -> None:
    """Serve ``storage`` on the ``grpc.Server`` ``server`` as ``optuna.storages.
    run_grpc_proxy_server`` does (Optuna's private ``_grpc.servicer.OptunaStorageProxyService``),
    on a server the caller builds and starts, next to services of its own.

    ``GetTrial`` and ``GetTrials`` answer the same messages, but each ``FrozenTrial`` object is
    turned into its message once (Optuna's ``_to_proto_trial``, which JSON-encodes every
    distribution) and kept while the object lives: the storage's cache keeps a finished trial's
    object for good, and :class:`SharedReadCache` a running trial's while its rows do not
    change, where Optuna's service converts every trial of every answer again.
    """
    import weakref

    import grpc
    from optuna.storages._grpc.auto_generated import api_pb2
    from optuna.storages._grpc.servicer import OptunaStorageProxyService
    from optuna.storages._grpc.servicer import _to_proto_trial

    class Service(OptunaStorageProxyService):
        def __init__(self, storage: BaseStorage) -> None:
            super().__init__(storage)
            self._messages: dict[int, tuple[weakref.ref[FrozenTrial], Any]] = {}

        def _message(self, trial: FrozenTrial) -> Any:
            key = id(trial)
            kept = self._messages.get(key)
            if kept is not None and kept[0]() is trial:
                return kept[1]
            message = _to_proto_trial(trial)

            def forget(_: Any, key: int = key) -> None:
                self._messages.pop(key, None)

            # The entry goes when the trial object does (before its id can be reused).
            ref = weakref.ref(trial, forget)
            self._messages[key] = (ref, message)
            return message

        def GetTrial(self, request: Any, context: grpc.ServicerContext) -> Any:
            try:
                trial = self._backend.get_trial(request.trial_id)
            except KeyError as e:
                context.abort(code=grpc.StatusCode.NOT_FOUND, details=str(e))
            return api_pb2.GetTrialReply(trial=self._message(trial))

        def GetTrials(self, request: Any, context: grpc.ServicerContext) -> Any:
            included = set(request.included_trial_ids)
            after = request.trial_id_greater_than
            try:
                trials = self._backend.get_all_trials(request.study_id, deepcopy=False)
            except KeyError as e:
                context.abort(code=grpc.StatusCode.NOT_FOUND, details=str(e))
            found = [
                self._message(t) for t in trials if t._trial_id > after or t._trial_id in included
            ]
            return api_pb2.GetTrialsReply(trials=found)

    grpc_api_module().add_StorageServiceServicer_to_server(Service(storage), server)


class HookedGrpcStorageProxy(GrpcStorageProxy):
    """``optuna.storages.GrpcStorageProxy`` whose client a subclass may extend.

    Optuna's private ``_setup`` (run on construction and on unpickling) makes the proxy's
    channel, stub and trial cache (``_channel``, ``_stub``, a private ``GrpcClientCache``).
    Here the stub then goes through :meth:`wrap_stub`, every trial entering the cache through
    :meth:`on_cached_trial`, and the channel to :meth:`on_channel`; the defaults change nothing.
    """

    def _setup(self) -> None:
        from optuna.storages._grpc.client import GrpcClientCache

        super()._setup()
        self._stub = self.wrap_stub(self._stub)
        on_cached_trial = type(self).on_cached_trial

        class Cache(GrpcClientCache):
            def _add_trial_to_cache(self, study_id: int, trial: FrozenTrial) -> None:
                super()._add_trial_to_cache(study_id, on_cached_trial(trial))

        self._cache = Cache(self._stub)
        self.on_channel(self._channel)

    def wrap_stub(self, stub: Any) -> Any:
        """The stub every call of the proxy goes through, made from Optuna's ``stub``."""
        return stub

    @staticmethod
    def on_cached_trial(trial: FrozenTrial) -> FrozenTrial:
        """``trial`` as it arrives from the server, before the client cache keeps it."""
        return trial

    def on_channel(self, channel: Any) -> None:
        """Called with the proxy's ``grpc.Channel`` whenever it is (re)made."""


# --- attribute writes -----------------------------------------------------------------------


def set_trial_user_attrs(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    """``trial.set_user_attr(key, value)`` for every item of ``attrs``, in one transaction on an
    RDB storage.

    Optuna writes each user attr in a transaction of its own: a round trip, a commit and, on
    SQLite, a sync to disk per key, several times the cost of a cheap trial's whole
    bookkeeping. On an RDB (bare or cached) one session checks once that the trial is still
    running, upserts every key (one multi-row statement on PostgreSQL and SQLite, Optuna's
    ``_set_trial_attr_without_commit`` per key elsewhere) and commits once: all or none.
    Other storages (journal, Redis, gRPC proxy, in-memory) and other trial kinds get one
    ``set_user_attr`` per key. Either way ``trial.user_attrs`` shows the values at once, as
    after ``set_user_attr`` (the trial's cached frozen trial is updated, as Optuna does).
    """
    backend = _rdb_backend(study_storage(trial.study)) if type(trial) is optuna.Trial else None
    if backend is None or len(attrs) < 2:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return
    tid = trial_id(trial)
    dialect = backend.engine.name
    # Optuna's own set_trial_user_attr ignores integrity errors (a concurrent identical write).
    with _create_scoped_session(backend.scoped_session, True) as session:
        if dialect == "postgresql" or (
            dialect == "sqlite" and sqlite3.sqlite_version_info >= (3, 24, 0)
        ):
            # One trial lookup and one multi-row upsert: the statement Optuna's
            # _set_trial_attr_without_commit runs per key on these dialects.
            found = models.TrialModel.find_or_raise_by_id(tid, session)
            backend.check_trial_is_updatable(tid, found.state)
            insert = (postgresql if dialect == "postgresql" else sqlite).insert(
                models.TrialUserAttributeModel
            )
            rows = [
                {"trial_id": tid, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()
            ]
            session.execute(
                insert.values(rows).on_conflict_do_update(
                    index_elements=[
                        models.TrialUserAttributeModel.trial_id,
                        models.TrialUserAttributeModel.key,
                    ],
                    set_={"value_json": insert.excluded.value_json},
                )
            )
        else:  # MySQL and others: Optuna's statement per key, in the one transaction
            for key, value in attrs.items():
                backend._set_trial_attr_without_commit(
                    session, models.TrialUserAttributeModel, tid, key, value
                )
    trial._cached_frozen_trial.user_attrs.update(attrs)


def started_system_attrs(trial: optuna.Trial) -> Mapping[str, Any]:
    """``trial``'s system attrs as they were when it started (plus its constraints), without a
    storage read: Optuna's ``Trial`` keeps the frozen trial it read when it was created.

    For attrs fixed at creation only, such as ``failed_trial`` (set on a retry's template by
    :class:`optuna.storages.RetryFailedTrialCallback`) or ``fixed_params``; read anything that
    changes while the trial runs from the storage.
    """
    return trial._cached_frozen_trial.system_attrs
