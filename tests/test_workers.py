"""``optuna-nas run --workers N / --devices``: one process per worker on one storage."""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

import optuna
import pytest

from optuna_nas._workers import plan_workers

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "optuna_nas.cli", "run", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


@pytest.mark.slow
def test_two_workers_finish_exactly_n_trials_with_prefixed_logs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    done = _run(str(ROOT / "studies" / "quickstart.py"), "--workers", "2", "--trials", "4",
                "--", "--epochs", "1", "--storage", url, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "optuna-nas run: 2 workers: w0, w1" in done.stdout
    lines = done.stdout.splitlines()[1:]
    assert any(line.startswith("[w0] ") for line in lines)
    assert any(line.startswith("[w1] ") for line in lines)
    study = optuna.load_study(study_name="quickstart", storage=url)
    finished = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert len(finished) == 4


def test_a_failing_worker_makes_the_run_fail(tmp_path: Path) -> None:
    # No CUDA here: the worker for cuda:0 refuses its device, the run's status is its status.
    done = _run(str(ROOT / "studies" / "quickstart.py"), "--devices", "cuda:0", "--trials", "1",
                "--", "--storage", f"sqlite:///{tmp_path / 'd.db'}", cwd=tmp_path)  # fmt: skip
    assert done.returncode != 0
    assert "[w0 cuda:0]" in done.stdout and "CUDA" in done.stdout


def test_worker_plans_and_their_errors() -> None:
    plan = plan_workers(workers=None, devices=["cuda:0", "cuda:1"], seed=5)
    assert [(w.device, w.seed, w.label) for w in plan] == [
        ("cuda:0", 5, "w0 cuda:0"),
        ("cuda:1", 6, "w1 cuda:1"),
    ]
    assert [w.seed for w in plan_workers(workers=3, devices=None, seed=0)] == [0, 1, 2]
    with pytest.raises(ValueError, match="distinct devices"):
        plan_workers(workers=None, devices=["cuda:0", "cuda:0"], seed=0)
    with pytest.raises(ValueError, match="disagrees with the 2 device"):
        plan_workers(workers=3, devices=["cuda:0", "cuda:1"], seed=0)
    with pytest.raises(ValueError, match="--workers must be an int >= 1"):
        plan_workers(workers=0, devices=None, seed=0)
