"""Hypervolume of a study's feasible Pareto front, and its history, with Optuna's own code.

The hypervolume indicator (Zitzler & Thiele, "Multiobjective optimization using evolutionary
algorithms - a comparative case study", PPSN 1998) is the volume of objective space that the
front dominates, bounded by a reference point. It is computed by Optuna's exact WFG
implementation (:func:`optuna_nas._compat.compute_hypervolume`; While et al., "A fast way of
calculating exact hypervolumes", IEEE TEC 2012), on values turned into losses (maximised
objectives negated), as Optuna does internally.
"""

from __future__ import annotations

from collections.abc import Sequence
import math

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_nas import _compat

#: How :func:`reference_point` derives the point, in words (printed with every report).
REFERENCE_RULE = (
    "per objective, the worst value among feasible complete trials moved 10% further from the "
    "front (Optuna TPE's rule: max(1.1 w, 0.9 w) on losses)"
)


def is_feasible(trial: FrozenTrial) -> bool:
    """Whether every constraint of ``trial`` (``trial.set_constraint``) is ``<= 0``.

    Trials without constraints are feasible, as in :attr:`optuna.study.Study.best_trials`.
    """
    return all(v <= 0.0 for v in trial.constraints.values())


def feasible_complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Complete, feasible trials with finite values, in trial order."""
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if is_feasible(t) and t.values is not None and all(math.isfinite(v) for v in t.values)
    ]


def pareto_front(
    trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]
) -> list[FrozenTrial]:
    """The trials no other trial of ``trials`` dominates (ties all kept), in their order."""
    if not trials:
        return []
    signs = np.array([1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in directions])
    losses = np.array([t.values for t in trials], dtype=float) * signs
    return [
        t
        for t, loss in zip(trials, losses, strict=True)
        if not ((losses <= loss).all(axis=1) & (losses < loss).any(axis=1)).any()
    ]


def _signs(study: optuna.Study) -> np.ndarray:
    return np.array([1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in study.directions])


def reference_point(study: optuna.Study) -> tuple[float, ...] | None:
    """The reference point described by :data:`REFERENCE_RULE`, in the objectives' own units.

    ``None`` when the study has no feasible complete trial with finite values.
    """
    trials = feasible_complete_trials(study)
    if not trials:
        return None
    signs = _signs(study)
    losses = np.array([t.values for t in trials], dtype=float) * signs
    worst = losses.max(axis=0)
    ref = np.maximum(1.1 * worst, 0.9 * worst)
    ref[ref == 0] = 1e-12
    return tuple(float(v) for v in ref * signs)


def _check_reference(study: optuna.Study, ref: Sequence[float]) -> np.ndarray:
    point = np.asarray(ref, dtype=float)
    if point.shape != (len(study.directions),) or not np.isfinite(point).all():
        raise ValueError(
            f"`reference_point` must hold one finite value per objective "
            f"({len(study.directions)}), but got {list(ref)!r}."
        )
    loss_point: np.ndarray = point * _signs(study)
    return loss_point


def hypervolume(study: optuna.Study, ref: Sequence[float]) -> float:
    """The hypervolume of the feasible complete trials of ``study`` w.r.t. ``ref``.

    Points that do not dominate ``ref`` contribute nothing.
    """
    history = hypervolume_history(study, ref)
    return history[-1][1] if history else 0.0


def hypervolume_history(study: optuna.Study, ref: Sequence[float]) -> list[tuple[int, float]]:
    """``(trial number, hypervolume of the feasible front found up to that trial)`` pairs.

    One pair per complete trial, in trial order; infeasible trials repeat the previous value.
    The front is recomputed only when a trial could change it.
    """
    point = _check_reference(study, ref)
    signs = _signs(study)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    kept = {t.number for t in feasible_complete_trials(study)}
    front = np.empty((0, len(point)))
    value = 0.0
    history: list[tuple[int, float]] = []
    for t in complete:
        if t.number in kept and t.values is not None:
            loss = np.asarray(t.values, dtype=float) * signs
            dominated = bool(len(front)) and bool((front <= loss).all(axis=1).any())
            if (loss < point).all() and not dominated:
                front = np.vstack([front[~(loss <= front).all(axis=1)], loss])
                value = _compat.compute_hypervolume(front, point, assume_pareto=True)
        history.append((t.number, value))
    return history
