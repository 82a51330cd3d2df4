"""The common shape of our samplers: plan a whole child per trial, hand it out param by param.

A sampler of ours decides a trial's params at once (a mutated parent, a draw from a policy, an
extension of a simpler architecture): :meth:`_PlanningSampler._plan` returns that plan when the
trial starts (``before_trial``, or on the first param asked). Each param the objective asks for
is then taken from the plan when the plan holds a valid value for the distribution asked, and is
drawn by a delegated :class:`~optuna.samplers.RandomSampler` otherwise: a param the plan lacks (a
conditional branch that the child newly activates, a float REINFORCE does not model) or one whose
distribution changed. So the samplers work on any define-by-run Optuna search space.

The plan's lineage (``parent`` trial number, ``mutated`` names, ...) is stored as the trial's
system attr ``optuna_nas:plan`` so plain Optuna tools show where a trial came from.

A trial whose params were set before it ran is not planned and gets no lineage of ours: an
enqueued trial (:meth:`optuna.Study.enqueue_trial`, system attr ``fixed_params``; the params
it does not fix are drawn at random) and a trial created with params, such as a heartbeat retry
(:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`, system attr ``failed_trial``), which
keeps the lineage Optuna copies from the trial it re-runs. Planning them would record a parent
and mutations that did not produce their params, and samplers that read lineage back (the
levels of :class:`~optuna_nas.samplers.ProgressiveSampler`) would trust it.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
import json
import threading
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.samplers import RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_nas import _compat
from optuna_nas._validation import is_int
from optuna_nas.samplers._history import History
from optuna_nas.samplers._history import complete_trials
from optuna_nas.samplers._history import param_key
from optuna_nas.spaces._distributions import contains

PLAN_ATTR = "optuna_nas:plan"
#: How often a sampler with ``avoid_duplicates`` redraws a child already evaluated.
DUPLICATE_TRIES = 20
# Optuna's own system attrs of trials whose params are set before they run.
_FIXED_ATTRS = ("fixed_params", "failed_trial")

_logger = optuna.logging.get_logger(__name__)


class _PlanningSampler(BaseSampler):
    """Base of our samplers (private): plans, the RandomSampler delegate, seeding, caches."""

    def __init__(self, *, seed: int | None) -> None:
        if seed is not None and not is_int(seed):
            raise ValueError(f"`seed` must be an int or None, but got {seed!r}.")
        # The delegate draws what RandomSampler(seed=seed) would; our own stream is distinct.
        self._rng = np.random.RandomState(None if seed is None else [seed % 2**32, 1])
        self._random_sampler = RandomSampler(seed=seed)
        self._plans: dict[tuple[int, int], dict[str, Any]] = {}
        self._histories: dict[tuple[int, int], History] = {}
        self._lock = threading.RLock()
        self._warned_duplicate: set[tuple[int, int]] = set()

    def reseed_rng(self) -> None:
        with self._lock:
            self._rng.seed()
            self._random_sampler.reseed_rng()

    # --- subclasses implement -------------------------------------------------------------
    @abc.abstractmethod
    def _plan(
        self, study: Study, trial: FrozenTrial, trials: Sequence[FrozenTrial], history: History
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The planned params of ``trial`` and its lineage (JSON-serialisable)."""

    # --- the Optuna contract --------------------------------------------------------------
    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {
            name: self.sample_independent(study, trial, name, d)
            for name, d in search_space.items()
        }

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        plan = self._plan_of(study, trial)
        if param_name in plan and contains(param_distribution, plan[param_name]):
            return plan[param_name]
        with self._lock:
            return self._random_sampler.sample_independent(
                study, trial, param_name, param_distribution
            )

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if trial.params:  # created with params (a heartbeat retry, `study.add_trial`): not ours
            with self._lock:
                self._plans[(id(_compat.study_storage(study)), _compat.trial_id(trial))] = {}
            return
        self._plan_of(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        with self._lock:
            self._plans.pop((id(_compat.study_storage(study)), _compat.trial_id(trial)), None)

    # --- helpers --------------------------------------------------------------------------
    def _history(self, study: Study, trials: Sequence[FrozenTrial]) -> History:
        key = (id(_compat.study_storage(study)), _compat.study_id(study))
        history = self._histories.setdefault(key, History())
        history.update(trials)
        return history

    def _plan_of(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        key = (id(_compat.study_storage(study)), _compat.trial_id(trial))
        with self._lock:
            plan = self._plans.get(key)
            if plan is not None:
                return plan
            lineage: dict[str, Any] = {}
            if any(name in trial.system_attrs for name in _FIXED_ATTRS):
                plan = {}
            else:
                trials = complete_trials(study)
                plan, lineage = self._plan(study, trial, trials, self._history(study, trials))
            self._plans[key] = plan
        if lineage:
            _compat.study_storage(study).set_trial_system_attr(
                _compat.trial_id(trial), PLAN_ATTR, json.loads(json.dumps(lineage, default=str))
            )
        return plan

    def _note_duplicate(
        self,
        study: Study,
        params: dict[str, Any],
        history: History,
        lineage: dict[str, Any],
        remedy: str,
    ) -> None:
        """Say that ``params``, kept after :data:`DUPLICATE_TRIES` redraws, repeat a COMPLETE
        trial: ``duplicate_of`` (that trial's number) in ``lineage``, and a warning (through
        ``optuna.logging.get_logger``) once per study and sampler, naming ``remedy``."""
        number = history.keys.get(param_key(params))
        if number is None:
            return
        lineage["duplicate_of"] = number
        study_key = (id(_compat.study_storage(study)), _compat.study_id(study))
        if study_key in self._warned_duplicate:
            return
        self._warned_duplicate.add(study_key)
        _logger.warning(
            f"{type(self).__name__} found no new params in {DUPLICATE_TRIES} tries and keeps a "
            f"duplicate of trial {number}; such trials carry `duplicate_of` in their system attr "
            f"{PLAN_ATTR!r}. The search may have exhausted what it can reach: {remedy}, or pass "
            "`avoid_duplicates=False` to re-evaluate on purpose. Logged once per study."
        )
