"""The storage benchmark's smoke version runs and writes its JSON (not RESULTS.md)."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

ROOT = Path(__file__).resolve().parents[2]


def test_storage_benchmark_smoke(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "storage.py"),
            "--smoke",
            "--out",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    result = json.loads((tmp_path / "storage.json").read_text())
    assert result["settings"]["smoke"] is True
    assert result["throughput"]["inmemory"]["1"] > 0
    assert result["throughput"]["journal"]["1"] > 0
    assert result["resume"]["journal"]["nas_s"] > 0
    assert result["overhead"]["journal"]["ratio"] > 0
    assert {"optuna", "cpu", "python"} <= set(result["machine"])
