"""Forward-time overhead of ``build_model`` against hand-written ``nn.Module`` equivalents.

For three networks (a residual conv chain, a NAS-Bench-201 cell network, a mobile MBConv
network) the spec is written by hand with ``spec_from_layers`` and the same network is written
plainly in torch below, with no builder. Both get the same weights (copied in registration
order, shapes checked), their outputs must match, and then their forwards are timed
interleaved (built, hand, hand, built, ...) so that drift in machine speed hits both alike,
with one torch thread and glibc's malloc pinned (see ``pin_glibc_malloc``). The ratio is
median(built) / median(hand); 1.0 means no overhead.

Run: ``python benchmarks/builder_overhead.py`` (a few minutes on 2 cores). It writes
``benchmarks/results/builder_overhead.json`` and regenerates ``benchmarks/RESULTS.md``
(``section`` renders this benchmark's part).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import ctypes
import ctypes.util
import json
import os
from pathlib import Path
import platform
import statistics
import time
from typing import Any

import torch
from torch import nn

from optuna_nas.nn import build_model
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import spec_from_layers

Layers = list[tuple[str, str, dict[str, Any], list[str]]]

# ----------------------------------------------------------------------------- chain


def chain_spec() -> ArchitectureSpec:
    """A plain conv stack, 32 -> 64 channels, with two residual additions."""
    conv = {"kernel": 3, "activation": "relu"}
    layers: Layers = [
        ("stem", "conv", {**conv, "channels": 32}, ["input"]),
        ("c1", "conv", {**conv, "channels": 32}, ["stem"]),
        ("c2", "conv", {**conv, "channels": 32, "activation": "none"}, ["c1"]),
        ("res1", "add", {}, ["c2", "stem"]),
        ("down", "conv", {**conv, "channels": 64, "stride": 2}, ["res1"]),
        ("c3", "conv", {**conv, "channels": 64}, ["down"]),
        ("c4", "conv", {**conv, "channels": 64, "activation": "none"}, ["c3"]),
        ("res2", "add", {}, ["c4", "down"]),
        ("gap", "global_pool", {}, ["res2"]),
        ("fc", "linear", {"features": 10}, ["gap"]),
    ]
    return spec_from_layers(layers, input_shape=(3, 32, 32), num_outputs=10)


def _cbr(c_in: int, c_out: int, stride: int = 1, act: bool = True) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU() if act else nn.Identity())


class HandChain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.c1, self.c2 = _cbr(3, 32), _cbr(32, 32), _cbr(32, 32, act=False)
        self.down, self.c3, self.c4 = _cbr(32, 64, 2), _cbr(64, 64), _cbr(64, 64, act=False)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        r = self.c2(self.c1(s)) + s
        d = self.down(r)
        r = self.c4(self.c3(d)) + d
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(r, 1), 1))


# ----------------------------------------------------------------------------- NAS-Bench-201

# |nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|
NB201_EDGES = [(1, 0, "conv3"), (2, 0, "none"), (2, 1, "avg"), (3, 0, "skip"), (3, 1, "conv1"),
               (3, 2, "conv3")]  # fmt: skip
NB201_CHANNELS, NB201_CELLS = (16, 32, 64), 3


def _rcb(c: int, k: int, stride: int = 1) -> dict[str, Any]:
    return {"channels": c, "kernel": k, "stride": stride, "order": "act_conv_bn"}


def _nb201_edge(op: str, c: int) -> tuple[str, dict[str, Any]]:
    return {
        "conv3": ("conv", _rcb(c, 3)), "conv1": ("conv", _rcb(c, 1)),
        "avg": ("avg_pool", {"kernel": 3}), "none": ("zero", {}), "skip": ("identity", {}),
    }[op]  # fmt: skip


def nb201_spec() -> ArchitectureSpec:
    """NAS-Bench-201's macro skeleton (Dong & Yang, 2020) with one fixed cell, 3 cells a stage."""
    layers: Layers = [("stem", "conv", {"channels": 16, "kernel": 3, "activation": "none"},
                       ["input"])]  # fmt: skip
    prev = "stem"
    for stage, c in enumerate(NB201_CHANNELS):
        if stage:
            r = f"reduce{stage}"
            layers += [
                (f"{r}/a", "conv", _rcb(c, 3, 2), [prev]),
                (f"{r}/b", "conv", _rcb(c, 3), [f"{r}/a"]),
                (f"{r}/pool", "avg_pool", {"kernel": 2, "stride": 2}, [prev]),
                (f"{r}/proj", "conv", {"channels": c, "kernel": 1, "bn": False,
                                       "activation": "none"}, [f"{r}/pool"]),
                (f"{r}/out", "add", {}, [f"{r}/b", f"{r}/proj"]),
            ]  # fmt: skip
            prev = f"{r}/out"
        for i in range(NB201_CELLS):
            cell, nodes = f"s{stage}/c{i}", [prev]
            for j in (1, 2, 3):
                edges = [(src, op) for dst, src, op in NB201_EDGES if dst == j]
                for src, op in edges:
                    layers.append((f"{cell}/e{j}{src}", *_nb201_edge(op, c), [nodes[src]]))
                layers.append((f"{cell}/n{j}", "add", {}, [f"{cell}/e{j}{s}" for s, _ in edges]))
                nodes.append(f"{cell}/n{j}")
            prev = nodes[3]
    layers += [
        ("lastact", "batchnorm", {"activation": "relu"}, [prev]),
        ("gap", "global_pool", {}, ["lastact"]),
        ("classifier", "linear", {"features": 10}, ["gap"]),
    ]
    return spec_from_layers(layers, input_shape=(3, 32, 32), num_outputs=10)


def _relu_conv_bn(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, bias=False)
    return nn.Sequential(nn.ReLU(), conv, nn.BatchNorm2d(c_out))


class HandCell(nn.Module):
    """The fixed cell, written like NAS-Bench-201's ``InferCell`` without the genotype loop."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.e10 = _relu_conv_bn(c, c, 3)
        self.e21 = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.e31 = _relu_conv_bn(c, c, 1)
        self.e32 = _relu_conv_bn(c, c, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n1 = self.e10(x)
        n2 = x.mul(0.0) + self.e21(n1)
        return x + self.e31(n1) + self.e32(n2)


class HandReduction(nn.Module):
    """NAS-Bench-201's ``ResNetBasicblock`` with stride 2."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.a = _relu_conv_bn(c_in, c_out, 3, 2)
        self.b = _relu_conv_bn(c_out, c_out, 3)
        self.pool = nn.AvgPool2d(2, 2)
        self.proj = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.proj(self.pool(x))


class HandNB201(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16))
        blocks: list[nn.Module] = []
        c_prev = 16
        for stage, c in enumerate(NB201_CHANNELS):
            if stage:
                blocks.append(HandReduction(c_prev, c))
            blocks += [HandCell(c) for _ in range(NB201_CELLS)]
            c_prev = c
        self.cells = nn.Sequential(*blocks)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU())
        self.classifier = nn.Linear(c_prev, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


# ----------------------------------------------------------------------------- mobile

# (out channels, kernel, stride, expand, se, residual)
MOBILE_BLOCKS = [(16, 3, 1, 1, 0.25, True), (24, 3, 2, 4, 0.0, False), (24, 3, 1, 4, 0.0, True),
                 (40, 5, 2, 4, 0.25, False), (40, 5, 1, 4, 0.25, True),
                 (80, 3, 2, 4, 0.25, False), (80, 3, 1, 4, 0.25, True)]  # fmt: skip


def mobile_spec() -> ArchitectureSpec:
    """An EfficientNet-like stack of MBConv blocks with squeeze-excitation and residual adds."""
    stem = {"channels": 16, "kernel": 3, "activation": "silu"}
    layers: Layers = [("stem", "conv", stem, ["input"])]
    prev = "stem"
    for i, (c, k, s, e, se, res) in enumerate(MOBILE_BLOCKS):
        cfg = {"channels": c, "kernel": k, "stride": s, "expand": e, "se": se,
               "activation": "silu"}  # fmt: skip
        layers.append((f"b{i}", "mbconv", cfg, [prev]))
        prev = f"b{i}"
        if res:
            layers.append((f"b{i}/res", "add", {}, [prev, layers[-2][0]]))
            prev = f"b{i}/res"
    layers += [
        ("head", "conv", {"channels": 256, "kernel": 1, "activation": "silu"}, [prev]),
        ("gap", "global_pool", {}, ["head"]),
        ("drop", "dropout", {"p": 0.2}, ["gap"]),
        ("fc", "linear", {"features": 10}, ["drop"]),
    ]
    return spec_from_layers(layers, input_shape=(3, 32, 32), num_outputs=10)


class HandMBConv(nn.Module):
    """MBConv written the usual way: optional parts skipped with ``if`` at build time."""

    def __init__(self, c_in: int, c_out: int, k: int, s: int, e: int, se: float) -> None:
        super().__init__()
        mid = c_in * e
        layers: list[nn.Module] = []
        if e > 1:
            layers += [nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.SiLU()]
        layers += [nn.Conv2d(mid, mid, k, s, k // 2, groups=mid, bias=False),
                   nn.BatchNorm2d(mid), nn.SiLU()]  # fmt: skip
        self.body = nn.Sequential(*layers)
        rd = max(1, int(c_in * se))
        squeeze = [nn.AdaptiveAvgPool2d(1), nn.Conv2d(mid, rd, 1), nn.SiLU()]
        self.se = nn.Sequential(*squeeze, nn.Conv2d(rd, mid, 1), nn.Sigmoid()) if se else None
        self.project = nn.Sequential(nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x)
        if self.se is not None:
            x = x * self.se(x)
        return self.project(x)


class HandMobile(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.SiLU())  # fmt: skip
        c_in = 16
        self.blocks = nn.ModuleList()
        self.residual = [blk[5] for blk in MOBILE_BLOCKS]
        for c, k, s, e, se, _ in MOBILE_BLOCKS:
            self.blocks.append(HandMBConv(c_in, c, k, s, e, se))
            c_in = c
        self.head = nn.Sequential(nn.Conv2d(c_in, 256, 1, bias=False), nn.BatchNorm2d(256),
                                  nn.SiLU())  # fmt: skip
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block, residual in zip(self.blocks, self.residual, strict=True):
            x = block(x) + x if residual else block(x)
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(self.head(x), 1), 1)
        return self.fc(self.drop(x))


# ----------------------------------------------------------------------------- harness

CASES: dict[str, tuple[Callable[[], ArchitectureSpec], Callable[[], nn.Module]]] = {
    "chain": (chain_spec, HandChain),
    "nb201": (nb201_spec, HandNB201),
    "mobile": (mobile_spec, HandMobile),
}


def load_same_weights(built: nn.Module, hand: nn.Module) -> None:
    """Give ``built`` non-trivial batch-norm state, then copy all its state into ``hand``."""
    with torch.no_grad():
        for m in built.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    src, dst = built.state_dict(), hand.state_dict()
    if [v.shape for v in src.values()] != [v.shape for v in dst.values()]:
        raise RuntimeError("built and hand-written models register different tensors")
    hand.load_state_dict(dict(zip(dst, src.values(), strict=True)))


def time_interleaved(
    models: dict[str, nn.Module], x: torch.Tensor, *, warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Per-forward milliseconds of each model, the order alternating every round (ABBA)."""
    names = list(models)
    times: dict[str, list[float]] = {n: [] for n in names}
    with torch.inference_mode():
        for _ in range(warmup):
            for m in models.values():
                m(x)
        for r in range(repeats):
            for n in names if r % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                models[n](x)
                times[n].append((time.perf_counter() - start) * 1e3)
    return times


def run_case(name: str, batch: int, *, warmup: int, repeats: int) -> dict[str, float]:
    """Check outputs agree, time interleaved; ``paired_ratio`` is the median of per-round
    ratios, ``p10_ratio`` / ``min_ratio`` compare 10th percentiles / minima."""
    make_spec, make_hand = CASES[name]
    torch.manual_seed(0)
    built, hand = build_model(make_spec()).eval(), make_hand().eval()
    load_same_weights(built, hand)
    x = torch.randn(batch, *built.spec.input_shape)
    with torch.inference_mode():
        torch.testing.assert_close(built(x), hand(x), rtol=1e-4, atol=1e-4)
    times = time_interleaved({"built": built, "hand": hand}, x, warmup=warmup, repeats=repeats)
    b, h = times["built"], times["hand"]
    p10 = {k: statistics.quantiles(v, n=10)[0] for k, v in times.items()}
    result = {
        "built_ms": statistics.median(b),
        "hand_ms": statistics.median(h),
        "ratio": statistics.median(b) / statistics.median(h),
        "paired_ratio": statistics.median([x / y for x, y in zip(b, h, strict=True)]),
        "p10_ratio": p10["built"] / p10["hand"],
        "min_ratio": min(b) / min(h),
    }
    return {**{k: round(v, 4) for k, v in result.items()}, "repeats": repeats}


def pin_glibc_malloc() -> bool:
    """Keep freed tensor buffers in the heap (a fixed 32 MiB mmap threshold, no trimming).

    By default glibc ``mmap``s big buffers and unmaps them on free, so each forward pays page
    faults that depend on when tensors die (fx frees values at their last use, a hand-written
    forward on return): +-10% either way between identical computations. glibc only.
    """
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    # M_MMAP_THRESHOLD = -3, M_TRIM_THRESHOLD = -1, M_TOP_PAD = -2 (malloc.h)
    options = ((-3, 32 * 2**20), (-1, 2**31 - 1), (-2, 64 * 2**20))
    return all([libc.mallopt(param, value) == 1 for param, value in options])


def machine() -> dict[str, Any]:
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=0, help="0: 500 at batch 1, 150 else")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--glibc-default", action="store_true", help="skip pin_glibc_malloc")
    args = parser.parse_args()
    pinned = False if args.glibc_default else pin_glibc_malloc()
    torch.set_num_threads(args.threads)
    run_case("chain", 1, warmup=50, repeats=2)  # warm the thread pool and kernels once
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for name in CASES:
        rows[name] = {}
        for batch in args.batches:
            repeats = args.repeats or (500 if batch == 1 else 150)
            warmup = max(10, repeats // 5)
            rows[name][f"batch_{batch}"] = run_case(name, batch, warmup=warmup, repeats=repeats)
            print(name, batch, rows[name][f"batch_{batch}"], flush=True)
    result = {
        "rows": rows,
        "machine": machine(),
        "metric": "ratio: median(built) / median(hand); others: see run_case",
        "settings": {"eval_inference_mode": True, "glibc_malloc_pinned": pinned},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "builder_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    print(section(result))
    from _results import regenerate

    regenerate(args.out)


TARGET = 1.05
"""Issue target: a built model's forward at most 1.05x the hand-written one's."""


def section(result: dict[str, Any]) -> str:
    """This benchmark's section of ``benchmarks/RESULTS.md``, from its JSON."""
    pinned = result["settings"]["glibc_malloc_pinned"]
    lines = [
        "## Builder overhead",
        "",
        "`python benchmarks/builder_overhead.py` → `benchmarks/results/builder_overhead.json`.",
        "",
        "Does a model from `build_model(spec)` run as fast as the same network written by "
        "hand? Three networks, each written twice, as a spec and as a plain `nn.Module` "
        "without the builder: **chain** (six 3x3 conv-BN(-ReLU) layers with two residual "
        "additions), **nb201** (NAS-Bench-201's skeleton: 3 stages of 3 cells with reduction "
        "blocks) and **mobile** (seven MBConv blocks, most with squeeze-excitation). Both "
        "get the same weights and must give the same outputs before timing. Forwards run in "
        "eval mode under `torch.inference_mode` on one torch thread, built and hand-written "
        "alternated every round so that drift hits both alike"
        + (
            ", with glibc's malloc pinned (`mallopt`; see [NOTES.md](NOTES.md#builder-overhead))"
            if pinned
            else ""
        )
        + ". **ratio** = median(built ms) / median(hand ms); in brackets the median of "
        "per-round ratios (paired), the ratio of 10th percentiles and the ratio of minima.",
        "",
        "| network | batch | rounds | built / hand ms | ratio (paired, p10, min) |",
        "|---|---|---|---|---|",
    ]
    ratios = {}
    for name, row in result["rows"].items():
        for col, r in row.items():
            ratios[name, col[6:]] = r["ratio"]
            lines.append(
                f"| {name} | {col[6:]} | {r['repeats']} | {r['built_ms']:.3f} / "
                f"{r['hand_ms']:.3f} | {r['ratio']:.3f} ({r['paired_ratio']:.3f}, "
                f"{r['p10_ratio']:.3f}, {r['min_ratio']:.3f}) |"
            )
    worst = max(ratios, key=lambda k: ratios[k])
    over = [f"{n} at batch {b}" for (n, b), x in ratios.items() if x > TARGET]
    lines += [
        "",
        f"Worst ratio {ratios[worst]:.3f} ({worst[0]}, batch {worst[1]}): "
        + (
            f"all within the {TARGET} target."
            if not over
            else f"over the {TARGET} target: {', '.join(over)}."
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
