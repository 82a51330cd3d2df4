"""Fault tests on real storages: kill -9 and rerun, 4 workers on one study, SQLite with 2.

Workers are separate processes running ``storage_worker.py`` (torch-free, so they start in about
a second); heartbeats every second with a 2 s grace period keep the tests short.
"""

from __future__ import annotations

from collections import Counter
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import optuna
from optuna.trial import TrialState
import pytest

from optuna_nas.storage import DUPLICATE_OF
from optuna_nas.storage import open_storage
from tests.storage.backends import cleanup
from tests.storage.backends import make_url
from tests.storage.backends import new_name

WORKER = Path(__file__).with_name("storage_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _command(
    url: str, study: str, log: Path, *, trials: int, choices: int, sleep: float
) -> list[str]:
    return [
        sys.executable,
        str(WORKER),
        "--storage",
        url,
        "--study",
        study,
        "--trials",
        str(trials),
        "--choices",
        str(choices),
        "--sleep",
        str(sleep),
        "--log",
        str(log),
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _load(url: str, study: str) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(url, heartbeat_interval=None)
    return optuna.load_study(study_name=study, storage=storage).get_trials()


def _evaluations(log: Path) -> list[tuple[int, str]]:
    lines = log.read_text().split("\n") if log.exists() else []
    return [(int(line.split()[0]), line.split()[1]) for line in lines if line]


def _check_no_double_training(trials: list[optuna.trial.FrozenTrial], log: Path) -> None:
    """Each architecture's evaluation completed once; a killed trial's one counts as lost."""
    by_number = {t.number: t for t in trials}
    evaluated = _evaluations(log)
    hashes = [h for n, h in evaluated if by_number[n].state is not TrialState.FAIL]
    assert len(hashes) == len(set(hashes)), f"trained twice: {Counter(hashes).most_common(3)}"
    for number, arch in evaluated:  # every evaluation belongs to a trial of that architecture
        assert by_number[number].user_attrs["canonical_hash"] == arch
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    originals = {t.number for t in complete if DUPLICATE_OF not in t.user_attrs}
    assert originals == {n for n, _ in evaluated if by_number[n].state is TrialState.COMPLETE}
    for t in complete:
        if DUPLICATE_OF in t.user_attrs:
            source = by_number[t.user_attrs[DUPLICATE_OF]]
            assert source.state is TrialState.COMPLETE
            assert source.user_attrs["canonical_hash"] == t.user_attrs["canonical_hash"]
            assert t.value == source.value


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "journal", "redis"])
def test_kill_9_mid_trial_then_rerun(kind: str, tmp_path: Path) -> None:
    url, names = make_url(kind, tmp_path), []
    study = new_name(names)
    log = tmp_path / "evaluations.log"
    cmd = _command(url, study, log, trials=4, choices=10_000, sleep=0.3)
    try:
        worker = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill once 2 trials are done and a 3rd trains
            done = len(_evaluations(log))
            if done >= 3:
                break
            time.sleep(0.05)
        time.sleep(0.2)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        before = {t.number: t for t in _load(url, study)}
        killed = [t for t in before.values() if t.state is TrialState.RUNNING]
        assert len(killed) == 1, [t.state for t in before.values()]
        completed = {n: t.value for n, t in before.items() if t.state is TrialState.COMPLETE}
        assert len(completed) >= 2

        rerun = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=90)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        after = {t.number: t for t in _load(url, study)}
        states = Counter(t.state for t in after.values())
        assert states[TrialState.COMPLETE] == 4, states  # exactly the requested total
        assert set(states) <= {TrialState.COMPLETE, TrialState.FAIL}
        for number, value in completed.items():  # nothing completed before the kill is lost
            assert after[number].state is TrialState.COMPLETE and after[number].value == value
        dead = after[killed[0].number]
        assert dead.state is TrialState.FAIL
        retries = [t for t in after.values() if t.system_attrs.get("failed_trial") == dead.number]
        assert len(retries) == 1
        assert retries[0].state is TrialState.COMPLETE
        assert retries[0].params == dead.params
        _check_no_double_training(list(after.values()), log)
    finally:
        cleanup(url, names)


def _many_workers(url: str, study: str, tmp_path: Path, *, workers: int, trials: int) -> None:
    log = tmp_path / "evaluations.log"
    cmd = _command(url, study, log, trials=trials, choices=5, sleep=0.1)
    procs = [
        subprocess.Popen(
            cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(workers)
    ]
    ran: list[int] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        ran += json.loads(out.strip().splitlines()[-1])["ran"]
    trials_ = _load(url, study)
    states = Counter(t.state for t in trials_)
    assert states[TrialState.COMPLETE] == trials, states  # the study stops at the total
    surplus = [t for t in trials_ if t.system_attrs.get("optuna_nas:surplus")]
    assert states[TrialState.FAIL] == len(surplus)  # only photo-finish surplus trials, unrun
    assert len(trials_) == trials + len(surplus)  # nothing else: no lost, no extra trials
    complete = {t.number for t in trials_ if t.state is TrialState.COMPLETE}
    assert sorted(ran) == sorted(complete)  # each completed trial was run by exactly one worker
    _check_no_double_training(trials_, log)
    assert all(trials_[n].state is TrialState.COMPLETE for n, _ in _evaluations(log))
    duplicates = [t for t in trials_ if DUPLICATE_OF in t.user_attrs]
    assert len(duplicates) == trials - len(_evaluations(log)) > 0


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "redis", "journal"])
def test_four_workers_share_one_study(kind: str, tmp_path: Path) -> None:
    url, names = make_url(kind, tmp_path), []
    try:
        _many_workers(url, new_name(names), tmp_path, workers=4, trials=12)
    finally:
        cleanup(url, names)


def test_sqlite_two_workers(tmp_path: Path) -> None:
    url = make_url("sqlite", tmp_path)
    _many_workers(url, new_name([]), tmp_path, workers=2, trials=10)
