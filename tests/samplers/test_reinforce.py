from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from optuna_nas.samplers import ReinforceSampler
from optuna_nas.samplers._reinforce import POLICY_ATTR

from ._toy import TARGET
from ._toy import matches


def _stored(study: optuna.Study) -> Any:
    return study._storage.get_study_system_attrs(study._study_id)[POLICY_ATTR]


def test_policy_learns_the_rewarded_choices() -> None:
    sampler = ReinforceSampler(seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(matches, n_trials=150)
    probs = sampler.policy_probabilities(study)
    learned = [probs[f"x{i}"][t] for i, t in enumerate(TARGET)]
    assert min(learned) > 0.35  # uniform: 0.2
    assert sum(learned) / len(learned) > 0.5
    late = [t.value for t in study.trials[-30:]]
    early = [t.value for t in study.trials[:30]]
    assert sum(late) > sum(early) + 30


def test_policy_persists_in_the_study_and_a_resumed_study_continues_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rl.db'}"
    first = ReinforceSampler(seed=0)
    study = optuna.create_study(storage=url, study_name="s", direction="maximize", sampler=first)
    study.optimize(matches, n_trials=12)
    probs = first.policy_probabilities(study)
    stored = _stored(study)
    assert stored["consumed_below"] == 12 and stored["consumed"] == []

    second = ReinforceSampler(seed=1)  # a fresh process would start here
    resumed = optuna.load_study(storage=url, study_name="s", sampler=second)
    assert second.policy_probabilities(resumed) == probs  # exact: JSON keeps the floats
    resumed.optimize(matches, n_trials=4)
    second.policy_probabilities(resumed)
    assert _stored(resumed)["consumed_below"] == 16


def test_every_trial_of_parallel_workers_is_counted_once() -> None:
    sampler = ReinforceSampler(seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(matches, n_trials=40, n_jobs=2)
    sampler.policy_probabilities(study)
    stored = _stored(study)
    assert stored["consumed_below"] == 40 and stored["consumed"] == []


def test_floats_are_drawn_at_random_and_small_int_ranges_are_decisions() -> None:
    sampler = ReinforceSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(
        lambda t: t.suggest_float("lr", 1e-4, 1.0, log=True) + t.suggest_int("depth", 1, 8),
        n_trials=20,
    )
    probs = sampler.policy_probabilities(study)
    assert set(probs) == {"depth"} and len(probs["depth"]) == 8
    assert probs["depth"]["1"] > 0.125  # minimising: small depths are rewarded


def _two_objectives(trial: optuna.Trial) -> tuple[float, float]:
    return matches(trial), float(sum(trial.params[f"x{i}"] != "none" for i in range(10)))


@pytest.mark.parametrize(
    "kwargs", [{}, {"weights": (1.0, 0.5)}, {"reference_point": (-1.0, 11.0)}]
)
def test_several_objectives_with_a_scalarisation_or_hypervolume_improvement(
    kwargs: dict[str, Any],
) -> None:
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=ReinforceSampler(seed=0, **kwargs)
    )
    study.optimize(_two_objectives, n_trials=30)
    assert _stored(study)["consumed_below"] == 29  # all but the last, so far


def test_a_reward_setting_must_fit_the_objectives() -> None:
    single = optuna.create_study(sampler=ReinforceSampler(weights=(1.0,)))
    with pytest.raises(ValueError, match="`weights` is for studies with several objectives"):
        single.optimize(_two_objectives, n_trials=1)
    three = optuna.create_study(
        directions=["maximize"] * 3, sampler=ReinforceSampler(reference_point=(0.0, 0.0))
    )
    with pytest.raises(ValueError, match=r"`len\(reference_point\) == 3`"):
        three.optimize(_two_objectives, n_trials=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"baseline_decay": 1.0}, "baseline_decay"),
        ({"weights": (1.0,), "reference_point": (0.0,)}, "at most one"),
        ({"avoid_duplicates": 1}, "avoid_duplicates"),
    ],
)
def test_bad_arguments_raise_one_clear_error(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ReinforceSampler(**kwargs)
