"""The scale-out benchmark's smoke version (``benchmarks/scale.py --smoke``): one worker on
PostgreSQL and two through a storage server of two processes, each row with trials in its
steady window, nothing lost, duplicated or left running, and the sampler's CPU time within
its wall time."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest

from tests.storage.backends import make_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_scale_smoke_counts_steady_trials_and_loses_nothing(tmp_path: Path) -> None:
    pytest.importorskip("grpc", reason="the proxy rows need grpcio (optuna-nas[grpc])")
    url = make_url("postgresql", tmp_path)  # skips, naming the variable, without PostgreSQL
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "OPTUNA_NAS_TEST_POSTGRES_URL": url},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads((tmp_path / "scale.json").read_text())
    rows = result["rows"]
    assert [(r["storage"], r["sampler"], r["workers"]) for r in rows] == [
        ("postgresql", "tpe", 1),
        ("grpc-2p", "evolution", 2),  # through two server processes on one port
    ]
    for r in rows:
        assert r["worker_exit_codes"] == [0] and r["worker_errors"] == [], r
        assert r["trials_in_window"] > 0, r
        assert (r["lost"], r["duplicated"], r["stuck"]) == (0, 0, 0), r
        assert r["server_cpu_ms_per_trial"] > 0, r
        # Thread CPU time in the sampler's hooks cannot exceed the wall time spent in them.
        assert 0 < r["sampler_cpu_ms_median"] <= r["sampler_ms_median"] * 1.05 + 0.05, r
    assert {"python", "optuna", "cpus"} <= set(result["machine"])
