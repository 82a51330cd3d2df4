"""Performance prediction: a surrogate from encoded architecture params to an objective.

:class:`MLPEnsemble` is an ensemble of small MLPs, each trained on a bootstrap resample of the
data from its own initialisation (deep ensembles, Lakshminarayanan et al., NeurIPS 2017); the
spread of the members' predictions is the uncertainty. BANANAS (White et al., AAAI 2021) uses
the same kind of ensemble as its NAS predictor; here the input is the params encoding below
rather than BANANAS' path encoding, so any search space works. :meth:`MLPEnsemble.validate`
says how good it is: Kendall's tau and Spearman's rho of k-fold held-out predictions.

:class:`PredictorEvaluator` trains the first ``warmup`` candidates of a study for real (with a
wrapped evaluator) and scores every later one with a predictor fitted on those, reading them
from the study's storage, so every worker and every resumed run sees the same training set.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
import math
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import numpy.typing as npt
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState
import torch

from optuna_nas._experimental import warn_experimental
from optuna_nas._validation import check_int
from optuna_nas._validation import check_positive
from optuna_nas.evaluation._base import Evaluation
from optuna_nas.evaluation._base import Evaluator
from optuna_nas.evaluation._base import Report
from optuna_nas.evaluation._ranking import Scores
from optuna_nas.evaluation._ranking import kendall_tau
from optuna_nas.evaluation._ranking import spearman_rho
from optuna_nas.spaces import SearchSpace
from optuna_nas.spaces._encoding import ParamEncoder
from optuna_nas.spec import ArchitectureSpec

if TYPE_CHECKING:
    import optuna

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
        seed: Seeds the resamples and initialisations (a private generator; global RNG
            untouched).

    Targets are standardised before fitting; predictions are returned on the original scale.
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
        seed: int = 0,
    ) -> None:
        for name, value in (("n_members", n_members), ("hidden", hidden), ("steps", steps)):
            check_int(name, value, minimum=1)
        check_positive("lr", lr)
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"`weight_decay` must be finite and >= 0, but got {weight_decay=}.")
        self.encoder = ParamEncoder(distributions)
        self.n_members = n_members
        self.hidden = hidden
        self.steps = steps
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self._weights: list[torch.Tensor] | None = None
        self._scale = (0.0, 1.0)

    def fit(self, params_list: Sequence[Mapping[str, Any]], targets: Scores) -> MLPEnsemble:
        """Fit on ``params_list`` and their ``targets`` (at least 2, finite); returns self."""
        x = self.encoder.encode_many(params_list)
        y = np.asarray(targets, dtype=np.float64)
        if y.shape != (len(x),) or len(y) < 2 or not np.isfinite(y).all():
            raise ValueError(
                "`targets` must be finite, one per params dict, and at least 2, but got "
                f"{len(y)} targets for {len(x)} params dicts."
            )
        mean, std = float(y.mean()), float(y.std()) or 1.0
        self._scale = (mean, std)
        gen = torch.Generator().manual_seed(self.seed)
        n, m, d, h = len(y), self.n_members, self.encoder.dim, self.hidden
        boot = torch.randint(n, (m, n), generator=gen) if m > 1 else torch.arange(n)[None]
        xb = torch.as_tensor(x, dtype=torch.float32)[boot]  # (m, n, d)
        yb = torch.as_tensor((y - mean) / std, dtype=torch.float32)[boot]  # (m, n)

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
        self._weights = [w.detach() for w in weights]
        return self

    def predict(self, params_list: Sequence[Mapping[str, Any]]) -> tuple[Array, Array]:
        """Mean and standard deviation over the ensemble, per params dict."""
        if self._weights is None:
            raise RuntimeError("the predictor is not fitted; call fit() first.")
        x = torch.as_tensor(self.encoder.encode_many(params_list), dtype=torch.float32)
        with torch.no_grad():
            out = _forward(self._weights, x.expand(self.n_members, *x.shape)).squeeze(-1)
        preds = out.double().numpy() * self._scale[1] + self._scale[0]  # (m, n)
        return preds.mean(axis=0), preds.std(axis=0)

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
        y = np.asarray(targets, dtype=np.float64)
        order = np.random.default_rng(self.seed).permutation(n)
        out = np.empty(n)
        for k in range(folds):
            test = order[k::folds]
            train = np.setdiff1d(order, test)
            clone = MLPEnsemble(
                self.encoder.distributions,
                n_members=self.n_members,
                hidden=self.hidden,
                steps=self.steps,
                lr=self.lr,
                weight_decay=self.weight_decay,
                seed=self.seed + k,
            )
            clone.fit([params_list[i] for i in train], y[train])
            out[test] = clone.predict([params_list[i] for i in test])[0]
        return PredictorQuality(
            kendall_tau=kendall_tau(out, y),
            spearman_rho=spearman_rho(out, y),
            rmse=float(np.sqrt(((out - y) ** 2).mean())),
            n=n,
            folds=folds,
        )


def _forward(w: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    h = torch.relu(torch.bmm(x, w[0]) + w[1])
    h = torch.relu(torch.bmm(h, w[2]) + w[3])
    return torch.bmm(h, w[4]) + w[5]


class PredictorEvaluator(Evaluator):
    """Train the first ``warmup`` candidates for real, then score candidates with a predictor.

    Args:
        fallback: The evaluator that really trains (e.g. :class:`FullTraining`); used until the
            study holds ``warmup`` completed trials it scored.
        space: The study's search space (its ``distributions()`` fix the encoding).
        warmup: Really-trained completed trials needed before predicting.
        target: The name of ``fallback``'s value the predictor learns (``"val_accuracy"``).
        predictor: Settings of the :class:`MLPEnsemble` (its ``distributions`` are the space's).

    The value is named ``"predicted_" + target.removeprefix("val_")`` (``"predicted_accuracy"``
    by default; add it to the objectives as maximised): during warm-up it is the trained
    value itself, afterwards the ensemble mean. Metrics: ``scored_by`` (``"training"`` or
    ``"predictor"``), ``predictor_target`` on trained trials (the training set: every worker
    reads it from the study), ``predicted_std`` and ``predictor_train_size`` on predicted ones.

    The candidate's params are read from the study: the pipeline stores the spec in the running
    trial's ``user_attrs["spec"]`` before calling :meth:`evaluate` and passes the study to
    :meth:`attach`; the running trial with that spec supplies the params.
    """

    def __init__(
        self,
        fallback: Evaluator,
        *,
        space: SearchSpace,
        warmup: int = 20,
        target: str = "val_accuracy",
        predictor: Mapping[str, Any] | None = None,
    ) -> None:
        warn_experimental("PredictorEvaluator")
        check_int("warmup", warmup, minimum=2)
        self.fallback = fallback
        self.data = fallback.data
        self.space = space
        self.warmup = warmup
        self.target = target
        self.value_name = "predicted_" + target.removeprefix("val_")
        self.predictor_settings = dict(predictor or {})
        MLPEnsemble(space.distributions(), **self.predictor_settings)  # checks the settings
        self._study: optuna.Study | None = None
        self._fitted: tuple[tuple[int, ...], MLPEnsemble] | None = None

    def attach(self, study: optuna.Study) -> None:
        self._study = study
        self.fallback.attach(study)

    def training_set(self) -> tuple[list[dict[str, Any]], list[float], tuple[int, ...]]:
        """Params, targets and trial numbers of the study's completed, really-trained trials."""
        if self._study is None:
            raise RuntimeError("PredictorEvaluator needs the study: call attach(study) first.")
        trials = self._study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        used = [t for t in trials if isinstance(t.user_attrs.get("predictor_target"), float)]
        used = [t for t in used if math.isfinite(t.user_attrs["predictor_target"])]
        return (
            [t.params for t in used],
            [t.user_attrs["predictor_target"] for t in used],
            tuple(t.number for t in used),
        )

    def quality(self, *, folds: int = 5) -> PredictorQuality:
        """k-fold held-out quality of the predictor on the study's trained trials."""
        params, targets, _ = self.training_set()
        return MLPEnsemble(self.space.distributions(), **self.predictor_settings).validate(
            params, targets, folds=folds
        )

    def evaluate(self, spec: ArchitectureSpec, *, report: Report | None, seed: int) -> Evaluation:
        params, targets, numbers = self.training_set()
        if len(targets) < self.warmup:
            result = self.fallback.evaluate(spec, report=report, seed=seed)
            if self.target not in result.values:
                raise ValueError(
                    f"the fallback {type(self.fallback).__name__} gave no {self.target!r} "
                    f"value (it gave {sorted(result.values)}); pass the `target` it reports."
                )
            value = float(result.values[self.target])
            return Evaluation(
                values={**result.values, self.value_name: value},
                metrics={**result.metrics, "scored_by": "training", "predictor_target": value},
                stopped_early=result.stopped_early,
                model=result.model,
            )
        if self._fitted is None or self._fitted[0] != numbers:
            predictor = MLPEnsemble(self.space.distributions(), **self.predictor_settings)
            self._fitted = (numbers, predictor.fit(params, targets))
        mean, std = self._fitted[1].predict([self._candidate_params(spec)])
        return Evaluation(
            values={self.value_name: float(mean[0])},
            metrics={
                "scored_by": "predictor",
                "predicted_std": float(std[0]),
                "predictor_train_size": len(targets),
            },
        )

    def _candidate_params(self, spec: ArchitectureSpec) -> dict[str, Any]:
        assert self._study is not None  # training_set() checked it
        wanted = (spec.to_json(), spec.to_dict())  # stored as JSON text (or a dict, earlier)
        for t in self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.user_attrs.get("spec") in wanted:
                return dict(t.params)
        raise ValueError(
            "PredictorEvaluator found no running trial of the attached study whose "
            "user_attrs['spec'] is this spec; the pipeline must store the spec on the trial "
            "before evaluating it (NASObjective does)."
        )
