"""NAS-aware mutation and sampling of single Optuna params.

A mutation changes one or a few decisions of a parent and keeps the rest (Real et al.,
"Regularized Evolution for Image Classifier Architecture Search", AAAI 2019): a categorical param
moves to another choice; an int or float param makes a local move (a few steps, or a Gaussian step
of 10% of its range, in log space for log distributions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution

from optuna_nas.spaces._distributions import from_unit
from optuna_nas.spaces._distributions import n_values
from optuna_nas.spaces._distributions import random_value
from optuna_nas.spaces._distributions import to_unit


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
            cand = from_unit(distribution, u + 0.1 * rng.normal())
            if cand != value:
                return cand
        return cand
    raise TypeError(f"unsupported distribution {distribution!r}.")


def mutable_names(
    params: Mapping[str, Any], distributions: Mapping[str, BaseDistribution]
) -> list[str]:
    """The names :func:`mutate` picks from: params with more than one value, in name order."""
    return sorted(n for n in params if n in distributions and n_values(distributions[n]) > 1)


def mutate(
    params: Mapping[str, Any],
    distributions: Mapping[str, BaseDistribution],
    rng: np.random.RandomState,
    num_mutations: int,
    names: list[str] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``params`` with ``num_mutations`` distinct mutable params changed.

    Returns the child and the names changed. Params with a single value are never chosen.
    The params are picked by name, not by the order of ``params`` (which depends on the
    storage a trial was read from), so one seed gives one child everywhere. ``names``:
    ``mutable_names(params, distributions)``, for a caller that draws many children of one
    parent.
    """
    if names is None:
        names = mutable_names(params, distributions)
    child = dict(params)
    if not names:
        return child, []
    # rng.choice(n, size, replace=False) draws exactly this, several times slower.
    chosen = rng.permutation(len(names))[: min(num_mutations, len(names))]
    changed = [names[int(i)] for i in sorted(chosen)]
    for name in changed:
        child[name] = mutate_value(distributions[name], params[name], rng)
    return child, changed


def random_params(
    distributions: Mapping[str, BaseDistribution], rng: np.random.RandomState
) -> dict[str, Any]:
    """One uniform draw of every param in ``distributions``, drawn in name order."""
    return {name: random_value(distributions[name], rng) for name in sorted(distributions)}
