"""No architecture evaluated twice, even by workers that draw it at the same moment.

Protocol, run by a trial after it has recorded ``user_attrs["canonical_hash"] = h``:

1. **Already done?** If a ``COMPLETE`` (else ``PRUNED``) trial of the study has hash ``h``, the
   trial is a duplicate of it: nothing is claimed or trained.
2. **Claim.** ``claim_board(storage).claim(study, "arch:" + h, trial)`` — an insert-if-absent
   that the storage arbitrates (a primary key in SQL, ``SET NX`` in Redis, a lock file around a
   journal write; see :mod:`optuna_nas.storage._claims`). Exactly one of any number of concurrent
   claimants gets ownership back; it evaluates the architecture.
3. **Wait.** Every other claimant learns the owner's trial id and polls that trial's state in
   the storage (running :func:`optuna.storages.fail_stale_trials` meanwhile, so a dead owner is
   failed after its heartbeat's grace period). ``COMPLETE`` or ``PRUNED``: copy it.
4. **Take over.** If the owner ended ``FAIL`` (crashed, killed, raised) or does not hold ``h``
   (a claim left by a deleted study), the waiter tries ``take_over(old=owner, new=self)``, a
   compare-and-set in the storage: one waiter wins and evaluates, the others go back to 3 with
   the new owner.

Step 1 reads the study's whole history, a storage round trip that costs more than the rest of
a cheap trial's bookkeeping. A worker that runs many trials (``NASObjective``) instead takes
one snapshot, :func:`finished_by_hash`, on its first trial and passes it as ``finished``:
trials finished after the snapshot were evaluated under claims (or copied from a trial that
was), so step 2 finds them.

Why it is race-free: ownership changes only through the two storage-atomic operations, so at
any moment one trial owns ``h``, and a trial evaluates only while it owns ``h``; an owner loses
``h`` only after it is ``FAIL`` (finished: it can no longer report values). A completed
evaluation is never repeated because owners are replaced only when they failed. The check in
step 1 is an optimisation (and covers trials recorded before claims existed); correctness rests
on steps 2-4 alone.

A duplicate copies the source's values and the user attrs it does not have yet (metrics,
validation curve), in single-objective studies its intermediate values, and records
``user_attrs["duplicate_of"]`` = the number of the trial that did the evaluation. A duplicate of
a pruned trial is pruned too: the pruner already judged that architecture.
"""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Mapping
from collections.abc import Sequence
import hashlib
import time
import warnings

import optuna
from optuna.storages import fail_stale_trials
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_nas import _compat
from optuna_nas._compat import set_trial_user_attrs
from optuna_nas.storage._claims import claim_board

HASH_ATTR = "canonical_hash"
_MISSING = object()
_MAX_KEY = 200  # claim keys live in a VARCHAR(255) column
DUPLICATE_OF = "duplicate_of"

_logger = optuna.logging.get_logger(__name__)


class DuplicateWaitTimeout(RuntimeError):
    """The trial evaluating the same architecture did not finish within the timeout."""


def find_or_claim(
    trial: optuna.Trial,
    canonical_hash: str,
    *,
    timeout: float | None = None,
    poll_interval: float = 1.0,
    finished: Mapping[str, FrozenTrial] | None = None,
) -> FrozenTrial | None:
    """Decide whether ``trial`` evaluates the architecture with hash ``canonical_hash``.

    Records ``user_attrs["canonical_hash"]`` if the trial does not have it yet. Step 1 looks the
    hash up in ``finished`` (a :func:`finished_by_hash` snapshot of the study) if given, else
    in the study's trials read now.

    Returns:
        ``None`` if ``trial`` now owns the architecture and must evaluate it; otherwise the
        finished (``COMPLETE`` or ``PRUNED``) trial whose result it should copy
        (:func:`copy_duplicate`).

    Raises:
        DuplicateWaitTimeout: the owner was still running after ``timeout`` seconds
            (``None``: wait as long as it runs; with heartbeats a dead owner is failed).
    """
    if not isinstance(canonical_hash, str) or not canonical_hash:
        raise ValueError(f"`canonical_hash` must be a non-empty str, but got {canonical_hash!r}.")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"`timeout` must be None or > 0, but got {timeout=}.")
    if not poll_interval > 0:
        raise ValueError(f"`poll_interval > 0` must hold, but got {poll_interval=}.")
    study = trial.study
    if trial.user_attrs.get(HASH_ATTR) != canonical_hash:
        trial.set_user_attr(HASH_ATTR, canonical_hash)
    if finished is None:
        finished = finished_by_hash(study)
    done = finished.get(canonical_hash)
    if done is not None:
        return done

    storage, study_id, me = (
        _compat.study_storage(study),
        _compat.study_id(study),
        _compat.trial_id(trial),
    )
    board = claim_board(storage)
    key = "arch:" + canonical_hash
    if len(key) > _MAX_KEY:
        key = "arch-sha256:" + hashlib.sha256(canonical_hash.encode()).hexdigest()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        owner_id = board.claim(study_id, key, me)
        if owner_id == me:
            return None
        owner = _get_trial(storage, owner_id)
        if owner is not None and owner.user_attrs.get(HASH_ATTR) == canonical_hash:
            owner = _wait_finished(study, owner, deadline, poll_interval)
            if owner.state in (TrialState.COMPLETE, TrialState.PRUNED):
                return owner
        if board.take_over(study_id, key, owner_id, me):
            return None


def copy_duplicate(
    trial: optuna.Trial, source: FrozenTrial, *, keep: Collection[str] = ()
) -> float | Sequence[float]:
    """Make ``trial`` a duplicate of the finished ``source``; return the values to report.

    Copies ``source``'s user attrs onto ``trial`` (overwriting, e.g., a partial curve that a
    retried trial inherited) except the keys in ``keep``, which ``trial`` computed itself.
    Raises :class:`optuna.TrialPruned` if ``source`` was pruned.
    """
    if source.state not in (TrialState.COMPLETE, TrialState.PRUNED):
        raise ValueError(
            f"`source` must be a COMPLETE or PRUNED trial, but trial {source.number} is "
            f"{source.state.name}."
        )
    original = source.user_attrs.get(DUPLICATE_OF, source.number)
    own = trial.user_attrs
    copied = {
        key: value
        for key, value in source.user_attrs.items()
        if key != DUPLICATE_OF and key not in keep and own.get(key, _MISSING) != value
    }
    set_trial_user_attrs(trial, {**copied, DUPLICATE_OF: original})  # one transaction on an RDB
    if len(trial.study.directions) == 1:
        for step, value in sorted(source.intermediate_values.items()):
            trial.report(value, step)
    if source.state is TrialState.PRUNED:
        raise optuna.TrialPruned(f"duplicate of pruned trial {original}")
    assert source.values is not None  # COMPLETE trials have values
    return source.values[0] if len(source.values) == 1 else list(source.values)


def finished_by_hash(study: optuna.Study) -> dict[str, FrozenTrial]:
    """The trial a duplicate of each canonical hash in ``study`` copies, by hash: the first
    ``COMPLETE`` trial with that hash, else the first ``PRUNED`` one (one read of the study)."""
    out: dict[str, FrozenTrial] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        h = t.user_attrs.get(HASH_ATTR)
        if not isinstance(h, str):
            continue
        known = out.get(h)
        if known is None or (known.state is TrialState.PRUNED and t.state is TrialState.COMPLETE):
            out[h] = t
    return out


def _get_trial(storage: optuna.storages.BaseStorage, trial_id: int) -> FrozenTrial | None:
    try:
        return storage.get_trial(trial_id)
    except KeyError:
        return None


def _wait_finished(
    study: optuna.Study, owner: FrozenTrial, deadline: float | None, poll_interval: float
) -> FrozenTrial:
    heartbeat = _compat.is_heartbeat_enabled(_compat.study_storage(study))
    if not owner.state.is_finished() and not heartbeat:
        _logger.warning(
            f"Waiting for trial {owner.number}, which evaluates the same architecture. The "
            "storage has no heartbeat, so if that trial's worker died this waits forever; open "
            "the storage with optuna_nas.storage.open_storage(heartbeat_interval=...)."
        )
    while not owner.state.is_finished():
        if deadline is not None and time.monotonic() > deadline:
            raise DuplicateWaitTimeout(
                f"trial {owner.number} evaluates the same architecture and was still "
                f"{owner.state.name} when the wait timed out."
            )
        time.sleep(poll_interval)
        if heartbeat:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                fail_stale_trials(study)
        owner = _compat.study_storage(study).get_trial(_compat.trial_id(owner))
    return owner
