"""``run_study``'s own loop on a real SQLite file: consecutive failures, callbacks, surplus."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import pytest

from optuna_nas.storage import open_storage
from optuna_nas.storage import run_study


@pytest.fixture(params=[None, 60], ids=["no-heartbeat", "heartbeat"])
def study(request: pytest.FixtureRequest, tmp_path: Path) -> optuna.Study:
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=request.param)
    return optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))


def _scripted(outcomes: str) -> object:
    """An objective failing ("f") or succeeding ("s") in the given order, then succeeding."""
    calls = iter(outcomes)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        if next(calls, "s") == "f":
            raise ValueError("scripted failure")
        return x

    return objective


def test_it_stops_after_that_many_failures_in_a_row(study: optuna.Study) -> None:
    with pytest.raises(
        RuntimeError,
        match=r"3 trials of this worker failed in a row \(the last "
        r"is trial 5",
    ):
        run_study(
            study,
            _scripted("ffsfff"),
            n_trials=20,
            catch=(ValueError,),
            max_consecutive_failures=3,
        )  # type: ignore[arg-type]
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL] * 2 + [TrialState.COMPLETE] + [TrialState.FAIL] * 3


def test_a_success_resets_the_count_and_the_study_finishes(study: optuna.Study) -> None:
    seen: list[tuple[int, TrialState]] = []

    def callback(_: optuna.Study, t: FrozenTrial) -> None:
        seen.append((t.number, t.state))

    ran = run_study(
        study,
        _scripted("ffsffsff"),
        n_trials=3,
        catch=(ValueError,),
        max_consecutive_failures=3,
        callbacks=[callback],
    )  # type: ignore[arg-type]
    assert ran == 9  # 3 complete, 6 failed
    assert [n for n, _ in seen] == list(range(9))  # the user's callbacks see every trial
    assert sum(s is TrialState.COMPLETE for _, s in seen) == 3
