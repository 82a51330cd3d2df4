"""A small performance predictor over Optuna params, to rank candidate architectures.

Predictor-guided local search and evolution rank many cheap candidate mutations with a model of
the evaluated ones and evaluate only the most promising (BANANAS, White et al. AAAI 2021;
NPENAS, Wei et al. 2022; White et al., "Local search is state of the art for NAS benchmarks",
2020). :class:`KernelPredictor` is our simple stand-in for their neural-network ensembles: an
upper confidence bound from a Gaussian process with an exponential kernel on a Hamming/L1
distance over the params (categorical: 0 if equal, 1 otherwise; int/float: difference in [0, 1],
log-scaled for log distributions; a param one side lacks: 1), with the length scale chosen from
a small grid by closed-form leave-one-out error. It works on any Optuna search space,
conditional ones included.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Protocol

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution

from optuna_nas.samplers._base import check_float
from optuna_nas.samplers._base import check_int
from optuna_nas.samplers._mutation import to_unit


class Predictor(Protocol):
    """Scores candidates (higher is better) from observed ``(params, score)`` pairs."""

    def __call__(
        self,
        observed: Sequence[tuple[Mapping[str, Any], float]],
        candidates: Sequence[Mapping[str, Any]],
        distributions: Mapping[str, BaseDistribution],
    ) -> np.ndarray: ...


def _encode(
    rows: Sequence[Mapping[str, Any]], names: Sequence[str], space: Mapping[str, BaseDistribution]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Categorical codes (``-1`` missing), numeric units (NaN missing), per-name kind mask."""
    is_cat = np.array([isinstance(space[n], CategoricalDistribution) for n in names], dtype=bool)
    codes = np.full((len(rows), len(names)), -1, dtype=np.int64)
    units = np.full((len(rows), len(names)), np.nan)
    for r, params in enumerate(rows):
        for c, name in enumerate(names):
            if name not in params:
                continue
            d = space[name]
            if isinstance(d, CategoricalDistribution):
                v = params[name]
                codes[r, c] = next(
                    (k for k, ch in enumerate(d.choices) if ch == v and type(ch) is type(v)), -2
                )
            else:
                units[r, c] = to_unit(d, params[name])
    return codes, units, is_cat


def _distance(
    a: tuple[np.ndarray, np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> np.ndarray:
    codes_a, units_a, is_cat = a
    codes_b, units_b, _ = b
    d = np.zeros((len(codes_a), len(codes_b)))
    if is_cat.any():
        ca, cb = codes_a[:, is_cat], codes_b[:, is_cat]
        d += (ca[:, None, :] != cb[None, :, :]).sum(-1)
    if (~is_cat).any():
        ua, ub = units_a[:, ~is_cat], units_b[:, ~is_cat]
        diff = np.abs(ua[:, None, :] - ub[None, :, :])
        both_missing = np.isnan(ua)[:, None, :] & np.isnan(ub)[None, :, :]
        diff = np.where(both_missing, 0.0, np.where(np.isnan(diff), 1.0, diff))
        d += diff.sum(-1)
    return d


class KernelPredictor:
    """GP posterior mean (+ ``exploration`` standard deviations) with kernel
    ``exp(-distance / length_scale)`` (see the module doc).

    Args:
        noise: Noise variance relative to the (standardised) scores.
        length_scales: Candidate length scales, relative to the number of params; the one with
            the lowest leave-one-out error is used.
        max_observed: Fit on at most this many observations (the best-scoring ones), so the
            cost stays bounded on long studies (each fit inverts ``len(length_scales)``
            matrices of this size).
        exploration: ``kappa`` of an upper confidence bound (UCB, one of BANANAS's
            acquisitions): candidates are scored by the posterior mean plus ``kappa`` posterior
            standard deviations (0: the mean only).
    """

    def __init__(
        self,
        *,
        noise: float = 1e-2,
        length_scales: Sequence[float] = (0.1, 0.2, 0.4, 0.8),
        max_observed: int = 200,
        exploration: float = 1.0,
    ) -> None:
        self._noise = check_float("noise", noise, 1e-9, 1e3)
        if not length_scales:
            raise ValueError(f"`length_scales` must not be empty, but got {length_scales!r}.")
        self._length_scales = [
            check_float("length_scales[i]", s, 1e-6, 1e6) for s in length_scales
        ]
        self._max_observed = check_int("max_observed", max_observed, 2)
        self._exploration = check_float("exploration", exploration, 0.0, 1e3)

    def __call__(
        self,
        observed: Sequence[tuple[Mapping[str, Any], float]],
        candidates: Sequence[Mapping[str, Any]],
        distributions: Mapping[str, BaseDistribution],
    ) -> np.ndarray:
        if len(observed) < 2 or not candidates:
            return np.zeros(len(candidates))
        if len(observed) > self._max_observed:
            observed = sorted(observed, key=lambda o: o[1])[-self._max_observed :]
        names = sorted(distributions)
        y = np.array([s for _, s in observed], dtype=float)
        std = y.std()
        if not np.isfinite(std) or std == 0:
            return np.zeros(len(candidates))
        y = (y - y.mean()) / std
        x_obs = _encode([p for p, _ in observed], names, distributions)
        x_cand = _encode(candidates, names, distributions)
        d_oo = _distance(x_obs, x_obs) / max(len(names), 1)
        d_co = _distance(x_cand, x_obs) / max(len(names), 1)
        best: tuple[float, np.ndarray] | None = None
        for ls in self._length_scales:
            k = np.exp(-d_oo / ls) + self._noise * np.eye(len(y))
            k_inv = np.linalg.inv(k)
            alpha = k_inv @ y
            loo = float(np.mean((alpha / np.diag(k_inv)) ** 2))
            if best is None or loo < best[0]:
                k_co = np.exp(-d_co / ls)
                score = k_co @ alpha
                if self._exploration > 0:
                    var = np.clip(1.0 - np.einsum("ij,jk,ik->i", k_co, k_inv, k_co), 0.0, None)
                    score = score + self._exploration * np.sqrt(var)
                best = (loo, score)
        assert best is not None
        return best[1]
