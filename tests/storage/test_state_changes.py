"""A trial's state changes are atomic across processes on every storage: of two workers that
take enqueued trials in lock step, exactly one gets each trial (on SQLite the driver used to
read the state outside the write, and both got most of them)."""

from __future__ import annotations

import multiprocessing
import pickle
from typing import Any

import optuna
from optuna.trial import TrialState

from optuna_nas.storage import open_storage
from tests.storage.backends import any_url  # noqa: F401  (fixture)
from tests.storage.backends import new_name
from tests.storage.backends import study_names  # noqa: F401  (fixture)

N_TRIALS = 60


def _take_waiting(storage_bytes: bytes, study_id: int, n: int, barrier: Any, out: Any) -> None:
    storage = pickle.loads(storage_bytes)  # a storage unpickled in a new process
    taken = []
    for _ in range(n):
        barrier.wait(timeout=60)
        waiting = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,))
        if waiting and storage.set_trial_state_values(waiting[0]._trial_id, TrialState.RUNNING):
            taken.append(waiting[0]._trial_id)
    out.put(taken)


def test_two_processes_never_take_the_same_waiting_trial(
    any_url: str,  # noqa: F811
    study_names: list[str],  # noqa: F811
) -> None:
    storage = open_storage(any_url, heartbeat_interval=None)
    name = new_name(study_names)
    study = optuna.create_study(storage=storage, study_name=name)
    for i in range(N_TRIALS):
        study.enqueue_trial({"x": float(i)})
    study_id = study._study_id
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    blob = pickle.dumps(storage)
    workers = [
        ctx.Process(target=_take_waiting, args=(blob, study_id, N_TRIALS, barrier, out))
        for _ in range(2)
    ]
    for w in workers:
        w.start()
    first, second = out.get(timeout=120), out.get(timeout=120)
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0
    assert not set(first) & set(second)
    assert len(first) + len(second) == N_TRIALS
    running = storage.get_all_trials(study_id, states=(TrialState.RUNNING,))
    assert len(running) == N_TRIALS
