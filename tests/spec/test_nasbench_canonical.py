"""External check of the canonical hash on all 15,625 NAS-Bench-201 cells.

(a) cells that the benchmark's own ``unique_str`` calls equal get equal hashes (we may merge
more, never less); (b) under our documented rules the space falls into exactly 4,930 classes.
The table is found by :func:`tests.nasbench.nasbench_csv`.
"""

from __future__ import annotations

import csv

import pytest

from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import nb201_arch_to_params
from optuna_nas.spec import canonical_hash
from tests.nasbench import nasbench_csv


@pytest.fixture(scope="module")
def hashes() -> list[tuple[str, str, str]]:
    with nasbench_csv().open() as f:
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
    with nasbench_csv().open() as f:
        chance = {r["arch"] for r in csv.DictReader(f) if float(r["test_acc_200ep"]) <= 10.0}
    assert len(chance) == 341
    assert len({h for a, _, h in hashes if a in chance}) == 1
