"""NAS-aware mutation and sampling of single Optuna params.

A mutation changes one or a few decisions of a parent and keeps the rest (Real et al.,
"Regularized Evolution for Image Classifier Architecture Search", AAAI 2019): a categorical param
moves to another choice; an int or float param makes a local move (a few steps, or a Gaussian step
of 10% of its range, in log space for log distributions).
"""

from __future__ import annotations

from collections.abc import Mapping
import math
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution


def contains(distribution: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` (external representation) is a valid value of ``distribution``."""
    if isinstance(distribution, CategoricalDistribution):
        return any(value == c and type(value) is type(c) for c in distribution.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(distribution, IntDistribution) and not isinstance(value, int):
        return False
    return bool(distribution._contains(float(value)))


def n_values(distribution: BaseDistribution) -> float:
    """How many values ``distribution`` holds (``inf`` for a continuous float)."""
    if isinstance(distribution, CategoricalDistribution):
        return len(distribution.choices)
    if isinstance(distribution, IntDistribution):
        return (distribution.high - distribution.low) // distribution.step + 1
    if isinstance(distribution, FloatDistribution):
        if distribution.low == distribution.high:
            return 1
        if distribution.step is not None:
            return round((distribution.high - distribution.low) / distribution.step) + 1
        return math.inf
    raise TypeError(f"unsupported distribution {distribution!r}.")


def random_value(distribution: BaseDistribution, rng: np.random.RandomState) -> Any:
    """A uniform draw (log-uniform for log distributions), as ``RandomSampler`` draws."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[rng.randint(len(distribution.choices))]
    if isinstance(distribution, IntDistribution):
        if distribution.log:
            lo, hi = math.log(distribution.low - 0.5), math.log(distribution.high + 0.5)
            v = round(math.exp(rng.uniform(lo, hi)))
            return int(min(max(v, distribution.low), distribution.high))
        return int(distribution.low + distribution.step * rng.randint(int(n_values(distribution))))
    if isinstance(distribution, FloatDistribution):
        return _float_from_unit(distribution, rng.uniform())
    raise TypeError(f"unsupported distribution {distribution!r}.")


def _float_from_unit(d: FloatDistribution, u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    if d.step is not None:
        k = round(u * (n_values(d) - 1))
        return float(min(d.low + k * d.step, d.high))
    if d.log:
        return float(
            min(max(math.exp(math.log(d.low) + u * math.log(d.high / d.low)), d.low), d.high)
        )
    return float(min(max(d.low + u * (d.high - d.low), d.low), d.high))


def to_unit(distribution: BaseDistribution, value: Any) -> float:
    """An int or float value mapped to [0, 1] (in log space for log distributions)."""
    if not isinstance(distribution, (IntDistribution, FloatDistribution)):
        raise TypeError(f"unsupported distribution {distribution!r}.")
    lo, hi, v = float(distribution.low), float(distribution.high), float(value)
    if distribution.log:
        lo, hi, v = math.log(lo), math.log(hi), math.log(v)
    return 0.0 if hi == lo else (v - lo) / (hi - lo)


def mutate_value(distribution: BaseDistribution, value: Any, rng: np.random.RandomState) -> Any:
    """A value of ``distribution`` near ``value`` and different from it where possible."""
    if isinstance(distribution, CategoricalDistribution):
        others = [c for c in distribution.choices if not (c == value and type(c) is type(value))]
        return others[rng.randint(len(others))] if others else value
    if isinstance(distribution, IntDistribution) and not distribution.log:
        n = int(n_values(distribution))
        k = (int(value) - distribution.low) // distribution.step
        step = int(rng.geometric(0.5))  # 1, 2, 3, ... with probability 1/2, 1/4, ...
        new = k + step if rng.uniform() < 0.5 else k - step
        if not 0 <= new < n:
            new = k - step if 0 <= k - step < n else k + step
        new = min(max(new, 0), n - 1)
        if new == k and n > 1:  # both ways overshot and the clamp fell back onto the value
            new = k - 1 if k == n - 1 else k + 1
        return int(distribution.low + new * distribution.step)
    if isinstance(distribution, (IntDistribution, FloatDistribution)):
        u = to_unit(distribution, value)
        for _ in range(8):
            cand = _from_unit(distribution, u + 0.1 * rng.normal())
            if cand != value:
                return cand
        return cand
    raise TypeError(f"unsupported distribution {distribution!r}.")


def _from_unit(distribution: IntDistribution | FloatDistribution, u: float) -> int | float:
    if isinstance(distribution, FloatDistribution):
        return _float_from_unit(distribution, u)
    u = min(max(u, 0.0), 1.0)
    lo, hi = math.log(distribution.low), math.log(distribution.high)
    return int(min(max(round(math.exp(lo + u * (hi - lo))), distribution.low), distribution.high))


def mutate(
    params: Mapping[str, Any],
    distributions: Mapping[str, BaseDistribution],
    rng: np.random.RandomState,
    num_mutations: int,
) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``params`` with ``num_mutations`` distinct mutable params changed.

    Returns the child and the names changed. Params with a single value are never chosen.
    """
    names = [n for n in params if n in distributions and n_values(distributions[n]) > 1]
    child = dict(params)
    if not names:
        return child, []
    chosen = rng.choice(len(names), size=min(num_mutations, len(names)), replace=False)
    changed = [names[int(i)] for i in sorted(chosen)]
    for name in changed:
        child[name] = mutate_value(distributions[name], params[name], rng)
    return child, changed


def random_params(
    distributions: Mapping[str, BaseDistribution], rng: np.random.RandomState
) -> dict[str, Any]:
    """One uniform draw of every param in ``distributions``."""
    return {name: random_value(d, rng) for name, d in distributions.items()}
