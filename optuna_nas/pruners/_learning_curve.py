"""``LearningCurvePruner``: prune when the extrapolated final value is unlikely to be good."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_nas import _compat
from optuna_nas._validation import check_int
from optuna_nas._validation import check_optional_int
from optuna_nas.pruners._curves import extrapolate_curve
from optuna_nas.pruners._curves import point_forecast

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


class LearningCurvePruner(BasePruner):
    """Prune a trial whose learning curve is unlikely to end better than the k-th best trial.

    After Domhan et al., "Speeding up Automatic Hyperparameter Optimization of Deep Neural
    Networks by Extrapolation of Learning Curves", IJCAI 2015: the partial curve of intermediate
    values is extrapolated to ``final_step`` by an ensemble of parametric curve families with a
    bootstrap uncertainty (:func:`~optuna_nas.pruners.extrapolate_curve`, whose docstring says
    exactly how it simplifies the paper's MCMC), and the trial is pruned when the predicted
    probability that its final value beats the ``k``-th best final value of the completed
    trials is below ``threshold``.

    Args:
        final_step: The step of a full run's last report (e.g. the number of epochs when
            epoch ``e`` is reported as step ``e``). None: the largest last step of the
            completed trials.
        k: Compare against the ``k``-th best completed trial (1: the best).
        threshold: Prune when ``P(final value better than the k-th best) < threshold``.
        n_warmup_steps: Never prune before this step; at least 3 values are needed anyway.
        n_samples: Draws from the predictive distribution of the final value.
        bounds: The range of the value (``(0, 1)`` for accuracy), or None.
        noise_floor: Minimum standard deviation of the per-step noise (see the forecast).
        seed: Seeds the bootstrap; each decision draws from ``(seed, trial number, step)``.
        calibrate: Calibrate the forecast on the study's completed curves (see below).
        min_calibration_trials: Completed trials with a curve at the current step needed
            before the calibrated forecast replaces the bootstrap one.

    With ``calibrate``, the uncertainty comes from the study's own completed trials instead of
    the bootstrap, as Chandrashekaran & Lane ("Speeding up Hyper-parameter Optimization by
    Extrapolation of Learning Curves Using Previous Builds", ECML-PKDD 2017) use earlier curves:
    each completed trial's curve, cut at the current step, is extrapolated with the same
    families (:func:`~optuna_nas.pruners.point_forecast`) and its error against its actual final
    value is kept; the trial's predictive distribution is its own point forecast plus a normal
    error with those errors' mean and standard deviation (the plug-in predictive, scale
    ``s * sqrt(1 + 1/n)``), so a systematic optimism or pessimism of the families on this kind
    of curve is corrected and the spread is what the study has actually seen. (The errors'
    empirical distribution itself, tried first, only gives probabilities in steps of ``1/n``:
    with 5 errors every threshold up to 0.2 meant "none of them reaches the best".) Until
    ``min_calibration_trials`` such errors exist, the bootstrap forecast is used.

    Defaults: ``calibrate=True, threshold=0.2``, as measured in ``benchmarks/pruners.py`` on
    six sets of real 10-epoch curves (digits and MNIST-5k, two spaces, two training seeds):
    44-49% of epochs saved with at most 0.45 points of best accuracy lost on every set. Domhan
    et al.'s own rule is ``calibrate=False, threshold=0.05`` (their MCMC forecast; our bootstrap
    simplification of it saved only 26-43% there).

    Works in single-objective studies (Optuna's ``Trial.should_prune`` contract). For a
    minimised value the curve is negated, so it must fall towards its asymptote.
    """

    def __init__(
        self,
        *,
        final_step: int | None = None,
        k: int = 1,
        threshold: float = 0.2,
        n_warmup_steps: int = 3,
        n_samples: int = 200,
        bounds: tuple[float, float] | None = (0.0, 1.0),
        noise_floor: float = 0.005,
        seed: int = 0,
        calibrate: bool = True,
        min_calibration_trials: int = 5,
    ) -> None:
        self._final_step = check_optional_int("final_step", final_step, minimum=0)
        self._k = check_int("k", k, minimum=1)
        self._n_warmup_steps = check_int("n_warmup_steps", n_warmup_steps, minimum=0)
        self._n_samples = check_int("n_samples", n_samples, minimum=1)
        self._min_calibration = check_int(
            "min_calibration_trials", min_calibration_trials, minimum=2
        )
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"`0 < threshold < 1` must hold, but got {threshold=}.")
        if bounds is not None and not (len(bounds) == 2 and bounds[0] < bounds[1]):
            raise ValueError(
                f"`bounds` must be None or (low, high) with low < high, but got {bounds=}."
            )
        if not (math.isfinite(noise_floor) and noise_floor >= 0):
            raise ValueError(f"`noise_floor` must be finite and >= 0, but got {noise_floor=}.")
        self._threshold = threshold
        self._bounds = bounds
        self._noise_floor = noise_floor
        self._seed = seed
        self._calibrate = bool(calibrate)
        self._errors: dict[tuple[int, int, int], float | None] = {}

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self._n_warmup_steps or len(trial.intermediate_values) < 3:
            return False
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        finals = [t.value for t in completed if t.value is not None and math.isfinite(t.value)]
        if len(finals) < self._k:
            return False
        final_step = self._final_step
        if final_step is None:
            final_step = max(
                (t.last_step for t in completed if t.last_step is not None), default=step
            )
        if step >= final_step:
            return False
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        reference = sorted((sign * v for v in finals), reverse=True)[self._k - 1]
        steps = sorted(trial.intermediate_values)
        values = [sign * trial.intermediate_values[s] for s in steps]
        if any(math.isnan(v) for v in values[-1:]):
            return True
        bounds = self._bounds
        if bounds is not None and sign < 0:
            bounds = (-bounds[1], -bounds[0])
        if self._calibrate:
            errors = self._calibration_errors(completed, step, final_step, sign, bounds)
            if len(errors) >= self._min_calibration:
                mean = point_forecast(steps, values, final_step=final_step, bounds=bounds)
                return self._calibrated_chance(mean, np.array(errors), reference) < self._threshold
        rng = np.random.default_rng([self._seed, trial.number, step])
        forecast = extrapolate_curve(
            steps,
            values,
            final_step=final_step,
            n_samples=self._n_samples,
            bounds=bounds,
            noise_floor=self._noise_floor,
            rng=rng,
        )
        return forecast.probability_above(reference) < self._threshold

    def _calibrated_chance(self, mean: float, errors: np.ndarray, reference: float) -> float:
        """``P(final > reference)`` when ``final = mean + error`` and the errors seen are a sample
        of a normal distribution: the plug-in predictive ``N(mean + e_bar, s^2 (1 + 1/n))``
        (``s`` not below ``noise_floor``)."""
        scale = max(float(errors.std(ddof=1)), self._noise_floor) * math.sqrt(1 + 1 / len(errors))
        centre = mean + float(errors.mean())
        if scale == 0:
            return float(centre > reference)
        return 0.5 * math.erfc((reference - centre) / (scale * math.sqrt(2)))

    def _calibration_errors(
        self,
        completed: list[FrozenTrial],
        step: int,
        final_step: int,
        sign: float,
        bounds: tuple[float, float] | None,
    ) -> list[float]:
        """Final value minus the point forecast from the curve up to ``step``, per completed
        trial (cached: a completed trial never changes)."""
        errors = []
        for t in completed:
            key = (_compat.trial_id(t), step, final_step)
            if key not in self._errors:
                self._errors[key] = None
                prefix = sorted(s for s in t.intermediate_values if s <= step)
                values = [sign * t.intermediate_values[s] for s in prefix]
                if (
                    t.value is not None
                    and math.isfinite(t.value)
                    and len(prefix) >= 3
                    and all(math.isfinite(v) for v in values)
                ):
                    forecast = point_forecast(prefix, values, final_step=final_step, bounds=bounds)
                    self._errors[key] = sign * t.value - forecast
            error = self._errors[key]
            if error is not None:
                errors.append(error)
        return errors
