"""Rank correlations between two score vectors, without SciPy."""

from __future__ import annotations

from collections.abc import Sequence
import math
from typing import Any

import numpy as np
import numpy.typing as npt

Scores = Sequence[float] | npt.NDArray[Any]
"""A 1-d sequence of finite scores."""


def _pair(x: Scores, y: Scores) -> tuple[npt.NDArray[np.float64], ...]:
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or len(a) < 2:
        raise ValueError(
            f"`x` and `y` must be 1-d of equal length >= 2, but got shapes {a.shape}, {b.shape}."
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("`x` and `y` must be finite.")
    return a, b


def kendall_tau(x: Scores, y: Scores) -> float:
    """Kendall's tau-b (ties in either vector handled as in :func:`scipy.stats.kendalltau`).

    NaN when either vector is constant.
    """
    a, b = _pair(x, y)
    da = np.sign(a[:, None] - a[None, :])
    db = np.sign(b[:, None] - b[None, :])
    iu = np.triu_indices(len(a), k=1)
    s, ta, tb = (da * db)[iu].sum(), (da != 0)[iu].sum(), (db != 0)[iu].sum()
    return float(s / math.sqrt(ta * tb)) if ta and tb else math.nan


def _ranks(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Average ranks (ties share the mean of their ranks)."""
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(len(v), dtype=np.float64)
    _, inverse = np.unique(v, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    return np.asarray(sums[inverse] / counts[inverse], dtype=np.float64)


def spearman_rho(x: Scores, y: Scores) -> float:
    """Spearman's rho: Pearson correlation of average ranks. NaN when a vector is constant."""
    a, b = _pair(x, y)
    ra, rb = _ranks(a), _ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = math.sqrt(float((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / denom) if denom else math.nan
