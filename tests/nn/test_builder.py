"""``build_model``: compiled graph, numerics against hand-written torch, export, names, copies."""

from __future__ import annotations

from collections.abc import Callable
import copy
import pickle

from hypothesis import given
from hypothesis import settings
import pytest
import torch
from torch import fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from optuna_nas.metrics import count_params
from optuna_nas.nn import BuiltModel
from optuna_nas.nn import build_model
from optuna_nas.nn import module_name
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import spec_from_layers
from tests.strategies import specs


def cell_spec() -> ArchitectureSpec:
    """A NAS-Bench-201-style cell: ReLU-Conv-BN edges, pooling, skip and zero, summed nodes."""
    rcb = {"channels": 8, "activation": "relu", "order": "act_conv_bn"}
    return spec_from_layers(
        [
            ("stem", "conv", {"channels": 8, "kernel": 3, "activation": "none"}, ["input"]),
            ("cell/e10", "conv", {**rcb, "kernel": 3}, ["stem"]),
            ("cell/e20", "avg_pool", {"kernel": 3}, ["stem"]),
            ("cell/e21", "identity", {}, ["cell/e10"]),
            ("cell/n2", "add", {}, ["cell/e20", "cell/e21"]),
            ("cell/e30", "zero", {}, ["stem"]),
            ("cell/e31", "conv", {**rcb, "kernel": 1}, ["cell/e10"]),
            ("cell/e32", "max_pool", {"kernel": 3}, ["cell/n2"]),
            ("cell/n3", "add", {}, ["cell/e30", "cell/e31", "cell/e32"]),
            ("lastact", "batchnorm", {"activation": "relu"}, ["cell/n3"]),
            ("gap", "global_pool", {}, ["lastact"]),
            ("classifier", "linear", {"features": 10}, ["gap"]),
        ],
        input_shape=(3, 12, 12),
        num_outputs=10,
    )


class HandCell(nn.Module):
    """``cell_spec`` written by hand with plain torch.nn."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.e10 = nn.Sequential(nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(8))  # fmt: skip
        self.e20 = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.e31 = nn.Sequential(nn.ReLU(), nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.e32 = nn.MaxPool2d(3, 1, 1)
        self.lastact = nn.Sequential(nn.BatchNorm2d(8), nn.ReLU())
        self.classifier = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        n1 = self.e10(s)
        n2 = self.e20(s) + n1
        n3 = self.e31(n1) + self.e32(n2)
        out: torch.Tensor = self.classifier(self.lastact(n3).mean((2, 3)))
        return out


def mobile_spec() -> ArchitectureSpec:
    """MBConv blocks with squeeze-excitation, an explicit residual and a concat."""
    return spec_from_layers(
        [
            ("stem", "conv", {"channels": 8, "kernel": 3, "stride": 2, "activation": "silu"},
             ["input"]),
            ("b1", "mbconv", {"channels": 8, "kernel": 3, "expand": 4, "se": 0.25,
                              "activation": "silu"}, ["stem"]),
            ("res", "add", {}, ["b1", "stem"]),
            ("b2", "mbconv", {"channels": 12, "kernel": 5, "stride": 2, "expand": 1}, ["res"]),
            ("side", "sep_conv", {"channels": 4, "kernel": 3, "stride": 2}, ["res"]),
            ("cat", "concat", {}, ["b2", "side"]),
            ("gap", "global_pool", {"mode": "max"}, ["cat"]),
            ("fc1", "linear", {"features": 16, "activation": "hardswish"}, ["gap"]),
            ("drop", "dropout", {"p": 0.2}, ["fc1"]),
            ("fc2", "linear", {"features": 5}, ["drop"]),
        ],
        input_shape=(3, 16, 16),
        num_outputs=5,
    )  # fmt: skip


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c)


class HandMobile(nn.Module):
    """``mobile_spec`` written by hand with plain torch.nn."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), _bn(8), nn.SiLU())
        self.b1_expand = nn.Sequential(nn.Conv2d(8, 32, 1, bias=False), _bn(32), nn.SiLU())
        self.b1_dw = nn.Sequential(nn.Conv2d(32, 32, 3, 1, 1, groups=32, bias=False), _bn(32),
                                   nn.SiLU())  # fmt: skip
        self.b1_se_reduce = nn.Conv2d(32, 2, 1)
        self.b1_se_expand = nn.Conv2d(2, 32, 1)
        self.b1_project = nn.Sequential(nn.Conv2d(32, 8, 1, bias=False), _bn(8))
        self.b2 = nn.Sequential(
            nn.Conv2d(8, 8, 5, 2, 2, groups=8, bias=False), _bn(8), nn.ReLU6(),
            nn.Conv2d(8, 12, 1, bias=False), _bn(12),
        )  # fmt: skip
        self.side = nn.Sequential(
            nn.Conv2d(8, 8, 3, 2, 1, groups=8, bias=False), nn.Conv2d(8, 4, 1, bias=False),
            _bn(4), nn.ReLU(),
        )  # fmt: skip
        self.fc1 = nn.Linear(12 + 4, 16)
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        h = self.b1_dw(self.b1_expand(s))
        gate = torch.sigmoid(self.b1_se_expand(nn.functional.silu(self.b1_se_reduce(
            h.mean((2, 3), keepdim=True)))))  # fmt: skip
        r = self.b1_project(h * gate) + s
        c = torch.cat([self.b2(r), self.side(r)], 1)
        h = nn.functional.hardswish(self.fc1(c.amax((2, 3))))
        out: torch.Tensor = self.fc2(self.drop(h))
        return out


def copy_weights_by_order(src: nn.Module, dst: nn.Module) -> None:
    """Load ``src``'s state into ``dst`` pairing entries in registration order."""
    src_state, dst_state = src.state_dict(), dst.state_dict()
    assert [v.shape for v in src_state.values()] == [v.shape for v in dst_state.values()]
    dst.load_state_dict(dict(zip(dst_state, src_state.values(), strict=True)))


@pytest.mark.parametrize(
    ("make_spec", "hand_cls"), [(cell_spec, HandCell), (mobile_spec, HandMobile)]
)
def test_matches_hand_written_torch(
    make_spec: Callable[[], ArchitectureSpec], hand_cls: type[nn.Module]
) -> None:
    torch.manual_seed(0)
    built = build_model(make_spec())
    with torch.no_grad():  # non-trivial batch-norm state, so eval mode tests it too
        for t in built.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5)
    hand = hand_cls()
    copy_weights_by_order(built, hand)
    x = torch.randn(4, *built.spec.input_shape)
    torch.testing.assert_close(built.eval()(x), hand.eval()(x))
    torch.manual_seed(1)  # the same dropout mask for both
    y_built = built.train()(x)
    torch.manual_seed(1)
    torch.testing.assert_close(y_built, hand.train()(x))


def test_graph_is_straight_line_code_with_one_call_per_layer() -> None:
    spec = cell_spec()
    model = build_model(spec)
    calls = [n.target for n in model.graph.nodes if n.op == "call_module"]
    layers = [n for n in spec.topological_order if spec.node(n).op not in
              ("input", "identity", "zero", "add", "concat")]  # fmt: skip
    assert calls == [module_name(n) for n in layers]
    assert "for " not in model.code and "if " not in model.code


@pytest.mark.parametrize("make_spec", [cell_spec, mobile_spec])
def test_torch_export(make_spec: Callable[[], ArchitectureSpec]) -> None:
    model = build_model(make_spec()).eval()
    x = torch.randn(2, *model.spec.input_shape)
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), model(x))


def test_state_dict_keys_stable_and_init_deterministic() -> None:
    spec = mobile_spec()
    torch.manual_seed(3)
    a = build_model(spec).state_dict()
    torch.manual_seed(3)
    b = build_model(spec).state_dict()
    c = build_model(spec).state_dict()
    assert list(a) == list(b) == list(c)
    assert next(iter(a)) == "stem.conv.weight" and "b1.se.conv_reduce.weight" in a
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["stem.conv.weight"], c["stem.conv.weight"])


def test_module_names_are_injective_safe_attributes() -> None:
    ids = ["a_b", "a/b", "a.b", "a:b", "a-b", "a__b", "a_/b", "a/_b", "0", "1x", "class",
           "forward", "training", "spec", "graph", "code", ":ode", "_x0", "x", "self", "torch",
           "None"]  # fmt: skip
    names = [module_name(i) for i in ids]
    assert len(set(names)) == len(names)
    assert all(n.isidentifier() for n in names)
    assert module_name("cell/edge_1_0") == "cell_sedge__1__0"
    layers = [(i, "conv", {"channels": 2, "kernel": 1}, ["input"]) for i in ids]
    layers += [("sum", "add", {}, ids), ("gp", "global_pool", {}, ["sum"]),
               ("fc", "linear", {"features": 2}, ["gp"])]  # fmt: skip
    model = build_model(spec_from_layers(layers, input_shape=(1, 4, 4), num_outputs=2))
    model.train()
    model(torch.randn(2, 1, 4, 4)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert isinstance(model.spec, ArchitectureSpec) and model.training


def test_deepcopy_and_pickle_keep_spec_and_weights() -> None:
    model = build_model(mobile_spec()).eval()
    x = torch.randn(2, 3, 16, 16)
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert isinstance(other, BuiltModel) and other.spec == model.spec
        assert not other.training
        torch.testing.assert_close(other(x), model(x))
        w = "stem.conv.weight"
        assert other.get_parameter(w).data_ptr() != model.get_parameter(w).data_ptr()


def test_meta_build_and_type_check() -> None:
    spec = mobile_spec()
    with torch.device("meta"):
        meta = build_model(spec)
    assert all(p.is_meta for p in meta.parameters())
    assert count_params(meta) == count_params(build_model(spec))
    with pytest.raises(TypeError, match="ArchitectureSpec"):
        build_model(spec.to_dict())  # type: ignore[arg-type]
    assert isinstance(build_model(spec), fx.GraphModule)


@settings(max_examples=100, deadline=None)
@given(specs())
def test_random_specs_round_trip(spec: ArchitectureSpec) -> None:
    assert ArchitectureSpec.from_dict(spec.to_dict()) == spec
    assert ArchitectureSpec.from_json(spec.to_json()) == spec
    assert ArchitectureSpec.from_json(spec.to_json()).to_json() == spec.to_json()


@settings(max_examples=100, deadline=None)
@given(specs())
def test_random_specs_build_run_and_train(spec: ArchitectureSpec) -> None:
    model = build_model(spec)
    x = torch.randn(2, *spec.input_shape)
    y = model(x)
    assert y.shape == (2, spec.num_outputs) and torch.isfinite(y).all()
    y.square().sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    ShapeProp(model).propagate(x)
    by_name = {module_name(n): n for n in spec.topological_order}
    for node in model.graph.nodes:
        if node.op == "call_module":
            spec_id = by_name[node.target]
            assert tuple(node.meta["tensor_meta"].shape) == (2, *spec.shape(spec_id))
