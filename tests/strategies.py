"""Hypothesis strategies shared by the test suite: random valid architecture specs.

``specs()`` draws a small random DAG: every image op of the vocabulary with random valid
configs, ``add`` merges (of nodes that already share a shape, plus freshly inserted
shape-keeping branches such as ``identity``, ``zero`` or a stride-1 conv), ``concat`` merges of
nodes with equal H and W, and a head per dangling node (``global_pool``, optional ``dropout``
and hidden ``linear``, ``linear`` to ``num_outputs``; several heads are summed). Node ids
carry the punctuation node ids may contain, to exercise the builder's name escaping. Shapes
come from the spec package's own shape rules, so the strategy only draws valid specs.
"""

from __future__ import annotations

from collections.abc import Callable
from math import gcd
from typing import Any

from hypothesis import strategies as st

from optuna_nas.spec import ACTIVATIONS
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import get_op
from optuna_nas.spec import spec_from_layers

Shape = tuple[int, ...]
Draw = Callable[[st.SearchStrategy[Any]], Any]

UNARY_IMAGE_OPS = (
    "conv",
    "sep_conv",
    "mbconv",
    "avg_pool",
    "max_pool",
    "identity",
    "zero",
    "batchnorm",
    "dropout",
)
_ID_PREFIXES = ("", "cell/", "stage.1:", "b-")


def _kernel(draw: Draw, limit: int, *, odd: bool = True) -> int:
    kernel: int = draw(
        st.sampled_from([k for k in (1, 2, 3, 5) if k <= limit and (k % 2 or not odd)])
    )
    return kernel


def _unary_config(draw: Draw, op: str, shape: Shape, *, keep_shape: bool) -> dict[str, Any]:
    """A valid config of ``op`` on a ``(C, H, W)`` input; ``keep_shape`` forces output == input."""
    c, h, w = shape
    limit = min(h, w)
    stride = 1 if keep_shape else draw(st.integers(1, min(2, limit)))
    channels = c if keep_shape else draw(st.integers(1, 8))
    act = draw(st.sampled_from(ACTIVATIONS))
    if op == "conv":
        kernel = _kernel(draw, limit)
        dilation = draw(st.sampled_from([d for d in (1, 2) if d * (kernel - 1) + 1 <= limit]))
        common = gcd(c, channels)
        groups = draw(st.sampled_from([g for g in range(1, common + 1) if common % g == 0]))
        return {
            "channels": channels,
            "kernel": kernel,
            "stride": stride,
            "dilation": dilation,
            "groups": groups,
            "activation": act,
            "bn": draw(st.booleans()),
            "order": draw(st.sampled_from(["conv_bn_act", "act_conv_bn"])),
        }
    if op == "sep_conv":
        return {
            "channels": channels,
            "kernel": _kernel(draw, limit),
            "stride": stride,
            "activation": act,
            "order": draw(st.sampled_from(["conv_bn_act", "act_conv_bn"])),
        }
    if op == "mbconv":
        return {
            "channels": channels,
            "kernel": _kernel(draw, limit),
            "stride": stride,
            "expand": draw(st.integers(1, 3)),
            "se": draw(st.sampled_from([0.0, 0.25, 0.5])),
            "activation": act,
        }
    if op in ("avg_pool", "max_pool"):
        return {"kernel": _kernel(draw, limit, odd=keep_shape), "stride": stride}
    if op == "batchnorm":
        return {"activation": act}
    if op == "dropout":
        return {"p": draw(st.sampled_from([0.0, 0.25, 0.5]))}
    if op in ("identity", "zero"):
        return {}
    raise ValueError(f"no config rule for op {op!r}")


class _Builder:
    """Rows of a spec under construction, with each node's shape and consumers."""

    def __init__(self, draw: Draw, input_shape: Shape) -> None:
        self.draw = draw
        self.rows: list[tuple[str, str, dict[str, Any], list[str]]] = []
        self.shapes: dict[str, Shape] = {"input": input_shape}
        self.consumed: set[str] = set()

    def add(self, op: str, config: dict[str, Any], inputs: list[str]) -> str:
        node_id = f"{self.draw(st.sampled_from(_ID_PREFIXES))}{op}_{len(self.rows)}"
        opdef = get_op(op)
        self.shapes[node_id] = opdef.infer_shape(
            node_id, opdef.normalise_config(config), [self.shapes[i] for i in inputs]
        )
        self.rows.append((node_id, op, config, inputs))
        self.consumed.update(inputs)
        return node_id

    def unary(self, src: str, *, keep_shape: bool) -> str:
        op = self.draw(st.sampled_from(UNARY_IMAGE_OPS))
        config = _unary_config(self.draw, op, self.shapes[src], keep_shape=keep_shape)
        return self.add(op, config, [src])

    def merge(self, op: str, first: str) -> str:
        if op == "add":
            same = [n for n, s in self.shapes.items() if s == self.shapes[first]]
        else:
            same = [n for n, s in self.shapes.items() if s[1:] == self.shapes[first][1:]]
        others = self.draw(st.lists(st.sampled_from(same), max_size=2))
        if op == "add" and self.draw(st.booleans()):
            others.append(self.unary(first, keep_shape=True))
        return self.add(op, {}, [first, *others])

    def head(self, src: str, num_outputs: int) -> str:
        x = self.add("global_pool", {"mode": self.draw(st.sampled_from(["avg", "max"]))}, [src])
        if self.draw(st.booleans()):
            x = self.add("dropout", {"p": 0.5}, [x])
        if self.draw(st.booleans()):
            act = self.draw(st.sampled_from(ACTIVATIONS))
            x = self.add("linear", {"features": 6, "activation": act}, [x])
        bias = self.draw(st.booleans())
        return self.add("linear", {"features": num_outputs, "bias": bias}, [x])


@st.composite
def specs(draw: Draw, *, max_layers: int = 6) -> ArchitectureSpec:
    """Random valid specs on small inputs: ``(1..3, 4..12, 4..12)``, up to ``max_layers`` body
    steps (a step is one op, or a merge with its inserted branch), 1 to 5 outputs."""
    input_shape = (draw(st.integers(1, 3)), draw(st.integers(4, 12)), draw(st.integers(4, 12)))
    b = _Builder(draw, input_shape)
    for _ in range(draw(st.integers(1, max_layers))):
        src = draw(st.sampled_from(list(b.shapes)))
        kind = draw(st.sampled_from(["unary", "unary", "add", "concat"]))
        if kind == "unary":
            b.unary(src, keep_shape=False)
        else:
            b.merge(kind, src)
    num_outputs = draw(st.integers(1, 5))
    dangling = [n for n in b.shapes if n not in b.consumed]
    heads = [b.head(n, num_outputs) for n in dangling]
    if len(heads) > 1:
        b.add("add", {}, heads)
    return spec_from_layers(b.rows, input_shape=input_shape, num_outputs=num_outputs)
