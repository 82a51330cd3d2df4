"""Early stopping in multi-objective studies: ``ParetoPruner`` and ``report_and_prune``.

Optuna 5 refuses ``Trial.report`` and ``Trial.should_prune`` when a study has several
objectives (both raise ``NotImplementedError``; Optuna issue #3450), and its own pruners read
``study.direction``, which raises there too. Yet the storage itself accepts intermediate values
for any trial (``BaseStorage.set_trial_intermediate_value`` has no such check), and
optuna-dashboard 0.21 lists a trial's intermediate values on its trial page whatever the number
of objectives (only its study-level "Intermediate values" chart is drawn for single-objective
studies alone). :func:`report_and_prune` therefore writes the curve through the storage, and
asks the study's pruner when the pruner declares ``supports_multi_objective``.

In a NAS study only accuracy evolves during training; the cost objectives (parameters, FLOPs,
latency) are known before training. :class:`ParetoPruner` stops a trial that, with its known
costs and its accuracy at this step (plus an optional optimism margin), is Pareto-dominated
by trials already seen at the same step.
"""

from __future__ import annotations

from collections.abc import Sequence
import math
from typing import TYPE_CHECKING

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_nas import _compat
from optuna_nas._validation import check_int
from optuna_nas._validation import is_int

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


def report_and_prune(trial: optuna.Trial, step: int, value: float) -> bool:
    """Record ``value`` at ``step`` as an intermediate value and say whether to stop.

    Single-objective studies: exactly ``trial.report(value, step)`` then
    ``trial.should_prune()``. Multi-objective studies: the value is written with the storage's
    ``set_trial_intermediate_value`` (so the curve is in storage and on the dashboard's trial
    page), then the study's pruner decides if it declares ``supports_multi_objective = True``
    (as :class:`ParetoPruner` does); Optuna's own pruners read ``study.direction`` and cannot
    run there, so with them the trial is never stopped (Optuna's behaviour without pruning).
    """
    study = trial.study
    if len(study.directions) == 1:
        trial.report(value, step)
        return trial.should_prune()
    if not is_int(step) or step < 0:
        raise ValueError(f"`step` must be an int >= 0, but got {step=}.")
    storage = _compat.study_storage(study)
    storage.set_trial_intermediate_value(_compat.trial_id(trial), step, float(value))
    if not getattr(study.pruner, "supports_multi_objective", False):
        return False
    return bool(study.pruner.prune(study, storage.get_trial(_compat.trial_id(trial))))


class ParetoPruner(BasePruner):
    """Stop a trial that cannot become Pareto-optimal among the trials seen at the same step.

    At step ``s`` the trial is the point (its costs, its value at ``s`` + ``margin``). Every
    other trial (complete, pruned or running) with an intermediate value at exactly ``s`` is the
    point (its costs, its value at ``s``). The trial is pruned when at least ``min_dominating``
    of those points dominate it: no worse in every objective and better in one. Comparing at
    the same step is what makes curves of different lengths comparable; ``margin`` (in the
    units of the evolving objective) is the optimism granted for the epochs still to come.

    Args:
        objectives: One name per study direction, in order (``NASObjective.objectives``).
        evolving: The objective reported during training (the others are costs).
        n_warmup_steps: Never prune before this step.
        min_dominating: How many dominating trials it takes to prune.
        n_min_trials: How many other trials must have reported at step ``s`` to decide.
        margin: Optimism added to the trial's evolving value before comparing.

    Costs are read from each trial's user attrs under the objective's name (``NASObjective``
    stores ``params`` and ``flops`` before training; a latency objective must likewise be
    stored before training to be used here), and for a completed trial from its values when
    the attr is missing. A trial without its costs raises ``ValueError`` naming them.
    Also usable in single-objective studies (``objectives=("val_accuracy",)``), where it prunes
    a trial that ``min_dominating`` trials beat at the same step.
    """

    supports_multi_objective = True

    def __init__(
        self,
        *,
        objectives: Sequence[str],
        evolving: str = "val_accuracy",
        n_warmup_steps: int = 1,
        min_dominating: int = 1,
        n_min_trials: int = 1,
        margin: float = 0.0,
    ) -> None:
        if (
            isinstance(objectives, str)
            or len(objectives) == 0
            or len(set(objectives)) != len(objectives)
        ):
            raise ValueError(
                f"`objectives` must be distinct names, one per direction, but got {objectives!r}."
            )
        if evolving not in objectives:
            raise ValueError(
                f"`evolving` must be one of `objectives` {list(objectives)}, but got {evolving!r}."
            )
        for name, value, low in (
            ("n_warmup_steps", n_warmup_steps, 0),
            ("min_dominating", min_dominating, 1),
            ("n_min_trials", n_min_trials, 1),
        ):
            check_int(name, value, minimum=low)
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"`margin` must be finite and >= 0, but got {margin=}.")
        self._objectives = tuple(objectives)
        self._evolving = evolving
        self._n_warmup_steps = n_warmup_steps
        self._min_dominating = min_dominating
        self._n_min_trials = max(n_min_trials, min_dominating)
        self._margin = margin

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self._n_warmup_steps:
            return False
        directions = study.directions
        if len(directions) != len(self._objectives):
            raise ValueError(
                f"ParetoPruner was given {len(self._objectives)} objectives "
                f"{list(self._objectives)} but the study has {len(directions)} directions."
            )
        signs = [1.0 if d == StudyDirection.MAXIMIZE else -1.0 for d in directions]
        value = trial.intermediate_values[step]
        if math.isnan(value):
            return True
        me = self._point(trial, value, signs)
        evolving = self._objectives.index(self._evolving)
        me[evolving] += self._margin
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        others = [
            t
            for t in study.get_trials(deepcopy=False, states=states)
            if t.number != trial.number and step in t.intermediate_values
        ]
        if len(others) < self._n_min_trials:
            return False
        dominating = 0
        for other in others:
            theirs = other.intermediate_values[step]
            if math.isnan(theirs):
                continue
            point = self._point(other, theirs, signs)
            pairs = list(zip(point, me, strict=True))
            if all(p >= q for p, q in pairs) and any(p > q for p, q in pairs):
                dominating += 1
                if dominating >= self._min_dominating:
                    return True
        return False

    def _point(self, trial: FrozenTrial, value: float, signs: Sequence[float]) -> list[float]:
        """``trial`` as a point to maximise in every coordinate."""
        point: list[float] = []
        for i, name in enumerate(self._objectives):
            if name == self._evolving:
                v = value
            elif name in trial.user_attrs:
                v = float(trial.user_attrs[name])
            elif trial.state == TrialState.COMPLETE and trial.values is not None:
                v = trial.values[i]
            else:
                raise ValueError(
                    f"trial {trial.number} has no user attr {name!r}: ParetoPruner reads the "
                    "cost objectives from user attrs set before training."
                )
            point.append(signs[i] * v)
        return point
