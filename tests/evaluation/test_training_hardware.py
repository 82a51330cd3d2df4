"""The training loop's hardware settings: precision, memory format, compile, weight-decay
groups, per-call RNG isolation, progress logging and the checks made before training."""

from __future__ import annotations

import copy
import logging
import re
import threading
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data import TensorDataset

from optuna_nas.data import DataSplits
from optuna_nas.data import load_digits
from optuna_nas.data import make_loaders
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.evaluation import TrainingResult
from optuna_nas.evaluation import evaluate_accuracy
from optuna_nas.evaluation import train_model
from optuna_nas.evaluation._training import check_device
from optuna_nas.evaluation._training import isolated_rng
from optuna_nas.nn import build_model
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import nb201_arch_to_params
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import spec_from_layers

Loader = DataLoader[tuple[torch.Tensor, ...]]
ARCH = (  # NAS-Bench-201's best CIFAR-10 cell.
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_digits(seed=0)


def _cell_spec() -> ArchitectureSpec:
    """The NAS-Bench-201 cell ``ARCH`` in a small 8x8 network (4 channels, 1 cell a stage)."""
    space = CellSpace.nasbench201(input_shape=(1, 8, 8), init_channels=4, cells_per_stage=1)
    return space.decode(nb201_arch_to_params(ARCH))


def _dropout_spec(p: float = 0.3) -> ArchitectureSpec:
    """A small conv net whose dropout draws random numbers at every training step."""
    layers: list[tuple[str, str, dict[str, Any], list[str]]] = [
        ("conv", "conv", {"channels": 16, "kernel": 3, "activation": "relu"}, ["input"]),
        ("drop", "dropout", {"p": p}, ["conv"]),
        ("gap", "global_pool", {}, ["drop"]),
        ("fc", "linear", {"features": 10}, ["gap"]),
    ]
    return spec_from_layers(layers, input_shape=(1, 8, 8), num_outputs=10)


def _model(spec: ArchitectureSpec, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(spec)


def _tensors(digits: DataSplits, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = getattr(digits, split).tensors
    return images, labels


def _loader(digits: DataSplits, split: str, *, n: int | None = None, **kwargs: Any) -> Loader:
    images, labels = _tensors(digits, split)
    return DataLoader(TensorDataset(images[:n], labels[:n]), batch_size=64, **kwargs)


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _same(a: TrainingResult, b: TrainingResult) -> bool:
    return (a.train_loss_history, a.val_accuracy_history) == (
        b.train_loss_history,
        b.val_accuracy_history,
    )


# ----------------------------------------------------------------------------- precision


def test_bf16_autocast_trains_a_built_model(digits: DataSplits) -> None:
    model = _model(_cell_spec())
    dtypes: set[torch.dtype] = set()
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    conv.register_forward_hook(lambda module, args, out: dtypes.add(out.dtype))
    train, val, _ = make_loaders(digits, batch_size=64, seed=0)
    config = TrainingConfig(epochs=2, precision="bf16")
    result = train_model(model, train, val, config=config, seed=0)
    assert dtypes == {torch.bfloat16}  # Convolutions ran under autocast, training and eval.
    assert all(p.dtype == torch.float32 for p in model.parameters())  # Master weights: fp32.
    assert result.final_val_accuracy > 0.6  # Chance is 0.1; fp32 reaches ~0.88 here.
    assert 0 <= evaluate_accuracy(model, val, device="cpu", precision="bf16") <= 1


def test_channels_last_matches_contiguous(digits: DataSplits) -> None:
    contiguous = _model(_cell_spec())
    nhwc = copy.deepcopy(contiguous)
    seen: list[bool] = []
    nhwc.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    # One step: the two memory formats may run different convolution algorithms (oneDNN picks
    # by CPU; on an AVX-512 machine they differ by ~1e-3 after 2 full batches, by 1e-6 after
    # one), so that comparing after more steps compares algorithms, not our code.
    train = _loader(digits, "train", n=64)
    val = _loader(digits, "val")
    results = [
        train_model(m, train, val, config=TrainingConfig(epochs=1, channels_last=flag), seed=0)
        for m, flag in ((contiguous, False), (nhwc, True))
    ]
    assert seen and all(seen)
    conv = next(m for m in nhwc.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    loss = [r.train_loss_history[0] for r in results]
    assert loss[1] == pytest.approx(loss[0], rel=1e-4)
    for a, b in zip(contiguous.parameters(), nhwc.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    images = _tensors(digits, "val")[0][:64]
    torch.testing.assert_close(
        contiguous.eval()(images), nhwc.eval()(images), rtol=1e-3, atol=1e-3
    )


# ----------------------------------------------------------------------------- RNG isolation


def _train_dropout(
    digits: DataSplits, seed: int, device: str = "cpu"
) -> tuple[TrainingResult, list[torch.Tensor]]:
    """Build a dropout net from init seed 0 and train it with ``seed``: both the dropout and
    the unseeded shuffle draw from torch's global generators."""
    with isolated_rng(0):
        model = build_model(_dropout_spec())
    train = _loader(digits, "train", n=512, shuffle=True)
    val = _loader(digits, "val")
    config = TrainingConfig(epochs=3, optimizer="adam", lr=3e-3)
    result = train_model(model, train, val, config=config, seed=seed, device=device)
    return result, [p.cpu() for p in _params(model)]


def _same_run(
    a: tuple[TrainingResult, list[torch.Tensor]], b: tuple[TrainingResult, list[torch.Tensor]]
) -> bool:
    same_params = all(torch.equal(x, y) for x, y in zip(a[1], b[1], strict=True))
    return _same(a[0], b[0]) and same_params


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="no CUDA"))]
)
def test_threads_with_different_seeds_match_serial_runs(digits: DataSplits, device: str) -> None:
    # cuDNN's default algorithms may differ in the last bits from run to run on CUDA.
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True):
        _check_threads_match_serial_runs(digits, device)


def _check_threads_match_serial_runs(digits: DataSplits, device: str) -> None:
    serial = {seed: _train_dropout(digits, seed, device) for seed in (1, 2)}
    assert not _same(serial[1][0], serial[2][0])  # The seed matters: dropout and order differ.

    results: dict[int, tuple[TrainingResult, list[torch.Tensor]]] = {}
    barrier = threading.Barrier(2)

    def run(seed: int) -> None:
        barrier.wait()
        results[seed] = _train_dropout(digits, seed, device)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _same_run(results[1], serial[1])
    assert _same_run(results[2], serial[2])


def test_seeded_call_ignores_and_keeps_the_global_generator(digits: DataSplits) -> None:
    torch.manual_seed(123)
    first = _train_dropout(digits, 7)
    torch.manual_seed(456)
    state = torch.get_rng_state()
    second = _train_dropout(digits, 7)
    assert _same_run(first, second)
    assert torch.equal(torch.get_rng_state(), state)


# ----------------------------------------------------------------------------- weight decay


class _ZeroGradient(nn.Module):
    """Logits times zero: every gradient is exactly 0, so weight decay alone moves a weight."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4 * 8 * 8, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x) * 0.0
        return out


@pytest.mark.parametrize("decay_norm_and_bias", [False, True])
def test_weight_decay_filter_exempts_norm_and_bias(
    digits: DataSplits, decay_norm_and_bias: bool
) -> None:
    model = _ZeroGradient()
    nn.init.uniform_(model.body[1].weight, 0.5, 1.5)
    nn.init.uniform_(model.body[1].bias, 0.5, 1.5)
    before = dict((name, p.detach().clone()) for name, p in model.named_parameters())
    config = TrainingConfig(
        epochs=1, weight_decay=0.1, decay_norm_and_bias=decay_norm_and_bias, grad_clip=None
    )
    train_model(model, _loader(digits, "train", n=128), _loader(digits, "val"), config=config)
    moved = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    weights = {"body.0.weight", "body.4.weight"}
    norm_and_bias = {"body.0.bias", "body.1.weight", "body.1.bias", "body.4.bias"}
    assert moved == (weights | norm_and_bias if decay_norm_and_bias else weights)


# ----------------------------------------------------------------------------- compile


def _no_recompiles() -> Any:
    """Make a second compilation of any function an error (one compile each is allowed)."""
    import torch._dynamo.config

    return torch._dynamo.config.patch(recompile_limit=1, fail_on_recompile_limit_hit=True)


COMPILE_IMPORT_WARNING = "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"
"""Raised by torch itself while TorchInductor imports its CPU modules (torch 2.13)."""


@pytest.mark.slow
@pytest.mark.filterwarnings(COMPILE_IMPORT_WARNING)
def test_compile_on_cpu_trains_without_recompiling(digits: DataSplits) -> None:
    model = _model(_dropout_spec(p=0.0))
    eager = copy.deepcopy(model)
    train = _loader(digits, "train", n=300)  # 4 full batches of 64 and a last one of 44.
    val = _loader(digits, "val")
    config = TrainingConfig(epochs=2, optimizer="adam", lr=3e-3, compile="default")
    with _no_recompiles():
        compiled = train_model(model, train, val, config=config, seed=0)
    reference = train_model(
        eager, train, val, config=TrainingConfig(epochs=2, optimizer="adam", lr=3e-3), seed=0
    )
    assert compiled.epochs_run == 2
    assert compiled.train_loss_history == pytest.approx(reference.train_loss_history, rel=1e-3)


# ----------------------------------------------------------------------------- progress, copies


def test_one_log_line_and_speed_per_epoch(
    digits: DataSplits, caplog: pytest.LogCaptureFixture
) -> None:
    train, val = _loader(digits, "train", n=128), _loader(digits, "val")
    with caplog.at_level(logging.INFO, logger="optuna_nas.training"):
        result = train_model(_model(_dropout_spec()), train, val, config=TrainingConfig(epochs=2))
    lines = [r.getMessage() for r in caplog.records if r.name == "optuna_nas.training"]
    assert len(lines) == 2
    assert re.fullmatch(
        r"epoch 2/2: train loss \d+\.\d{4}, val accuracy \d\.\d{4}, \d+\.\d\d s, \d+ images/s",
        lines[1],
    )
    assert len(result.epoch_seconds_history) == len(result.images_per_second_history) == 2
    assert all(s > 0 for s in result.epoch_seconds_history)
    for seconds, speed in zip(
        result.epoch_seconds_history, result.images_per_second_history, strict=True
    ):
        assert speed == pytest.approx(128 / seconds)


def test_batches_already_on_the_device_are_not_copied(digits: DataSplits) -> None:
    images, labels = _tensors(digits, "train")
    batches = [(images[i : i + 64], labels[i : i + 64]) for i in range(0, 256, 64)]
    pointers: list[int] = []
    model = _model(_dropout_spec())
    model.register_forward_pre_hook(lambda module, args: pointers.append(args[0].data_ptr()))
    train_model(model, batches, batches, config=TrainingConfig(epochs=1), device="cpu")
    assert pointers == [x.data_ptr() for x, _ in batches] * 2  # Training, then validation.


# ----------------------------------------------------------------------------- bad input


def _fails_before_training(digits: DataSplits, config: TrainingConfig, **kwargs: Any) -> None:
    model = _model(_dropout_spec())
    before = _params(model)
    train, val = _loader(digits, "train", n=64), _loader(digits, "val", n=64)
    try:
        train_model(model, train, val, config=config, **kwargs)
    finally:
        assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_fp16_on_the_cpu_is_rejected(digits: DataSplits) -> None:
    with pytest.raises(ValueError, match=re.escape("`precision='fp16'` needs a CUDA device")):
        _fails_before_training(digits, TrainingConfig(epochs=1, precision="fp16"))


@pytest.mark.parametrize("mode", ["reduce-overhead", "max-autotune"])
def test_cuda_graph_compile_off_cuda_is_rejected(digits: DataSplits, mode: Any) -> None:
    message = f"`compile={mode!r}` captures CUDA graphs and needs a CUDA device, but device='cpu'"
    with pytest.raises(ValueError, match=re.escape(message)):
        _fails_before_training(digits, TrainingConfig(epochs=1, compile=mode))


def test_cudnn_benchmark_off_cuda_is_rejected(digits: DataSplits) -> None:
    with pytest.raises(ValueError, match=re.escape("`cudnn_benchmark=True` autotunes cuDNN")):
        _fails_before_training(digits, TrainingConfig(epochs=1, cudnn_benchmark=True))


def test_compile_where_dynamo_cannot_run_is_rejected(
    digits: DataSplits, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch._dynamo.eval_frame

    monkeypatch.setattr(torch._dynamo.eval_frame, "is_dynamo_supported", lambda: False)
    message = "`compile='default'` needs torch.compile, which cannot run here: TorchDynamo"
    with pytest.raises(RuntimeError, match=re.escape(message)):
        _fails_before_training(digits, TrainingConfig(epochs=1, compile="default"))


def test_compile_without_a_cpp_compiler_is_rejected(
    digits: DataSplits, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler is on PATH; pass compile=None"):
        _fails_before_training(digits, TrainingConfig(epochs=1, compile="default"))


def test_channels_last_needs_image_batches() -> None:
    flat: Loader = DataLoader(
        TensorDataset(torch.randn(8, 64), torch.zeros(8, dtype=torch.int64)), batch_size=4
    )
    config = TrainingConfig(epochs=1, channels_last=True)
    with pytest.raises(ValueError, match=re.escape("applies to 4-D (N, C, H, W) image batches")):
        train_model(nn.Linear(64, 10), flat, flat, config=config)


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
def test_cuda_device_without_cuda_is_rejected(digits: DataSplits) -> None:
    with pytest.raises(ValueError, match=re.escape("names a CUDA device, but CUDA is not")):
        _fails_before_training(digits, TrainingConfig(epochs=1), device="cuda")
    with pytest.raises(ValueError, match=re.escape("`device='cuda:0'` names a CUDA device")):
        evaluate_accuracy(nn.Linear(1, 1), [], device="cuda:0")


def test_cuda_index_past_the_device_count_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    if not CUDA:  # Pretend to be a one-GPU machine; check_device only asks these two.
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    count = torch.cuda.device_count()
    message = (
        f"`device='cuda:{count}'` names cuda device {count}, but this machine has {count} "
        f"(indices 0..{count - 1}); pass one of cuda:0 .. cuda:{count - 1}."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        check_device(f"cuda:{count}")


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "meta"])
def test_unknown_devices_are_rejected(device: str) -> None:
    with pytest.raises(ValueError, match=re.escape("`device")):
        check_device(device)


def test_check_device_returns_the_named_device() -> None:
    assert check_device("cpu") == torch.device("cpu")
    assert check_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"precision": "fp8"},
            "`precision` must be one of ('fp32', 'bf16', 'fp16'), but got 'fp8'.",
        ),
        ({"compile": True}, "`compile` must be None (train eagerly) or one of ('default', "),
        ({"compile": "fast"}, "'max-autotune-no-cudagraphs'), but got 'fast'."),
        ({"channels_last": 1}, "`channels_last` must be a bool, but got channels_last=1."),
        ({"cudnn_benchmark": None}, "`cudnn_benchmark` must be a bool, but got cudnn_benchmark="),
        ({"decay_norm_and_bias": "no"}, "`decay_norm_and_bias` must be a bool, but got decay_"),
    ],
)
def test_new_config_fields_are_validated(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"epochs": 1} | kwargs
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainingConfig(**arguments)


def test_defaults_keep_the_previous_behaviour() -> None:
    config = TrainingConfig(epochs=1)
    assert config.precision == "fp32" and config.compile is None
    assert not config.channels_last and not config.cudnn_benchmark
    assert config.decay_norm_and_bias


@pytest.mark.parametrize("seed", [-1, 2**64, True, 1.5])
def test_seed_is_validated(digits: DataSplits, seed: Any) -> None:
    with pytest.raises(ValueError, match=re.escape("`seed` must be None or an int in [0, 2**64)")):
        _fails_before_training(digits, TrainingConfig(epochs=1), seed=seed)


# ----------------------------------------------------------------------------- CUDA only


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_on_cuda(digits: DataSplits, precision: Any) -> None:
    model = _model(_cell_spec())
    train, val, _ = make_loaders(digits, batch_size=64, seed=0)
    config = TrainingConfig(
        epochs=3, precision=precision, channels_last=True, cudnn_benchmark=True
    )
    result = train_model(model, train, val, config=config, device="cuda", seed=0)
    assert result.final_val_accuracy > 0.6
    assert not torch.backends.cudnn.benchmark  # Restored after the call.


@pytest.mark.slow
@pytest.mark.filterwarnings(COMPILE_IMPORT_WARNING)
# CUDA graph trees capture one empty graph on purpose to set up their memory pool.
@pytest.mark.filterwarnings("ignore:The CUDA Graph is empty:UserWarning")
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_cuda_graphs_train_without_recompiling(digits: DataSplits) -> None:
    model = _model(_cell_spec())
    train, val, _ = make_loaders(digits, batch_size=64, seed=0)  # The last batch is smaller.
    config = TrainingConfig(epochs=3, precision="bf16", compile="reduce-overhead")
    with _no_recompiles():
        result = train_model(model, train, val, config=config, device="cuda", seed=0)
    assert result.final_val_accuracy > 0.6


def test_isolated_rng_seeds_the_block_and_restores_the_generator() -> None:
    state = torch.get_rng_state()
    with isolated_rng(5):
        inside = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(inside, torch.rand(3, generator=torch.Generator().manual_seed(5)))
    message = "`seed` must be an int in [0, 2**64)"
    with pytest.raises(ValueError, match=re.escape(message)), isolated_rng(None):  # type: ignore[arg-type]
        pass
