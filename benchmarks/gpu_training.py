"""Training images per second of one NAS-Bench-201 network: the library's loop against a
hand-written reference loop, and against the library's fp32 default.

The network is CIFAR-10's NAS-Bench-201 skeleton (``CellSpace.nasbench201()``: C=16, N=5,
3x32x32 input, 10 classes) with the benchmark's best cell ``ARCH``, built by ``build_model``.
Every run trains it from the same initial weights (seed 0) on the same synthetic data (seeded
random 32x32x3 images and labels; throughput does not depend on what is learnt) with batch
256, SGD (momentum 0.9, Nesterov, weight decay 5e-4) and gradient clipping at 5, the
library's defaults. Four runs:

* ``fp32_default``: ``train_model`` with ``TrainingConfig``'s defaults (fp32, eager);
* ``library_bf16_eager``: bf16 autocast, channels-last, cuDNN autotuning, no compile;
* ``library_best``: the same plus ``compile="reduce-overhead"`` (CUDA graphs);
* ``reference``: a hand-written loop with the same model, optimiser and clipping on
  GPU-resident data (a device ``randperm`` and gather per epoch), bf16, channels-last and
  ``torch.compile(mode="reduce-overhead")`` of forward and loss; nothing else.

The library runs get their batches from the data layer (``make_loaders``, in-memory fast path,
device-resident). Images/s is a run's training images over the median seconds of its epochs
after the first (the loop's ``epoch_seconds_history``: training pass only, synchronised by the
once-per-epoch loss read); the first epoch's extra seconds are its compile (and warm-up) time.
Inductor's caches are switched off, so every compile is cold, as for a new candidate; the
compiler's one-off start in a process (``compiler_start_seconds``, paid by a worker's first
trial only) is measured apart, on a trivial function, before the runs.

Achieved TFLOP/s counts 3x the forward FLOPs of ``optuna_nas.metrics.count_flops`` per
training image (backward ~ 2x forward, the usual MFU convention; batch norm, activations and
the optimiser are not counted) and is compared with the GPU's dense bf16 tensor-core peak
from ``PEAK_BF16_TFLOPS`` (NVIDIA data sheets; the sparsity figures halved). Break-even: the
extra first-epoch seconds of ``library_best`` over ``library_bf16_eager``, divided by the
seconds compiling saves per image, in images and in CIFAR-10 epochs (50,000 images): train a
candidate at least that long and compiling pays off.

    python benchmarks/gpu_training.py                # one CUDA GPU, under 5 minutes
    python benchmarks/gpu_training.py --device cpu   # small sizes, under a minute

``--device cpu`` runs C=8, N=1, batch 64 and compiles with mode ``"default"`` (CUDA graphs
need CUDA). Results go to ``benchmarks/results/gpu_training.json`` (``gpu_training_cpu.json``
for the CPU mode), then ``benchmarks/RESULTS.md`` is regenerated (``section`` renders this
benchmark's part).
"""

from __future__ import annotations

import os

# Cold compiles, as for a new candidate: no FX-graph or AOT-autograd cache hits across runs.
os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "0")
os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "0")

import argparse
from collections.abc import Callable
import gc
import json
from pathlib import Path
import platform
import statistics
import sys
import tempfile
import time
from typing import Any
from typing import Literal

import optuna
from optuna.artifacts import FileSystemArtifactStore
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from optuna_nas._checkpoint import TrialCheckpoint
from optuna_nas.data import DataSplits
from optuna_nas.data import LoaderSettings
from optuna_nas.data import make_loaders
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.evaluation import train_model
from optuna_nas.evaluation._training import check_device
from optuna_nas.evaluation._training import isolated_rng
from optuna_nas.metrics import count_flops
from optuna_nas.nn import build_model
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import nb201_arch_to_params
from optuna_nas.spec import ArchitectureSpec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from training_checks import Timed  # noqa: E402

ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
"""NAS-Bench-201's best CIFAR-10 cell (94.37% test accuracy after 200 epochs in its table)."""
CIFAR10_TRAIN_IMAGES = 50_000
PEAK_BF16_TFLOPS = {
    # Dense bf16 tensor-core TFLOP/s: NVIDIA data sheets (they quote 2x with 2:4 sparsity).
    "H200": 989.5,  # H200 SXM: 1,979 with sparsity.
    "H100 PCIe": 756.5,  # H100 PCIe: 1,513 with sparsity.
    "H100": 989.5,  # H100 SXM: 1,979 with sparsity.
    "A100": 312.0,  # A100 SXM and PCIe: 624 with sparsity.
    "L40S": 362.05,  # L40S: 733 with sparsity.
}
SIZES = {  # batch, steps per epoch, validation images, eager epochs, compiled epochs, C, N
    "cuda": {"batch": 256, "steps": 48, "val": 2048, "epochs": 4, "compiled_epochs": 6,
             "init_channels": 16, "cells_per_stage": 5},
    "cpu": {"batch": 64, "steps": 8, "val": 128, "epochs": 3, "compiled_epochs": 3,
            "init_channels": 8, "cells_per_stage": 1},
}  # fmt: skip


def nb201_spec(init_channels: int, cells_per_stage: int) -> ArchitectureSpec:
    space = CellSpace.nasbench201(init_channels=init_channels, cells_per_stage=cells_per_stage)
    return space.decode(nb201_arch_to_params(ARCH))


def synthetic(n_train: int, n_val: int, batch: int) -> DataSplits:
    """Seeded random images and labels in host memory; the data layer moves them once."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(n_train + n_val, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (n_train + n_val,), generator=generator)
    return DataSplits(
        train=TensorDataset(images[:n_train], labels[:n_train]),
        val=TensorDataset(images[n_train:], labels[n_train:]),
        input_shape=(3, 32, 32),
        num_classes=10,
        name="synthetic32",
        loader=LoaderSettings(batch_size=batch, drop_last=True),
    )


def fresh_model(spec: ArchitectureSpec) -> nn.Module:
    with isolated_rng(0):
        return build_model(spec)


def warm_compiler(device: torch.device, mode: str) -> float:
    """Compile and run a trivial function once, so that the one-off start of the compiler
    (imports, worker processes, device libraries) is not charged to the first run."""
    start = time.perf_counter()
    square = torch.compile(lambda x: (x * x).sum(), mode=mode, dynamic=False)
    for _ in range(3):  # CUDA graph trees warm up, record, then replay.
        if device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # type: ignore[no-untyped-call]
        float(square(torch.ones(8, device=device)).item())
    return time.perf_counter() - start


def reset(device: torch.device) -> None:
    """Forget the previous run's compiled code and CUDA-graph pools; zero the memory peak."""
    torch.compiler.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def summarize(seconds: list[float], images: int, device: torch.device) -> dict[str, Any]:
    steady = statistics.median(seconds[1:])
    return {
        "epoch_seconds": [round(s, 4) for s in seconds],
        "images_per_epoch": images,
        "images_per_second": images / steady,
        "first_epoch_extra_seconds": seconds[0] - steady,
        "peak_memory_mib": peak_mib(device),
    }


def run_library(
    spec: ArchitectureSpec,
    data: DataSplits,
    config: TrainingConfig,
    device: torch.device,
    checkpoint: Any = None,
) -> dict[str, Any]:
    reset(device)
    model = fresh_model(spec)
    batch = data.loader.batch_size
    train, val, _ = make_loaders(data, batch_size=batch, seed=0, device=device)
    result = train_model(
        model, train, val, config=config, device=device, seed=0, checkpoint=checkpoint
    )
    images = len(data.train) // batch * batch  # type: ignore[arg-type]
    return summarize(list(result.epoch_seconds_history), images, device)


def checkpoint_cost(
    spec: ArchitectureSpec, data: DataSplits, config: TrainingConfig, device: torch.device
) -> dict[str, Any]:
    """Seconds per checkpoint save (model, optimiser and loop state, copied off the GPU into a
    trial's artifact store) and a resume's load, timed inside a run of ``config``."""
    with tempfile.TemporaryDirectory() as tmp:
        study = optuna.create_study(storage=f"sqlite:///{tmp}/c.db")
        store = FileSystemArtifactStore(tmp)
        trial = study.ask()
        saving = Timed(TrialCheckpoint(trial, store))
        run = run_library(spec, data, config, device, saving)
        resuming = Timed(TrialCheckpoint(trial, store))  # loads the last epoch, runs none
        run_library(spec, data, config, device, resuming)
        resuming.inner.discard()
    save = statistics.median(saving.saves)
    return {
        "epochs": config.epochs,
        "save_seconds": save,
        "load_seconds": resuming.loads[0],
        "epoch_seconds": run["images_per_epoch"] / run["images_per_second"],
        "overhead_fraction": save * run["images_per_second"] / run["images_per_epoch"],
    }


def reference_step(
    spec: ArchitectureSpec, device: torch.device
) -> tuple[nn.Module, list[nn.Parameter], torch.optim.Optimizer, Callable[..., torch.Tensor]]:
    """The reference loop's pieces: a channels-last model, its fused SGD and the compiled
    bf16 forward + loss (CUDA graphs on CUDA, mode "default" elsewhere)."""
    cuda = device.type == "cuda"
    model = fresh_model(spec).to(device)
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    params = list(model.parameters())
    optimizer = torch.optim.SGD(
        params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4, fused=cuda or None
    )

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return F.cross_entropy(model(x), y)

    mode = "reduce-overhead" if cuda else "default"
    return model, params, optimizer, torch.compile(loss_of, mode=mode, dynamic=False)


def run_reference(
    spec: ArchitectureSpec, data: DataSplits, epochs: int, device: torch.device
) -> dict[str, Any]:
    """The hand-written loop: everything on the device, compiled forward + loss, fused SGD."""
    reset(device)
    cuda = device.type == "cuda"
    model, params, optimizer, compiled = reference_step(spec, device)
    images, labels = data.train.tensors  # type: ignore[attr-defined]
    images = images.to(device).contiguous(memory_format=torch.channels_last)
    labels = labels.to(device)
    batch = data.loader.batch_size
    steps = len(labels) // batch
    generator = torch.Generator(device=device).manual_seed(0)
    seconds: list[float] = []
    model.train()
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(labels), device=device, generator=generator)
        loss_sum = torch.zeros((), device=device)
        for i in range(steps):
            index = order[i * batch : (i + 1) * batch]
            x = images[index].contiguous(memory_format=torch.channels_last)
            if cuda:
                torch.compiler.cudagraph_mark_step_begin()  # type: ignore[no-untyped-call]
            optimizer.zero_grad(set_to_none=True)
            loss = compiled(x, labels[index])
            torch.autograd.backward(loss)
            nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            loss_sum += loss.detach()
            del loss
        float(loss_sum.item())  # One sync per epoch, as in the library's loop.
        seconds.append(time.perf_counter() - start)
    return summarize(seconds, steps * batch, device)


def peak_tflops(device: torch.device) -> tuple[float | None, str]:
    if device.type != "cuda":
        return None, "no peak table for CPUs"
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value, f"{key} dense bf16 tensor-core peak, NVIDIA data sheet"
    return None, f"{name!r} is not in PEAK_BF16_TFLOPS"


def machine(device: torch.device) -> dict[str, Any]:
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")
    out: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "load_average_at_end": list(os.getloadavg()),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out |= {
            "gpu": props.name,
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),  # type: ignore[no-untyped-call]
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    wall = time.perf_counter()
    device = check_device(args.device)
    cuda = device.type == "cuda"
    sizes = SIZES["cuda" if cuda else "cpu"]
    batch, epochs, compiled_epochs = sizes["batch"], sizes["epochs"], sizes["compiled_epochs"]
    spec = nb201_spec(sizes["init_channels"], sizes["cells_per_stage"])
    data = synthetic(sizes["steps"] * batch, sizes["val"], batch)
    fast: dict[str, Any] = {"precision": "bf16", "channels_last": True, "cudnn_benchmark": cuda}
    mode: Literal["reduce-overhead", "default"] = "reduce-overhead" if cuda else "default"
    configs = {
        "fp32_default": TrainingConfig(epochs=epochs),
        "library_bf16_eager": TrainingConfig(epochs=epochs, **fast),
        "library_best": TrainingConfig(epochs=compiled_epochs, compile=mode, **fast),
    }
    compiler_start = warm_compiler(device, mode)
    runs: dict[str, dict[str, Any]] = {}
    for name, config in configs.items():
        runs[name] = run_library(spec, data, config, device)
        print(name, json.dumps(runs[name]), flush=True)
    runs["reference"] = run_reference(spec, data, compiled_epochs, device)
    print("reference", json.dumps(runs["reference"]), flush=True)
    checkpoint = checkpoint_cost(spec, data, configs["library_bf16_eager"], device)
    print("checkpoint", json.dumps(checkpoint), flush=True)

    forward = count_flops(spec)
    peak, peak_source = peak_tflops(device)
    for run in runs.values():
        run["achieved_tflops"] = run["images_per_second"] * 3 * forward / 1e12
        run["fraction_of_peak"] = run["achieved_tflops"] / peak if peak else None
    ips = {name: run["images_per_second"] for name, run in runs.items()}
    best, eager = runs["library_best"], runs["library_bf16_eager"]
    extra = best["first_epoch_extra_seconds"] - eager["first_epoch_extra_seconds"]
    saved = 1 / ips["library_bf16_eager"] - 1 / ips["library_best"]
    images = extra / saved if saved > 0 else None
    result = {
        "command": f"python benchmarks/gpu_training.py --device {args.device}",
        "wall_seconds": time.perf_counter() - wall,
        "device": str(device),
        "settings": {
            "network": f"NAS-Bench-201 {ARCH}",
            **sizes,
            "compile_mode": mode,
            "train_images": sizes["steps"] * batch,
            "optimizer": "sgd lr=0.05 momentum=0.9 nesterov weight_decay=5e-4 grad_clip=5",
        },
        "compiler_start_seconds": compiler_start,
        "forward_flops_per_image": forward,
        "train_flops_per_image": 3 * forward,
        "peak_tflops": peak,
        "peak_source": peak_source,
        "runs": runs,
        "ratios": {
            "library_best_over_fp32_default": ips["library_best"] / ips["fp32_default"],
            "library_best_over_reference": ips["library_best"] / ips["reference"],
            "library_bf16_eager_over_fp32_default": ips["library_bf16_eager"]
            / ips["fp32_default"],
        },
        "break_even": {
            "compile_extra_seconds": extra,
            "seconds_saved_per_image": saved,
            "images": images,
            "cifar10_epochs": images / CIFAR10_TRAIN_IMAGES if images is not None else None,
        },
        "checkpoint": checkpoint
        | {
            # The same save against one CIFAR-10 epoch at the best library speed.
            "overhead_fraction_cifar10_epoch": checkpoint["save_seconds"]
            * ips["library_best"]
            / CIFAR10_TRAIN_IMAGES,
        },
        "machine": machine(device),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / json_name(device)).write_text(json.dumps(result, indent=1) + "\n")
    print(section(result))
    from _results import regenerate

    regenerate(args.out)
    return result


def json_name(device: torch.device) -> str:
    """The results file: ``gpu_training.json`` for a GPU run, ``gpu_training_cpu.json`` else."""
    return "gpu_training.json" if device.type == "cuda" else "gpu_training_cpu.json"


TARGET_IMAGES_PER_SECOND = 25_000
"""Issue #13's target on one H200: training images/s at batch 256 (GPU runs only)."""
TARGET_RATIO_TO_REFERENCE = 0.9
"""Issue #13's target: the library path at least 0.9x the hand-written reference loop."""


def section(result: dict[str, Any]) -> str:
    """This benchmark's section of ``benchmarks/RESULTS.md``, from its JSON."""
    m, s = result["machine"], result["settings"]
    rows = [
        f"## GPU training throughput ({m.get('gpu', result['device'])})",
        "",
        f"`{result['command'].strip()}` → "
        f"`benchmarks/results/{json_name(torch.device(result['device']))}` "
        f"({result['wall_seconds']:.0f} s wall). {s['network']}, C={s['init_channels']}, "
        f"N={s['cells_per_stage']}, batch {s['batch']}, {s['steps']} steps "
        f"({s['train_images']:,} synthetic images) per epoch, {s['optimizer']}; cold "
        "compiles (Inductor caches off; the compiler's one-off start, "
        f"{result['compiler_start_seconds']:.1f} s, measured apart).",
        "",
        "| run | images/s | x fp32 default | first-epoch extra s | peak MiB | TFLOP/s | of peak |",
        "|---|---|---|---|---|---|---|",
    ]
    base = result["runs"]["fp32_default"]["images_per_second"]
    for name, run in result["runs"].items():
        memory = "-" if run["peak_memory_mib"] is None else f"{run['peak_memory_mib']:.0f}"
        frac = "-" if run["fraction_of_peak"] is None else f"{run['fraction_of_peak']:.1%}"
        rows.append(
            f"| {name} | {run['images_per_second']:.0f} | {run['images_per_second'] / base:.2f}"
            f" | {run['first_epoch_extra_seconds']:.1f} | {memory} | "
            f"{run['achieved_tflops']:.3f} | {frac} |"
        )
    even = result["break_even"]
    rows += [
        "",
        f"library_best / reference: {result['ratios']['library_best_over_reference']:.2f}. "
        + (
            f"Compiling pays off after {even['images']:.0f} images "
            f"({even['cifar10_epochs']:.2f} CIFAR-10 epochs)."
            if even["images"] is not None
            else "Compiling did not make an epoch faster here, so it never pays off."
        ),
    ]
    c = result["checkpoint"]
    rows += [
        "",
        f"Per-epoch checkpoint (model, optimiser and loop state into a trial's artifact store): "
        f"a save takes {c['save_seconds'] * 1000:.1f} ms, a resume's load "
        f"{c['load_seconds'] * 1000:.1f} ms: {c['overhead_fraction']:.2%} of this benchmark's "
        f"bf16 eager epoch ({c['epoch_seconds']:.2f} s), "
        f"{c['overhead_fraction_cifar10_epoch']:.2%} of a CIFAR-10 epoch at library_best's "
        "speed (target: at most 5%).",
    ]
    return "\n".join(rows + _reading(result))


def _reading(result: dict[str, Any]) -> list[str]:
    """What the table says against the targets, computed from it."""
    runs, ratios = result["runs"], result["ratios"]
    best, ref = runs["library_best"], runs["reference"]
    ratio = ratios["library_best_over_reference"]
    ips = best["images_per_second"]
    gpu = "gpu" in result["machine"]
    met = "met" if ratio >= TARGET_RATIO_TO_REFERENCE else "**not met**"
    target = f" (target on a GPU >= {TARGET_RATIO_TO_REFERENCE}x: {met})" if gpu else ""
    out = [
        "",
        f"- **Library vs the hand-written {'CUDA-graph' if gpu else 'compiled'} loop: "
        f'{ratio:.2f}x**{target}: `TrainingConfig(precision="bf16", '
        f'channels_last=True, compile="{result["settings"]["compile_mode"]}")` trains '
        f"{ips:,.0f} images/s, the reference loop {ref['images_per_second']:,.0f}.",
    ]
    if gpu:
        miss = 1 - ips / TARGET_IMAGES_PER_SECOND
        out.append(
            f"- **{ips:,.0f} training images/s, "
            f"{ratios['library_best_over_fp32_default']:.1f}x the fp32 default** (target >= "
            f"{TARGET_IMAGES_PER_SECOND:,}: "
            + (f"**missed by {miss:.0%}**" if miss > 0 else "met")
            + f"). Without compile, bf16 and channels-last give "
            f"{ratios['library_bf16_eager_over_fp32_default']:.2f}x fp32."
        )
    even = result["break_even"]
    if even["cifar10_epochs"] is not None:
        out.append(
            f"- **Compile time {best['first_epoch_extra_seconds']:.0f} s** (reference "
            f"{ref['first_epoch_extra_seconds']:.0f} s), paid once per candidate: it pays off "
            f"after {even['images']:,.0f} training images, **{even['cifar10_epochs']:.1f} "
            "CIFAR-10 epochs**. Leave `compile=None` for shorter (proxy-length) trials; the "
            "break-even moves with the network, so rerun this script for a very different one."
        )
    if best["fraction_of_peak"] is not None:
        out.append(
            f"- Peak memory {best['peak_memory_mib']:,.0f} MiB compiled against "
            f"{runs['fp32_default']['peak_memory_mib']:,.0f} MiB for fp32 eager; "
            f"{best['achieved_tflops']:.1f} TFLOP/s (3x forward FLOPs per image), "
            f"{best['fraction_of_peak']:.1%} of the peak, {result['peak_tflops']} TFLOP/s "
            f"({result['peak_source']}): a network this small cannot fill the GPU."
        )
    return out


if __name__ == "__main__":
    main()
