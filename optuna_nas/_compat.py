"""Private Optuna symbols optuna_nas relies on where no public API does the job, in one place.

Each helper names the private parts it uses and keeps the public behaviour it stands in for; a
storage it does not know gets the public API. Checked against Optuna 5.0 and 5.1.
"""

from __future__ import annotations

from collections.abc import Mapping
import json
import sqlite3
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite


def _rdb_backend(storage: BaseStorage) -> RDBStorage | None:
    """The RDB behind ``storage`` (bare, or under Optuna's cache), else None."""
    if isinstance(storage, _CachedStorage):
        storage = storage._backend
    return storage if isinstance(storage, RDBStorage) else None


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
    backend = _rdb_backend(trial.study._storage) if type(trial) is optuna.Trial else None
    if backend is None or len(attrs) < 2:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return
    trial_id = trial._trial_id
    dialect = backend.engine.name
    # Optuna's own set_trial_user_attr ignores integrity errors (a concurrent identical write).
    with _create_scoped_session(backend.scoped_session, True) as session:
        if dialect == "postgresql" or (
            dialect == "sqlite" and sqlite3.sqlite_version_info >= (3, 24, 0)
        ):
            # One trial lookup and one multi-row upsert: the statement Optuna's
            # _set_trial_attr_without_commit runs per key on these dialects.
            found = models.TrialModel.find_or_raise_by_id(trial_id, session)
            backend.check_trial_is_updatable(trial_id, found.state)
            insert = (postgresql if dialect == "postgresql" else sqlite).insert(
                models.TrialUserAttributeModel
            )
            rows = [
                {"trial_id": trial_id, "key": k, "value_json": json.dumps(v)}
                for k, v in attrs.items()
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
                    session, models.TrialUserAttributeModel, trial_id, key, value
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
