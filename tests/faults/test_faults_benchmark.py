"""The fault suite's smoke version (``benchmarks/faults.py --smoke``): two real ``kill -9``
rounds on SQLite -- quickstart mid-study, the weight-sharing study while it trains its supernet
-- end with their studies complete, nothing lost, nothing evaluated twice, no claim left."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_fault_suite_smoke_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "faults.py"),
            "--smoke",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads((tmp_path / "faults.json").read_text())
    rounds = result["rounds"]
    assert [(r["storage"], r["kind"]) for r in rounds] == [
        ("sqlite", "quickstart"),
        ("sqlite", "ws-supernet"),
    ]
    for r in rounds:
        assert r["errors"] == [], r["errors"]
        assert r["finished"] == r["n_trials"], r
        assert r["lost"] == [] and r["duplicates"] == 0, r
        assert r["stuck_jobs"] == 0 and r["stuck_trials"] == [], r
    supernet = rounds[1]
    assert supernet["during_supernet"] is True
    assert supernet["supernets_uploaded"] == 1  # trained to the end once, by the rerun
    assert supernet["recover_s"] is not None and supernet["recover_s"] > 0
    assert result["totals"]["kills"] == 2
    assert {"python", "torch", "optuna", "cpus"} <= set(result["machine"])
