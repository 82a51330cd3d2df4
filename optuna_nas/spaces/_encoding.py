"""The one encoding of Optuna params as numbers, for the models that learn from them.

:func:`encode_columns` gives, per params dict and parameter, a categorical code or a numeric
value on [0, 1] (:func:`~optuna_nas.spaces._distributions.to_unit`), with a parameter the dict
lacks marked as missing; :class:`ParamEncoder` lays the same out as a fixed-length vector.
The kernel predictor's distance (samplers) and the MLP ensemble (evaluation) both read params
through it, so they agree on what a value and a missing value are.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution

from optuna_nas.spaces._distributions import to_unit

Array = npt.NDArray[np.float64]

_MISSING = object()


def _choice_index(distribution: CategoricalDistribution) -> dict[tuple[type, Any], int]:
    """``(type, choice) -> first index``, keyed by type so that 1, True and 1.0 stay distinct
    (as in ``ch == v and type(ch) is type(v)``), and ``_MISSING -> -1``.

    NaN choices are left out: NaN equals nothing, so no value matches them.
    """
    index: dict[tuple[type, Any], int] = {(type(_MISSING), _MISSING): -1}
    for k, ch in enumerate(distribution.choices):
        if ch == ch:
            index.setdefault((type(ch), ch), k)
    return index


def _code(index: dict[tuple[type, Any], int], value: Any) -> int:
    """The index of ``value`` among the choices (``-1`` missing, ``-2`` not a choice)."""
    try:
        return index.get((type(value), value), -2)
    except TypeError:  # unhashable, hence not a choice
        return -2


def encode_columns(
    rows: Sequence[Mapping[str, Any]], names: Sequence[str], space: Mapping[str, BaseDistribution]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Categorical codes (``-1`` missing, ``-2`` not a choice), numeric units (NaN missing), and
    the per-name kind mask (True: categorical)."""
    is_cat = np.array([isinstance(space[n], CategoricalDistribution) for n in names], dtype=bool)
    codes = np.full((len(rows), len(names)), -1, dtype=np.int64)
    units = np.full((len(rows), len(names)), np.nan)
    for c, name in enumerate(names):
        d = space[name]
        column = [params.get(name, _MISSING) for params in rows]
        if isinstance(d, CategoricalDistribution):
            index = _choice_index(d)
            try:
                codes[:, c] = [index.get((type(v), v), -2) for v in column]
            except TypeError:  # an unhashable value: look up one by one
                codes[:, c] = [_code(index, v) for v in column]
        else:
            units[:, c] = [np.nan if v is _MISSING else to_unit(d, v) for v in column]
    return codes, units, is_cat


class ParamEncoder:
    """Encodes a params dict as a fixed-length vector, from a space's ``distributions()``.

    Each categorical parameter becomes a one-hot block over its choices; each int or float
    parameter two entries, ``[present, value scaled to [0, 1]]`` (on a log scale for ``log``
    distributions). A parameter absent from ``params`` (a conditional one the architecture did
    not ask for, e.g. the layers beyond its depth) is all zeros, distinct from every value.
    Names not in the distributions are ignored, like :meth:`SearchSpace.decode` ignores them.
    It is :func:`encode_columns` laid out for a network: one-hot codes, present flags.
    """

    def __init__(self, distributions: Mapping[str, BaseDistribution]) -> None:
        if not distributions:
            raise ValueError("`distributions` must declare at least one parameter, but is empty.")
        self.distributions = dict(sorted(distributions.items()))
        self._offsets: dict[str, int] = {}
        dim = 0
        for name, dist in self.distributions.items():
            if not isinstance(dist, (CategoricalDistribution, IntDistribution, FloatDistribution)):
                raise TypeError(
                    f"parameter {name!r} has a {type(dist).__name__}; the encoder supports "
                    "categorical, int and float distributions."
                )
            self._offsets[name] = dim
            dim += len(dist.choices) if isinstance(dist, CategoricalDistribution) else 2
        self.dim = dim

    def encode(self, params: Mapping[str, Any]) -> Array:
        """The vector of one params dict."""
        out: Array = self.encode_many([params])[0]
        return out

    def encode_many(self, params_list: Sequence[Mapping[str, Any]]) -> Array:
        """A ``(len(params_list), dim)`` matrix."""
        names = list(self.distributions)
        for params in params_list:
            self._check_range(params)
        codes, units, _ = encode_columns(params_list, names, self.distributions)
        out = np.zeros((len(params_list), self.dim))
        for c, (name, dist) in enumerate(self.distributions.items()):
            at = self._offsets[name]
            if isinstance(dist, CategoricalDistribution):
                for r in np.flatnonzero(codes[:, c] == -2):
                    codes[r, c] = _loose_index(name, dist, params_list[int(r)][name])
                rows = np.flatnonzero(codes[:, c] >= 0)
                out[rows, at + codes[rows, c]] = 1.0
            else:
                rows = np.flatnonzero(~np.isnan(units[:, c]))
                out[rows, at] = 1.0
                out[rows, at + 1] = units[rows, c]
        return out

    def _check_range(self, params: Mapping[str, Any]) -> None:
        for name, dist in self.distributions.items():
            if name in params and isinstance(dist, (IntDistribution, FloatDistribution)):
                low, high, v = float(dist.low), float(dist.high), float(params[name])
                if not low <= v <= high:
                    raise ValueError(
                        f"parameter {name!r} must be in [{low}, {high}], but got {v!r}."
                    )


def _loose_index(name: str, dist: CategoricalDistribution, value: Any) -> int:
    """The index Optuna gives ``value`` (equal, if not of the same type: 1.0 for 1)."""
    try:
        return int(dist.to_internal_repr(value))
    except ValueError:
        raise ValueError(
            f"parameter {name!r} must be one of {list(dist.choices)}, but got {value!r}."
        ) from None
