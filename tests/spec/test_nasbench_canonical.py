"""External check of the canonical hash on all 15,625 NAS-Bench-201 cells.

(a) cells that the benchmark's own ``unique_str`` calls equal get equal hashes (we may merge
more, never less); (b) under our documented rules the space falls into exactly 4,930 classes.
The table's path comes from ``NASBENCH201_CSV`` (default: ``../shared/nasbench/`` beside the
repository).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import nb201_arch_to_params
from optuna_nas.spec import canonical_hash

CSV = Path(
    os.environ.get(
        "NASBENCH201_CSV",
        Path(__file__).resolve().parents[2] / ".." / "shared" / "nasbench" / "nb201_cifar10.csv",
    )
)


@pytest.fixture(scope="module")
def hashes() -> list[tuple[str, str, str]]:
    if not CSV.is_file():
        pytest.skip(f"NAS-Bench-201 table not found at {CSV}; set NASBENCH201_CSV to its path")
    with CSV.open() as f:
        rows = list(csv.DictReader(f))
    # One cell per stage is enough: the same cell is stacked everywhere, so whole-network
    # hashes are equal exactly when cell hashes are.
    space = CellSpace.nasbench201(input_shape=(3, 8, 8), cells_per_stage=1, init_channels=4)
    out = []
    for row in rows:
        spec = space.decode(nb201_arch_to_params(row["arch"]))
        out.append((row["arch"], row["unique_str"], canonical_hash(spec)))
    return out


def test_table_is_complete(hashes: list[tuple[str, str, str]]) -> None:
    assert len(hashes) == 15_625
    assert len({a for a, _, _ in hashes}) == 15_625


def test_never_splits_a_benchmark_class(hashes: list[tuple[str, str, str]]) -> None:
    by_unique: dict[str, set[str]] = {}
    for _, unique, h in hashes:
        by_unique.setdefault(unique, set()).add(h)
    split = {u: hs for u, hs in by_unique.items() if len(hs) > 1}
    assert not split, f"{len(split)} benchmark classes split, e.g. {next(iter(split))}"
    assert len(by_unique) == 6_466


def test_number_of_classes(hashes: list[tuple[str, str, str]]) -> None:
    assert len({h for _, _, h in hashes}) == 4_930


def test_disconnected_cells_form_one_class(hashes: list[tuple[str, str, str]]) -> None:
    # The 341 cells whose input never reaches the output score chance (10%) in the benchmark
    # and compute zero under our rules: one class, however the benchmark spells them.
    with CSV.open() as f:
        chance = {r["arch"] for r in csv.DictReader(f) if float(r["test_acc_200ep"]) <= 10.0}
    assert len(chance) == 341
    assert len({h for a, _, h in hashes if a in chance}) == 1
