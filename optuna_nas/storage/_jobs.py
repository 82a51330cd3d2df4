"""One claim protocol for every job that only one worker of a study may run.

A *job* is work done once per study, outside any single trial, whose result every worker then
reads from the study: training the weight-sharing supernet, a DARTS search. :func:`run_job`
runs one:

1. **Done?** ``done()`` reads the job's recorded result from the study; if there is one, it is
   returned and nothing is claimed.
2. **Claim.** ``claim_job`` on the study's :func:`~optuna_nas.storage.claim_board`, an
   insert-if-absent that the storage arbitrates (a primary key in SQL, ``SET NX`` in Redis, a
   lock around a journal write). The claim names its owner: a random token, the host (and PID
   namespace), the pid, the heartbeat interval and a heartbeat count.
3. **Run.** The owner checks ``done()`` again (the previous owner may have finished between
   1 and 2), starts a heartbeat thread that increments the count every ``heartbeat_s`` with a
   compare-and-set on (token, count), and calls ``work(lease)``. Then it renews the claim once
   more, calls ``record(value)`` -- which must write the result where ``done()`` finds it --
   and only then stops the heartbeat thread and releases the claim.
4. **Wait or take over.** Every other worker polls every ``poll_s``. It presumes the owner dead
   when the owner's pid is gone on the same host (same host name and PID namespace; a zombie
   counts as gone), or when it has seen no new heartbeat for ``2 * heartbeat_s + grace_s``
   (two missed beats and the grace period, measured on the waiter's own monotonic clock, so no
   two machines' clocks are ever compared). It then takes the claim over with a
   compare-and-set on the (token, count) it observed: of several waiters exactly one wins, and
   none wins if the owner beat meanwhile.

Guarantees:

* At most one claim on a key exists at any moment, and a worker runs ``work`` only while its
  claim is alive; after a ``kill -9`` another worker takes over within one poll (same host) or
  within ``2 * heartbeat_s + grace_s + poll_s`` of the killed worker's last beat (any host).
* A finished job is never run again: the result is recorded before the claim is released, and
  every worker checks ``done()`` after winning a claim.
* If ``work`` raises, the claim is released at once (so another worker may try) and the error
  propagates.

Not guaranteed:

* A worker presumed dead that is in fact alive (its heartbeat thread blocked longer than
  ``2 * heartbeat_s + grace_s``, e.g. a stalled storage) learns that it lost the claim at its
  next beat; ``work`` sees it through :attr:`JobLease.lost` / :meth:`JobLease.check`, and
  :func:`run_job` then discards its value and waits for the new owner. A stall between the
  final renewal and ``record`` is not covered, so ``record`` must tolerate a rare second writer
  (both write a result of the same job).
* A worker that hangs while its heartbeat thread keeps beating holds the claim for as long as
  it hangs; liveness is of the process, not of its progress.
* The pid check needs POSIX; elsewhere only heartbeats decide.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import math
import os
import threading
import time
from typing import TypeVar
import uuid

import optuna
from optuna.storages import BaseStorage

from optuna_nas.storage._claims import JobOwner
from optuna_nas.storage._claims import claim_board
from optuna_nas.storage._filelock import host_identity
from optuna_nas.storage._filelock import pid_alive

R = TypeVar("R")
W = TypeVar("W")

#: Default seconds between heartbeats of a job's owner.
DEFAULT_HEARTBEAT_S = 30.0

_logger = optuna.logging.get_logger(__name__)


class JobLost(RuntimeError):
    """This worker's claim on a job was taken over (it was presumed dead); stop the work."""


_host = host_identity  # a module attribute: tests stand in another host for job owners


class JobLease:
    """A held job claim and its heartbeat thread (made and ended by :func:`run_job`)."""

    def __init__(self, storage: BaseStorage, study_id: int, key: str, owner: JobOwner) -> None:
        self.key = key
        self._board = claim_board(storage)
        self._study_id = study_id
        self._owner = owner
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread = threading.Thread(
            target=self._beat_loop, name=f"optuna-nas-heartbeat {key}", daemon=True
        )

    @property
    def token(self) -> str:
        return self._owner.token

    @property
    def lost(self) -> bool:
        """True once another worker has taken the claim over."""
        return self._lost.is_set()

    def check(self) -> None:
        """Raise :class:`JobLost` if the claim was taken over (call it between steps of work)."""
        if self.lost:
            raise JobLost(f"the claim on job {self.key!r} was taken over by another worker")

    def renew(self) -> None:
        """Beat now; raise :class:`JobLost` if the claim is no longer this worker's."""
        with self._mutex:
            if not self._lost.is_set():
                beat = dataclasses.replace(
                    self._owner, beat=self._owner.beat + 1, beat_at=time.time()
                )
                if self._board.replace_job(self._study_id, self.key, self._owner, beat):
                    self._owner = beat
                else:
                    self._lost.set()
        self.check()

    def _beat_loop(self) -> None:
        while not self._stop.wait(self._owner.heartbeat_s):
            try:
                self.renew()
            except JobLost:
                _logger.warning(f"Lost the claim on job {self.key!r}: another worker took over.")
                return
            except Exception as err:  # a storage hiccup: keep beating; waiters judge
                _logger.warning(f"Heartbeat of job {self.key!r} failed ({err!r}); retrying.")

    def _start(self) -> None:
        self._thread.start()

    def _end(self) -> None:
        """Stop the heartbeat thread, then release the claim if it is still this worker's."""
        self._stop.set()
        self._thread.join()
        with self._mutex:
            if not self._lost.is_set():
                self._board.replace_job(self._study_id, self.key, self._owner, None)


def run_job(
    storage: BaseStorage,
    study_id: int,
    key: str,
    *,
    done: Callable[[], R | None],
    work: Callable[[JobLease], W],
    record: Callable[[W], R],
    heartbeat_s: float = DEFAULT_HEARTBEAT_S,
    grace_s: float | None = None,
    poll_s: float = 1.0,
) -> R:
    """Run job ``key`` of study ``study_id`` once across all workers; return its result.

    See the module docstring for the protocol and what it guarantees.

    Args:
        storage: The study's storage (its claim board arbitrates).
        study_id: The study.
        key: The job's name in the study (at most 255 characters).
        done: Reads the recorded result; None while the job has none.
        work: Does the job; may call ``lease.check()`` to stop early once the claim is lost.
        record: Records ``work``'s value in the study (so that ``done()`` finds it) and
            returns the result; called only while the claim is held.
        heartbeat_s: Seconds between the owner's heartbeats.
        grace_s: Extra seconds of silence tolerated after two missed heartbeats (default
            ``heartbeat_s / 2``).
        poll_s: Seconds between a waiting worker's checks.
    """
    for name, seconds in (("heartbeat_s", heartbeat_s), ("poll_s", poll_s)):
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"`{name}` must be finite and > 0, but got {name}={seconds!r}.")
    grace = heartbeat_s / 2 if grace_s is None else grace_s
    if not (isinstance(grace, (int, float)) and math.isfinite(grace) and grace >= 0):
        raise ValueError(f"`grace_s` must be None or finite and >= 0, but got {grace_s=}.")
    if not key or len(key) > 255:
        raise ValueError(f"`key` must have 1 to 255 characters, but got {key!r}.")
    board = claim_board(storage)
    host, namespace = _host()
    seen: dict[str, tuple[int, float]] = {}  # holder token -> (last beat seen, when it changed)
    while True:
        result = done()
        if result is not None:
            return result
        mine = JobOwner(
            token=uuid.uuid4().hex,
            host=host,
            pid_namespace=namespace,
            pid=os.getpid(),
            heartbeat_s=float(heartbeat_s),
            beat=0,
            beat_at=time.time(),
        )
        holder = board.claim_job(study_id, key, mine)
        if holder.token != mine.token:
            why = _presumed_dead(holder, seen, host, namespace, grace)
            if why is None or not board.replace_job(study_id, key, holder, mine):
                time.sleep(poll_s)
                continue
            _logger.warning(
                f"Took over job {key!r} of study {study_id} from pid {holder.pid} on "
                f"{holder.host}: {why}."
            )
        lease = JobLease(storage, study_id, key, mine)
        lease._start()
        try:
            result = done()  # the previous owner may have recorded it and released meanwhile
            if result is not None:
                return result
            value = work(lease)
            lease.renew()
            return record(value)
        except JobLost:
            _logger.warning(f"Job {key!r}: this worker's claim was taken over; waiting instead.")
        finally:
            lease._end()


def _presumed_dead(
    holder: JobOwner,
    seen: dict[str, tuple[int, float]],
    host: str,
    namespace: str,
    grace: float,
) -> str | None:
    """Why ``holder`` is presumed dead, or None while it looks alive (updates ``seen``)."""
    if (holder.host, holder.pid_namespace) == (host, namespace) and not pid_alive(holder.pid):
        return f"its process {holder.pid} is gone"
    now = time.monotonic()
    beat, since = seen.get(holder.token, (None, now))
    if beat != holder.beat:
        seen[holder.token] = (holder.beat, now)
        return None
    silent = now - since
    if silent > 2 * holder.heartbeat_s + grace:
        return (
            f"no heartbeat for {silent:.1f} s (interval {holder.heartbeat_s:g} s, "
            f"grace {grace:g} s)"
        )
    return None
