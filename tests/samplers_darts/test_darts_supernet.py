from __future__ import annotations

import pytest
import torch
from torch import nn

from optuna_nas.nn import build_model
from optuna_nas.nn import module_name
from optuna_nas.samplers._darts import DartsSupernet
from optuna_nas.samplers._darts import MixedOp
from optuna_nas.samplers._darts import make_plan
from optuna_nas.spaces import CellSpace


def _supernet(seed: int = 0) -> DartsSupernet:
    space = CellSpace(
        input_shape=(1, 8, 8), num_outputs=10, init_channels=4, num_stages=2, cells_per_stage=1
    )
    torch.manual_seed(seed)
    return DartsSupernet(make_plan(space, None, None))


def test_mixed_op_checks_alpha_length() -> None:
    op = MixedOp([nn.Identity(), nn.Identity()])
    with pytest.raises(ValueError, match=r"len\(alpha\) == len\(candidates\)"):
        op(torch.ones(1, 1, 2, 2), torch.ones(3))
    with pytest.raises(ValueError, match="at least one"):
        MixedOp([])


def test_arch_and_weight_parameters_are_separate_and_cover_the_trainable_ones() -> None:
    net = _supernet()
    arch = {id(p) for p in net.arch_parameters()}
    weights = {id(p) for p in net.weight_parameters()}
    assert len(arch) == len(net.plan.params) == 6
    assert not arch & weights
    trainable = {id(p) for p in net.parameters() if p.requires_grad}
    assert arch | weights == trainable


def test_candidates_are_the_builders_modules_and_one_hot_weights_give_the_built_model() -> None:
    net = _supernet().eval()
    for k in range(len(net.plan.params[0].choices)):
        spec = net.plan.specs[k]
        if net.plan.params[0].choices[k] == "avg_pool_3x3":
            continue  # in the search, pooling is followed by a non-affine batch norm (DARTS)
        torch.manual_seed(1)
        model = build_model(spec).eval()
        # Copy the supernet's weights into the freshly built model, module by module.
        with torch.no_grad():
            for node in spec.nodes:
                name = module_name(node.id)
                if node.op in ("identity", "zero", "add", "input"):
                    continue  # lowered to graph operations, no module
                if name in net.mixed:
                    src: nn.Module = net.mixed[name].candidates[k]
                elif name in net.fixed:
                    src = net.fixed[name]
                else:
                    continue
                dst = model.get_submodule(name)
                assert type(dst) is type(src)
                dst.load_state_dict(src.state_dict())
        x = torch.randn(5, 1, 8, 8)
        one_hot = []
        for p in net.plan.params:
            w = torch.zeros(len(p.choices))
            w[min(k, len(p.choices) - 1)] = 1.0
            one_hot.append((w, None))
        torch.testing.assert_close(net(x, one_hot), model(x))


def test_alpha_gets_gradients_in_both_relaxations() -> None:
    net = _supernet()
    x = torch.randn(8, 1, 8, 8)
    y = torch.randint(0, 10, (8,))
    for relaxation in ("softmax", "gdas"):
        for a in net.arch_parameters():
            a.grad = None
        w = net.arch_weights(relaxation, tau=1.0, generator=torch.Generator().manual_seed(0))
        torch.autograd.backward(nn.functional.cross_entropy(net(x, w), y))
        grads = [a.grad for a in net.arch_parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(float(g.abs().sum()) > 0 for g in grads if g is not None)
    hard = net.arch_weights("gdas", tau=1.0)
    assert all(i is not None and float(w[i].detach()) == pytest.approx(1.0) for w, i in hard)


def test_batch_norm_in_candidates_is_not_affine_during_search() -> None:
    net = _supernet()
    for mixed in net.mixed.values():
        for m in mixed.modules():
            if isinstance(m, nn.BatchNorm2d) and m.affine:
                assert not m.weight.requires_grad and float(m.weight.min()) == 1.0
        pool = mixed.candidates[net.plan.params[0].choices.index("avg_pool_3x3")]
        assert isinstance(pool[1], nn.BatchNorm2d) and not pool[1].affine


def test_darts_minus_auxiliary_skip_is_added_on_mixed_nodes() -> None:
    net = _supernet().eval()
    x = torch.randn(3, 1, 8, 8)
    zero = [(torch.zeros(len(p.choices)), None) for p in net.plan.params]
    with torch.no_grad():
        plain = net(x, zero)
        net.aux_skip = 0.5
        assert not torch.allclose(net(x, zero), plain)


def test_export_goes_through_the_normal_builder() -> None:
    net = _supernet()
    with torch.no_grad():
        for p, a in zip(net.plan.params, net.alpha, strict=True):
            a.zero_()
            a[p.choices.index("nor_conv_3x3")] = 1.0
    choices = net.export()
    assert choices == {p.name: "nor_conv_3x3" for p in net.plan.params}
    model = build_model(net.plan.decode(choices))
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    alpha = net.alpha_dict()
    net.load_alpha({k: [0.0] * len(v) for k, v in alpha.items()})
    assert all(float(a.detach().abs().sum()) == 0 for a in net.alpha)
    with pytest.raises(ValueError, match=r"len\(alpha\) == len\(candidates\)"):
        net.load_alpha({k: [0.0] for k in alpha})
