"""``run_study`` and trials left RUNNING by dead workers, on a real SQLite file.

A dead worker's trial is made the way a ``kill -9`` leaves it: ``study.ask()`` (RUNNING) with
one heartbeat and none after. Heartbeat 1 s, grace 2 s: such a trial is stale 2 s after its
last beat.
"""

from __future__ import annotations

from pathlib import Path
import threading
import time
import warnings

import optuna
from optuna.trial import TrialState
import pytest

from optuna_nas.storage import claim_board
from optuna_nas.storage import open_storage
from optuna_nas.storage import run_study
from optuna_nas.storage._run import RAISED_ATTR
from optuna_nas.storage._run import SLOT_ATTR
from optuna_nas.storage._run import SURPLUS_ATTR
from optuna_nas.storage._run import _claim_slot
from optuna_nas.storage._run import _KeptForRetry
from optuna_nas.storage._run import _settle


def _study(tmp_path: Path) -> optuna.Study:
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=1, grace_period=2)
    return optuna.create_study(
        storage=storage, study_name="s", sampler=optuna.samplers.RandomSampler(seed=0)
    )


def _dead_trial(study: optuna.Study) -> int:
    """A RUNNING trial whose worker died: one heartbeat, then silence. Returns its number."""
    with warnings.catch_warnings():  # "Heartbeat ... supposed to be used with Study.optimize"
        warnings.simplefilter("ignore", UserWarning)
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study._storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
    return trial.number


def test_a_finished_study_keeps_no_trial_of_a_dead_worker_running(tmp_path: Path) -> None:
    # The dead worker was waiting for a slot (it never ran the objective) when the only other
    # worker finished the study's one trial: before, that trial stayed RUNNING for ever.
    study = _study(tmp_path)
    dead = _dead_trial(study)
    start = time.monotonic()
    run_study(study, lambda t: t.suggest_float("x", 0, 1), n_trials=1, poll_interval=0.1)
    waited = time.monotonic() - start

    trials = {t.number: t for t in study.get_trials()}
    assert trials[dead].state is TrialState.FAIL  # failed as stale before run_study returned
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == dead]
    # The retry callback queued its retry (two, when the watcher thread and the main loop
    # failed the trial at once on SQLite: see the next test) ...
    assert retries
    for retry in retries:
        assert retry.state is TrialState.FAIL and retry.system_attrs[SURPLUS_ATTR]  # ... unrun
    states = [t.state for t in trials.values()]
    assert states.count(TrialState.COMPLETE) == 1
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    assert waited < 2 + 1 + 2 + 1  # at most grace + heartbeat + 2 polls, plus slack


def test_only_the_first_retry_of_a_failed_trial_runs(tmp_path: Path) -> None:
    # Two processes failing one stale trial at once each queue a retry (CI, SQLite: both read
    # it RUNNING and both fail it); the second must not evaluate the architecture again.
    study = _study(tmp_path)
    dead = _dead_trial(study)
    time.sleep(2.2)  # stale
    storage, dead_id = study._storage, study.trials[dead]._trial_id
    storage.set_trial_state_values(dead_id, TrialState.FAIL)
    callback = storage.get_heartbeat_stale_trial_callback()  # type: ignore[attr-defined]
    for _ in range(2):
        callback(study, storage.get_trial(dead_id))
    ran: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        ran.append(trial.number)
        return trial.suggest_float("x", 0, 1)

    run_study(study, objective, n_trials=3, poll_interval=0.05)
    trials = {t.number: t for t in study.get_trials()}
    first, second = (t for t in trials.values() if t.system_attrs.get("failed_trial") == dead)
    assert first.state is TrialState.COMPLETE and first.number in ran
    assert second.state is TrialState.FAIL and second.system_attrs[SURPLUS_ATTR]
    assert second.number not in ran
    assert sum(t.state is TrialState.COMPLETE for t in trials.values()) == 3


def test_a_trial_finished_elsewhere_while_it_ran_does_not_stop_the_worker(tmp_path: Path) -> None:
    # Another worker failed this worker's trial as stale (its heartbeats came late under load):
    # the tell raised UpdateFinishedTrialError and the worker died (CI, the gRPC restart test).
    study = _study(tmp_path)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        if trial.number == 0:  # as another worker's fail_stale_trials would
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        return x

    run_study(study, objective, n_trials=2, poll_interval=0.05)
    states = [t.state for t in study.get_trials()]
    assert states[0] is TrialState.FAIL and states.count(TrialState.COMPLETE) == 2


def test_settling_skips_a_retry_another_worker_took_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = _study(tmp_path)
    number = _dead_trial(study)
    storage, dead = study._storage, study.trials[number]._trial_id
    storage.set_trial_state_values(dead, TrialState.FAIL)
    storage.get_heartbeat_stale_trial_callback()(study, storage.get_trial(dead))  # type: ignore[attr-defined]
    view = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    (retry,) = view
    # Another worker settling the same study takes the retry and fails it after our read.
    storage.set_trial_state_values(retry._trial_id, TrialState.RUNNING)
    storage.set_trial_state_values(retry._trial_id, TrialState.FAIL)
    monkeypatch.setattr(
        study,
        "get_trials",
        lambda deepcopy=True, states=None: view if states == (TrialState.WAITING,) else [],
    )
    _settle(study, 0.05)  # raised UpdateFinishedTrialError before
    assert storage.get_trial(retry._trial_id).state is TrialState.FAIL


def test_user_enqueued_trials_stay_waiting_for_a_longer_run(tmp_path: Path) -> None:
    study = _study(tmp_path)
    run_study(study, lambda t: t.suggest_float("x", 0, 1), n_trials=1, poll_interval=0.1)
    study.enqueue_trial({"x": 0.25})
    run_study(study, lambda t: t.suggest_float("x", 0, 1), n_trials=1, poll_interval=0.1)
    (waiting,) = study.get_trials(states=(TrialState.WAITING,))
    assert waiting.system_attrs["fixed_params"] == {"x": 0.25}
    run_study(study, lambda t: t.suggest_float("x", 0, 1), n_trials=2, poll_interval=0.1)
    assert [t.params["x"] for t in study.get_trials()][-1] == 0.25


def test_a_dead_workers_trial_is_failed_while_this_worker_trains(tmp_path: Path) -> None:
    # A lone rerun used to fail a stale trial only between its own trials, so detection lagged
    # by a whole trial; the background check fails it within about grace + heartbeat.
    study = _study(tmp_path)
    dead = _dead_trial(study)
    beat = time.time()

    def slow(trial: optuna.Trial) -> float:
        time.sleep(5.0)
        return trial.suggest_float("x", 0, 1)

    run_study(study, slow, n_trials=1, poll_interval=0.1)
    trials = {t.number: t for t in study.get_trials()}
    mine = next(t for t in trials.values() if t.state is TrialState.COMPLETE)
    failed_at = trials[dead].datetime_complete
    assert trials[dead].state is TrialState.FAIL and failed_at is not None
    assert mine.datetime_complete is not None
    assert failed_at < mine.datetime_complete  # failed while this worker's trial ran
    assert failed_at.timestamp() - beat < 2 + 1 + 1  # grace + heartbeat, plus slack


def test_a_slot_claim_on_a_stale_view_of_the_trials_takes_a_free_slot_or_none(
    tmp_path: Path,
) -> None:
    # run_study hands the slot claim its own read of the trials from before study.ask(); by
    # the time of the claim other workers may have taken slots or finished the study.
    study = _study(tmp_path)
    before = study.get_trials(deepcopy=False)  # the view: no trial yet
    with warnings.catch_warnings():  # "Heartbeat ... supposed to be used with Study.optimize"
        warnings.simplefilter("ignore", UserWarning)
        other, mine = study.ask(), study.ask()
        assert _claim_slot(other, 2, 0.01, before)  # another worker takes slot 0 meanwhile
        assert _claim_slot(mine, 2, 0.01, before)  # the view says 0 is free; the board refuses
        slots = {t.number: t.system_attrs[SLOT_ATTR][1] for t in study.get_trials()}
        assert slots == {other.number: 0, mine.number: 1}
        study.tell(other, 1.0)
        study.tell(mine, 1.0)
        late = study.ask()
        start = time.monotonic()
        assert not _claim_slot(late, 2, 5.0, before)  # all finished: said on a fresh read
        assert time.monotonic() - start < 2.0  # without waiting a poll interval first
        # `late` tried slots 0 and 1 on its stale view and still names slot 1 while RUNNING:
        # the next late trial must see slot 1 finished, not open (CI hang of 4 gRPC workers).
        assert late.study.get_trials()[-1].system_attrs[SLOT_ATTR] == [late._trial_id, 1]
        found: list[bool] = []
        later = study.ask()
        thread = threading.Thread(
            target=lambda: found.append(_claim_slot(later, 2, 0.01)), daemon=True
        )
        thread.start()
        thread.join(timeout=10)
        assert found == [False]


def _failed_holding_slot_0(study: optuna.Study, *, raised: bool = False) -> optuna.Trial:
    """A trial that claimed slot 0 of 1 and was then failed, as Optuna's ``fail_stale_trials``
    leaves it before the retry callback runs (``raised``: failed by its own worker instead)."""
    with warnings.catch_warnings():  # "Heartbeat ... supposed to be used with Study.optimize"
        warnings.simplefilter("ignore", UserWarning)
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    assert _claim_slot(trial, 1, 0.01)
    if raised:
        study._storage.set_trial_system_attr(trial._trial_id, RAISED_ATTR, True)
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    return trial


def _claim_in_thread(study: optuna.Study, kept: _KeptForRetry) -> tuple[list, threading.Thread]:
    found: list = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        trial = study.ask()

    def claim() -> None:
        start = time.monotonic()
        found.append(_claim_slot(trial, 1, 0.05, None, kept))
        found.append(time.monotonic() - start)

    thread = threading.Thread(target=claim, daemon=True)
    thread.start()
    return found, thread


def test_a_slot_freed_by_a_stale_trial_waits_for_its_retry(tmp_path: Path) -> None:
    # fail_stale_trials fails a killed trial, then its callback queues the retry: a new trial
    # that looks in between must not take the slot (CI: the killed architecture ended unrun).
    study = _study(tmp_path)
    killed = _failed_holding_slot_0(study)
    found, thread = _claim_in_thread(study, _KeptForRetry(study))
    time.sleep(0.5)
    assert thread.is_alive() and not found  # the slot is kept: no retry yet, within the grace
    storage = study._storage
    storage.get_heartbeat_stale_trial_callback()(  # type: ignore[attr-defined]
        study, storage.get_trial(killed._trial_id)
    )
    thread.join(timeout=10)
    assert found[0] is False  # the new trial steps aside, the free slot goes to the retry
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        retry = study.ask()
    assert study._storage.get_trial(retry._trial_id).system_attrs["failed_trial"] == killed.number
    assert _claim_slot(retry, 1, 0.05, None, _KeptForRetry(study))


def test_a_slot_kept_for_a_retry_that_never_comes_frees_after_the_grace(tmp_path: Path) -> None:
    # The process failing the trial died before queuing the retry: the slot frees after the
    # grace period (2 s) from when this worker first saw it.
    study = _study(tmp_path)
    _failed_holding_slot_0(study)
    found, thread = _claim_in_thread(study, _KeptForRetry(study))
    thread.join(timeout=10)
    assert found[0] is True
    assert 2.0 <= found[1] < 4.0


def test_a_slot_of_a_trial_whose_objective_raised_is_free_at_once(tmp_path: Path) -> None:
    study = _study(tmp_path)
    _failed_holding_slot_0(study, raised=True)  # no retry comes for such a trial
    found, thread = _claim_in_thread(study, _KeptForRetry(study))
    thread.join(timeout=10)
    assert found[0] is True and found[1] < 1.0


def test_a_slot_of_a_stale_trial_without_retries_left_is_free_at_once(tmp_path: Path) -> None:
    storage = open_storage(
        f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=1, grace_period=2, max_retry=0
    )
    study = optuna.create_study(storage=storage, study_name="s")
    _failed_holding_slot_0(study)
    found, thread = _claim_in_thread(study, _KeptForRetry(study))
    thread.join(timeout=10)
    assert found[0] is True and found[1] < 1.0


def test_a_running_trials_slot_is_not_also_kept_for_a_retry(tmp_path: Path) -> None:
    # Only a trial failed as stale has its slot kept: a live running trial's slot counted as
    # held and as kept made a worker wait (up to the grace) for slots that were free.
    study = _study(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        other = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    assert _claim_slot(other, 2, 0.01)
    study._storage.record_heartbeat(other._trial_id)  # type: ignore[attr-defined]
    assert _KeptForRetry(study).slots(study.get_trials(deepcopy=False)) == set()
    began: list[float] = []
    start = time.monotonic()

    def objective(trial: optuna.Trial) -> float:
        began.append(time.monotonic() - start)
        return trial.suggest_float("x", 0, 1)

    # 2 slots, 1 held by the other worker's live trial: this worker starts in the other at once.
    run_study(study, objective, n_trials=2, timeout=1.5, poll_interval=0.05)
    assert began and began[0] < 1.0


def test_run_study_marks_a_trial_whose_objective_raised(tmp_path: Path) -> None:
    study = _study(tmp_path)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        if trial.number == 0:
            raise ValueError("a bad candidate")
        return x

    run_study(study, objective, n_trials=1, catch=(ValueError,), poll_interval=0.05)
    failed, done = study.get_trials()
    assert failed.state is TrialState.FAIL and failed.system_attrs[RAISED_ATTR] is True
    assert done.state is TrialState.COMPLETE and RAISED_ATTR not in done.system_attrs


def test_a_run_bounded_by_its_timeout_claims_slots_at_once(tmp_path: Path) -> None:
    # A huge n_trials with a timeout (run until the deadline): the slot claim listed every
    # free slot before taking the first, so with 10**9 a worker hung (benchmarks/scale.py);
    # with 10**7 each claim took over a second.
    study = _study(tmp_path)
    ran: list[int] = []

    def run() -> None:
        objective = lambda t: t.suggest_float("x", 0, 1)  # noqa: E731
        ran.append(run_study(study, objective, n_trials=10**7, timeout=1.0, poll_interval=0.05))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "run_study did not stop at its timeout"
    assert ran[0] >= 5
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == ran[0]


def test_trials_asked_together_start_their_claims_at_different_slots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 8 workers that asked at about the same time see the same trials: all trying the lowest
    # free slot first made the k-th claimer lose k times (a write, a claim and a read each).
    study = _study(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        trials = [study.ask() for _ in range(8)]
    view = study.get_trials(deepcopy=False)  # all 8 RUNNING, none holding a slot yet
    board = claim_board(study._storage)  # type: ignore[arg-type]
    claims: list[str] = []
    claim = type(board).claim

    def counted(self: object, study_id: int, key: str, trial_id: int) -> int:
        claims.append(key)
        return claim(self, study_id, key, trial_id)  # type: ignore[arg-type]

    monkeypatch.setattr(type(board), "claim", counted)
    for trial in trials:
        assert _claim_slot(trial, 100, 0.01, view)
    held = [t.system_attrs[SLOT_ATTR][1] for t in study.get_trials()]
    assert len(set(held)) == 8  # one slot each
    assert len(claims) < 8 + 8  # lowest-first took 8 + 28 claims (36)
