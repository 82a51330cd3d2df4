"""Claims that the storage arbitrates: at most one trial owns a key at a time.

A :class:`ClaimBoard` maps ``(study_id, key)`` to the id of the trial that owns the key. Two
operations, each atomic *in the storage itself* (never an in-process lock, so workers on
different machines agree):

``claim(study_id, key, trial_id)``
    Insert-if-absent. Returns the owner after the call: ``trial_id`` if this call created the
    claim, else the trial that holds it.
``take_over(study_id, key, old, new)``
    Compare-and-set: the owner becomes ``new`` only if it is still ``old``. Exactly one of
    several workers trying to replace the same dead owner succeeds.

How each storage makes these atomic:

* **RDB** (SQLite, PostgreSQL, MySQL): the table ``optuna_nas_claims`` with primary key
  ``(study_id, claim_key)``, created beside Optuna's tables. ``claim`` is a plain ``INSERT``:
  the primary key lets one insert succeed and makes every other one fail with an integrity
  error, whatever the interleaving of transactions. ``take_over`` is
  ``UPDATE ... SET trial_id = new WHERE ... AND trial_id = old``, which the database applies to
  the row atomically (row lock / SQLite's write lock); its row count says who won. The column
  ``trial_id`` references ``trials.trial_id`` with ``ON DELETE CASCADE``, so deleting a study
  with Optuna's tools deletes its claims (where the database enforces foreign keys).
* **Journal in Redis**: the key ``<prefix>:optuna_nas:claim:<study_id>:<key>`` in the same
  Redis; ``claim`` is ``SET NX``, ``take_over`` a Lua compare-and-set (Redis runs scripts
  atomically).
* **Journal file**: a lock file beside the journal (``<journal>.optuna_nas_claims.lock``,
  a :class:`~optuna_nas.storage._filelock.HolderFileLock`: ``O_EXCL`` like the journal's own
  lock, broken at once when its holder's pid is gone on the same host, else after 30 s as
  Optuna's is) serialises a read-check-write of the study system attr
  ``optuna_nas:claim:<key>``; the write is appended to the journal before the lock is
  released, so the next holder replays it.
* **In-memory** storage (one process): the same read-check-write under a ``threading.Lock``.

**Jobs.** The board also holds job claims (:mod:`optuna_nas.storage._jobs`): work done once per
study outside any one trial (training a supernet, a DARTS search), owned by a process rather
than a trial. A job claim maps ``(study_id, key)`` to a :class:`JobOwner` (token, host, pid,
heartbeat count); ``claim_job`` is insert-if-absent and ``replace_job`` a compare-and-set on
``(token, beat)``, which renews (heartbeat), takes over or releases (``new=None``) the claim.
The same mechanisms make them atomic: the table ``optuna_nas_jobs`` (primary key ``(study_id,
job_key)``, ``study_id`` referencing ``studies`` with ``ON DELETE CASCADE``), the Redis key
``<prefix>:optuna_nas:job:<study_id>:<key>``, or the study system attr ``optuna_nas:job:<key>``
under the lock (``None`` once released: Optuna cannot delete a study attr).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from collections.abc import Iterator
import contextlib
import dataclasses
import json
import threading
from typing import Any
import weakref

from optuna.storages import BaseStorage
from optuna.storages import InMemoryStorage
from optuna.storages import RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal import JournalRedisBackend
from optuna.storages.journal import JournalStorage

from optuna_nas import _compat
from optuna_nas.storage._filelock import HolderFileLock

CLAIMS_TABLE = "optuna_nas_claims"
JOBS_TABLE = "optuna_nas_jobs"
_ATTR_PREFIX = "optuna_nas:claim:"
_JOB_ATTR_PREFIX = "optuna_nas:job:"
_CAS_LUA = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "redis.call('SET', KEYS[1], ARGV[2]) return 1 else return 0 end"
)
# A job value is "<token>:<beat> <owner JSON>"; ARGV[1] is the expected "<token>:<beat> "
# prefix, ARGV[2] the new value or "" to delete.
_JOB_CAS_LUA = (
    "local v = redis.call('GET', KEYS[1]) "
    "if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then "
    "if ARGV[2] == '' then redis.call('DEL', KEYS[1]) "
    "else redis.call('SET', KEYS[1], ARGV[2]) end "
    "return 1 else return 0 end"
)


@dataclasses.dataclass(frozen=True)
class JobOwner:
    """Who holds a job claim: a random ``token`` per attempt, the process that runs it
    (``host``, ``pid_namespace``, ``pid``), its heartbeat interval and count (``beat``) and the
    wall time of the last beat (``beat_at``; for people: liveness never compares clocks)."""

    token: str
    host: str
    pid_namespace: str
    pid: int
    heartbeat_s: float
    beat: int
    beat_at: float

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobOwner:
        return cls(**json.loads(text))

    def same_claim(self, other: JobOwner | None) -> bool:
        return other is not None and (other.token, other.beat) == (self.token, self.beat)


class ClaimBoard(abc.ABC):
    """Storage-arbitrated ownership of keys; see the module docstring."""

    @abc.abstractmethod
    def claim(self, study_id: int, key: str, trial_id: int) -> int:
        """Claim ``key`` for ``trial_id`` if nobody owns it; return the owner's trial id."""

    @abc.abstractmethod
    def take_over(self, study_id: int, key: str, old: int, new: int) -> bool:
        """Make ``new`` the owner if ``old`` still is; True if this call did it."""

    @abc.abstractmethod
    def claim_job(self, study_id: int, key: str, owner: JobOwner) -> JobOwner:
        """Claim job ``key`` for ``owner`` if nobody holds it; return the holder."""

    @abc.abstractmethod
    def job(self, study_id: int, key: str) -> JobOwner | None:
        """The holder of job ``key``, or None."""

    @abc.abstractmethod
    def replace_job(
        self, study_id: int, key: str, expected: JobOwner, new: JobOwner | None
    ) -> bool:
        """If the holder of ``key`` is still ``expected`` (same token and beat), make it
        ``new`` (``None``: release the claim); True if this call did it."""


_BOARDS: weakref.WeakKeyDictionary[BaseStorage, ClaimBoard] = weakref.WeakKeyDictionary()
_BOARDS_LOCK = threading.Lock()


def claim_board(storage: BaseStorage) -> ClaimBoard:
    """The claim board of ``storage`` (created once per storage object)."""
    inner = _compat.uncached_storage(storage)
    with _BOARDS_LOCK:
        board = _BOARDS.get(inner)
        if board is None:
            board = _make_board(inner)
            _BOARDS[inner] = board
        return board


def _make_board(storage: BaseStorage) -> ClaimBoard:
    if isinstance(storage, RDBStorage):
        return _SqlBoard(storage.engine)
    if isinstance(storage, JournalStorage):
        backend = _compat.journal_backend(storage)
        if isinstance(backend, JournalRedisBackend):
            return _RedisBoard(backend)
        if isinstance(backend, JournalFileBackend):
            lock = HolderFileLock(_compat.journal_file_path(backend) + ".optuna_nas_claims")
            return _AttrBoard(storage, _file_lock(lock))
    if isinstance(storage, InMemoryStorage):
        return _AttrBoard(storage, _thread_lock(threading.Lock()))
    raise ValueError(
        f"race-free claims (deduplication, supernet training, DARTS search) need an RDB, journal "
        f"(file or Redis) or in-memory storage, but the study uses {type(storage).__name__}; "
        "open it with optuna_nas.storage.open_storage (or turn deduplication off with "
        "NASObjective(deduplicate=False) if that is the only claim you use)."
    )


class _SqlBoard(ClaimBoard):
    def __init__(self, engine: Any) -> None:
        import sqlalchemy as sa

        metadata = sa.MetaData()
        sa.Table("trials", metadata, sa.Column("trial_id", sa.Integer, primary_key=True))
        self._table = sa.Table(
            CLAIMS_TABLE,
            metadata,
            sa.Column("study_id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("claim_key", sa.String(255), primary_key=True),
            sa.Column(
                "trial_id",
                sa.Integer,
                sa.ForeignKey("trials.trial_id", ondelete="CASCADE"),
                nullable=False,
            ),
        )
        sa.Table("studies", metadata, sa.Column("study_id", sa.Integer, primary_key=True))
        self._jobs = sa.Table(
            JOBS_TABLE,
            metadata,
            sa.Column(
                "study_id",
                sa.Integer,
                sa.ForeignKey("studies.study_id", ondelete="CASCADE"),
                primary_key=True,
                autoincrement=False,
            ),
            sa.Column("job_key", sa.String(255), primary_key=True),
            sa.Column("token", sa.String(64), nullable=False),
            sa.Column("beat", sa.Integer, nullable=False),
            sa.Column("owner", sa.Text, nullable=False),
        )
        self._engine = engine
        self._sa = sa
        for table in (self._table, self._jobs):
            try:
                metadata.create_all(engine, tables=[table], checkfirst=True)
            except sa.exc.SQLAlchemyError:
                # Two workers creating the table at once: PostgreSQL lets one CREATE fail.
                if not sa.inspect(engine).has_table(table.name):
                    raise

    def claim(self, study_id: int, key: str, trial_id: int) -> int:
        sa, table = self._sa, self._table
        where = (table.c.study_id == study_id) & (table.c.claim_key == key)
        while True:
            try:
                with self._engine.begin() as conn:
                    conn.execute(
                        table.insert().values(study_id=study_id, claim_key=key, trial_id=trial_id)
                    )
                return trial_id
            except sa.exc.IntegrityError:
                pass  # the insert lost the race: read the owner below
            with self._engine.connect() as conn:
                owner = conn.execute(sa.select(table.c.trial_id).where(where)).scalar()
            if owner is not None:  # None: the owner's study was deleted meanwhile; insert again
                return int(owner)

    def take_over(self, study_id: int, key: str, old: int, new: int) -> bool:
        table = self._table
        statement = (
            table.update()
            .where(
                (table.c.study_id == study_id)
                & (table.c.claim_key == key)
                & (table.c.trial_id == old)
            )
            .values(trial_id=new)
        )
        with self._engine.begin() as conn:
            return bool(conn.execute(statement).rowcount == 1)

    def _job_where(self, study_id: int, key: str) -> Any:
        return (self._jobs.c.study_id == study_id) & (self._jobs.c.job_key == key)

    def claim_job(self, study_id: int, key: str, owner: JobOwner) -> JobOwner:
        sa, table = self._sa, self._jobs
        row = {"token": owner.token, "beat": owner.beat, "owner": owner.to_json()}
        while True:
            try:
                with self._engine.begin() as conn:
                    conn.execute(table.insert().values(study_id=study_id, job_key=key, **row))
                return owner
            except sa.exc.IntegrityError:
                pass  # held by another owner (or, rarely, the study was deleted): read it
            holder = self.job(study_id, key)
            if holder is not None:  # None: released meanwhile; insert again
                return holder

    def job(self, study_id: int, key: str) -> JobOwner | None:
        query = self._sa.select(self._jobs.c.owner).where(self._job_where(study_id, key))
        with self._engine.connect() as conn:
            text = conn.execute(query).scalar()
        return None if text is None else JobOwner.from_json(text)

    def replace_job(
        self, study_id: int, key: str, expected: JobOwner, new: JobOwner | None
    ) -> bool:
        table = self._jobs
        where = (
            self._job_where(study_id, key)
            & (table.c.token == expected.token)
            & (table.c.beat == expected.beat)
        )
        statement: Any
        if new is None:
            statement = table.delete().where(where)
        else:
            statement = (
                table.update()
                .where(where)
                .values(token=new.token, beat=new.beat, owner=new.to_json())
            )
        with self._engine.begin() as conn:
            return bool(conn.execute(statement).rowcount == 1)


class _RedisBoard(ClaimBoard):
    def __init__(self, backend: JournalRedisBackend) -> None:
        self._redis = _compat.redis_client(backend)
        self._prefix = _compat.redis_prefix(backend)
        self._cas = self._redis.register_script(_CAS_LUA)
        self._job_cas = self._redis.register_script(_JOB_CAS_LUA)

    def _key(self, study_id: int, key: str) -> str:
        return f"{self._prefix}:optuna_nas:claim:{study_id}:{key}"

    def claim(self, study_id: int, key: str, trial_id: int) -> int:
        name = self._key(study_id, key)
        while True:
            if self._redis.set(name, trial_id, nx=True):
                return trial_id
            owner = self._redis.get(name)
            if owner is not None:
                return int(owner)

    def take_over(self, study_id: int, key: str, old: int, new: int) -> bool:
        return bool(self._cas(keys=[self._key(study_id, key)], args=[old, new]) == 1)

    def _job_key(self, study_id: int, key: str) -> str:
        return f"{self._prefix}:optuna_nas:job:{study_id}:{key}"

    @staticmethod
    def _job_value(owner: JobOwner) -> str:
        return f"{owner.token}:{owner.beat} {owner.to_json()}"

    def claim_job(self, study_id: int, key: str, owner: JobOwner) -> JobOwner:
        name = self._job_key(study_id, key)
        while True:
            if self._redis.set(name, self._job_value(owner), nx=True):
                return owner
            holder = self.job(study_id, key)
            if holder is not None:
                return holder

    def job(self, study_id: int, key: str) -> JobOwner | None:
        value = self._redis.get(self._job_key(study_id, key))
        if value is None:
            return None
        text = value.decode() if isinstance(value, bytes) else str(value)
        return JobOwner.from_json(text.partition(" ")[2])

    def replace_job(
        self, study_id: int, key: str, expected: JobOwner, new: JobOwner | None
    ) -> bool:
        prefix = f"{expected.token}:{expected.beat} "
        value = "" if new is None else self._job_value(new)
        return bool(self._job_cas(keys=[self._job_key(study_id, key)], args=[prefix, value]) == 1)


class _AttrBoard(ClaimBoard):
    def __init__(
        self, storage: BaseStorage, lock: Callable[[], contextlib.AbstractContextManager[None]]
    ) -> None:
        self._storage = storage
        self._lock = lock

    def _owner(self, study_id: int, key: str) -> int | None:
        owner = self._storage.get_study_system_attrs(study_id).get(_ATTR_PREFIX + key)
        return None if owner is None else int(owner)

    def claim(self, study_id: int, key: str, trial_id: int) -> int:
        with self._lock():
            owner = self._owner(study_id, key)
            if owner is not None:
                return owner
            self._storage.set_study_system_attr(study_id, _ATTR_PREFIX + key, trial_id)
            return trial_id

    def take_over(self, study_id: int, key: str, old: int, new: int) -> bool:
        with self._lock():
            if self._owner(study_id, key) != old:
                return False
            self._storage.set_study_system_attr(study_id, _ATTR_PREFIX + key, new)
            return True

    def _holder(self, study_id: int, key: str) -> JobOwner | None:
        value = self._storage.get_study_system_attrs(study_id).get(_JOB_ATTR_PREFIX + key)
        return None if value is None else JobOwner(**value)

    def claim_job(self, study_id: int, key: str, owner: JobOwner) -> JobOwner:
        with self._lock():
            holder = self._holder(study_id, key)
            if holder is not None:
                return holder
            self._storage.set_study_system_attr(
                study_id, _JOB_ATTR_PREFIX + key, dataclasses.asdict(owner)
            )
            return owner

    def job(self, study_id: int, key: str) -> JobOwner | None:
        return self._holder(study_id, key)

    def replace_job(
        self, study_id: int, key: str, expected: JobOwner, new: JobOwner | None
    ) -> bool:
        with self._lock():
            if not expected.same_claim(self._holder(study_id, key)):
                return False
            value = None if new is None else dataclasses.asdict(new)
            self._storage.set_study_system_attr(study_id, _JOB_ATTR_PREFIX + key, value)
            return True


def _file_lock(lock: HolderFileLock) -> Callable[[], contextlib.AbstractContextManager[None]]:
    @contextlib.contextmanager
    def held() -> Iterator[None]:
        lock.acquire()
        try:
            yield
        finally:
            lock.release()

    return held


def _thread_lock(lock: threading.Lock) -> Callable[[], contextlib.AbstractContextManager[None]]:
    @contextlib.contextmanager
    def held() -> Iterator[None]:
        with lock:
            yield

    return held
