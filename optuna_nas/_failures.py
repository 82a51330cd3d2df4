"""The exception that fails one candidate's trial without stopping the study (torch-free)."""

from __future__ import annotations


class CandidateFailed(RuntimeError):
    """One candidate could not be evaluated (diverged, out of memory): its trial fails.

    The reason is also stored in the trial's ``user_attrs["fail_reason"]``.
    :func:`optuna_nas.storage.run_study` always catches it (the trial is recorded as ``FAIL``
    and the worker goes on); with plain ``study.optimize`` pass ``catch=(CandidateFailed,)``
    (or ``catch=(RuntimeError,)``, of which it is a subclass).
    """
