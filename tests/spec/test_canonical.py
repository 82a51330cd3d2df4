"""Canonical form and hash: each documented rule, one test."""

from __future__ import annotations

from typing import Any

from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import Node
from optuna_nas.spec import canonical_form
from optuna_nas.spec import canonical_hash
from optuna_nas.spec import spec_from_layers

Row = tuple[str, str, dict[str, Any], list[str]]
CONV = {"channels": 1, "kernel": 3}
POOL = {"kernel": 3}


def net(rows: list[Row], out: str, **kw: Any) -> ArchitectureSpec:
    """A (1, 6, 6) network: ``rows`` then global pool and a classifier on ``out``."""
    head: list[Row] = [("gp", "global_pool", {}, [out]), ("fc", "linear", {"features": 3}, ["gp"])]
    return spec_from_layers(rows + head, input_shape=(1, 6, 6), num_outputs=3, **kw)


def h(rows: list[Row], out: str) -> str:
    return canonical_hash(net(rows, out))


def test_node_ids_and_order_do_not_matter() -> None:
    a = h([("c", "conv", CONV, ["input"]), ("p", "avg_pool", POOL, ["c"])], "p")
    b = h([("zz", "conv", CONV, ["input"]), ("y", "avg_pool", POOL, ["zz"])], "y")
    assert a == b


def test_isomorphic_branches_and_sum_order() -> None:
    a = h(
        [
            ("c", "conv", CONV, ["input"]),
            ("p", "avg_pool", POOL, ["input"]),
            ("s", "add", {}, ["c", "p"]),
        ],
        "s",
    )
    b = h(
        [
            ("p", "avg_pool", POOL, ["input"]),
            ("c", "conv", CONV, ["input"]),
            ("s", "add", {}, ["p", "c"]),
        ],
        "s",
    )
    assert a == b


def test_concat_order_matters() -> None:
    a = h([("c", "conv", CONV, ["input"]), ("k", "concat", {}, ["c", "input"])], "k")
    b = h([("c", "conv", CONV, ["input"]), ("k", "concat", {}, ["input", "c"])], "k")
    assert a != b


def test_identity_edges_are_inlined() -> None:
    a = h([("c", "conv", CONV, ["input"])], "c")
    b = h(
        [
            ("i", "identity", {}, ["input"]),
            ("s", "add", {}, ["i"]),
            ("c", "conv", CONV, ["s"]),
            ("j", "identity", {}, ["c"]),
        ],
        "j",
    )
    assert a == b


def test_multiplicity_counts() -> None:
    once = h([("c", "conv", CONV, ["input"]), ("s", "add", {}, ["c", "input"])], "s")
    twice = h(
        [
            ("c", "conv", CONV, ["input"]),
            ("i", "identity", {}, ["input"]),
            ("s", "add", {}, ["c", "input", "i"]),
        ],
        "s",
    )
    assert once != twice


def test_zero_edges_are_dropped() -> None:
    a = h([("c", "conv", CONV, ["input"])], "c")
    b = h(
        [
            ("c", "conv", CONV, ["input"]),
            ("p", "avg_pool", POOL, ["input"]),
            ("z", "zero", {}, ["p"]),
            ("s", "add", {}, ["c", "z"]),
        ],
        "s",
    )
    assert a == b


def test_ops_of_zero_are_zero_and_dead_nodes_drop() -> None:
    # The conv of a zero input counts as zero, so only the pool remains.
    a = h([("p", "avg_pool", POOL, ["input"])], "p")
    b = h(
        [
            ("z", "zero", {}, ["input"]),
            ("c", "conv", CONV, ["z"]),
            ("p", "avg_pool", POOL, ["input"]),
            ("s", "add", {}, ["c", "p"]),
        ],
        "s",
    )
    assert a == b
    form = canonical_form(net([("z", "zero", {}, ["input"]), ("c", "conv", CONV, ["z"])], "c"))
    assert form["multisets"][form["output"]] == []  # everything collapsed to zero


def test_config_defaults_and_metadata_do_not_matter_but_config_does() -> None:
    a = h([("c", "conv", CONV, ["input"])], "c")
    b = h([("c", "conv", {**CONV, "stride": 1, "dilation": 1}, ["input"])], "c")
    c = h([("c", "conv", {**CONV, "kernel": 5}, ["input"])], "c")
    assert a == b != c
    s1 = net([("c", "conv", CONV, ["input"])], "c", metadata={"x": 1})
    s2 = net([("c", "conv", CONV, ["input"])], "c")
    assert canonical_hash(s1) == canonical_hash(s2)


def test_input_shape_matters() -> None:
    rows: list[Row] = [
        ("gp", "global_pool", {}, ["input"]),
        ("fc", "linear", {"features": 3}, ["gp"]),
    ]
    a = spec_from_layers(rows, input_shape=(1, 6, 6), num_outputs=3)
    b = spec_from_layers(rows, input_shape=(1, 7, 7), num_outputs=3)
    assert canonical_hash(a) != canonical_hash(b)


def test_canonical_form_is_closed_and_json() -> None:
    import json

    spec = ArchitectureSpec(
        nodes=(
            Node("input", "input"),
            Node("a", "conv", CONV),
            Node("b", "add"),
            Node("gp", "global_pool"),
            Node("fc", "linear", {"features": 3}),
        ),
        edges=(("input", "a"), ("a", "b"), ("input", "b"), ("b", "gp"), ("gp", "fc")),
        input_shape=(1, 6, 6),
        num_outputs=3,
    )
    form = canonical_form(spec)
    json.dumps(form)
    for items in form["multisets"].values():
        for term, count in items:
            assert count >= 1
            assert all(m in form["multisets"] for m in form["terms"][term].get("inputs", []))
