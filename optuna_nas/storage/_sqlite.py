"""SQLite storage whose trial state changes are atomic across processes.

Python's ``sqlite3`` driver opens a transaction only before an ``INSERT``, ``UPDATE`` or
``DELETE``; the ``SELECT`` before it runs outside any transaction, and SQLite ignores
``FOR UPDATE``. Optuna's ``RDBStorage.set_trial_state_values`` reads a trial's state, checks
it and writes the new one, so on SQLite two processes can both read ``WAITING`` and both move
the trial to ``RUNNING``: both run the same enqueued trial or retry (measured: two processes
popping 200 enqueued trials in lock step both got 121 of them), or both fail one stale trial
and both queue its retry.

:class:`SQLiteStorage` runs that method in a transaction that begins with ``BEGIN IMMEDIATE``
(SQLAlchemy's recipe for pysqlite: the driver's own ``BEGIN`` is switched off for that
connection and a ``begin`` listener emits ours), so the read, the check and the write happen
under SQLite's write lock and the second process reads the state the first one wrote. Every
other transaction keeps the driver's behaviour: Optuna's start-up nests a session inside an
open connection, which would wait for itself if every transaction took the write lock.
"""

from __future__ import annotations

from collections.abc import Sequence
import threading
from typing import Any

import optuna
from optuna.trial import TrialState
import sqlalchemy
from sqlalchemy import event

_SAVED = "optuna_nas_isolation_level"  # a connection's own level while ours is switched in


class SQLiteStorage(optuna.storages.RDBStorage):
    """Optuna's ``RDBStorage`` on a SQLite file, with ``set_trial_state_values`` atomic
    across processes (see the module docstring). Everything else is Optuna's."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._immediate = threading.local()
        event.listen(self.engine, "begin", self._begin)

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state.pop("_immediate", None)
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)  # a new engine, without the listener
        self._immediate = threading.local()
        event.listen(self.engine, "begin", self._begin)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        self._immediate.on = True
        try:
            return super().set_trial_state_values(trial_id, state, values)
        finally:
            self._immediate.on = False

    def _begin(self, conn: sqlalchemy.engine.Connection) -> None:
        record = conn.connection  # the pooled connection: ``info`` lives as long as it does
        dbapi: Any = record.dbapi_connection
        if getattr(self._immediate, "on", False):
            record.info.setdefault(_SAVED, dbapi.isolation_level)
            dbapi.isolation_level = None  # the driver emits no BEGIN; ours follows
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif _SAVED in record.info:  # back to what it was (the driver's default, or a user's)
            dbapi.isolation_level = record.info.pop(_SAVED)
