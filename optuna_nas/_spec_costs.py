"""Parameter and FLOP counts of a spec, computed from its inferred shapes alone (no torch).

:func:`~optuna_nas.metrics.count_params` and :func:`~optuna_nas.metrics.count_flops` use these
for a spec, so the cost metrics of every trial take microseconds instead of a model build and a
forward pass under ``FlopCounterMode``. Each rule below mirrors one module of
:mod:`optuna_nas.nn._modules` exactly (the builder's layer for that op) and counts what
PyTorch would count for it:

* parameters: every ``nn.Parameter`` element of the built layer (batch norm's weight and bias,
  not its running statistics, which are buffers);
* FLOPs: what :class:`torch.utils.flop_counter.FlopCounterMode` counts for one forward pass, so
  only convolutions and matrix products, a multiply-accumulate as 2 FLOPs, biases not counted:
  ``2 * batch * out_H * out_W * kernel_H * kernel_W * out_channels * in_channels / groups``
  for a convolution and ``2 * batch * in_features * out_features`` for a linear layer.
  Batch norm, activations, pooling, additions, concatenation and the squeeze-excitation mean
  and gate are free, as there.

Tests build random specs of every built-in space and compare both counts with the built model's
parameters and ``FlopCounterMode``; a new op needs a rule here (the table must cover
:data:`optuna_nas.spec.OPS`).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import NamedTuple

from optuna_nas.spec import ArchitectureSpec

Shape = tuple[int, ...]


class Cost(NamedTuple):
    """Parameter elements and FLOPs at batch size 1 of one node."""

    params: int
    flops: int


CostRule = Callable[[Mapping[str, Any], Shape, Shape], Cost]
"""``rule(config, input_shape, output_shape)`` for a unary op, shapes without the batch."""


def _conv2d(cin: int, cout: int, kernel: int, out_hw: int, *, groups: int = 1) -> Cost:
    """A bias-free ``nn.Conv2d``; ``out_hw`` is the output's H * W."""
    weights = cout * (cin // groups) * kernel * kernel
    return Cost(weights, 2 * out_hw * weights)


def _bn(channels: int) -> int:
    return 2 * channels  # weight and bias (running statistics are buffers)


def _free(cfg: Mapping[str, Any], inp: Shape, out: Shape) -> Cost:
    return Cost(0, 0)


def _conv(cfg: Mapping[str, Any], inp: Shape, out: Shape) -> Cost:
    cout = cfg["channels"]
    conv = _conv2d(inp[0], cout, cfg["kernel"], out[1] * out[2], groups=cfg["groups"])
    extra = (cout if cfg["bias"] else 0) + (_bn(cout) if cfg["bn"] else 0)
    return Cost(conv.params + extra, conv.flops)


def _sep_conv(cfg: Mapping[str, Any], inp: Shape, out: Shape) -> Cost:
    cin, cout, hw = inp[0], cfg["channels"], out[1] * out[2]
    dw = _conv2d(cin, cin, cfg["kernel"], hw, groups=cin)
    pw = _conv2d(cin, cout, 1, hw)
    return Cost(dw.params + pw.params + _bn(cout), dw.flops + pw.flops)


def _mbconv(cfg: Mapping[str, Any], inp: Shape, out: Shape) -> Cost:
    cin, cout, expand = inp[0], cfg["channels"], cfg["expand"]
    mid, hw = cin * expand, out[1] * out[2]
    parts = [
        _conv2d(mid, mid, cfg["kernel"], hw, groups=mid),
        Cost(_bn(mid), 0),
        _conv2d(mid, cout, 1, hw),
        Cost(_bn(cout), 0),
    ]
    if expand > 1:  # the 1x1 expansion runs at the input's resolution
        parts += [_conv2d(cin, mid, 1, inp[1] * inp[2]), Cost(_bn(mid), 0)]
    if cfg["se"] > 0:  # squeeze-excitation: two biased 1x1 convolutions on the pooled 1x1 map
        reduced = max(1, int(cin * cfg["se"]))
        parts += [
            _conv2d(mid, reduced, 1, 1),
            _conv2d(reduced, mid, 1, 1),
            Cost(reduced + mid, 0),
        ]
    return Cost(sum(p.params for p in parts), sum(p.flops for p in parts))


def _batchnorm(cfg: Mapping[str, Any], inp: Shape, out: Shape) -> Cost:
    return Cost(_bn(inp[0]), 0)


def _linear(cfg: Mapping[str, Any], inp: Shape, out: Shape) -> Cost:
    weights = inp[0] * cfg["features"]
    return Cost(weights + (cfg["features"] if cfg["bias"] else 0), 2 * weights)


# The cost of each op of the vocabulary; tests check it covers `spec.OPS` exactly.
COST_RULES: Mapping[str, CostRule] = {
    "input": _free,
    "conv": _conv,
    "sep_conv": _sep_conv,
    "mbconv": _mbconv,
    "avg_pool": _free,
    "max_pool": _free,
    "identity": _free,
    "zero": _free,
    "add": _free,
    "concat": _free,
    "batchnorm": _batchnorm,
    "global_pool": _free,
    "dropout": _free,
    "linear": _linear,
}


def node_costs(spec: ArchitectureSpec) -> dict[str, Cost]:
    """Each node's parameters and FLOPs at batch size 1, by node id."""
    out: dict[str, Cost] = {}
    for node in spec.nodes:
        rule = COST_RULES.get(node.op)
        if rule is None:
            raise ValueError(
                f"node {node.id!r}: op {node.op!r} has no cost rule in optuna_nas._spec_costs; "
                f"ops with one are {sorted(COST_RULES)}."
            )
        inputs = spec.inputs(node.id)
        inp = spec.shape(inputs[0]) if inputs else spec.input_shape
        out[node.id] = rule(node.config, inp, spec.shape(node.id))
    return out


def spec_params(spec: ArchitectureSpec) -> int:
    """Parameter elements of ``build_model(spec)``."""
    return sum(c.params for c in node_costs(spec).values())


def spec_flops(spec: ArchitectureSpec, batch_size: int = 1) -> int:
    """FLOPs of one forward pass of ``build_model(spec)`` at ``batch_size``, as
    ``FlopCounterMode`` counts them (every counted op is linear in the batch size)."""
    return batch_size * sum(c.flops for c in node_costs(spec).values())
