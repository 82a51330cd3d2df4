"""What the search code needs to know about one Optuna distribution, in one place.

Samplers (mutation, REINFORCE's policy, the kernel predictor), the supernet's path sampling and
the params encoder all ask the same questions of a categorical, int or float distribution: is a
value one of its values, how many values it holds, which is the ``k``-th, and where a number sits
on its range. Torch-free, like the rest of :mod:`optuna_nas.spaces`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution

from optuna_nas import _compat


def contains(distribution: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` (external representation) is a valid value of ``distribution``."""
    if isinstance(distribution, CategoricalDistribution):
        return any(value == c and type(value) is type(c) for c in distribution.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(distribution, IntDistribution) and not isinstance(value, int):
        return False
    return _compat.distribution_contains(distribution, float(value))


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


def nth_value(distribution: BaseDistribution, k: int) -> Any:
    """The ``k``-th value of a categorical or stepped distribution, from its low end."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[k]
    if isinstance(distribution, (IntDistribution, FloatDistribution)) and (
        distribution.step is not None
    ):
        return distribution.low + distribution.step * k
    raise TypeError(f"{distribution!r} has no k-th value (it is continuous).")


def finite_values(distribution: BaseDistribution, *, limit: float = math.inf) -> list[Any] | None:
    """Every value of a categorical distribution, or of a stepped int or float one holding at
    most ``limit`` values; None for a continuous float or a larger range."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, FloatDistribution) and distribution.step is None:
        return None
    n = n_values(distribution)
    return [nth_value(distribution, k) for k in range(int(n))] if n <= limit else None


def random_value(distribution: BaseDistribution, rng: np.random.RandomState) -> Any:
    """A uniform draw (log-uniform for log distributions), as ``RandomSampler`` draws."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[rng.randint(len(distribution.choices))]
    if isinstance(distribution, IntDistribution):
        if distribution.log:
            lo, hi = math.log(distribution.low - 0.5), math.log(distribution.high + 0.5)
            v = round(math.exp(rng.uniform(lo, hi)))
            return int(min(max(v, distribution.low), distribution.high))
        return int(nth_value(distribution, rng.randint(int(n_values(distribution)))))
    if isinstance(distribution, FloatDistribution):
        return from_unit(distribution, rng.uniform())
    raise TypeError(f"unsupported distribution {distribution!r}.")


def to_unit(distribution: BaseDistribution, value: Any) -> float:
    """An int or float value mapped to [0, 1] (in log space for log distributions)."""
    if not isinstance(distribution, (IntDistribution, FloatDistribution)):
        raise TypeError(f"unsupported distribution {distribution!r}.")
    lo, hi, v = float(distribution.low), float(distribution.high), float(value)
    if distribution.log:
        lo, hi, v = math.log(lo), math.log(hi), math.log(v)
    return 0.0 if hi == lo else (v - lo) / (hi - lo)


def from_unit(distribution: IntDistribution | FloatDistribution, u: float) -> int | float:
    """The value of ``distribution`` at ``u`` in [0, 1] (clipped): the inverse of
    :func:`to_unit`, rounded onto the grid of a stepped float. An int distribution is read on
    its log scale (the one the mutation moves ints on: a linear int moves by steps instead)."""
    u = min(max(u, 0.0), 1.0)
    d = distribution
    if isinstance(d, IntDistribution):
        lo, hi = math.log(d.low), math.log(d.high)
        return int(min(max(round(math.exp(lo + u * (hi - lo))), d.low), d.high))
    if d.step is not None:
        k = round(u * (n_values(d) - 1))
        return float(min(d.low + k * d.step, d.high))
    if d.log:
        return float(
            min(max(math.exp(math.log(d.low) + u * math.log(d.high / d.low)), d.low), d.high)
        )
    return float(min(max(d.low + u * (d.high - d.low), d.low), d.high))
