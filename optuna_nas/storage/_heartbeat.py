"""Heartbeats for storages that have none of their own (Optuna 5.1): the journal storage and
Optuna's gRPC storage proxy.

:class:`optuna.storages.RDBStorage` records heartbeats in a table and
:func:`optuna.storages.fail_stale_trials` (called by ``Study.optimize`` before every trial)
fails ``RUNNING`` trials whose heartbeat is older than the grace period, then runs the stale-trial
callback (e.g. :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback`, which enqueues the
same parameters again). :class:`AttrHeartbeat` gives any storage the same interface (Optuna's
private ``BaseHeartbeat``, through :class:`optuna_nas._compat.Heartbeat`) on top of trial system
attrs, so Optuna's own optimize loop, ``fail_stale_trials`` and the retry callback work on it
unchanged. :class:`JournalHeartbeatStorage` is the journal storage with it; the gRPC proxy's
client (:class:`~optuna_nas.storage.GrpcHeartbeatStorage`) is the other user.

A heartbeat is the trial system attr ``optuna_nas:heartbeat = [trial_id, seconds]``. The trial
id is part of the value because the retry callback copies system attrs into the re-enqueued
trial: a copied heartbeat names another trial and is ignored. The clock is one clock for all
workers where the storage has one (the Redis server's ``TIME``, the gRPC proxy server's clock,
as RDB uses the database clock) and the local wall clock for the journal file backend, whose
workers must keep their clocks in step (NTP) to well within the grace period.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
import time
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.storages.journal import BaseJournalBackend
from optuna.storages.journal import JournalRedisBackend
from optuna.storages.journal import JournalStorage
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_nas import _compat

HEARTBEAT_KEY = "optuna_nas:heartbeat"


StaleCallback = Callable[[optuna.Study, FrozenTrial], None]


class AttrHeartbeat(BaseStorage, _compat.Heartbeat):
    """RDB-style heartbeats kept in a trial system attr, for a storage class that mixes this in
    after its own base (``class S(SomeStorage, AttrHeartbeat)``) and calls
    :meth:`_init_heartbeat`. Subclasses define :meth:`_now`, the clock all workers share."""

    heartbeat_interval: int | None
    grace_period: int | None
    heartbeat_stale_trial_callback: StaleCallback | None

    def _init_heartbeat(
        self,
        heartbeat_interval: int | None,
        grace_period: int | None,
        heartbeat_stale_trial_callback: StaleCallback | None,
    ) -> None:
        for name, value in (
            ("heartbeat_interval", heartbeat_interval),
            ("grace_period", grace_period),
        ):
            if value is not None and value <= 0:
                raise ValueError(f"`{name}` must be None or positive, but got {name}={value}.")
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.heartbeat_stale_trial_callback = heartbeat_stale_trial_callback

    @abc.abstractmethod
    def _now(self) -> float:
        """Seconds since the epoch on the clock every worker of the storage reads."""

    def record_heartbeat(self, trial_id: int) -> None:
        write_heartbeat(self, trial_id, self._now())

    def stale_trial_ids(self, study_id: int) -> list[int]:
        grace = self.stale_after()
        return [] if grace is None else find_stale(self, study_id, grace, self._now())

    def stale_after(self) -> float | None:
        """Seconds without a heartbeat after which a running trial is stale (None: off)."""
        interval = self.heartbeat_interval
        if interval is None:
            return None
        return self.grace_period if self.grace_period is not None else 2 * interval

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> StaleCallback | None:
        return self.heartbeat_stale_trial_callback


def write_heartbeat(storage: BaseStorage, trial_id: int, now: float) -> bool:
    """Stamp ``trial_id``'s heartbeat with ``now``; False if the trial has finished (another
    worker failed it as stale: it takes no heartbeat, and its tell says so)."""
    try:
        storage.set_trial_system_attr(trial_id, HEARTBEAT_KEY, [trial_id, now])
    except UpdateFinishedTrialError:
        return False
    return True


def find_stale(storage: BaseStorage, study_id: int, grace: float, now: float) -> list[int]:
    """Ids of ``study_id``'s running trials whose own heartbeat is older than ``grace``."""
    stale = []
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        beat: Any = trial.system_attrs.get(HEARTBEAT_KEY)
        trial_id = _compat.trial_id(trial)
        if isinstance(beat, list) and beat[0] == trial_id and now - beat[1] > grace:
            stale.append(trial_id)
    return stale


class JournalHeartbeatStorage(JournalStorage, AttrHeartbeat):
    """A :class:`~optuna.storages.journal.JournalStorage` with RDB-style heartbeats.

    Args:
        log_storage: The journal backend (file or Redis).
        heartbeat_interval: Seconds between heartbeats of a running trial; ``None``: off.
        grace_period: Seconds without a heartbeat before a running trial is stale
            (default ``2 * heartbeat_interval``, as in ``RDBStorage``).
        heartbeat_stale_trial_callback: Called with each trial failed for being stale.
    """

    def __init__(
        self,
        log_storage: BaseJournalBackend,
        *,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
        heartbeat_stale_trial_callback: StaleCallback | None = None,
    ) -> None:
        self._init_heartbeat(heartbeat_interval, grace_period, heartbeat_stale_trial_callback)
        super().__init__(log_storage)

    def _now(self) -> float:
        backend = _compat.journal_backend(self)
        if isinstance(backend, JournalRedisBackend):
            seconds, micros = _compat.redis_client(backend).time()
            return float(seconds) + float(micros) / 1e6
        return time.time()
