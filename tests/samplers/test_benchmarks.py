"""The benchmarks' smoke versions run (tiny budgets, no files written)."""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

from tests.nasbench import nasbench_csv

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_nb201_smoke() -> None:
    csv = nasbench_csv()
    out = _run(
        "benchmarks/nb201.py",
        "--smoke",
        "--processes",
        "1",
        "--csv",
        str(csv),
        "--samplers",
        "random",
        "evolution",
        "reinforce",
        "progressive",
    )
    assert "| evolution | " in out and "hypervolume" in out and "### Tuning seeds" in out


def test_sampler_overhead_smoke() -> None:
    out = _run("benchmarks/sampler_overhead.py", "--smoke")
    assert "| reinforce | " in out and "**sqlite**" in out
