"""An ensemble of MLPs from encoded architecture params to an objective, with an uncertainty.

:class:`MLPEnsemble` is an ensemble of small MLPs, each trained on a bootstrap resample of the
data from its own initialisation (deep ensembles, Lakshminarayanan et al., NeurIPS 2017); the
spread of the members' predictions is the uncertainty. BANANAS (White et al., AAAI 2021) uses
the same kind of ensemble as its NAS predictor; here the input is the params encoding
(:class:`~optuna_nas.spaces._encoding.ParamEncoder`, one-hot for categorical params) rather
than BANANAS' path encoding, so any search space works. :meth:`MLPEnsemble.validate` says how
good it is: Kendall's tau and Spearman's rho of k-fold held-out predictions.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
import math
from typing import Any

import numpy as np
import numpy.typing as npt
from optuna.distributions import BaseDistribution
import torch

from optuna_nas._validation import check_int
from optuna_nas._validation import check_positive
from optuna_nas.evaluation._ranking import Scores
from optuna_nas.evaluation._ranking import kendall_tau
from optuna_nas.evaluation._ranking import spearman_rho
from optuna_nas.spaces._encoding import ParamEncoder

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class PredictorQuality:
    """Held-out quality of a predictor: rank correlations of k-fold out-of-fold predictions."""

    kendall_tau: float
    spearman_rho: float
    rmse: float
    n: int
    folds: int


class MLPEnsemble:
    """An ensemble of MLPs from encoded params to an objective value, with an uncertainty.

    Args:
        distributions: The search space's ``distributions()`` (fixes the encoding).
        n_members: Ensemble members, each fitted on its own bootstrap resample.
        hidden: Width of the two hidden ReLU layers.
        steps: Full-batch Adam steps per fit.
        lr: Adam learning rate.
        weight_decay: L2 penalty on the weights (Adam's ``weight_decay``).
        target_transform: What the members learn. ``"rank"`` (the default): the normal scores
            of the targets' ranks, ``Phi^-1((rank - 0.5) / n)`` (ties share their mean rank),
            so a few outliers (NAS-Bench-201's 10%-accuracy disconnected cells) do not dominate
            the squared error; ``"standardize"``: the targets less their mean, over their
            standard deviation. On NAS-Bench-201 CIFAR-10 (``benchmarks/predictor.py``, tuning
            seeds 100-105, 100 training architectures) ``"rank"`` raised the held-out Spearman
            from 0.69 to 0.77.
        seed: Seeds the resamples and initialisations (a private generator; global RNG
            untouched).

    Predictions are mapped back to the targets' scale: for ``"rank"`` by the piecewise-linear
    map through the (score, target) pairs of the training set, extended linearly past its ends
    by the slope of its end segments, so the map is monotone and the predicted order is the
    members' order. ``predict`` returns the mapped ensemble mean, and as the standard deviation
    half the mapped interval ``mean +- std`` of the members (for ``"standardize"`` exactly the
    members' standard deviation).
    """

    def __init__(
        self,
        distributions: Mapping[str, BaseDistribution],
        *,
        n_members: int = 5,
        hidden: int = 64,
        steps: int = 500,
        lr: float = 1e-2,
        weight_decay: float = 1e-3,
        target_transform: str = "rank",
        seed: int = 0,
    ) -> None:
        for name, value in (("n_members", n_members), ("hidden", hidden), ("steps", steps)):
            check_int(name, value, minimum=1)
        check_positive("lr", lr)
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"`weight_decay` must be finite and >= 0, but got {weight_decay=}.")
        if target_transform not in _TRANSFORMS:
            raise ValueError(
                f"`target_transform` must be one of {list(_TRANSFORMS)}, but got "
                f"{target_transform!r}."
            )
        self.encoder = ParamEncoder(distributions)
        self.n_members = n_members
        self.hidden = hidden
        self.steps = steps
        self.lr = lr
        self.weight_decay = weight_decay
        self.target_transform = target_transform
        self.seed = seed
        self._fitted: _Fitted | None = None

    def fit(self, params_list: Sequence[Mapping[str, Any]], targets: Scores) -> MLPEnsemble:
        """Fit on ``params_list`` and their ``targets`` (at least 2, finite); returns self."""
        self._fitted = self._fit(self.encoder.encode_many(params_list), targets, self.seed)
        return self

    def _fit(self, x: Array, targets: Scores, seed: int) -> _Fitted:
        """Members fitted on the encoded ``x`` and ``targets``, from ``seed``."""
        y = np.asarray(targets, dtype=np.float64)
        if y.shape != (len(x),) or len(y) < 2 or not np.isfinite(y).all():
            raise ValueError(
                "`targets` must be finite, one per params dict, and at least 2, but got "
                f"{len(y)} targets for {len(x)} params dicts."
            )
        z = _normal_scores(y) if self.target_transform == "rank" else y
        mean, std = float(z.mean()), float(z.std()) or 1.0
        z = (z - mean) / std
        knots_y, first = np.unique(y, return_index=True)
        gen = torch.Generator().manual_seed(seed)
        n, m, d, h = len(y), self.n_members, self.encoder.dim, self.hidden
        boot = torch.randint(n, (m, n), generator=gen) if m > 1 else torch.arange(n)[None]
        xb = torch.as_tensor(x, dtype=torch.float32)[boot]  # (m, n, d)
        yb = torch.as_tensor(z, dtype=torch.float32)[boot]  # (m, n)

        def init(fan_in: int, *shape: int) -> torch.Tensor:
            bound = 1 / math.sqrt(fan_in)
            return ((torch.rand(shape, generator=gen) * 2 - 1) * bound).requires_grad_()

        weights = [
            init(d, m, d, h),
            init(d, m, 1, h),
            init(h, m, h, h),
            init(h, m, 1, h),
            init(h, m, h, 1),
            init(h, m, 1, 1),
        ]
        opt = torch.optim.Adam(weights, lr=self.lr, weight_decay=self.weight_decay)
        for _ in range(self.steps):
            opt.zero_grad()
            loss = ((_forward(weights, xb).squeeze(-1) - yb) ** 2).mean()
            torch.autograd.backward(loss)
            opt.step()
        return _Fitted([w.detach() for w in weights], (z[first], knots_y))

    def predict(self, params_list: Sequence[Mapping[str, Any]]) -> tuple[Array, Array]:
        """Mean and standard deviation over the ensemble, per params dict."""
        if self._fitted is None:
            raise RuntimeError("the predictor is not fitted; call fit() first.")
        return self._fitted.predict(self.encoder.encode_many(params_list))

    def rank(
        self, params_list: Sequence[Mapping[str, Any]], *, maximize: bool = True
    ) -> list[int]:
        """Indices of ``params_list`` from best to worst predicted mean."""
        mean, _ = self.predict(params_list)
        order = np.argsort(-mean if maximize else mean, kind="stable")
        return [int(i) for i in order]

    def validate(
        self, params_list: Sequence[Mapping[str, Any]], targets: Scores, *, folds: int = 5
    ) -> PredictorQuality:
        """k-fold cross-validation: fit on k-1 folds, predict the held-out one, for every fold;
        rank correlations and RMSE of all out-of-fold predictions against ``targets``.

        Uses a copy of this predictor's settings; this predictor's fit is left alone.
        """
        n = len(params_list)
        check_int("folds", folds, minimum=2, maximum=n // 2)  # n // 2: two points a fold
        x = self.encoder.encode_many(params_list)
        y = np.asarray(targets, dtype=np.float64)
        order = np.random.default_rng(self.seed).permutation(n)
        out = np.empty(n)
        for k in range(folds):
            test = order[k::folds]
            train = np.setdiff1d(order, test)
            fitted = self._fit(x[train], y[train], self.seed + k)
            out[test] = fitted.predict(x[test])[0]
        return PredictorQuality(
            kendall_tau=kendall_tau(out, y),
            spearman_rho=spearman_rho(out, y),
            rmse=float(np.sqrt(((out - y) ** 2).mean())),
            n=n,
            folds=folds,
        )


_TRANSFORMS = ("rank", "standardize")


@dataclass(frozen=True)
class _Fitted:
    """The fitted members' weights, and the map of their scale back to the targets': knots
    ``(model scale, target scale)``."""

    weights: list[torch.Tensor]
    knots: tuple[Array, Array]

    def predict(self, x: Array) -> tuple[Array, Array]:
        """The mapped ensemble mean and half the mapped ``mean +- std`` interval, per row of the
        encoded ``x``."""
        inputs = torch.as_tensor(x, dtype=torch.float32)
        with torch.no_grad():
            out = _forward(self.weights, inputs.expand(len(self.weights[0]), *inputs.shape))
        preds = out.squeeze(-1).double().numpy()  # (m, n), on the model's scale
        mean, std = preds.mean(axis=0), preds.std(axis=0)
        half = (self.to_target(mean + std) - self.to_target(mean - std)) / 2
        return self.to_target(mean), half

    def to_target(self, z: Array) -> Array:
        """The model's scale to the targets' (monotone; linear beyond the knots)."""
        zk, yk = self.knots
        if len(zk) < 2:  # one distinct target: every prediction is it
            return np.full_like(z, yk[0])
        out = np.interp(z, zk, yk)
        low, high = z < zk[0], z > zk[-1]
        out[low] = yk[0] + (z[low] - zk[0]) * (yk[1] - yk[0]) / (zk[1] - zk[0])
        out[high] = yk[-1] + (z[high] - zk[-1]) * (yk[-1] - yk[-2]) / (zk[-1] - zk[-2])
        return out


def _normal_scores(y: Array) -> Array:
    """``Phi^-1((rank - 0.5) / n)`` of each value; ties get the score of their mean rank."""
    order = np.argsort(y, kind="stable")
    ranks = np.empty(len(y))
    ranks[order] = np.arange(1, len(y) + 1)
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    mean_ranks = (sums / counts)[inverse]
    quantiles = torch.as_tensor((mean_ranks - 0.5) / len(y), dtype=torch.float64)
    out: Array = torch.special.ndtri(quantiles).numpy()
    return out


def _forward(w: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    h = torch.relu(torch.bmm(x, w[0]) + w[1])
    h = torch.relu(torch.bmm(h, w[2]) + w[3])
    return torch.bmm(h, w[4]) + w[5]
