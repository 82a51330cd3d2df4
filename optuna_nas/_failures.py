"""The exceptions that fail one candidate's trial (:class:`CandidateFailed`) or stop the study
(:class:`SetupError`, :class:`DataError`) -- torch-free, so the storage layer can tell them
apart."""

from __future__ import annotations


class CandidateFailed(RuntimeError):
    """One candidate could not be evaluated (diverged, out of memory): its trial fails.

    The reason is also stored in the trial's ``user_attrs["fail_reason"]``.
    :func:`optuna_nas.storage.run_study` always catches it (the trial is recorded as ``FAIL``
    and the worker goes on); with plain ``study.optimize`` pass ``catch=(CandidateFailed,)``
    (or ``catch=(RuntimeError,)``, of which it is a subclass).
    """


class SetupError(ValueError):
    """The study's set-up is wrong (its data, or a space or objectives other than those it was
    made with): every trial would fail the same way, so it stops the study instead.

    :func:`optuna_nas.storage.run_study` never swallows it, even when ``ValueError`` is in its
    ``catch``.
    """


class DataError(SetupError):
    """A data set breaks a rule: the message names the data set, the split, the index and the fix.

    Bad data is the user's set-up, not a candidate's fault: raised when the data object is
    made, it stops the study before its first trial; found while a trial loads a batch, it
    fails that one trial (the reason in ``user_attrs["fail_reason"]``) and
    :func:`optuna_nas.storage.run_study` stops instead of failing trial after trial, even when
    ``ValueError`` is in its ``catch``.
    """
