"""Progressive search from simple to complex architectures, as an Optuna sampler."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.study import Study
from optuna.trial import FrozenTrial

from optuna_nas import _compat
from optuna_nas._validation import check_int
from optuna_nas.samplers._base import PLAN_ATTR
from optuna_nas.samplers._base import _PlanningSampler
from optuna_nas.samplers._history import History
from optuna_nas.samplers._history import fitness
from optuna_nas.samplers._history import param_key
from optuna_nas.samplers._mutation import mutate
from optuna_nas.samplers._mutation import random_params
from optuna_nas.samplers._predictor import Predictor

_EMPTY = ("none", "zero")


def default_complexity(params: Mapping[str, Any]) -> int:
    """Our spaces' complexity of ``params``: the number of categorical choices that are not
    ``"none"``/``"zero"``/``None``/``False`` (cell edges that carry an op, layers present, ...)
    plus the int values themselves (depth, width multipliers, ...) when they are >= 0.

    Float params do not count. Pass your own ``complexity`` for other spaces.
    """
    total = 0
    for value in params.values():
        if isinstance(value, bool) or value is None:
            total += int(bool(value))
        elif isinstance(value, str):
            total += int(value not in _EMPTY)
        elif isinstance(value, int):
            total += max(value, 0)
    return total


class ProgressiveSampler(_PlanningSampler):
    """Progressive search (Liu et al., "Progressive Neural Architecture Search", ECCV 2018):
    architectures grow from simple to complex, each level extending the best of the last.

    Level ``k`` admits architectures with ``complexity(params) <= start_complexity + k``. Level 0
    draws random architectures within that bound (the first of 20 uniform draws of the params
    seen so far that fits and is new; if none does, the simplest draw, simplified by single
    mutations that lower its complexity; the very first trial is a plain random draw). Every later
    level mutates the best ``beam_width`` COMPLETE trials within the bound (one param each,
    :func:`~optuna_nas.samplers._mutation.mutate`), keeps the ``num_candidates`` children within
    the new bound, and evaluates the one ranked first: by ``predictor`` when given (PNAS's
    surrogate; e.g. :class:`~optuna_nas.samplers.KernelPredictor`), otherwise a random child
    that reaches the new bound (an extension), or any child if none does. A level ends after
    ``trials_per_level`` COMPLETE trials, or earlier when its last ``patience`` trials did not
    improve its best. Once the bound stops binding, the search goes on as a local search around
    the best trials.

    Simplifications against the paper: PNAS expands every cell of the top ``K`` by one block and
    trains the ``K`` best by its LSTM/MLP surrogate; here one child is evaluated per trial and
    the surrogate is optional. The complexity of a newly activated conditional branch (drawn by
    a :class:`~optuna.samplers.RandomSampler`) is not known when planning, so such a child may
    exceed the bound. Each trial's level is stored in its system attr ``optuna_nas:plan``, and
    the current level is derived from those, so workers and resumed studies agree. Enqueued
    trials are not planned, so they hold no level and count in none (a heartbeat retry keeps
    the level of the trial it re-runs); they still join the beam when within the bound.

    Args:
        complexity: ``params -> int``; defaults to :func:`default_complexity`.
        start_complexity: Bound of level 0.
        trials_per_level: COMPLETE trials per level. 3 and ``beam_width=3`` (were 5 and 5)
            were chosen from a grid {3, 5, 10} x {3, 5, 10} on NAS-Bench-201 tuning seeds
            100-129 (``benchmarks/nb201.py``, with and without the predictor).
        patience: End a level early after this many trials without improvement (None: never).
        beam_width: Best trials mutated at each level.
        num_candidates: Children generated per trial.
        predictor: Optional ranker of the children.
        seed: Seed of the random number generator.
    """

    def __init__(
        self,
        *,
        complexity: Callable[[Mapping[str, Any]], int] | None = None,
        start_complexity: int = 1,
        trials_per_level: int = 3,
        patience: int | None = None,
        beam_width: int = 3,
        num_candidates: int = 20,
        predictor: Predictor | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed=seed)
        if complexity is not None and not callable(complexity):
            raise ValueError(f"`complexity` must be callable or None, but got {complexity!r}.")
        self._complexity = complexity or default_complexity
        self._start = check_int("start_complexity", start_complexity, minimum=0)
        self._per_level = check_int("trials_per_level", trials_per_level, minimum=1)
        self._patience = None if patience is None else check_int("patience", patience, minimum=1)
        self._beam = check_int("beam_width", beam_width, minimum=1)
        self._num_candidates = check_int("num_candidates", num_candidates, minimum=1)
        if predictor is not None and not callable(predictor):
            raise ValueError(f"`predictor` must be callable or None, but got {predictor!r}.")
        self._predictor = predictor
        # per study: trial number -> (complexity, level) of COMPLETE trials, which never change
        self._facts: dict[tuple[int, int], dict[int, tuple[int, int | None]]] = {}

    def _complexity_of(self, params: Mapping[str, Any]) -> int:
        value = self._complexity(params)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"`complexity(params)` must return an int, but got {value!r}.")
        return int(value)

    def _facts_of(
        self, study: Study, trials: Sequence[FrozenTrial]
    ) -> list[tuple[int, int | None]]:
        """``(complexity, level)`` per trial (level: None for trials we did not plan)."""
        facts = self._facts.setdefault(
            (id(_compat.study_storage(study)), _compat.study_id(study)), {}
        )
        out = []
        for t in trials:
            fact = facts.get(t.number)
            if fact is None:
                lineage = t.system_attrs.get(PLAN_ATTR)
                level = lineage.get("level") if isinstance(lineage, dict) else None
                fact = facts[t.number] = (
                    self._complexity_of(t.params),
                    level if isinstance(level, int) else None,
                )
            out.append(fact)
        return out

    def _level(
        self,
        study: Study,
        trials: Sequence[FrozenTrial],
        facts: Sequence[tuple[int, int | None]],
    ) -> int:
        by_level: dict[int, list[FrozenTrial]] = {}
        for t, (_, level) in zip(trials, facts, strict=True):
            if level is not None:
                by_level.setdefault(level, []).append(t)
        if not by_level:
            return 0
        level = max(by_level)
        members = by_level[level]
        if len(members) >= self._per_level:
            return level + 1
        if self._patience is not None and len(members) > self._patience:
            score = fitness(members, study.directions)
            if int(np.argmax(score)) < len(members) - self._patience:
                return level + 1
        return level

    def _simplify(self, params: dict[str, Any], history: History, bound: int) -> dict[str, Any]:
        """Greedy single mutations that lower the complexity, until it is within ``bound``."""
        size = self._complexity_of(params)
        for _ in range(50 * max(len(params), 1)):
            if size <= bound:
                break
            child, _ = mutate(params, history.space, self._rng, 1)
            child_size = self._complexity_of(child)
            if child_size < size:
                params, size = child, child_size
        return params

    def _plan(
        self, study: Study, trial: FrozenTrial, trials: Sequence[FrozenTrial], history: History
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        facts = self._facts_of(study, trials)
        level = self._level(study, trials, facts)
        bound = self._start + level
        lineage: dict[str, Any] = {"level": level, "bound": bound}
        if not history.space:
            return {}, lineage
        within = [t for t, (size, _) in zip(trials, facts, strict=True) if size <= bound]
        if level == 0 or not within:
            simplest: tuple[int, dict[str, Any]] | None = None
            for _ in range(20):
                draw = random_params(history.space, self._rng)
                size = self._complexity_of(draw)
                if param_key(draw) in history.keys:
                    continue
                if size <= bound:
                    return draw, lineage
                if simplest is None or size < simplest[0]:
                    simplest = (size, draw)
            if simplest is None:
                return random_params(history.space, self._rng), lineage
            return self._simplify(simplest[1], history, bound), lineage
        score = fitness(within, study.directions)
        beam = [within[i] for i in np.argsort(-score, kind="stable")[: self._beam]]
        children: list[tuple[dict[str, Any], int]] = []
        for _ in range(self._num_candidates):
            parent = beam[self._rng.randint(len(beam))]
            child, _ = mutate(parent.params, parent.distributions, self._rng, 1)
            size = self._complexity_of(child)
            if size <= bound and param_key(child) not in history.keys:
                children.append((child, parent.number))
        if not children:
            parent = beam[0]
            return mutate(parent.params, parent.distributions, self._rng, 1)[0], lineage
        if self._predictor is not None:
            observed = list(
                zip((t.params for t in trials), fitness(trials, study.directions), strict=True)
            )
            pred = self._predictor(observed, [c for c, _ in children], history.space)
            chosen = int(np.argmax(pred))
        else:
            extensions = [
                i for i, (c, _) in enumerate(children) if self._complexity_of(c) == bound
            ]
            pool = extensions or list(range(len(children)))
            chosen = pool[self._rng.randint(len(pool))]
        lineage["parent"] = children[chosen][1]
        return children[chosen][0], lineage
