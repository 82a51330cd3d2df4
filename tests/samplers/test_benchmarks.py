"""The benchmarks' smoke versions run (tiny budgets, no files written)."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[2]
CSV = Path(
    os.environ.get("NASBENCH201_CSV", ROOT.parent / "shared" / "nasbench" / "nb201_cifar10.csv")
)


def _run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(not CSV.is_file(), reason=f"NAS-Bench-201 table absent at {CSV}")
def test_nb201_smoke() -> None:
    out = _run(
        "benchmarks/nb201.py",
        "--smoke",
        "--processes",
        "1",
        "--csv",
        str(CSV),
        "--samplers",
        "random",
        "evolution",
        "reinforce",
        "progressive",
    )
    assert "| evolution | " in out and "hypervolume" in out


def test_sampler_overhead_smoke() -> None:
    out = _run("benchmarks/sampler_overhead.py", "--smoke")
    assert "| reinforce | " in out and "**sqlite**" in out
