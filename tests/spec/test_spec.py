"""ArchitectureSpec: construction, validation errors, serialisation."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from optuna_nas.spec import FORMAT_VERSION
from optuna_nas.spec import OPS
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import Node
from optuna_nas.spec import spec_from_layers


def _head(src: str) -> list[tuple[str, str, dict[str, Any], list[str]]]:
    return [("gp", "global_pool", {}, [src]), ("fc", "linear", {"features": 10}, ["gp"])]


def small_spec(**metadata: Any) -> ArchitectureSpec:
    return spec_from_layers(
        [
            ("c1", "conv", {"channels": 8, "kernel": 3}, ["input"]),
            ("p", "max_pool", {"kernel": 2, "stride": 2}, ["c1"]),
            ("c2", "sep_conv", {"channels": 8, "kernel": 3}, ["p"]),
            ("a", "add", {}, ["c2", "p"]),
            ("cat", "concat", {}, ["a", "p"]),
            *_head("cat"),
        ],
        input_shape=(1, 8, 8),
        num_outputs=10,
        metadata=metadata,
    )


def test_kernel_may_exceed_a_small_map_while_every_weight_sees_input() -> None:
    ok = _build([("x", "conv", {"channels": 4, "kernel": 15}, ["input"]), *_head("x")])
    assert ok.shape("x") == (4, 8, 8)
    with pytest.raises(ValueError, match=r"kernel of 3, larger than its 1x1 input feature map"):
        _build(
            [
                ("p", "max_pool", {"kernel": 1, "stride": 8}, ["input"]),
                ("x", "conv", {"channels": 4, "kernel": 3}, ["p"]),
                *_head("x"),
            ]
        )


def test_shapes_are_inferred() -> None:
    spec = small_spec()
    assert spec.shape("input") == (1, 8, 8)
    assert spec.shape("c1") == (8, 8, 8)
    assert spec.shape("p") == (8, 4, 4)
    assert spec.shape("cat") == (16, 4, 4)
    assert spec.shape("fc") == (10,)
    assert spec.input_id == "input"
    assert spec.output_id == "fc"
    assert spec.inputs("cat") == ("a", "p")


def test_defaults_are_filled_and_equal() -> None:
    a = Node("c", "conv", {"channels": 4, "kernel": 3})
    b = Node("c", "conv", {"channels": 4, "kernel": 3, "stride": 1, "activation": "relu"})
    assert a == b
    assert hash(a) == hash(b)
    assert a.config["bn"] is True


def test_spec_is_immutable() -> None:
    spec = small_spec()
    with pytest.raises(AttributeError):
        spec.num_outputs = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.nodes[1].config["channels"] = 3  # type: ignore[index]


def test_pickle_and_deepcopy() -> None:
    import copy
    import pickle

    spec = small_spec(space="test")
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert copy.deepcopy(spec) == spec
    assert copy.deepcopy(spec.nodes[1]) == spec.nodes[1]


def test_json_round_trip() -> None:
    spec = small_spec(space="test", note={"a": [1, 2.5]})
    text = spec.to_json()
    assert json.loads(text)["format_version"] == FORMAT_VERSION
    again = ArchitectureSpec.from_json(text)
    assert again == spec
    assert again.to_json() == text
    assert ArchitectureSpec.from_dict(spec.to_dict()) == spec
    assert again.metadata["note"]["a"] == (1, 2.5)


def test_spec_package_imports_no_torch() -> None:
    # A fresh interpreter: the spec package must stay importable without torch.
    import subprocess

    code = "import optuna_nas.spec, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_op_is_documented() -> None:
    for name, op in OPS.items():
        assert op.name == name
        assert op.doc


# ----------------------------------------------------------------------------- bad input


def _build(rows: list[tuple[str, str, dict[str, Any], list[str]]], **kw: Any) -> ArchitectureSpec:
    kw.setdefault("input_shape", (1, 8, 8))
    kw.setdefault("num_outputs", 10)
    return spec_from_layers(rows, **kw)


BAD_SPECS: list[tuple[str, Any, type[Exception], str]] = [
    (
        "unknown op",
        lambda: _build([("x", "conv7", {}, ["input"]), *_head("x")]),
        ValueError,
        r"node 'x': unknown op 'conv7'; valid ops are \[.*'conv'",
    ),
    (
        "unknown config field",
        lambda: _build([("x", "conv", {"channels": 4, "kernel": 3, "pad": 1}, ["input"])]),
        ValueError,
        r"node 'x': op 'conv' has no config field\(s\) \['pad'\]; valid fields are \[.*'stride'",
    ),
    (
        "missing config field",
        lambda: _build([("x", "conv", {"kernel": 3}, ["input"]), *_head("x")]),
        ValueError,
        r"requires config field 'channels'",
    ),
    (
        "non-positive channels",
        lambda: _build([("x", "conv", {"channels": 0, "kernel": 3}, ["input"]), *_head("x")]),
        ValueError,
        r"node 'x': op 'conv' config field 'channels' must be >= 1, but got 0",
    ),
    (
        "wrong type",
        lambda: _build([("x", "conv", {"channels": 4.0, "kernel": 3}, ["input"]), *_head("x")]),
        TypeError,
        r"'channels' must be an int, but got 4.0",
    ),
    (
        "cycle",
        lambda: ArchitectureSpec(
            nodes=(
                Node("input", "input"),
                Node("a", "add"),
                Node("b", "conv", {"channels": 1, "kernel": 1}),
                Node("gp", "global_pool"),
                Node("fc", "linear", {"features": 10}),
            ),
            edges=(("input", "a"), ("b", "a"), ("a", "b"), ("b", "gp"), ("gp", "fc")),
            input_shape=(1, 8, 8),
            num_outputs=10,
        ),
        ValueError,
        r"cycle through nodes \['a', 'b'\]",
    ),
    (
        "edge to a missing node",
        lambda: ArchitectureSpec(
            nodes=(Node("input", "input"), Node("gp", "global_pool")),
            edges=(("input", "gp"), ("gp", "fc")),
            input_shape=(1, 8, 8),
            num_outputs=10,
        ),
        ValueError,
        r"edge \('gp', 'fc'\) refers to node 'fc', which is not in the spec",
    ),
    (
        "duplicate node id",
        lambda: _build([("x", "identity", {}, ["input"]), ("x", "identity", {}, ["input"])]),
        ValueError,
        r"duplicate node id 'x'",
    ),
    (
        "kernel larger than the feature map",
        lambda: _build([("x", "conv", {"channels": 4, "kernel": 17}, ["input"]), *_head("x")]),
        ValueError,
        r"node 'x': .*kernel of 17, larger than its 8x8 input feature map can use",
    ),
    (
        "stride shrinks a dimension to zero",
        lambda: _build(
            [
                ("p", "avg_pool", {"kernel": 1, "stride": 8}, ["input"]),
                ("x", "conv", {"channels": 4, "kernel": 1, "stride": 2}, ["p"]),
                *_head("x"),
            ]
        ),
        ValueError,
        r"node 'x': op 'conv' with stride 2 shrinks its 1x1 input feature map to zero",
    ),
    (
        "wrong input shape",
        lambda: _build([*_head("input")], input_shape=(8, 8)),
        ValueError,
        r"`input_shape` must be \(C, H, W\) with three positive ints, but got \(8, 8\)",
    ),
    (
        "output of the wrong size",
        lambda: _build(
            [("gp", "global_pool", {}, ["input"]), ("fc", "linear", {"features": 3}, ["gp"])]
        ),
        ValueError,
        r"output node 'fc' has shape \(3,\), but num_outputs=10",
    ),
    (
        "two outputs",
        lambda: _build([("x", "identity", {}, ["input"]), *_head("input")]),
        ValueError,
        r"exactly one output node .* \['x', 'fc'\] have no outgoing edges",
    ),
    (
        "add of different shapes",
        lambda: _build(
            [
                ("x", "conv", {"channels": 4, "kernel": 3}, ["input"]),
                ("a", "add", {}, ["x", "input"]),
                *_head("a"),
            ]
        ),
        ValueError,
        r"node 'a': op 'add' sums inputs of different shapes",
    ),
    (
        "even conv kernel",
        lambda: _build([("x", "conv", {"channels": 4, "kernel": 2}, ["input"]), *_head("x")]),
        ValueError,
        r"'kernel' must be odd",
    ),
    (
        "linear on a feature map",
        lambda: _build([("fc", "linear", {"features": 10}, ["input"])]),
        ValueError,
        r"node 'fc': op 'linear' needs a flat \(features,\) input",
    ),
]


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [pytest.param(m, e, r, id=name) for name, m, e, r in BAD_SPECS],
)
def test_bad_specs_raise_one_clear_error(make: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.update(colour="red"), r"unknown key\(s\) \['colour'\]; valid keys are"),
        (lambda d: d.update(format_version=99), r"unsupported spec format_version 99"),
        (lambda d: d.pop("edges"), r"missing key\(s\) \['edges'\]"),
        (lambda d: d["nodes"][1].update(kind="x"), r"nodes\[1\] has unknown key\(s\) \['kind'\]"),
    ],
    ids=["unknown key", "unknown version", "missing key", "unknown node key"],
)
def test_from_dict_rejects_bad_data(mutate: Any, match: str) -> None:
    data = small_spec().to_dict()
    mutate(data)
    with pytest.raises(ValueError, match=match):
        ArchitectureSpec.from_dict(data)


def test_from_json_rejects_invalid_json() -> None:
    with pytest.raises(ValueError, match="spec JSON is not valid JSON"):
        ArchitectureSpec.from_json("{nope")


def test_metadata_must_be_json() -> None:
    with pytest.raises(TypeError, match=r"`metadata`\['f'\] must be JSON-serialisable"):
        small_spec(f=object())
