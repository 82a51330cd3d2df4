"""Run a study up to a total number of finished trials, from any number of workers, resumably.

:func:`run_study` is what every worker of a study calls with the same ``n_trials``: a first run
starts the study, a rerun after a crash continues it, and N concurrent workers share the work.
The study ends with exactly ``n_trials`` finished (``COMPLETE`` or ``PRUNED``) trials.

Exactness with concurrent workers rests on *slots* when the storage has heartbeats: before its
objective runs, a trial claims one of the keys ``slot:0 .. slot:c-1`` on the study's
:func:`~optuna_nas.storage.claim_board` (a storage-arbitrated insert-if-absent). A slot held by
a finished trial is used up; one held by a ``FAIL`` trial (crashed, killed and failed by the
heartbeat, or raised) is taken over by compare-and-set. A worker starts a new trial only while
``finished + running slot holders < n_trials`` and otherwise waits, failing stale trials, until
a slot frees or all are finished. The capacity ``c`` is ``n_trials`` minus the finished trials
that hold no slot (run without heartbeats, or before slots existed). A trial that loses the
last slot in a photo finish with another worker is never evaluated: it ends ``FAIL`` with
``system_attrs["optuna_nas:surplus"]`` (at most one per worker and only in that race; it
counts as neither finished nor lost).

A slot freed by a trial failed as stale (its worker died) is kept for that trial's retry while
the storage's retry callback (``RetryHeartbeatStaleTrialCallback``) is about to queue it: Optuna's
``fail_stale_trials`` fails the trial first and queues the retry after, so a worker reading in
between would otherwise start a new architecture in the slot and leave the killed one unrun.
The slot is kept until the retry exists (a new trial that then finds it free steps aside, and
the next ask runs the retry), or for at most the grace period if none comes (the process that
failed the trial died before queuing it). A trial whose objective raised is marked
``system_attrs["optuna_nas:raised"]`` by its worker: it gets no retry, and its slot is free at
once.

With heartbeats, every worker also fails stale trials in a background thread (every half
heartbeat interval), not only between its own trials as ``Study.optimize`` does, so a trial
whose worker was killed is failed (and its retry enqueued) within about two heartbeats plus
the grace period even while this worker trains a long trial. A worker that sees the study
finished does not leave at once while trials are still ``RUNNING``: it waits, failing stale
trials, until none is left or the grace period plus a heartbeat has passed (a trial killed
while it waited for a slot would otherwise stay ``RUNNING`` for ever), and then fails the
retries queued for such trials (``WAITING``, unrun, no longer needed) as surplus.

Without heartbeats a running trial might belong to a dead worker forever, so nothing is waited
for: the run stops once the study holds ``n_trials`` finished trials, as Optuna's
``MaxTrialsCallback`` does, and concurrent workers may overshoot by up to one trial each.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
import contextlib
import itertools
import threading
import time
from typing import Any
import warnings

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import fail_stale_trials
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_nas import _compat
from optuna_nas._failures import CandidateFailed
from optuna_nas._failures import SetupError
from optuna_nas.storage._claims import claim_board

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
SLOT_ATTR = "optuna_nas:slot"
SURPLUS_ATTR = "optuna_nas:surplus"
RAISED_ATTR = "optuna_nas:raised"

Objective = Callable[[optuna.Trial], Any]

_logger = optuna.logging.get_logger(__name__)


class _Surplus(RuntimeError):
    """Raised inside a trial that found every slot taken; the trial ends FAIL, unevaluated."""


def count_finished(study: optuna.Study) -> int:
    """The number of ``COMPLETE`` and ``PRUNED`` trials of ``study``."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_study(
    study: optuna.Study,
    objective: Objective,
    *,
    n_trials: int,
    catch: Sequence[type[Exception]] = (),
    poll_interval: float = 1.0,
    max_consecutive_failures: int = 10,
    timeout: float | None = None,
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
) -> int:
    """Run trials until ``study`` holds ``n_trials`` finished trials; return how many ran here.

    Args:
        study: The study, opened with ``load_if_exists=True`` by every worker.
        objective: The objective, e.g. :class:`~optuna_nas.objective.NASObjective`.
        n_trials: The total number of finished trials wanted (not the number to add).
        catch: Exceptions that fail a trial without stopping the worker (``Study.optimize``),
            in addition to :class:`~optuna_nas.objective.CandidateFailed` (a diverged or
            out-of-memory candidate), which is always caught. A ``SetupError`` (bad data found
            while loading, :class:`~optuna_nas.data.DataError`; a study made with another
            space or other objectives) fails its trial and stops the worker even when
            ``ValueError`` is caught. An objective with a ``check_study(study)`` method (as
            :class:`~optuna_nas.objective.NASObjective` has) is checked before any trial.
        poll_interval: Seconds between checks while waiting for other workers' trials.
        max_consecutive_failures: Give up (``RuntimeError``) when this many trials of this
            worker failed in a row, instead of failing forever on a broken set-up.
        timeout: Seconds after which this worker starts no new trial (the running one
            finishes), as ``Study.optimize``'s ``timeout``; ``None``: no limit.
        callbacks: Called with ``(study, frozen_trial)`` after each trial this worker ran, as
            ``Study.optimize``'s ``callbacks``.
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 0:
        raise ValueError(f"`n_trials` must be an int >= 0, but got {n_trials!r}.")
    if not poll_interval > 0:
        raise ValueError(f"`poll_interval > 0` must hold, but got {poll_interval=}.")
    if isinstance(max_consecutive_failures, bool) or max_consecutive_failures < 1:
        raise ValueError(
            f"`max_consecutive_failures >= 1` must hold, but got {max_consecutive_failures=}."
        )
    if timeout is not None and not timeout > 0:
        raise ValueError(f"`timeout` must be None or > 0, but got {timeout=}.")
    deadline = None if timeout is None else time.monotonic() + timeout
    slots = _compat.is_heartbeat_enabled(_compat.study_storage(study))
    check = getattr(objective, "check_study", None)
    if callable(check):  # e.g. NASObjective: refuse a study made with another set-up up front
        check(study)
    bad_setup: list[SetupError] = []
    seen: list[list[FrozenTrial]] = []  # the loop's latest read of the trials, for the slot
    ran_ids: list[int] = []  # the trial this worker ran last, judged on the next read
    kept = _KeptForRetry(study) if slots else None
    wrapped = _stop_on_setup_error(
        _with_slot(objective, n_trials, poll_interval, seen, kept) if kept else objective,
        bad_setup,
        ran_ids,
    )
    watcher = _failing_stale_trials(study) if slots else contextlib.nullcontext()
    with watcher:
        ran = failures = 0
        while True:
            trials = study.get_trials(deepcopy=False)
            last = _trial_by_id(trials, ran_ids.pop()) if ran_ids else None
            # A surplus trial found the study full: the checks below see it finished.
            if last is not None and not last.system_attrs.get(SURPLUS_ATTR):
                failures = failures + 1 if last.state is TrialState.FAIL else 0
                if failures >= max_consecutive_failures:
                    raise RuntimeError(
                        f"{failures} trials of this worker failed in a row (the last is trial "
                        f"{last.number}; see the log for its error); stopping."
                    )
            finished = sum(t.state in FINISHED for t in trials)
            if deadline is not None and time.monotonic() >= deadline:
                return ran
            if finished >= n_trials:
                if slots:
                    _settle(study, poll_interval)
                return ran
            held = sum(_holds_slot(t) for t in trials) + len(kept.slots(trials)) if kept else 0
            if slots and finished + held >= n_trials:
                _fail_stale(study)
                time.sleep(poll_interval)
                continue
            seen[:] = [trials]
            try:
                study.optimize(
                    wrapped,
                    n_trials=1,
                    catch=(*catch, CandidateFailed, _Surplus),
                    # No callback of ours: the trial's outcome comes with the next read of the
                    # trials (Optuna reads the trial once more for callbacks).
                    callbacks=list(callbacks) or None,
                )
            except Exception as err:
                if not _finished_elsewhere(study, ran_ids, err):
                    if isinstance(err, UnboundLocalError) and isinstance(
                        err.__context__, Exception
                    ):
                        # Optuna 5.1's _run_trial: when telling the result and re-reading the
                        # trial both fail (the storage went away), its `finally` reads an
                        # unbound name and buries the storage's own error; raise that one.
                        raise err.__context__ from None
                    raise
            ran += 1
            if bad_setup:  # the set-up's fault: every further trial would fail the same way
                raise bad_setup[0]


def _finished_elsewhere(study: optuna.Study, ran_ids: list[int], err: BaseException) -> bool:
    """Whether ``err`` from Optuna's ``_run_trial`` says that the trial this worker ran was
    finished by another process before its tell (failed as stale when its heartbeats came
    late); if so, warn: that process stored the outcome and queued any retry, so this worker
    goes on. Optuna raises ``UpdateFinishedTrialError`` when the trial finished during the
    tell, and ``ValueError('Cannot tell a FAIL trial.')`` (under an ``AssertionError`` of its
    log step in Optuna 5) when it had finished before; the trial's stored state decides."""
    chain: BaseException | None = err
    told_late = False
    while chain is not None and not told_late:
        told_late = isinstance(chain, UpdateFinishedTrialError) or (
            isinstance(chain, ValueError) and str(chain).startswith("Cannot tell a ")
        )
        chain = chain.__context__
    if not told_late or not ran_ids:
        return False
    storage = _compat.study_storage(study)
    try:
        trial = storage.get_trial(ran_ids[-1])
    except Exception:  # the storage went away: the original error is the one to see
        return False
    if not trial.state.is_finished():
        return False
    _logger.warning(
        f"Trial {trial.number} was finished ({trial.state.name}) by another worker before "
        "this one could tell its result (failed as stale: were its heartbeats late?); the "
        "result is dropped, any retry runs, and this worker goes on."
    )
    return True


def _trial_by_id(trials: Sequence[FrozenTrial], trial_id: int) -> FrozenTrial | None:
    for t in reversed(trials):  # the newest trials are last
        if _compat.trial_id(t) == trial_id:
            return t
    return None


def _stop_on_setup_error(
    objective: Objective, found: list[SetupError], ran_ids: list[int]
) -> Objective:
    def run(trial: optuna.Trial) -> Any:
        ran_ids[:] = [_compat.trial_id(trial)]
        try:
            return objective(trial)
        except SetupError as e:
            found.append(e)
            raise

    return run


def _with_slot(
    objective: Objective,
    n_trials: int,
    poll_interval: float,
    seen: list[list[FrozenTrial]],
    kept: _KeptForRetry,
) -> Objective:
    def run(trial: optuna.Trial) -> Any:
        hint = seen.pop() if seen else None
        storage, me = _compat.study_storage(trial.study), _compat.trial_id(trial)
        if not _claim_slot(trial, n_trials, poll_interval, hint, kept):
            storage.set_trial_system_attr(me, SURPLUS_ATTR, True)
            raise _Surplus(
                f"no free slot of the {n_trials} for this trial: all taken by other trials, or "
                "the free one left to a waiting retry of a failed trial"
            )
        try:
            return objective(trial)
        except optuna.TrialPruned:
            raise
        except BaseException:
            # Failed here, not as stale: no retry will come, so its slot is free at once.
            try:
                storage.set_trial_system_attr(me, RAISED_ATTR, True)
            except Exception:  # the storage went away: the objective's error is the one to see
                _logger.debug("marking a failed trial failed; skipped", exc_info=True)
            raise

    return run


def _slot_of(t: FrozenTrial) -> int | None:
    value = t.system_attrs.get(SLOT_ATTR)
    if isinstance(value, list) and len(value) == 2 and value[0] == _compat.trial_id(t):
        return int(value[1])
    return None  # no slot, or one copied from a failed trial by the retry callback


def _holds_slot(t: FrozenTrial) -> bool:
    return t.state is TrialState.RUNNING and _slot_of(t) is not None


class _KeptForRetry:
    """The slots of trials failed as stale whose retry is about to be queued (see the module's
    docstring); each is kept for at most the grace period from when this worker first saw it."""

    def __init__(self, study: optuna.Study) -> None:
        self._storage = _compat.study_storage(study)
        self._patience = _stale_after(study)
        self._first_seen: dict[int, float] = {}

    def slots(self, trials: Sequence[FrozenTrial]) -> set[int]:
        """The slots kept, as ``trials`` show them (a slot another trial finished in is
        nobody's to keep)."""
        waiting: dict[int, FrozenTrial] = {}
        retried: set[int] = set()
        used: set[int] = set()
        for t in trials:
            retried.update(t.system_attrs.get("retry_history", ()))
            slot = _slot_of(t)
            if slot is None:
                continue
            if t.state in FINISHED:
                used.add(slot)  # used up (by the failed trial's retry, or a takeover)
            elif t.state is TrialState.FAIL and not (
                t.system_attrs.get(RAISED_ATTR) or t.system_attrs.get(SURPLUS_ATTR)
            ):
                waiting[t.number] = t  # failed as stale (a running trial holds its own slot)
        now = time.monotonic()
        kept: set[int] = set()
        for number, t in waiting.items():
            slot = _slot_of(t)
            if number in retried or slot in used or not _compat.retry_follows(self._storage, t):
                continue
            if now - self._first_seen.setdefault(number, now) < self._patience:
                kept.add(slot)  # type: ignore[arg-type]
        return kept


def _claim_slot(
    trial: optuna.Trial,
    n_trials: int,
    poll_interval: float,
    hint: list[FrozenTrial] | None = None,
    kept: _KeptForRetry | None = None,
) -> bool:
    """Claim a free slot of the ``n_trials`` for ``trial``; False if all are finished, or if
    the free slot is left to a failed trial's retry waiting to be asked. A slot ``kept`` for a
    retry about to be queued is not free (except to a retry).

    ``hint`` is the trials as the caller read them just before this trial was asked (saving
    a read of the history per trial). It may be stale, which is safe: the claim board decides
    who holds a slot, and a pass that finds no free slot with it is redone at once on a fresh
    read before any waiting.
    """
    study = trial.study
    storage, me = _compat.study_storage(study), _compat.trial_id(trial)
    study_id = _compat.study_id(study)
    board = claim_board(storage)
    started = _compat.started_system_attrs(trial)
    mine_is_retry = "failed_trial" in started
    if mine_is_retry and started.get("retry_history"):
        # Two processes failing the same stale trial at once can both queue a retry (on SQLite
        # both see it RUNNING and both fail it): only the first retry of a failed trial runs.
        replaced = started["retry_history"][-1]
        if board.claim(study_id, f"retry:{replaced}", me) != me:
            return False
    while True:
        stale_view = hint is not None
        trials = hint if hint is not None else study.get_trials(deepcopy=False)
        hint = None
        taken: dict[int, FrozenTrial] = {}
        unslotted = 0  # finished without a slot: run without heartbeats, or before slots
        for t in trials:
            slot = _slot_of(t)
            if slot is None:
                unslotted += t.state in FINISHED
                continue
            # A running trial names the slot it tries before its claim; one that lost the
            # claim still names it, so the finished owner outranks it (else two such trials
            # would each see the other's slot as open and wait forever).
            mine_or_failed = t.state is TrialState.FAIL or _compat.trial_id(t) == me
            if not mine_or_failed and (slot not in taken or taken[slot].state not in FINISHED):
                taken[slot] = t
        capacity = n_trials - unslotted
        if sum(t.state in FINISHED for t in taken.values()) >= capacity:
            if stale_view:
                continue  # decide "all finished" on a fresh read only
            return False
        # A failed trial's retry (Optuna's RetryFailedTrialCallback) waits to be asked: a free
        # slot goes to it, not to a new trial that happens to have been asked first (a rerun
        # started before a killed trial was stale would otherwise run a new architecture and
        # leave the retry as surplus).
        retry_waiting = any(
            t.state is TrialState.WAITING and "failed_trial" in t.system_attrs for t in trials
        )
        keep = kept.slots(trials) if kept is not None and not mine_is_retry else set()
        # Lazily: n_trials may be huge (a run bounded by its timeout), the slots in use few.
        free = (slot for slot in range(capacity) if slot not in taken and slot not in keep)
        # Trials asked at about the same time would all try the lowest free slot, and each
        # loser pays a write, a claim and a read per slot it tries: start at a free slot of
        # the first few picked by the trial id (every free slot is still tried, in turn).
        spread = 1 + sum(t.state is TrialState.RUNNING for t in trials)
        head = list(itertools.islice(free, spread))
        if head and retry_waiting and not mine_is_retry:
            if stale_view:
                continue  # step aside on a fresh read only
            return False
        start = me % len(head) if head else 0
        for slot in itertools.chain(head[start:], head[:start], free):
            storage.set_trial_system_attr(me, SLOT_ATTR, [me, slot])  # before the claim
            owner_id = board.claim(study_id, f"slot:{slot}", me)
            if owner_id == me:
                return True
            try:
                owner: FrozenTrial | None = storage.get_trial(owner_id)
            except KeyError:
                owner = None
            live = owner is not None and _slot_of(owner) == slot
            if (not live or owner.state is TrialState.FAIL) and board.take_over(  # type: ignore[union-attr]
                study_id, f"slot:{slot}", owner_id, me
            ):
                return True
        if stale_view:
            continue  # the view was the caller's: look again before waiting
        _fail_stale(study)
        time.sleep(poll_interval)


def _stale_after(study: optuna.Study) -> float:
    """Seconds without a heartbeat after which ``study``'s storage fails a running trial."""
    storage: Any = _compat.study_storage(study)
    interval = storage.get_heartbeat_interval()
    grace = getattr(storage, "grace_period", None)  # RDBStorage, JournalHeartbeatStorage
    if grace is None:  # Optuna's _CachedStorage over an RDB
        grace = getattr(_compat.uncached_storage(storage), "grace_period", None)
    return float(grace if grace is not None else 2 * interval)


@contextlib.contextmanager
def _failing_stale_trials(study: optuna.Study) -> Iterator[None]:
    """Fail stale trials every half heartbeat interval in a background thread meanwhile."""
    period = _compat.study_storage(study).get_heartbeat_interval() / 2  # type: ignore[attr-defined]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(period):
            try:
                _fail_stale(study)
            except Exception:  # a storage hiccup: the next round (or the main loop) retries
                _logger.debug("failing stale trials failed; retrying later", exc_info=True)

    thread = threading.Thread(target=watch, name="optuna-nas-stale-trials", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def _settle(study: optuna.Study, poll_interval: float) -> None:
    """Wait until no trial of the finished ``study`` is ``RUNNING`` (failing stale ones), at
    most the grace period plus a heartbeat; then fail the unrun retries left ``WAITING``."""
    interval = _compat.study_storage(study).get_heartbeat_interval()  # type: ignore[attr-defined]
    give_up = time.monotonic() + _stale_after(study) + interval + 2 * poll_interval
    told = False
    while True:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            break
        if time.monotonic() >= give_up:
            _logger.warning(
                f"The study has its trials, but trial(s) {[t.number for t in running]} are "
                "still RUNNING with live heartbeats; leaving them to their workers."
            )
            return
        if not told:
            _logger.info(
                f"The study has its trials; waiting for trial(s) {[t.number for t in running]} "
                "still RUNNING (a worker killed meanwhile leaves one until its heartbeat is "
                f"{_stale_after(study):.0f} s stale)."
            )
            told = True
        _fail_stale(study)
        time.sleep(poll_interval)
    storage = _compat.study_storage(study)
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if "failed_trial" not in t.system_attrs:
            continue  # enqueued by the user, for a later, longer run: not ours to drop
        # Take it as Study.ask would (only one process wins a WAITING trial), then fail it.
        number = _compat.trial_id(t)
        try:
            if storage.set_trial_state_values(number, TrialState.RUNNING):
                storage.set_trial_system_attr(number, SURPLUS_ATTR, True)
                storage.set_trial_state_values(number, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue  # another worker settling the study took and failed it meanwhile


def _fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fail_stale_trials(study)
