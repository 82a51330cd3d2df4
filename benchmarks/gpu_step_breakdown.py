"""Where a compiled training step's time goes: the NAS-Bench-201 network of
``gpu_training.py`` with ``torch.compile(mode="reduce-overhead")`` of forward and loss,
timed with more and more of a real step switched on.

One compile serves every variant (they call the same compiled function on the same shapes):

* ``forward_backward``: compiled forward and loss, backward, on one fixed batch;
* ``+gather``: each step gathers its batch from GPU-resident data by a shuffled index (as the
  data layer's device-resident fast path does);
* ``+sgd``: and a fused SGD step (momentum 0.9, Nesterov, weight decay 5e-4);
* ``+clip``: and gradient-norm clipping at 5 (the library's full step, and ``reference`` in
  ``gpu_training.py``);
* ``compiled_update``: the same step with clipping and SGD compiled together
  (``torch.compile`` of one function calling ``clip_grad_norm_`` and ``step()``, mode
  ``"default"``; a second SGD with the same settings but a tensor learning rate, so a scheduler
  could change it without a recompile, and ``foreach`` instead of ``fused``);
* ``graphed_update``: the same, compiled with mode ``"reduce-overhead"`` (CUDA only).

The last two are the candidate fix for the clipping cost seen on the H200; their compile
time is reported apart (``update_compile_seconds``).

Each variant runs ``--epochs`` epochs of 48 steps at batch 256 (bf16, channels-last) with one
host sync per epoch; images/s is over the median epoch after the first. ``gpu_ms_per_step``
is the CUDA-event time from an epoch's first step to its last, ``wall_ms_per_step`` the
host's. The events span the GPU's idle gaps too, so their agreement says only that no time
is lost before the first or after the last step; whether a variant's extra milliseconds are
the host's (launches, Python) or the GPU's (kernels) this script does not tell apart.

    python benchmarks/gpu_step_breakdown.py                # one CUDA GPU, about 2 minutes
    python benchmarks/gpu_step_breakdown.py --device cpu   # small sizes, compile "default"

Results go to ``benchmarks/results/gpu_step_breakdown.json`` (``_cpu.json`` for the CPU mode);
then ``benchmarks/RESULTS.md`` is regenerated (``section`` renders this benchmark's part).
"""

from __future__ import annotations

import os

os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "0")
os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "0")

import argparse
import json
from pathlib import Path
import statistics
import sys
import time
from typing import Any

import torch
from torch import nn

from optuna_nas.evaluation import check_device

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu_training import SIZES  # noqa: E402
from gpu_training import machine  # noqa: E402
from gpu_training import nb201_spec  # noqa: E402
from gpu_training import reference_step  # noqa: E402
from gpu_training import warm_compiler  # noqa: E402

VARIANTS = ("forward_backward", "+gather", "+sgd", "+clip", "compiled_update", "graphed_update")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    device = check_device(args.device)
    cuda = device.type == "cuda"
    sizes = SIZES["cuda" if cuda else "cpu"]
    batch, steps = sizes["batch"], sizes["steps"]
    mode = "reduce-overhead" if cuda else "default"
    compiler_start = warm_compiler(device, mode)
    spec = nb201_spec(sizes["init_channels"], sizes["cells_per_stage"])
    model, params, optimizer, compiled = reference_step(spec, device)
    model.train()
    tensor_lr = torch.tensor(0.05, device=device)
    compiled_sgd = torch.optim.SGD(
        params, lr=tensor_lr, momentum=0.9, nesterov=True, weight_decay=5e-4, foreach=True
    )

    def update() -> None:
        nn.utils.clip_grad_norm_(params, 5.0)
        compiled_sgd.step()

    updates = {
        "compiled_update": torch.compile(update, mode="default", dynamic=False),
        "graphed_update": torch.compile(update, mode=mode, dynamic=False),
    }
    variants = VARIANTS if cuda else VARIANTS[:-1]
    generator = torch.Generator(device=device).manual_seed(0)
    images = torch.randn(steps * batch, 3, 32, 32, device=device, generator=generator)
    images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (steps * batch,), device=device, generator=generator)
    start = time.perf_counter()
    runs: dict[str, Any] = {}
    for variant in variants:
        level = VARIANTS.index(variant)
        wall: list[float] = []
        gpu: list[float] = []
        for _ in range(args.epochs):
            order = torch.randperm(len(labels), device=device, generator=generator)
            loss_sum = torch.zeros((), device=device)
            if cuda:
                begin = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
                end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
                begin.record()
            tick = time.perf_counter()
            for i in range(steps):
                if level >= 1:
                    index = order[i * batch : (i + 1) * batch]
                    x, y = (
                        images[index].contiguous(memory_format=torch.channels_last),
                        labels[index],
                    )
                else:
                    x, y = images[:batch], labels[:batch]
                if cuda:
                    torch.compiler.cudagraph_mark_step_begin()  # type: ignore[no-untyped-call]
                optimizer.zero_grad(set_to_none=True)
                loss = compiled(x, y)
                torch.autograd.backward(loss)
                if level >= 4:
                    updates[variant]()
                else:
                    if level >= 3:
                        nn.utils.clip_grad_norm_(params, 5.0)
                    if level >= 2:
                        optimizer.step()
                loss_sum += loss.detach()
                del loss
            if cuda:
                end.record()
            float(loss_sum.item())
            wall.append(time.perf_counter() - tick)
            if cuda:
                gpu.append(begin.elapsed_time(end) / 1000)
        steady = statistics.median(wall[1:])
        runs[variant] = {
            "epoch_seconds": [round(s, 4) for s in wall],
            "images_per_second": steps * batch / steady,
            "first_epoch_extra_seconds": wall[0] - steady,
            "wall_ms_per_step": 1000 * steady / steps,
            "gpu_ms_per_step": 1000 * statistics.median(gpu[1:]) / steps if gpu else None,
        }
        print(variant, json.dumps(runs[variant]), flush=True)
    result = {
        "command": f"python benchmarks/gpu_step_breakdown.py --device {args.device}",
        "device": str(device),
        "settings": {**sizes, "compile_mode": mode, "epochs": args.epochs},
        "compiler_start_seconds": compiler_start,
        "compile_and_run_seconds": time.perf_counter() - start,
        "runs": runs,
        "machine": machine(device),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "gpu_step_breakdown" if cuda else "gpu_step_breakdown_cpu"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(section(result))
    from _results import regenerate

    regenerate(args.out)
    return result


def section(result: dict[str, Any]) -> str:
    """The section for ``benchmarks/RESULTS.md``."""
    m = result["machine"]
    rows = [
        f"## Where a compiled step's time goes ({m.get('gpu', result['device'])})",
        "",
        f"`{result['command']}` → `benchmarks/results/gpu_step_breakdown"
        f"{'' if m.get('gpu') else '_cpu'}.json`; torch {m['torch']}, one compile "
        f"(mode {result['settings']['compile_mode']!r}) for all variants.",
        "",
        "| variant | images/s | ms per step | vs previous |",
        "|---|---|---|---|",
    ]
    previous = None
    for name, run in result["runs"].items():
        step = run["wall_ms_per_step"]
        delta = "-" if previous is None else f"{step - previous:+.2f} ms"
        rows.append(f"| {name} | {run['images_per_second']:.0f} | {step:.2f} | {delta} |")
        previous = step
    s, runs = result["settings"], result["runs"]
    rows += [
        "",
        f"Batch {s['batch']}, {s['epochs']} epochs of {s['steps']} steps per variant; images/s "
        "over the median epoch after the first; each row adds one part of a real step to the "
        "row above (the script's docstring lists them).",
    ]
    if {"+gather", "+sgd", "+clip"} <= set(runs):
        clip = runs["+clip"]["wall_ms_per_step"]
        outside = clip - runs["+gather"]["wall_ms_per_step"]
        rows[-1] += (
            f" The eager SGD step and gradient clipping, outside the compiled graph, cost "
            f"{outside:.2f} ms of a {clip:.2f} ms step; without clipping the step runs "
            f"{runs['+sgd']['images_per_second']:,.0f} images/s."
        )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
