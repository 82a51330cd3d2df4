"""A predictor in the loop: :class:`PredictorEvaluator` (BANANAS-style, White et al. 2021).

It trains the first ``warmup`` candidates of a study for real (with a wrapped evaluator), then
scores every later one with an :class:`~optuna_nas.evaluation.MLPEnsemble` and still trains
those whose acquisition ranks at the top, refitting on the trained results as they arrive. The
training set is read from the study's storage, so every worker and every resumed run sees the
same one.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import math
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
from optuna.trial import TrialState

from optuna_nas._experimental import warn_experimental
from optuna_nas._validation import check_int
from optuna_nas.evaluation._base import Evaluation
from optuna_nas.evaluation._base import Evaluator
from optuna_nas.evaluation._base import Report
from optuna_nas.evaluation._ensemble import MLPEnsemble
from optuna_nas.evaluation._ensemble import PredictorQuality
from optuna_nas.spaces import SearchSpace
from optuna_nas.spec import ArchitectureSpec

if TYPE_CHECKING:
    import optuna


class PredictorEvaluator(Evaluator):
    """Score candidates with a predictor fitted on the study's trained ones, and keep training
    the candidates the acquisition ranks highest (BANANAS-style, White et al., AAAI 2021).

    Args:
        fallback: The evaluator that really trains (e.g. :class:`FullTraining`).
        space: The study's search space (its ``distributions()`` fix the encoding).
        warmup: Really-trained completed trials needed before predicting; until then every
            candidate is trained.
        target: The name of ``fallback``'s value the predictor learns (``"val_accuracy"``);
            higher must be better.
        refit_every: ``k``: the ensemble is refitted after every ``k`` new trained results.
        exploration: ``kappa`` of the acquisition ``mean + kappa * std`` (an upper confidence
            bound, one of BANANAS's acquisitions).
        train_quantile: ``q``: a candidate whose acquisition ranks in the top ``q`` fraction
            (see the rule below) is trained.
        predictor: Settings of the :class:`MLPEnsemble` (its ``distributions`` are the space's).

    The rule, for a candidate after warm-up, with ``n`` the study's COMPLETE trials this
    evaluator trained (``predictor_target`` set, in trial-number order):

    1. Fit: the ensemble is fitted on the first ``warmup + k * floor((n - warmup) / k)`` of
       them (a pure function of the study: a fresh worker or a resumed run fits the same set;
       in one process a fit is reused until the set changes).
    2. Acquisition: ``a(x) = mean(x) + kappa * std(x)`` of the ensemble's prediction.
    3. Decision: ``reference`` is every COMPLETE trial this evaluator scored (trained or
       predicted). The candidate is trained by ``fallback`` iff ``a(candidate) >=`` the
       ``1 - q`` quantile (numpy's linear one) of ``a`` over ``reference`` under the same fit;
       otherwise its value is the predicted mean. So a candidate is trained when it is
       predicted (optimistically) to be among the best ``q`` of everything the study has seen,
       and every trained result refits the predictor (``k = 1``) on its own neighbourhood.

    Defaults (``warmup=20``, ``k=1``, ``kappa=0.5``, ``q=0.1``: BANANAS trains the best of 10
    candidates per round) are set by reasoning, not tuned on a benchmark; one fit costs about
    0.5-1 s on a CPU at 100-200 trained results, small next to training a network.

    How it differs from BANANAS: there, the search algorithm proposes candidates by mutating
    the best trained architectures, ranks them all by the acquisition (independent Thompson
    sampling over a path encoding) and trains the top ones; nothing is left untrained. Here the
    study's sampler proposes one candidate per trial, and this evaluator only decides whether to
    train it; the untrained ones complete with their predicted value, which the sampler then
    learns from as from any value. The encoding is the params one-hot (any search space), and
    the acquisition is a UCB rather than ITS.

    The value is named ``"predicted_" + target.removeprefix("val_")`` (``"predicted_accuracy"``
    by default; add it to the objectives as maximised): for a trained candidate the trained
    value itself, for a predicted one the ensemble mean. Metrics: ``scored_by``
    (``"training"`` or ``"predictor"``) and, on trained ones, ``predictor_target`` (the
    training set: every worker reads it from the study) and ``trained_for`` (``"warmup"`` or
    ``"acquisition"``). After warm-up every candidate also records what decided it:
    ``predicted_mean``, ``predicted_std``, ``predictor_acquisition``,
    ``predictor_threshold`` and ``predictor_train_size`` (a trained candidate's
    ``predicted_mean`` against its ``predictor_target`` is the predictor's online error).

    The candidate's params come from the pipeline: this evaluator ``supports_params``, so
    :class:`~optuna_nas.objective.NASObjective` passes ``params=dict(trial.params)``.
    """

    supports_params = True

    def __init__(
        self,
        fallback: Evaluator,
        *,
        space: SearchSpace,
        warmup: int = 20,
        target: str = "val_accuracy",
        refit_every: int = 1,
        exploration: float = 0.5,
        train_quantile: float = 0.1,
        predictor: Mapping[str, Any] | None = None,
    ) -> None:
        warn_experimental("PredictorEvaluator")
        check_int("warmup", warmup, minimum=2)
        check_int("refit_every", refit_every, minimum=1)
        if not (isinstance(exploration, (int, float)) and 0 <= exploration < math.inf):
            raise ValueError(f"`exploration` must be finite and >= 0, but got {exploration=}.")
        if not (isinstance(train_quantile, (int, float)) and 0 <= train_quantile <= 1):
            raise ValueError(f"`train_quantile` must be in [0, 1], but got {train_quantile=}.")
        self.fallback = fallback
        self.data = fallback.data
        self.space = space
        self.warmup = warmup
        self.target = target
        self.refit_every = refit_every
        self.exploration = float(exploration)
        self.train_quantile = float(train_quantile)
        self.value_name = "predicted_" + target.removeprefix("val_")
        self.predictor_settings = dict(predictor or {})
        MLPEnsemble(space.distributions(), **self.predictor_settings)  # checks the settings
        self._study: optuna.Study | None = None
        self._fitted: tuple[tuple[int, ...], MLPEnsemble] | None = None

    def attach(self, study: optuna.Study) -> None:
        self._study = study
        self.fallback.attach(study)

    def _scored(self) -> list[optuna.trial.FrozenTrial]:
        """The study's COMPLETE trials this evaluator scored (trained or predicted)."""
        if self._study is None:
            raise RuntimeError("PredictorEvaluator needs the study: call attach(study) first.")
        trials = self._study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return [t for t in trials if "scored_by" in t.user_attrs]

    def training_set(self) -> tuple[list[dict[str, Any]], list[float], tuple[int, ...]]:
        """Params, targets and trial numbers of the study's completed, really-trained trials."""
        used = [
            t
            for t in self._scored()
            if isinstance(t.user_attrs.get("predictor_target"), float)
            and math.isfinite(t.user_attrs["predictor_target"])
        ]
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

    def evaluate(
        self,
        spec: ArchitectureSpec,
        *,
        report: Report | None,
        seed: int,
        params: Mapping[str, Any] | None = None,
    ) -> Evaluation:
        if params is None:
            raise ValueError(
                "PredictorEvaluator needs the candidate's params: pass `params=` (the trial's "
                "params; NASObjective does, since the evaluator supports_params)."
            )
        train_params, targets, numbers = self.training_set()
        if len(targets) < self.warmup:
            return self._train(spec, report=report, seed=seed, params=params, why="warmup")
        predictor, fit_size = self._predictor(train_params, targets, numbers)
        mean, std = predictor.predict([params])
        acquisition = float(mean[0] + self.exploration * std[0])
        reference = [t.params for t in self._scored()]
        ref_mean, ref_std = predictor.predict(reference)
        threshold = float(
            np.quantile(ref_mean + self.exploration * ref_std, 1 - self.train_quantile)
        )
        decision = {
            "predicted_mean": float(mean[0]),
            "predicted_std": float(std[0]),
            "predictor_acquisition": acquisition,
            "predictor_threshold": threshold,
            "predictor_train_size": fit_size,
        }
        if acquisition >= threshold:
            return self._train(
                spec, report=report, seed=seed, params=params, why="acquisition", extra=decision
            )
        return Evaluation(
            values={self.value_name: float(mean[0])},
            metrics={"scored_by": "predictor", **decision},
        )

    def _predictor(
        self, params: list[dict[str, Any]], targets: list[float], numbers: tuple[int, ...]
    ) -> tuple[MLPEnsemble, int]:
        """The ensemble fitted on the first ``warmup + k * floor((n - warmup) / k)`` trained
        results (reused while that set is unchanged)."""
        used = _fit_slice(numbers, self.warmup, self.refit_every)
        if self._fitted is None or self._fitted[0] != numbers[: used.stop]:
            predictor = MLPEnsemble(self.space.distributions(), **self.predictor_settings)
            predictor.fit(params[used], targets[used])
            self._fitted = (numbers[used], predictor)
        return self._fitted[1], used.stop

    def _train(
        self,
        spec: ArchitectureSpec,
        *,
        report: Report | None,
        seed: int,
        params: Mapping[str, Any],
        why: str,
        extra: Mapping[str, Any] | None = None,
    ) -> Evaluation:
        passed: dict[str, Any] = {"params": dict(params)} if self.fallback.supports_params else {}
        result = self.fallback.evaluate(spec, report=report, seed=seed, **passed)
        if self.target not in result.values:
            raise ValueError(
                f"the fallback {type(self.fallback).__name__} gave no {self.target!r} "
                f"value (it gave {sorted(result.values)}); pass the `target` it reports."
            )
        value = float(result.values[self.target])
        return Evaluation(
            values={**result.values, self.value_name: value},
            metrics={
                **result.metrics,
                **(extra or {}),
                "scored_by": "training",
                "trained_for": why,
                "predictor_target": value,
            },
            stopped_early=result.stopped_early,
            model=result.model,
        )


def _fit_slice(numbers: Sequence[int], warmup: int, refit_every: int) -> slice:
    """Which of ``numbers`` trained results the predictor is fitted on (see the rule)."""
    n = len(numbers)
    return slice(0, warmup + refit_every * ((n - warmup) // refit_every))
