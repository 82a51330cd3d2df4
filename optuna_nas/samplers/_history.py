"""History helpers shared by the samplers: finished trials, fitness ranks, the union space.

Everything here is derived from the trials in storage, so every worker of a study and a resumed
study compute the same thing. :class:`History` caches per study what is safe to cache: facts of
COMPLETE trials never change, so it only reads trials it has not seen before.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import math
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.study import Study
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_nas import _compat

ParamKey = tuple[tuple[str, Any], ...]


def param_key(params: Mapping[str, Any]) -> ParamKey:
    """A hashable key of a param dict, equal for equal params (used to avoid duplicates)."""
    return tuple(sorted(params.items()))


def complete_trials(study: Study) -> list[FrozenTrial]:
    """The study's COMPLETE trials in trial-number order (no copies: do not modify them)."""
    return _compat.study_trials_cached(study, states=(TrialState.COMPLETE,))


def violation(trial: FrozenTrial) -> float:
    """The summed positive constraint values of ``trial`` (0 for feasible or unconstrained).

    Reads Optuna 5's ``trial.constraints`` (set by ``trial.set_constraint`` or a sampler's
    ``constraints_func``); a trial is feasible when every constraint value is <= 0.
    """
    return float(sum(max(v, 0.0) for v in trial.constraints.values()))


def losses(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> np.ndarray:
    """The trials' values as an ``(n, n_objectives)`` array to minimise."""
    sign = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions])
    values = np.array([t.values for t in trials], dtype=float).reshape(len(trials), len(sign))
    return np.asarray(values * sign)


def _crowding(loss: np.ndarray) -> np.ndarray:
    n, m = loss.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, math.inf)
    for k in range(m):
        order = np.argsort(loss[:, k], kind="stable")
        span = loss[order[-1], k] - loss[order[0], k]
        dist[order[0]] = dist[order[-1]] = math.inf
        if span > 0:
            dist[order[1:-1]] += (loss[order[2:], k] - loss[order[:-2], k]) / span
    return dist


def fitness(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> np.ndarray:
    """A score per trial, higher is better, comparable only within ``trials``.

    Feasible trials beat infeasible ones, and infeasible ones are ordered by total violation.
    One objective: the value (negated when minimising). Several: NSGA-II's order (Deb et al.
    2002), the non-domination rank first, then the crowding distance within the rank.
    """
    if not trials:
        return np.zeros(0)
    loss = losses(trials, directions)
    penalty = np.array([violation(t) for t in trials])
    if loss.shape[1] == 1:
        primary = -loss[:, 0]
        primary = np.where(np.isfinite(primary), primary, np.sign(primary) * 1e300)
        secondary = np.zeros(len(trials))
    else:
        ranks = _compat.fast_non_domination_rank(np.where(np.isfinite(loss), loss, 1e300))
        primary = -ranks.astype(float)
        secondary = np.zeros(len(trials))
        for r in np.unique(ranks):
            idx = np.flatnonzero(ranks == r)
            secondary[idx] = _crowding(loss[idx])
    keys = [(-penalty[i], primary[i], secondary[i]) for i in range(len(trials))]
    order = sorted(range(len(trials)), key=lambda i: keys[i])
    score = np.empty(len(trials))
    for rank, i in enumerate(order):
        prev = order[rank - 1] if rank else None
        score[i] = score[prev] if prev is not None and keys[prev] == keys[i] else rank
    return score


def reference_losses(loss: np.ndarray) -> np.ndarray | None:
    """A hypervolume reference point for the ``(n, n_objectives)`` losses ``loss``, derived as
    the report derives its own (:func:`optuna_nas.report.reference_point`): per objective, the
    worst finite loss moved 10% further from the front (Optuna TPE's ``max(1.1 w, 0.9 w)``), and
    ``1e-12`` where that is 0. ``None`` when no row of ``loss`` is finite.
    """
    finite = loss[np.isfinite(loss).all(axis=1)]
    if not len(finite):
        return None
    worst = finite.max(axis=0)
    ref = np.maximum(1.1 * worst, 0.9 * worst)
    ref[ref == 0] = 1e-12
    return np.asarray(ref)


class History:
    """What a sampler knows of one study, read incrementally from its COMPLETE trials.

    ``space`` is the union of the distributions seen (a name keeps its latest distribution);
    ``keys`` maps the params of every COMPLETE trial to the lowest number of a COMPLETE trial
    with those params, for duplicate avoidance and for naming the trial a duplicate repeats.
    """

    def __init__(self) -> None:
        self._seen: set[int] = set()
        self.space: dict[str, BaseDistribution] = {}
        self.keys: dict[ParamKey, int] = {}

    def update(self, trials: Sequence[FrozenTrial]) -> None:
        for t in trials:
            if t.number in self._seen:
                continue
            self._seen.add(t.number)
            self.space.update(t.distributions)
            key = param_key(t.params)
            self.keys[key] = min(self.keys.get(key, t.number), t.number)
