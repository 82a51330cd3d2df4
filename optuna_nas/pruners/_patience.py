"""The seed's stopping rule (minimum epochs, then patience on the trial's own curve), in Optuna.

Optuna already has every part: :class:`optuna.pruners.PatientPruner` stops a trial whose
curve has not improved by more than ``min_delta`` for ``patience`` steps, and stops it only if
its wrapped pruner agrees; :class:`optuna.pruners.ThresholdPruner` with ``lower=inf`` agrees
at every step from ``n_warmup_steps`` on. So this module adds no pruner, only a factory.
"""

from __future__ import annotations

import math

from optuna.pruners import BasePruner
from optuna.pruners import PatientPruner
from optuna.pruners import ThresholdPruner

from optuna_nas._validation import is_int


def patience_pruner(
    *, min_epochs: int, patience: int, min_delta: float = 0.0, wrapped: BasePruner | None = None
) -> PatientPruner:
    """Stop a trial after ``min_epochs`` once its curve stalls for ``patience`` steps.

    Equivalent to ``PatientPruner(ThresholdPruner(lower=math.inf, n_warmup_steps=min_epochs),
    patience=patience, min_delta=min_delta)``: a trial reporting epoch ``e`` as step ``e`` is
    never stopped before epoch ``min_epochs``, and from then on it is stopped as soon as its
    best value over the last ``patience + 1`` reports is below its best before them by more
    than ``min_delta``. Optuna's rule is strict, so a curve that only repeats its best (an
    exact plateau) is not stopped; that is the one difference from "no improvement for
    ``patience`` epochs". With ``wrapped`` (e.g. ``optuna.pruners.MedianPruner(
    n_warmup_steps=min_epochs)``), the stalled trial is stopped only if ``wrapped`` also says
    so, and ``min_epochs`` is then ``wrapped``'s business.

    Single-objective studies only (Optuna's ``PatientPruner`` reads ``study.direction``).
    """
    if not is_int(min_epochs) or min_epochs < 0:
        raise ValueError(f"`min_epochs >= 0` must hold for an int, but got {min_epochs=}.")
    if not is_int(patience) or patience < 0:
        raise ValueError(f"`patience >= 0` must hold for an int, but got {patience=}.")
    inner = (
        wrapped
        if wrapped is not None
        else ThresholdPruner(lower=math.inf, n_warmup_steps=min_epochs)
    )
    return PatientPruner(inner, patience=patience, min_delta=min_delta)
