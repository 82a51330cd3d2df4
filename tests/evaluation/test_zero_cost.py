"""Zero-cost proxies: each against a hand computation of its definition, and the evaluator."""

from __future__ import annotations

from collections.abc import Iterator
import math

import numpy as np
import pytest
import torch
from torch import nn
import torch.nn.functional as F

from optuna_nas.data import DataSplits
from optuna_nas.data import load_digits
from optuna_nas.evaluation import ZERO_COST_PROXIES
from optuna_nas.evaluation import ZeroCostEvaluator
from optuna_nas.evaluation import grad_norm
from optuna_nas.evaluation import naswot
from optuna_nas.evaluation import snip
from optuna_nas.evaluation import synflow
from optuna_nas.evaluation import zero_cost_score
from optuna_nas.spaces import CellSpace
from optuna_nas.spec import ArchitectureSpec


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_digits(seed=0)


def _cell(op: str) -> ArchitectureSpec:
    space = CellSpace(input_shape=(1, 8, 8), num_outputs=10, init_channels=8, num_stages=2)
    return space.decode({p: op for p in space.distributions()})


def test_synflow_of_a_bias_free_linear_chain_is_depth_times_the_output() -> None:
    # Synaptic saliency is conserved layer by layer (Tanaka et al. 2020, Theorem 1): for a
    # bias-free linear chain with |weights| and an all-ones input, each layer's
    # sum |w * dR/dw| equals R = sum(output).
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4, bias=False), nn.Linear(4, 3, bias=False))
    w1, w2 = (m.weight.detach().abs().double() for m in net)
    expected = 2 * float((w2 @ w1 @ torch.ones(5, dtype=torch.float64)).sum())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert synflow(net, torch.randn(7, 5)) == pytest.approx(expected, rel=1e-12)
    for k, v in net.state_dict().items():  # the model itself is untouched
        assert torch.equal(v, before[k])


def test_synflow_removes_batch_norm() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 3, 3, padding=1, bias=False)
    with_bn = nn.Sequential(conv, nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 2))
    torch.nn.init.uniform_(with_bn[1].weight, 2.0, 3.0)  # would change the score if kept
    without = nn.Sequential(conv, nn.Identity(), nn.Flatten(), with_bn[3])
    x = torch.randn(4, 1, 2, 2)
    assert synflow(with_bn, x) == pytest.approx(synflow(without, x), rel=1e-12)


def test_naswot_is_the_logdet_of_the_hamming_kernel() -> None:
    x = torch.randn(6, 10, generator=torch.Generator().manual_seed(1))
    net = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU())
    codes = []
    h = x
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, nn.ReLU):
                codes.append((h > 0).double().numpy())
            h = layer(h)
    kernel = sum(c @ c.T + (1 - c) @ (1 - c).T for c in codes)
    assert naswot(net, x) == pytest.approx(np.linalg.slogdet(kernel)[1], rel=1e-9)
    with pytest.raises(ValueError, match="activations"):
        naswot(nn.Linear(10, 2), x)


def test_snip_and_grad_norm_match_their_definitions() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    x, y = torch.randn(8, 6), torch.randint(3, (8,))
    grads = torch.autograd.grad(F.cross_entropy(net(x), y), [net[0].weight, net[2].weight])
    weights = [net[0].weight, net[2].weight]
    expected_snip = sum(
        float((w * g).abs().sum().detach()) for w, g in zip(weights, grads, strict=True)
    )
    expected_norm = sum(float(g.norm()) for g in grads)
    assert snip(net, x, y) == pytest.approx(expected_snip, rel=1e-5)
    assert grad_norm(net, x, y) == pytest.approx(expected_norm, rel=1e-5)
    assert net[0].weight.grad is None  # computed on a copy


def test_every_proxy_scores_built_networks_and_is_seeded(digits: DataSplits) -> None:
    x, y = digits.train.tensors[0][:32], digits.train.tensors[1][:32]
    conv, pool = _cell("nor_conv_3x3"), _cell("avg_pool_3x3")
    for name in ZERO_COST_PROXIES:
        a = zero_cost_score(conv, x, y, proxy=name, seed=0)
        assert math.isfinite(a), name
        assert a == zero_cost_score(conv, x, y, proxy=name, seed=0), name
    # Convolutions everywhere carry more synaptic flow than pools (fewer weighted paths).
    assert zero_cost_score(conv, x, y, proxy="synflow", seed=0) > zero_cost_score(
        pool, x, y, proxy="synflow", seed=0
    )
    with pytest.raises(ValueError, match="proxy"):
        zero_cost_score(conv, x, y, proxy="flops", seed=0)


def test_zero_cost_evaluator(digits: DataSplits) -> None:
    evaluator = ZeroCostEvaluator(digits, proxy="naswot", batch_size=32)
    first = evaluator.evaluate(_cell("nor_conv_3x3"), report=None, seed=1)
    again = evaluator.evaluate(_cell("nor_conv_3x3"), report=None, seed=1)
    assert set(first.values) == {"zero_cost"}
    assert first.values == again.values  # the same mini-batch every time
    assert first.metrics["zero_cost_proxy"] == "naswot"
    assert first.metrics["zero_cost_naswot"] == first.values["zero_cost"]
    assert first.model is not None and not first.stopped_early
    assert evaluator.inputs.shape == (32, 1, 8, 8)
    with pytest.raises(ValueError, match="proxy"):
        ZeroCostEvaluator(digits, proxy="jacov")
    with pytest.raises(ValueError, match="batch_size"):
        ZeroCostEvaluator(digits, proxy="snip", batch_size=1)
    with pytest.raises(ValueError, match="batch_size"):
        ZeroCostEvaluator(digits, proxy="snip", batch_size=100_000)
