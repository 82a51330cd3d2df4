"""Every op of the vocabulary builds, runs, trains, and does what its declaration says."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from optuna_nas.nn import BuiltModel
from optuna_nas.nn import build_model
from optuna_nas.nn import module_name
from optuna_nas.nn._builder import LOWERINGS
from optuna_nas.nn._modules import ActConvBn
from optuna_nas.nn._modules import ActSepConvBn
from optuna_nas.nn._modules import ConvBnAct
from optuna_nas.nn._modules import SepConvBnAct
from optuna_nas.spec import OPS
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import Arity
from optuna_nas.spec import spec_from_layers

# One config per op that exercises its non-default fields; merges get two inputs.
OP_CASES: dict[str, dict[str, Any]] = {
    "conv": {"channels": 6, "kernel": 3, "stride": 2, "dilation": 2, "groups": 2,
             "activation": "silu", "order": "act_conv_bn"},
    "sep_conv": {"channels": 6, "kernel": 5, "stride": 2, "activation": "hardswish"},
    "mbconv": {"channels": 6, "kernel": 3, "stride": 2, "expand": 3, "se": 0.25,
               "activation": "gelu"},
    "avg_pool": {"kernel": 3, "stride": 2},
    "max_pool": {"kernel": 2, "stride": 2},
    "identity": {},
    "zero": {},
    "add": {},
    "concat": {},
    "batchnorm": {"activation": "tanh"},
    "global_pool": {"mode": "max"},
    "dropout": {"p": 0.5},
    "linear": {"features": 7, "bias": False, "activation": "relu6"},
}  # fmt: skip


def spec_with(op: str, config: dict[str, Any]) -> ArchitectureSpec:
    """A small network with ``op`` as the node ``"op"`` between a stem conv and a head."""
    stem = ("stem", "conv", {"channels": 4, "kernel": 3}, ["input"])
    if op == "global_pool":
        layers = [stem, ("op", op, config, ["stem"]), ("fc", "linear", {"features": 3}, ["op"])]
    elif op == "linear":
        layers = [
            stem,
            ("gp", "global_pool", {}, ["stem"]),
            ("op", op, config, ["gp"]),
            ("fc", "linear", {"features": 3}, ["op"]),
        ]
    elif OPS[op].arity is Arity.MERGE:
        layers = [
            stem,
            ("stem2", "conv", {"channels": 4, "kernel": 1}, ["stem"]),
            ("op", op, config, ["stem", "stem2"]),
            ("gp", "global_pool", {}, ["op"]),
            ("fc", "linear", {"features": 3}, ["gp"]),
        ]
    else:
        layers = [
            stem,
            ("op", op, config, ["stem"]),
            ("gp", "global_pool", {}, ["op"]),
            ("fc", "linear", {"features": 3}, ["gp"]),
        ]
    return spec_from_layers(layers, input_shape=(3, 9, 9), num_outputs=3)


def test_every_op_has_a_torch_implementation() -> None:
    assert set(LOWERINGS) == set(OPS)
    assert set(OP_CASES) == set(OPS) - {"input"}


@pytest.mark.parametrize("op", sorted(OP_CASES))
def test_op_builds_runs_and_every_parameter_gets_a_gradient(op: str) -> None:
    torch.manual_seed(0)
    spec = spec_with(op, OP_CASES[op])
    model = build_model(spec)
    assert isinstance(model, BuiltModel)
    x = torch.randn(2, *spec.input_shape)
    y = model(x)
    assert y.shape == (2, spec.num_outputs)
    assert torch.isfinite(y).all()
    y.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without a gradient: {missing}"
    _check_node_shapes(model, x)


def _check_node_shapes(model: BuiltModel, x: torch.Tensor) -> None:
    """Every node's module returns the spec's inferred shape."""
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [
        model.get_submodule(module_name(n)).register_forward_hook(
            lambda _m, _i, out, n=n: seen.__setitem__(n, tuple(out.shape[1:]))
        )
        for n in model.spec.topological_order
        if module_name(n) in dict(model.named_children())
    ]
    model(x)
    for h in hooks:
        h.remove()
    assert seen, "no module nodes"
    for node_id, shape in seen.items():
        assert shape == model.spec.shape(node_id), node_id


def test_missing_implementation_raises_naming_the_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(LOWERINGS, "max_pool")
    with pytest.raises(ValueError, match=r"node 'op': op 'max_pool' has no torch implementation"):
        build_model(spec_with("max_pool", OP_CASES["max_pool"]))


def _op_module(op: str, config: dict[str, Any]) -> Any:
    """The module of node ``"op"`` (typed ``Any`` so tests can read its parts)."""
    return build_model(spec_with(op, config)).get_submodule("op")


def test_conv_padding_bias_and_order() -> None:
    m = _op_module("conv", {"channels": 6, "kernel": 5, "dilation": 2, "bn": False, "bias": True})
    assert type(m) is ConvBnAct
    assert m.conv.padding == (4, 4) and m.conv.dilation == (2, 2) and m.conv.bias is not None
    assert isinstance(m.bn, nn.Identity) and isinstance(m.act, nn.ReLU)
    m = _op_module("conv", {"channels": 6, "kernel": 3, "order": "act_conv_bn"})
    assert type(m) is ActConvBn
    assert m.conv.bias is None and isinstance(m.bn, nn.BatchNorm2d)
    x = torch.randn(2, 4, 9, 9)
    torch.testing.assert_close(m(x), m.bn(m.conv(torch.relu(x))))
    plain = _op_module("conv", {"channels": 6, "kernel": 3})
    assert list(plain.state_dict()) == list(m.state_dict())


def test_sep_conv_is_depthwise_then_pointwise() -> None:
    m = _op_module("sep_conv", {"channels": 6, "kernel": 3, "stride": 2})
    assert type(m) is SepConvBnAct
    assert m.conv_dw.groups == 4 and m.conv_dw.stride == (2, 2) and m.conv_dw.padding == (1, 1)
    assert m.conv_pw.kernel_size == (1, 1) and m.conv_pw.out_channels == 6
    assert m.conv_dw.bias is None and m.conv_pw.bias is None
    m = _op_module("sep_conv", {"channels": 6, "kernel": 3, "order": "act_conv_bn"})
    assert type(m) is ActSepConvBn
    x = torch.randn(2, 4, 9, 9)
    torch.testing.assert_close(m(x), m.bn(m.conv_pw(m.conv_dw(torch.relu(x)))))


def test_mbconv_parts() -> None:
    m = _op_module("mbconv", {"channels": 6, "kernel": 3, "expand": 1})
    assert isinstance(m.conv_pw, nn.Identity) and isinstance(m.se, nn.Identity)
    assert m.conv_dw.in_channels == 4 and m.conv_dw.groups == 4
    m = _op_module("mbconv", {"channels": 6, "kernel": 5, "expand": 3, "se": 0.6})
    assert m.conv_pw.out_channels == 12 and m.conv_dw.groups == 12
    assert m.se.conv_reduce.out_channels == max(1, int(4 * 0.6)) == 2
    assert m.se.conv_expand.out_channels == 12
    assert isinstance(m.act2, nn.ReLU6)  # the default activation
    m = _op_module("mbconv", {"channels": 6, "kernel": 3, "se": 0.1})
    assert m.se.conv_reduce.out_channels == 1  # max(1, int(0.4))


def test_avg_pool_excludes_padding() -> None:
    m = _op_module("avg_pool", {"kernel": 3})
    torch.testing.assert_close(m(torch.ones(1, 2, 5, 5)), torch.ones(1, 2, 5, 5))


def test_zero_outputs_zeros_and_passes_a_gradient() -> None:
    model = build_model(spec_with("zero", {}))
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    seen: list[torch.Tensor] = []
    model.get_submodule("gp").register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    model(x).sum().backward()
    assert torch.equal(seen[0], torch.zeros_like(seen[0]))
    assert model.get_parameter("stem.conv.weight").grad is not None


def test_global_pool_and_concat() -> None:
    m = _op_module("global_pool", {"mode": "max"})
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(m(x), x.amax((2, 3)))
    model = build_model(spec_with("concat", {}))
    assert model.spec.shape("op") == (8, 9, 9)
    assert "torch.cat([stem, stem2], 1)" in model.code


def test_dropout_and_linear() -> None:
    assert _op_module("dropout", {"p": 0.3}).p == 0.3
    m = _op_module("linear", {"features": 7, "bias": False, "activation": "tanh"})
    assert m.fc.in_features == 4 and m.fc.bias is None and isinstance(m.act, nn.Tanh)
