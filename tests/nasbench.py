"""Where the tests find the NAS-Bench-201 table (never copied into the repository).

``NASBENCH201_CSV`` if set; else ``../shared/nasbench/nb201_cifar10.csv`` beside the repository;
else the workspace's shared folder ``/work/shared/nasbench/`` (a clean clone elsewhere, as CI
makes, still finds it). Tests that need it skip, naming the paths tried, when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_CANDIDATES = [
    Path(__file__).resolve().parents[1].parent / "shared" / "nasbench" / "nb201_cifar10.csv",
    Path("/work/shared/nasbench/nb201_cifar10.csv"),
]


def nasbench_csv() -> Path:
    """The table's path, or skip the calling test with the paths that were tried."""
    if "NASBENCH201_CSV" in os.environ:
        path = Path(os.environ["NASBENCH201_CSV"])
        if not path.is_file():
            pytest.skip(f"NASBENCH201_CSV={path} is not a file")
        return path
    for path in _CANDIDATES:
        if path.is_file():
            return path
    pytest.skip(
        f"NAS-Bench-201 table not found at {[str(p) for p in _CANDIDATES]}; "
        "set NASBENCH201_CSV to its path"
    )
