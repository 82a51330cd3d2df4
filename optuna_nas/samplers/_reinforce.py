"""A REINFORCE policy over the search decisions, as an Optuna sampler."""

from __future__ import annotations

from collections.abc import Sequence
import json
import math
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.distributions import FloatDistribution
from optuna.study import Study
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from optuna_nas import _compat
from optuna_nas._validation import check_number
from optuna_nas.samplers._base import DUPLICATE_TRIES
from optuna_nas.samplers._base import _PlanningSampler
from optuna_nas.samplers._history import History
from optuna_nas.samplers._history import complete_trials
from optuna_nas.samplers._history import losses
from optuna_nas.samplers._history import param_key
from optuna_nas.samplers._history import reference_losses
from optuna_nas.samplers._history import violation
from optuna_nas.spaces._distributions import finite_values

POLICY_ATTR = "optuna_nas:reinforce"
_MAX_INT_CHOICES = 128


def _choices(d: BaseDistribution) -> list[Any] | None:
    """The discrete actions of a decision, or None where REINFORCE does not model it."""
    return None if isinstance(d, FloatDistribution) else finite_values(d, limit=_MAX_INT_CHOICES)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return np.asarray(e / e.sum())


class ReinforceSampler(_PlanningSampler):
    """REINFORCE (Williams 1992) over independent per-decision logits, as NAS-Bench-201's RL
    baseline (Dong & Yang 2020) and the controller idea of Zoph & Le (ICLR 2017).

    The policy is a product of independent softmax distributions, one per categorical param and
    per int param of at most 128 values (treated as a categorical over its values). Float params
    and larger int ranges are not modelled: they are drawn by a
    :class:`~optuna.samplers.RandomSampler`. An LSTM controller is not offered (independent logits,
    as in NAS-Bench-201's REINFORCE baseline); a decision whose choices change is reset to uniform.

    Every COMPLETE trial of the study, whichever worker ran it, updates the policy exactly once,
    in trial-number order as far as they are known: with reward ``r``, moving-average baseline
    ``b`` (``b <- decay * b + (1 - decay) * r``, started at the first reward) and advantage
    ``A = (r - b) / s``, where ``s`` is a moving average of ``|r - b|`` (a scale normalisation so
    one ``learning_rate`` suits any objective's units; the paper uses the raw advantage), each
    taken decision's logits move by ``learning_rate * (A * grad log p(action) + entropy_weight *
    grad H)``. The policy (logits, baseline, scale and which trials it has consumed) is stored as
    the study system attr ``optuna_nas:reinforce`` (JSON), so a resumed study, or another process,
    continues the learned policy.

    Rewards: one objective, its value (negated when minimising). Several objectives: the
    hypervolume improvement of the trial over the earlier feasible COMPLETE trials (Zitzler &
    Thiele 1998), w.r.t. a reference point derived as the study report derives its own
    (:func:`optuna_nas.report.reference_point`: per objective, the worst value among the feasible
    COMPLETE trials up to and including this one, moved 10% further out), or w.r.t. a fixed
    ``reference_point`` (in the objectives' own units, as for
    :func:`optuna.visualization.plot_hypervolume_history`); or, with ``weights``, the weighted
    sum ``sum(w_i * v_i)`` of values oriented so larger is better. A trial's reward depends only
    on the trials numbered up to it. Infeasible trials get the lowest reward seen so far.

    With ``avoid_duplicates`` a trial whose drawn params equal a COMPLETE trial's is redrawn (up
    to 20 times), an addition to the paper's algorithm; a duplicate kept after 20 draws is
    recorded as ``duplicate_of`` in its system attr ``optuna_nas:plan`` and a warning is logged
    once per study.

    Args:
        learning_rate: Step size of the logits. 0.2 was kept after a grid {0.05, 0.1, 0.2,
            0.5, 1.0} on NAS-Bench-201 tuning seeds 100-129 (``benchmarks/nb201.py``).
        baseline_decay: Decay of the moving-average baseline, in [0, 1).
        entropy_weight: Weight of the entropy bonus.
        weights: Scalarisation weights, one per objective (several objectives only).
        reference_point: A fixed hypervolume reference point (several objectives only; default:
            derived from the trials, see above).
        avoid_duplicates: Redraw params already evaluated.
        seed: Seed of the random number generator.
    """

    def __init__(
        self,
        *,
        learning_rate: float = 0.2,
        baseline_decay: float = 0.9,
        entropy_weight: float = 0.01,
        weights: Sequence[float] | None = None,
        reference_point: Sequence[float] | None = None,
        avoid_duplicates: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed=seed)
        self._lr = check_number("learning_rate", learning_rate, low=0.0, high=1e3)
        self._decay = check_number("baseline_decay", baseline_decay, low=0.0, high=0.999999)
        self._entropy = check_number("entropy_weight", entropy_weight, low=0.0, high=1e3)
        if weights is not None and reference_point is not None:
            raise ValueError("give at most one of `weights` and `reference_point`, not both.")
        self._weights = None if weights is None else [float(w) for w in weights]
        self._reference = None if reference_point is None else [float(r) for r in reference_point]
        if not isinstance(avoid_duplicates, bool):
            raise ValueError(f"`avoid_duplicates` must be a bool, but got {avoid_duplicates!r}.")
        self._avoid_duplicates = avoid_duplicates
        self._policies: dict[tuple[int, int], dict[str, Any]] = {}

    # --- rewards ---------------------------------------------------------------------------
    def _check_objectives(self, directions: Sequence[StudyDirection]) -> None:
        n = len(directions)
        name, given = (
            ("weights", self._weights)
            if self._weights is not None
            else ("reference_point", self._reference)
        )
        if given is None:
            return
        if n == 1:
            raise ValueError(
                f"`{name}` is for studies with several objectives, but the study has one; "
                f"leave `{name}` out (the reward is the objective's value)."
            )
        if len(given) != n:
            raise ValueError(
                f"`len({name}) == {n}` (one value per objective of the study) must hold, but got "
                f"{name}={given!r}."
            )

    def _hypervolume(self, directions: Sequence[StudyDirection]) -> bool:
        return len(directions) > 1 and self._weights is None

    def _reward(self, study: Study, trial: FrozenTrial, earlier: list[FrozenTrial]) -> float:
        loss = losses([trial], study.directions)[0]
        if not self._hypervolume(study.directions):
            w = np.ones(1) if self._weights is None else np.array(self._weights)
            return float(-(w * loss).sum())
        front = losses(earlier, study.directions) if earlier else np.zeros((0, len(loss)))
        if self._reference is not None:
            ref = losses_of_point(self._reference, study.directions)
        else:
            derived = reference_losses(np.vstack([front, loss]))
            if derived is None:
                return 0.0
            ref = derived
        front = front[np.all(front < ref, axis=1)]
        if not np.all(loss < ref):
            return 0.0
        before = _compat.compute_hypervolume(front, ref) if len(front) else 0.0
        return _compat.compute_hypervolume(np.vstack([front, loss]), ref) - before

    # --- the policy ------------------------------------------------------------------------
    def _policy(self, study: Study, trials: Sequence[FrozenTrial]) -> dict[str, Any]:
        key = (id(_compat.study_storage(study)), _compat.study_id(study))
        policy = self._policies.get(key)
        if policy is None:
            stored = (
                _compat.study_storage(study)
                .get_study_system_attrs(_compat.study_id(study))
                .get(POLICY_ATTR)
            )
            policy = (
                dict(stored)
                if stored
                else {
                    "decisions": {},
                    "consumed_below": 0,
                    "consumed": [],
                    "baseline": None,
                    "scale": None,
                    "min_reward": None,
                }
            )
            policy["_set"] = set(policy["consumed"])
            self._policies[key] = policy
        new = [
            t
            for t in trials
            if t.number >= policy["consumed_below"] and t.number not in policy["_set"]
        ]
        if not new:
            return policy
        feasible = (
            [t for t in trials if violation(t) == 0] if self._hypervolume(study.directions) else []
        )
        for t in new:
            earlier = [e for e in feasible if e.number < t.number]
            self._update(policy, t, study, earlier)
        numbers = policy["_set"]
        while policy["consumed_below"] in numbers:
            numbers.discard(policy["consumed_below"])
            policy["consumed_below"] += 1
        policy["consumed"] = sorted(numbers)
        stored = {k: v for k, v in policy.items() if not k.startswith("_")}
        _compat.study_storage(study).set_study_system_attr(
            _compat.study_id(study), POLICY_ATTR, stored
        )
        return policy

    def _update(
        self, policy: dict[str, Any], t: FrozenTrial, study: Study, earlier: list[FrozenTrial]
    ) -> None:
        policy["_set"].add(t.number)
        if violation(t) > 0:
            r = policy["min_reward"]
            if r is None:
                return
        else:
            r = self._reward(study, t, earlier)
            if not math.isfinite(r):
                return
            policy["min_reward"] = (
                r if policy["min_reward"] is None else min(policy["min_reward"], r)
            )
        if policy["baseline"] is None:
            policy["baseline"] = r
        advantage = r - policy["baseline"]
        policy["scale"] = (
            abs(advantage)
            if not policy["scale"]
            else (self._decay * policy["scale"] + (1 - self._decay) * abs(advantage))
        )
        policy["baseline"] = self._decay * policy["baseline"] + (1 - self._decay) * r
        a = advantage / policy["scale"] if policy["scale"] else 0.0
        for name, d in t.distributions.items():
            choices = _choices(d)
            if choices is None:
                continue
            decision = _decision(policy, name, choices)
            z = np.array(decision["logits"])
            p = _softmax(z)
            onehot = np.zeros(len(z))
            onehot[choices.index(t.params[name])] = 1.0
            entropy = -float((p * np.log(p)).sum())
            grad = a * (onehot - p) - self._entropy * p * (np.log(p) + entropy)
            decision["logits"] = (z + self._lr * grad).tolist()

    def _plan(
        self, study: Study, trial: FrozenTrial, trials: Sequence[FrozenTrial], history: History
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        self._check_objectives(study.directions)
        policy = self._policy(study, trials)
        plan: dict[str, Any] = {}
        for _ in range(DUPLICATE_TRIES if self._avoid_duplicates else 1):
            plan = {}
            for name, d in history.space.items():
                choices = _choices(d)
                if choices is None:
                    continue
                decision = _decision(policy, name, choices)
                p = _softmax(np.array(decision["logits"]))
                plan[name] = choices[int(self._rng.choice(len(p), p=p))]
            if param_key(plan) not in history.keys:
                break
        lineage: dict[str, Any] = {}
        if self._avoid_duplicates:
            remedy = "widen the search space or raise `entropy_weight`"
            self._note_duplicate(study, plan, history, lineage, remedy)
        return plan, lineage

    def policy_probabilities(self, study: Study) -> dict[str, dict[str, float]]:
        """The current action probabilities per decision (for inspection and tests)."""
        with self._lock:
            policy = self._policy(study, complete_trials(study))
            return {
                name: dict(
                    zip(
                        map(str, d["choices"]),
                        _softmax(np.array(d["logits"])).tolist(),
                        strict=True,
                    )
                )
                for name, d in policy["decisions"].items()
            }


def losses_of_point(point: Sequence[float], directions: Sequence[StudyDirection]) -> np.ndarray:
    """A point in the objectives' units, oriented to minimise."""
    sign = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions])
    return np.asarray(np.asarray(point, dtype=float) * sign)


def _decision(policy: dict[str, Any], name: str, choices: list[Any]) -> dict[str, Any]:
    signature = json.dumps(choices, default=repr)
    decision = policy["decisions"].get(name)
    if decision is None or decision["signature"] != signature:
        decision = {
            "signature": signature,
            "choices": json.loads(signature),
            "logits": [0.0] * len(choices),
        }
        policy["decisions"][name] = decision
    return decision  # type: ignore[no-any-return]
