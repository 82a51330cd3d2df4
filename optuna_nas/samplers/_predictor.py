"""A small performance predictor over Optuna params, to rank candidate architectures.

Predictor-guided local search and evolution rank many cheap candidate mutations with a model of
the evaluated ones and evaluate only the most promising (BANANAS, White et al. AAAI 2021;
NPENAS, Wei et al. 2022; White et al., "Local search is state of the art for NAS benchmarks",
2020). :class:`KernelPredictor` is our simple stand-in for their neural-network ensembles: an
upper confidence bound from a Gaussian process with an exponential kernel on a Hamming/L1
distance over the params (categorical: 0 if equal, 1 otherwise; int/float: difference in [0, 1],
log-scaled for log distributions; a param one side lacks: 1), with the length scale chosen from
a small grid by closed-form leave-one-out error (re-selected as the history grows, not on every
call: see :class:`KernelPredictor`). It works on any Optuna search space, conditional ones
included. The scores it fits are, by default, replaced by the normal quantiles of their ranks
(a Gaussian-copula transform, as in Salinas et al., "A Quantile-based Approach for
Hyperparameter Transfer Learning", ICML 2020): a few outliers (NAS-Bench-201's disconnected
cells score 10% against 80-92% for the rest) then no longer squeeze the differences that
matter, between the best architectures, below the noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Protocol

import numpy as np
from optuna.distributions import BaseDistribution
import torch

from optuna_nas._validation import check_int
from optuna_nas._validation import check_number
from optuna_nas.spaces._encoding import encode_columns


class Predictor(Protocol):
    """Scores candidates (higher is better) from observed ``(params, score)`` pairs."""

    def __call__(
        self,
        observed: Sequence[tuple[Mapping[str, Any], float]],
        candidates: Sequence[Mapping[str, Any]],
        distributions: Mapping[str, BaseDistribution],
    ) -> np.ndarray: ...


def _one_hot(codes: np.ndarray, width: int) -> np.ndarray:
    """Row ``r`` has a 1 at ``c * width + codes[r, c] + 2`` for every column ``c``."""
    rows, cols = codes.shape
    out = np.zeros((rows, cols * width))
    out[np.arange(rows)[:, None], codes + 2 + np.arange(cols) * width] = 1.0
    return out


def _normal_scores(y: np.ndarray) -> np.ndarray:
    """The standard normal quantiles of the ranks of ``y``, ``Phi^-1((rank + 1/2) / n)``
    (ties share their mean rank): a Gaussian-copula transform of the scores."""
    n = len(y)
    order = np.argsort(y, kind="stable")
    ranks = np.empty(n)
    ranks[order] = np.arange(n, dtype=float)
    _, tie, counts = np.unique(y, return_inverse=True, return_counts=True)
    ranks = np.bincount(tie, weights=ranks)[tie] / counts[tie]
    return np.asarray(torch.special.ndtri(torch.from_numpy((ranks + 0.5) / n)).numpy())


def _distance(
    a: tuple[np.ndarray, np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> np.ndarray:
    """Pairwise distances (rows of ``a`` x rows of ``b``), see the module doc.

    Categorical mismatches are counted as ``columns - (one-hot(a) @ one-hot(b).T)``: a matrix
    product instead of an ``(n, m, columns)`` comparison, with exactly the same counts (codes
    ``-1`` and ``-2`` are categories of their own, as in an equality test).
    """
    codes_a, units_a, is_cat = a
    codes_b, units_b, _ = b
    d = np.zeros((len(codes_a), len(codes_b)))
    if is_cat.any() and len(codes_a) and len(codes_b):
        ca, cb = codes_a[:, is_cat], codes_b[:, is_cat]
        width = int(max(ca.max(), cb.max())) + 3
        d += ca.shape[1] - _one_hot(ca, width) @ _one_hot(cb, width).T
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

    The length scale is chosen by closed-form leave-one-out (LOO) error over ``length_scales``
    on the first call, and again whenever the number of observations passed in has grown by at
    least ``reselect_every`` since the last choice, has shrunk (another study), or the param
    names differ; between choices the last one is reused. Scores thus depend on the sequence of
    calls made on this instance (deterministically: a seeded study reproduces), and
    ``reselect_every=1`` re-selects on every call. A fresh instance (a resumed study, another
    worker) selects on its first call, so its scale may differ from a long-running instance's
    until the next re-selection. LOO selection costs one Cholesky factorisation and triangular
    inverse per candidate scale; the other calls cost one.

    Args:
        noise: Noise variance relative to the (standardised) scores.
        length_scales: Candidate length scales, relative to the number of params; the one with
            the lowest leave-one-out error is used.
        max_observed: Fit on at most this many observations (the best-scoring ones), so the
            cost stays bounded on long studies (150: under 5 ms per trial at 1,000 trials in
            ``benchmarks/sampler_overhead.py``; 200 took about 5.3 ms).
        exploration: ``kappa`` of an upper confidence bound (UCB, one of BANANAS's
            acquisitions): candidates are scored by the posterior mean plus ``kappa`` posterior
            standard deviations (0: the mean only). 2.0 (was 1.0) was chosen for
            predictor-guided evolution on NAS-Bench-201 tuning seeds 100-129
            (``benchmarks/nb201.py``, grid {0, 0.5, 1, 2} x ``num_candidates`` {10, 20, 50}).
        reselect_every: Re-select the length scale after this many new observations (1:
            on every call). 25 (was 1) was chosen on NAS-Bench-201 tuning seeds 100-129
            (``benchmarks/nb201.py``, grid {1, 5, 10, 25}, guided evolution and guided
            progressive search) as the cheapest interval whose regret is not worse than
            re-selecting on every call by more than one standard error; it fits the scale
            once per 25 trials instead of every trial.
        rank_scores: Fit the normal quantiles of the scores' ranks, ``Phi^-1((rank + 1/2) /
            n)`` with ties at their mean rank, instead of the scores (see the module doc), so
            only the order of the scores matters. On NAS-Bench-201 tuning seeds 100-129
            (``benchmarks/nb201.py``'s protocol) it took predictor-guided evolution's mean regret
            at 100 evaluations from 0.200 to 0.079 together with distinct candidates (see
            :class:`~optuna_nas.samplers.RegularizedEvolutionSampler`); ``False`` fits the
            standardised scores, as before.
    """

    def __init__(
        self,
        *,
        noise: float = 1e-2,
        length_scales: Sequence[float] = (0.1, 0.2, 0.4, 0.8),
        max_observed: int = 150,
        exploration: float = 2.0,
        reselect_every: int = 25,
        rank_scores: bool = True,
    ) -> None:
        self._noise = check_number("noise", noise, low=1e-9, high=1e3)
        if not length_scales:
            raise ValueError(f"`length_scales` must not be empty, but got {length_scales!r}.")
        self._length_scales = [
            check_number("length_scales[i]", s, low=1e-6, high=1e6) for s in length_scales
        ]
        self._max_observed = check_int("max_observed", max_observed, minimum=2)
        self._exploration = check_number("exploration", exploration, low=0.0, high=1e3)
        self._reselect_every = check_int("reselect_every", reselect_every, minimum=1)
        if not isinstance(rank_scores, bool):
            raise ValueError(f"`rank_scores` must be a bool, but got {rank_scores!r}.")
        self._rank_scores = rank_scores
        # (length scale, number of observations and param names when it was chosen)
        self._selected: tuple[float, int, tuple[str, ...]] | None = None

    @property
    def length_scale(self) -> float | None:
        """The length scale in use (None before the first fit)."""
        return None if self._selected is None else self._selected[0]

    def __call__(
        self,
        observed: Sequence[tuple[Mapping[str, Any], float]],
        candidates: Sequence[Mapping[str, Any]],
        distributions: Mapping[str, BaseDistribution],
    ) -> np.ndarray:
        if len(observed) < 2 or not candidates:
            return np.zeros(len(candidates))
        n_observed = len(observed)
        y = np.array([s for _, s in observed], dtype=float)
        if n_observed > self._max_observed:
            # The best ``max_observed``, ties kept in input order (a stable sort).
            top = np.argsort(y, kind="stable")[-self._max_observed :]
            observed, y = [observed[i] for i in top], y[top]
        names = tuple(sorted(distributions))
        std = y.std()
        if not np.isfinite(std) or std == 0:
            return np.zeros(len(candidates))
        if self._rank_scores:
            y = _normal_scores(y)
            std = y.std()
        y = (y - y.mean()) / std
        x_obs = encode_columns([p for p, _ in observed], names, distributions)
        x_cand = encode_columns(candidates, names, distributions)
        d_oo = _distance(x_obs, x_obs) / max(len(names), 1)
        d_co = _distance(x_cand, x_obs) / max(len(names), 1)
        factors: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        if self._stale(n_observed, names):
            self._selected = (self._select(d_oo, y, factors), n_observed, names)
        assert self._selected is not None
        ls = self._selected[0]
        l_inv, alpha = factors[ls] if ls in factors else self._factor(self._gram(d_oo, ls), y)
        k_co = np.exp(-d_co / ls)
        score = k_co @ alpha
        if self._exploration > 0:
            # K = L L^T, so k K^-1 k^T = |L^-1 k^T|^2.
            var = np.clip(1.0 - ((l_inv @ k_co.T) ** 2).sum(0), 0.0, None)
            score = score + self._exploration * np.sqrt(var)
        return np.asarray(score)

    @staticmethod
    def _factor(k: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``L^-1`` for the Cholesky factor ``K = L L^T``, and ``K^-1 y``.

        A Cholesky factor and one triangular inverse took about half the time of
        ``np.linalg.inv`` at 150-200 observations (numpy has no triangular solve, torch has).
        A matrix that is not numerically positive definite (a tiny ``noise`` and repeated
        observations) falls back to the eigenvalues, clipped at zero plus the machine epsilon.
        """
        kt = torch.from_numpy(k)
        chol, info = torch.linalg.cholesky_ex(kt)
        if int(info) == 0:
            eye = torch.eye(len(k), dtype=kt.dtype)
            l_inv = torch.linalg.solve_triangular(chol, eye, upper=False).numpy()
        else:
            w, v = np.linalg.eigh(k)
            l_inv = (v / np.sqrt(np.clip(w, 0.0, None) + np.finfo(float).eps)).T
        return l_inv, l_inv.T @ (l_inv @ y)

    def _gram(self, d_oo: np.ndarray, ls: float) -> np.ndarray:
        """The kernel matrix of the observations plus the noise on its diagonal."""
        k = np.exp(-d_oo / ls)
        k[np.diag_indices_from(k)] += self._noise
        return k

    def _stale(self, n_observed: int, names: tuple[str, ...]) -> bool:
        if self._selected is None:
            return True
        _, at, at_names = self._selected
        return names != at_names or not at <= n_observed < at + self._reselect_every

    def _select(
        self, d_oo: np.ndarray, y: np.ndarray, factors: dict[float, tuple[np.ndarray, np.ndarray]]
    ) -> float:
        """The length scale with the lowest closed-form LOO error (first of equals); the factors
        computed on the way are left in ``factors`` for the prediction to reuse."""
        if len(self._length_scales) == 1:
            return self._length_scales[0]
        best: tuple[float, float] | None = None
        for ls in self._length_scales:
            l_inv, alpha = factors[ls] = self._factor(self._gram(d_oo, ls), y)
            # LOO residual i: (K^-1 y)_i / (K^-1)_ii, and diag(K^-1) = column norms of L^-1.
            loo = float(np.mean((alpha / (l_inv**2).sum(0)) ** 2))
            if best is None or loo < best[0]:
                best = (loo, ls)
        assert best is not None
        return best[1]
