"""LearningCurvePruner: synthetic curves for the decision, one real tiny study on digits."""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence
import math

import numpy as np
import optuna
from optuna.trial import TrialState
import pytest
import torch

from optuna_nas.data import load_digits
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.objective import NASObjective
from optuna_nas.pruners import LearningCurvePruner
from optuna_nas.pruners import extrapolate_curve
from optuna_nas.pruners import point_forecast
from optuna_nas.spaces import ChainSpace


def saturating(final: float, rate: float, steps: int) -> list[float]:
    return [final - (final - 0.1) * math.exp(-rate * s) for s in range(1, steps + 1)]


def study_with(
    finals: Sequence[float], pruner: optuna.pruners.BasePruner, epochs: int = 20
) -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for final in finals:
        curve = saturating(final, 0.5, epochs)
        study.add_trial(
            optuna.trial.create_trial(
                value=curve[-1], intermediate_values=dict(enumerate(curve, start=1))
            )
        )
    return study


def decide(study: optuna.Study, partial: Sequence[float]) -> bool:
    trial = study.ask()
    prune = False
    for step, value in enumerate(partial, start=1):
        trial.report(value, step)
        prune = trial.should_prune()
    return prune


def test_prunes_a_clearly_bad_curve_and_keeps_a_good_one() -> None:
    pruner = LearningCurvePruner(final_step=20, threshold=0.05, n_warmup_steps=3)
    study = study_with([0.90, 0.93, 0.95], pruner)
    assert decide(study, saturating(0.50, 0.5, 5))  # plateaus far below 0.95
    assert not decide(study, saturating(0.99, 0.3, 5))  # still rising towards more than 0.95


def test_compares_with_the_kth_best_and_waits_for_warmup_and_k_trials() -> None:
    bad = saturating(0.88, 0.5, 6)
    assert decide(study_with([0.80, 0.93, 0.95], LearningCurvePruner(final_step=20, k=1)), bad)
    assert not decide(study_with([0.80, 0.93, 0.95], LearningCurvePruner(final_step=20, k=3)), bad)
    warm = LearningCurvePruner(final_step=20, n_warmup_steps=8)
    assert not decide(study_with([0.95], warm), bad)  # step 6 < 8
    assert not decide(study_with([0.95], LearningCurvePruner(final_step=20, k=2)), bad)


def test_point_forecast_follows_a_saturating_curve() -> None:
    curve = saturating(0.9, 0.5, 20)
    forecast = point_forecast(list(range(1, 9)), curve[:8], final_step=20)
    assert abs(forecast - curve[-1]) < 0.02
    assert forecast == point_forecast(list(range(1, 9)), curve[:8], final_step=20)


def late_jump(final: float, steps: int, jump: float) -> list[float]:
    """A curve that saturates early and then jumps by ``jump`` at its last step (e.g. a
    learning-rate drop): extrapolating its first steps underestimates its end by ~``jump``."""
    curve = saturating(final - jump, 0.8, steps)
    return [*curve[:-1], curve[-1] + jump]


def test_calibration_learns_how_the_studys_curves_end() -> None:
    """Completed curves end 0.1 above where their first steps point: a calibrated pruner keeps a
    trial whose forecast is 0.06 short of the best (it will likely jump too); the bootstrap
    forecast, which cannot know, prunes it."""
    epochs = 12

    def study(pruner: LearningCurvePruner) -> optuna.Study:
        s = optuna.create_study(direction="maximize", pruner=pruner)
        for final in (0.80, 0.82, 0.84, 0.86, 0.88, 0.90):
            curve = late_jump(final, epochs, 0.1)
            s.add_trial(
                optuna.trial.create_trial(
                    value=curve[-1], intermediate_values=dict(enumerate(curve, start=1))
                )
            )
        return s

    partial = late_jump(0.90 - 0.06 + 0.1, epochs, 0.1)[:6]  # heads for 0.74, then jumps
    calibrated = LearningCurvePruner(final_step=epochs, calibrate=True)
    assert not decide(study(calibrated), partial)
    assert decide(study(LearningCurvePruner(final_step=epochs, calibrate=False)), partial)
    # Without enough completed curves to calibrate on, the bootstrap forecast decides.
    few = LearningCurvePruner(final_step=epochs, calibrate=True, min_calibration_trials=7)
    assert decide(study(few), partial)


def test_minimised_curves_are_negated() -> None:
    pruner = LearningCurvePruner(final_step=20, bounds=None)
    study = optuna.create_study(direction="minimize", pruner=pruner)
    loss = [1 - v for v in saturating(0.95, 0.5, 20)]
    study.add_trial(
        optuna.trial.create_trial(value=loss[-1], intermediate_values=dict(enumerate(loss, 1)))
    )
    assert decide(study, [1 - v for v in saturating(0.5, 0.5, 5)])
    assert not decide(study, [1 - v for v in saturating(0.99, 0.3, 5)])


def test_forecast_intervals_cover_the_truth_of_noisy_curves() -> None:
    rng = np.random.default_rng(0)
    truth = saturating(0.9, 0.5, 30)
    covered = []
    for _ in range(20):
        noisy = [v + rng.normal(0, 0.01) for v in truth[:8]]
        forecast = extrapolate_curve(range(1, 9), noisy, final_step=30, rng=rng)
        low, high = np.percentile(forecast.samples, [5, 95])
        covered.append(low < truth[-1] < high)
        assert math.isclose(sum(forecast.weights.values()), 1.0)
    assert np.mean(covered) >= 0.7  # nominal 0.9; measured 0.85-0.9 for this curve


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "k >= 1"),
        ({"threshold": 1.5}, "threshold"),
        ({"final_step": -1}, "final_step"),
        ({"bounds": (1.0, 0.0)}, "bounds"),
        ({"n_warmup_steps": -1}, "n_warmup_steps"),
        ({"min_calibration_trials": 0}, "min_calibration_trials"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LearningCurvePruner(**kwargs)  # type: ignore[arg-type]


def test_extrapolation_rejects_too_short_curves() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        extrapolate_curve([1, 2], [0.1, 0.2], final_step=5, rng=np.random.default_rng(0))


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_real_study_prunes_a_bad_architecture_and_keeps_its_curve(one_thread: None) -> None:
    data = load_digits(seed=0)
    space = ChainSpace(
        input_shape=data.input_shape, num_outputs=data.num_classes, max_depth=3, widths=(16,)
    )
    epochs = 6
    objective = NASObjective(
        space,
        FullTraining(data, training=TrainingConfig(epochs=epochs)),
        objectives=("val_accuracy",),
    )
    pruner = LearningCurvePruner(final_step=epochs, n_warmup_steps=3)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    good = {"depth": 2, "activation": "relu", "layer1/op": "conv_3x3", "layer1/width": 16}
    good |= {
        "layer1/skip": "none",
        "layer2/op": "conv_3x3",
        "layer2/width": 16,
        "layer2/skip": "none",
    }
    bad = {"depth": 2, "activation": "relu", "layer1/op": "max_pool_3x3", "layer1/skip": "none"}
    bad |= {"layer2/op": "identity", "layer2/skip": "none"}  # only the stem learns: far worse
    study.enqueue_trial(good)
    study.enqueue_trial(bad)
    study.optimize(objective, n_trials=2)
    kept, pruned = study.trials
    assert kept.state is TrialState.COMPLETE and len(kept.intermediate_values) == epochs
    assert pruned.state is TrialState.PRUNED, pruned.intermediate_values
    assert 3 <= len(pruned.intermediate_values) < epochs
    assert list(pruned.intermediate_values.values()) == pruned.user_attrs["val_accuracy_curve"]


def test_calibrated_chance_is_the_normal_predictive_of_the_errors_seen() -> None:
    """``P(final > best)`` under ``N(forecast + mean error, sd^2 (1 + 1/n))``: smooth in the
    distance to the best (the errors' empirical fraction would only take the values k/n)."""
    pruner = LearningCurvePruner(noise_floor=0.0)
    errors = np.array([0.01, 0.03, 0.02, 0.04, 0.00])  # mean 0.02, sd 0.0158
    scale = errors.std(ddof=1) * math.sqrt(1 + 1 / 5)
    for gap_in_sd, want in ((0.0, 0.5), (1.0, 0.1587), (-1.0, 0.8413), (2.0, 0.0228)):
        got = pruner._calibrated_chance(0.80, errors, 0.82 + gap_in_sd * scale)
        assert math.isclose(got, want, abs_tol=1e-4)
    floored = LearningCurvePruner(noise_floor=0.05)._calibrated_chance(0.80, errors, 0.87)
    assert math.isclose(floored, 0.5 * math.erfc(0.05 / (0.05 * math.sqrt(1.2) * math.sqrt(2))))
