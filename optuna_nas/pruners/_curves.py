"""Learning-curve extrapolation with parametric curve families (after Domhan et al., 2015).

Domhan, Springenberg & Hutter, "Speeding up Automatic Hyperparameter Optimization of Deep
Neural Networks by Extrapolation of Learning Curves", IJCAI 2015, fit a weighted combination
of parametric families to a partial curve by MCMC and read off the probability that the final
value beats the best seen. This module keeps the families and the probabilistic answer and
simplifies the inference, exactly as follows:

* Each family is written ``y(x) = c - a * g(x; theta)`` with ``a >= 0`` and ``g`` decreasing,
  so every fitted curve rises monotonically towards its asymptote ``c`` (Domhan et al. also
  restrict to increasing curves). The families and their ``g`` are

  - ``pow3``: ``x ** -alpha``;
  - ``exp3``: ``exp(-b * x)``;
  - ``ilog2``: ``1 / log(x + 1)``;
  - ``janoschek`` (Weibull form): ``exp(-kappa * x ** delta)``;
  - ``mmf`` (Morgan-Mercer-Flodin): ``1 / (1 + (kappa * x) ** delta)``.

* The non-linear parameters ``theta`` are searched on a fixed grid and ``(c, a)`` are solved
  by least squares for each grid point (variable projection), instead of MCMC; a negative ``a``
  is clipped to 0 (a flat curve).
* Families are combined by BIC weights (``n log(SSE / n) + k log n``) instead of posterior
  weights.
* The uncertainty is a residual bootstrap: each sample refits the family on the fitted curve
  plus resampled residuals, predicts the final value and adds one resampled residual (the
  noise of the final observation itself). Residuals have a floor ``noise_floor`` (Gaussian),
  so a curve that a family fits exactly is not treated as certain.
* Predictions are clipped to ``bounds`` (accuracy lives in [0, 1]) instead of rejecting fits
  whose asymptote leaves them.

Steps enter as ``x = step + 1`` so that step 0 is a valid first step.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
import math

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def _grid(*axes: Array) -> list[tuple[float, ...]]:
    mesh = np.meshgrid(*axes, indexing="ij")
    return list(zip(*(m.ravel().tolist() for m in mesh), strict=True))


_KAPPA = np.logspace(-2.0, 0.5, 8)
_DELTA = np.linspace(0.3, 2.5, 8)

# name -> (g(x, theta), grid of theta)
FAMILIES: dict[
    str, tuple[Callable[[Array, tuple[float, ...]], Array], list[tuple[float, ...]]]
] = {
    "pow3": (lambda x, t: x ** -t[0], _grid(np.logspace(-1.5, 0.7, 24))),
    "exp3": (lambda x, t: np.exp(-t[0] * x), _grid(np.logspace(-2.5, 0.5, 24))),
    "ilog2": (lambda x, t: 1.0 / np.log(x + 1.0), [()]),
    "janoschek": (lambda x, t: np.exp(-t[0] * x ** t[1]), _grid(_KAPPA, _DELTA)),
    "mmf": (lambda x, t: 1.0 / (1.0 + (t[0] * x) ** t[1]), _grid(_KAPPA, _DELTA)),
}
"""The curve families: ``y = c - a * g(x; theta)``, ``a >= 0``; see the module docstring."""


@dataclass(frozen=True)
class CurveForecast:
    """Samples of a curve's value at ``final_step``, and how each family fitted.

    Attributes:
        samples: Draws from the predictive distribution of the final value.
        weights: BIC weight of each family (they sum to 1).
        means: Each family's best-fit prediction of the final value.
    """

    samples: Array
    weights: dict[str, float]
    means: dict[str, float]

    def probability_above(self, value: float) -> float:
        """The fraction of samples strictly above ``value``."""
        return float(np.mean(self.samples > value))


def _fit(g: Array, y: Array) -> tuple[Array, Array, Array]:
    """Least squares of ``y = c - a g`` per grid row of ``g`` (T, n) and replicate of ``y`` (B, n).

    Returns ``c``, ``a`` (both (T, B), ``a >= 0``) and the SSE (T, B).
    """
    gm = g.mean(axis=1)
    gc = g - gm[:, None]
    var = np.maximum((gc**2).sum(axis=1), 1e-300)
    ym = y.mean(axis=1)
    a = np.maximum(-(gc @ (y - ym[:, None]).T) / var[:, None], 0.0)
    c = ym[None, :] + a * gm[:, None]
    resid = y[None, :, :] - (c[:, :, None] - a[:, :, None] * g[:, None, :])
    return c, a, (resid**2).sum(axis=2)


def _checked(
    steps: Sequence[int], values: Sequence[float], final_step: int
) -> tuple[Array, Array]:
    x = np.asarray(steps, dtype=float) + 1.0
    y = np.asarray(values, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"`steps` and `values` must be 1-D of one length, but got {x.shape} and {y.shape}."
        )
    finite = np.isfinite(y)
    x, y = x[finite], y[finite]
    if x.size < 3:
        raise ValueError(f"at least 3 finite values are needed to fit a curve, but got {x.size}.")
    if np.any(np.diff(x) <= 0):
        raise ValueError(f"`steps` must be strictly increasing, but got {list(steps)}.")
    if final_step + 1.0 < x[-1]:
        raise ValueError(
            f"`final_step >= last step` must hold, but got {final_step=} and last step "
            f"{int(x[-1] - 1)}."
        )
    return x, y


def _fit_families(
    x: Array, y: Array, xf: Array
) -> tuple[dict[str, tuple[Array, Array, float, float]], dict[str, float]]:
    """Each family's best grid fit (fitted curve, residuals, final prediction, residual std)
    and the families' BIC weights."""
    n = x.size
    fits: dict[str, tuple[Array, Array, float, float]] = {}
    bic: dict[str, float] = {}
    for name, (g_fn, grid) in FAMILIES.items():
        g = np.stack([g_fn(x, t) for t in grid])
        gf = np.array([g_fn(xf, t)[0] for t in grid])
        c, a, sse = _fit(g, y[None, :])
        best = int(np.argmin(sse[:, 0]))
        pred = float(c[best, 0] - a[best, 0] * gf[best])
        fitted = c[best, 0] - a[best, 0] * g[best]
        resid = y - fitted
        resid = (resid - resid.mean()) * math.sqrt(n / max(n - 2, 1))
        k = 2 + len(grid[0])
        bic[name] = n * math.log(max(float(sse[best, 0]) / n, 1e-12)) + k * math.log(n)
        fits[name] = (fitted, resid, pred, float(np.std(resid)))
    low = min(bic.values())
    raw = {k: math.exp(-0.5 * (v - low)) for k, v in bic.items()}
    total = sum(raw.values())
    return fits, {k: v / total for k, v in raw.items()}


def point_forecast(
    steps: Sequence[int],
    values: Sequence[float],
    *,
    final_step: int,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> float:
    """The BIC-weighted mean of the families' best-fit predictions at ``final_step`` (no
    bootstrap), clipped to ``bounds``; same arguments and errors as :func:`extrapolate_curve`."""
    x, y = _checked(steps, values, final_step)
    fits, weights = _fit_families(x, y, np.array([final_step + 1.0]))
    value = sum(weights[k] * fits[k][2] for k in fits)
    return float(np.clip(value, *bounds)) if bounds is not None else float(value)


def extrapolate_curve(
    steps: Sequence[int],
    values: Sequence[float],
    *,
    final_step: int,
    n_samples: int = 200,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    noise_floor: float = 0.005,
    rng: np.random.Generator,
) -> CurveForecast:
    """Predict the value of an increasing learning curve at ``final_step``.

    Args:
        steps: Steps of the observed values (non-negative, increasing).
        values: The observed values (larger is better; negate a loss first).
        final_step: The step to predict, at or after the last observed step.
        n_samples: Draws from the predictive distribution.
        bounds: ``(low, high)`` the value cannot leave, or None.
        noise_floor: Minimum standard deviation of the observation noise.
        rng: Random source of the bootstrap.

    Raises:
        ValueError: With fewer than 3 finite points, unsorted steps or ``final_step`` before
            the last step.
    """
    x, y = _checked(steps, values, final_step)
    if n_samples < 1:
        raise ValueError(f"`n_samples >= 1` must hold, but got {n_samples=}.")
    n = x.size
    xf = np.array([final_step + 1.0])
    fits, weights = _fit_families(x, y, xf)
    names = list(FAMILIES)
    counts = rng.multinomial(n_samples, [weights[k] for k in names])
    samples: list[Array] = []
    for name, count in zip(names, counts, strict=True):
        if count == 0:
            continue
        g_fn, grid = FAMILIES[name]
        fitted, resid, _, _ = fits[name]
        boot = (
            fitted[None, :]
            + rng.choice(resid, size=(count, n))
            + rng.normal(0.0, noise_floor, (count, n))
        )
        g = np.stack([g_fn(x, t) for t in grid])
        gf = np.array([g_fn(xf, t)[0] for t in grid])
        c, a, sse = _fit(g, boot)
        best = np.argmin(sse, axis=0)
        cols = np.arange(count)
        pred = c[best, cols] - a[best, cols] * gf[best]
        noise = rng.choice(resid, size=count) + rng.normal(0.0, noise_floor, count)
        samples.append(pred + noise)
    out = np.concatenate(samples)
    if bounds is not None:
        out = np.clip(out, bounds[0], bounds[1])
    return CurveForecast(
        samples=out,
        weights=weights,
        means={k: v[2] for k, v in fits.items()},
    )
