"""Cost metrics: exact parameter counts, FLOPs wired to FlopCounterMode, latency, peak memory.

A spec's counts are analytic (:mod:`optuna_nas._spec_costs`); they are checked here against the
built model's parameters and ``FlopCounterMode`` over random specs of the whole op vocabulary
and of every built-in search space.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import settings
import optuna
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from optuna_nas._spec_costs import COST_RULES
from optuna_nas.metrics import LatencyResult
from optuna_nas.metrics import count_flops
from optuna_nas.metrics import count_params
from optuna_nas.metrics import measure_latency
from optuna_nas.metrics import measure_peak_memory
from optuna_nas.nn import build_model
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import SearchSpace
from optuna_nas.spec import OPS
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import spec_from_layers
from tests.spaces.test_spaces_contract import SPACES
from tests.strategies import specs

F32 = 4


def conv_spec(*, channels: int = 8, kernel: int = 3, stride: int = 1) -> ArchitectureSpec:
    """conv (no BN, no activation) -> global pool -> linear, on (3, 10, 10) inputs."""
    conv = {"channels": channels, "kernel": kernel, "stride": stride, "bn": False, "bias": True,
            "activation": "none"}  # fmt: skip
    return spec_from_layers(
        [
            ("conv", "conv", conv, ["input"]),
            ("gp", "global_pool", {}, ["conv"]),
            ("fc", "linear", {"features": 5}, ["gp"]),
        ],
        input_shape=(3, 10, 10),
        num_outputs=5,
    )


def test_count_params_spec_equals_model() -> None:
    spec = conv_spec()
    model = build_model(spec)
    assert count_params(spec) == count_params(model) == sum(p.numel() for p in model.parameters())
    assert count_params(spec) == (8 * 3 * 9 + 8) + (8 * 5 + 5)


def test_count_flops_is_textbook_for_conv_and_linear() -> None:
    # FlopCounterMode counts 2 FLOPs per multiply-accumulate; bias, pooling are not counted.
    spec = conv_spec(stride=2)
    conv_macs = 8 * 5 * 5 * (3 * 3 * 3)  # out channels x output pixels x (C_in x k x k)
    linear_macs = 8 * 5
    assert count_flops(spec) == 2 * (conv_macs + linear_macs)
    assert count_flops(spec, batch_size=3) == 3 * 2 * (conv_macs + linear_macs)
    assert count_flops(build_model(spec), batch_size=3) == count_flops(spec, batch_size=3)


def test_count_flops_of_a_plain_module_needs_an_input_shape() -> None:
    linear = nn.Linear(6, 4)
    assert count_flops(linear, input_shape=(6,), batch_size=2) == 2 * 2 * 6 * 4
    with pytest.raises(ValueError, match="`input_shape` is required"):
        count_flops(linear)
    with pytest.raises(ValueError, match="`input_shape` must be None"):
        count_flops(conv_spec(), input_shape=(3, 10, 10))
    with pytest.raises(ValueError, match="batch_size >= 1"):
        count_flops(conv_spec(), batch_size=0)
    with pytest.raises(TypeError, match="model_or_spec"):
        count_params("conv")  # type: ignore[arg-type]


def test_count_flops_restores_train_mode() -> None:
    model = build_model(conv_spec()).train()
    count_flops(model)
    assert model.training


def test_measure_latency_fields() -> None:
    model = build_model(conv_spec()).train()
    result = measure_latency(model, input_shape=(3, 10, 10), batch_size=2, warmup=1, repeats=7)
    assert isinstance(result, LatencyResult)
    assert 0 < result.p10_ms <= result.median_ms <= result.p90_ms
    assert result.mean_ms > 0
    assert (result.repeats, result.batch_size, result.device) == (7, 2, "cpu")
    assert model.training  # restored


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size >= 1"),
        ({"repeats": 0}, ValueError, "repeats >= 1"),
        ({"warmup": -1}, ValueError, "warmup >= 0"),
        ({"batch_size": 1.5}, TypeError, "`batch_size` must be an int"),
        ({"input_shape": (3, 0, 10)}, ValueError, "`input_shape`"),
        ({"device": "meta"}, ValueError, "real memory"),
    ],
)
def test_measure_latency_validates(kwargs: dict[str, object], error: type, match: str) -> None:
    model = build_model(conv_spec())
    args: dict[str, object] = {"input_shape": (3, 10, 10), **kwargs}
    with pytest.raises(error, match=match):
        measure_latency(model, **args)  # type: ignore[arg-type]


def test_model_must_be_on_the_device() -> None:
    with torch.device("meta"):
        model = build_model(conv_spec())
    with pytest.raises(ValueError, match=r"move it first with `model.to\('cpu'\)`"):
        measure_peak_memory(model, input_shape=(3, 10, 10))


def test_peak_memory_of_a_linear_layer_is_params_input_output() -> None:
    layer = nn.Linear(64, 32)
    params = (64 * 32 + 32) * F32
    batch = 4
    inference = params + batch * 64 * F32 + batch * 32 * F32
    assert measure_peak_memory(layer, input_shape=(64,), batch_size=batch) == inference
    # Training adds the parameter gradients (and a few scalar bytes for the loss).
    training = measure_peak_memory(layer, input_shape=(64,), batch_size=batch, training=True)
    assert inference + params <= training <= inference + params + 64


def test_peak_memory_grows_with_batch_and_training() -> None:
    model = build_model(conv_spec())
    peaks = [measure_peak_memory(model, input_shape=(3, 10, 10), batch_size=b) for b in (1, 2, 4)]
    assert peaks[0] < peaks[1] < peaks[2]
    assert peaks[0] > count_params(model) * F32
    train = measure_peak_memory(model, input_shape=(3, 10, 10), batch_size=4, training=True)
    assert train > peaks[2]


def test_peak_memory_leaves_the_model_alone() -> None:
    spec = spec_from_layers(
        [
            ("c", "conv", {"channels": 4, "kernel": 3}, ["input"]),
            ("d", "dropout", {"p": 0.5}, ["c"]),
            ("gp", "global_pool", {}, ["d"]),
            ("fc", "linear", {"features": 2}, ["gp"]),
        ],
        input_shape=(2, 6, 6),
        num_outputs=2,
    )
    model = build_model(spec).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    measure_peak_memory(model, input_shape=(2, 6, 6), batch_size=3, training=True)
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(rng, torch.get_rng_state())


def test_metrics_leave_the_global_rng_alone() -> None:
    spec = conv_spec()
    model = build_model(spec)
    state = torch.get_rng_state()
    count_params(spec)
    count_flops(spec)
    measure_latency(model, input_shape=(3, 10, 10), warmup=0, repeats=2)
    measure_peak_memory(model, input_shape=(3, 10, 10))
    assert torch.equal(state, torch.get_rng_state())


# ----------------------------------------------------------------------------- analytic counts


def built_counts(spec: ArchitectureSpec, batch_size: int) -> tuple[int, int]:
    """Parameters and FlopCounterMode FLOPs of ``build_model(spec)``, on the meta device."""
    with torch.device("meta"):
        model = build_model(spec)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(torch.zeros((batch_size, *spec.input_shape), device="meta"))
    return sum(p.numel() for p in model.parameters()), int(counter.get_total_flops())


def test_every_op_has_a_cost_rule() -> None:
    assert set(COST_RULES) == set(OPS)


@settings(max_examples=150, deadline=None)
@given(spec=specs())
def test_analytic_counts_equal_the_built_model_over_the_whole_vocabulary(
    spec: ArchitectureSpec,
) -> None:
    params, flops = built_counts(spec, batch_size=2)
    assert count_params(spec) == params
    assert count_flops(spec, batch_size=2) == flops


ALL_SPACES: dict[str, Callable[[], SearchSpace]] = {
    **SPACES,
    "cell-nb201": CellSpace.nasbench201,  # the full 3 stages x 5 cells on 32x32 inputs
}


@pytest.mark.parametrize("name", sorted(ALL_SPACES))
def test_analytic_counts_equal_the_built_model_on_every_space(name: str) -> None:
    space = ALL_SPACES[name]()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        spec = space.suggest(trial)
        study.tell(trial, 0.0)
        params, flops = built_counts(spec, batch_size=1)
        assert (count_params(spec), count_flops(spec)) == (params, flops), spec.to_json()
        seen.add(params)
    assert len(seen) > 1  # the space varied the cost, so the check was not one spec twelve times


def test_analytic_counts_cover_grouped_dilated_and_squeeze_excited_layers() -> None:
    layers: list[tuple[str, str, dict[str, Any], list[str]]] = [
        ("c", "conv", {"channels": 6, "kernel": 3, "dilation": 2, "groups": 3, "bias": True},
         ["input"]),
        ("m", "mbconv", {"channels": 4, "kernel": 5, "stride": 2, "expand": 3, "se": 0.25},
         ["c"]),
        ("s", "sep_conv", {"channels": 5, "kernel": 3}, ["m"]),
        ("gp", "global_pool", {}, ["s"]),
        ("fc", "linear", {"features": 2, "bias": False}, ["gp"]),
    ]  # fmt: skip
    spec = spec_from_layers(layers, input_shape=(3, 9, 9), num_outputs=2)
    # conv: 6 x (3/3) x 3 x 3 weights + 6 bias + 12 BN; 9x9 output.
    conv_w = 6 * 1 * 9
    # mbconv on 6 channels: mid 18; expansion 6->18, dw 5x5 on 18, SE 18->1->18 with biases,
    # projection 18->4, BN on 18, 18, 4; output 5x5 (stride 2 from 9x9).
    pw, dw, se, pwl = 6 * 18, 18 * 25, 18 * 1 + 1 * 18, 18 * 4
    # sep_conv on 4 channels: dw 4 x 3x3, pw 4->5, BN 5; 5x5 output. Linear 5->2.
    sdw, spw, fc = 4 * 9, 4 * 5, 5 * 2
    assert count_params(spec) == (
        conv_w + 6 + 12 + pw + dw + se + 1 + 18 + pwl + 2 * (18 + 18 + 4) + sdw + spw + 10 + fc
    )
    flops = 2 * (conv_w * 81 + pw * 81 + (dw + pwl) * 25 + se + (sdw + spw) * 25 + fc)
    assert count_flops(spec) == flops
    assert (count_params(spec), count_flops(spec)) == built_counts(spec, batch_size=1)
