"""The in-memory fast path against a plain DataLoader, and what augmentation buys one network.

Speed (one process, the same data, model and batches): images per second of

- a *loading* epoch (every training batch made, nothing trained),
- a *training* epoch of one fixed chain architecture (:func:`optuna_nas.evaluation.train_model`),
- a training epoch *with crop-and-flip augmentation*: batch-wise
  (:class:`~optuna_nas.data.RandomCropFlip`) on the fast path against torchvision's per-sample
  ``RandomCrop`` + ``RandomHorizontalFlip`` in the DataLoader (skipped without torchvision),

each the median of ``--repeats`` epochs after one warm-up epoch. The baseline is a plain
``DataLoader(TensorDataset, batch_size, shuffle=True, generator)`` over the same tensors; both
give exactly the same batches (tested in ``tests/data``), so the ratio is the loading cost alone.

Accuracy: the same architecture trained ``--epochs`` epochs with and without augmentation
(``RandomCropFlip(padding=2, flip=False)``: shifts of up to 2 pixels; digits are not
mirror-symmetric), on seeds 0 and 1, validation and test accuracy.

    python benchmarks/data_loading.py [--smoke]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import statistics
import sys
import time
from typing import Any

from _results import machine
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset

from optuna_nas.data import DataSplits
from optuna_nas.data import RandomCropFlip
from optuna_nas.data import load_digits
from optuna_nas.data import load_mnist_5k
from optuna_nas.data import make_loader
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.evaluation import evaluate_accuracy
from optuna_nas.evaluation import isolated_rng
from optuna_nas.evaluation import train_model
from optuna_nas.nn import build_model
from optuna_nas.spaces import ChainSpace

ROOT = Path(__file__).resolve().parents[1]
BATCH = 64
ARCH = {  # one mid-sized chain network (3 conv layers, a residual skip), fixed for every row
    "depth": 3,
    "activation": "relu",
    "layer1/op": "conv_3x3",
    "layer1/width": 16,
    "layer1/skip": "none",
    "layer2/op": "conv_3x3",
    "layer2/width": 32,
    "layer2/skip": "residual",
    "layer3/op": "sep_conv_3x3",
    "layer3/width": 32,
    "layer3/stride": 2,
    "layer3/skip": "none",
}


class _PerSample(Dataset[Any]):
    """A TensorDataset whose images go through a per-sample transform (the DataLoader way)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Any) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[i]), self.labels[i]


def _model(data: DataSplits, seed: int = 0) -> torch.nn.Module:
    space = ChainSpace(input_shape=data.input_shape, num_outputs=data.num_classes)
    with isolated_rng(seed):
        return build_model(space.decode(_complete(space)))


def _complete(space: ChainSpace) -> dict[str, Any]:
    params: dict[str, Any] = dict(ARCH)
    for name, dist in space.distributions().items():  # layers past the depth: unused
        params.setdefault(name, getattr(dist, "choices", (getattr(dist, "low", 0),))[0])
    return params


def _epoch_rates(
    loaders: tuple[Any, Any], n: int, data: DataSplits | None, repeats: int
) -> tuple[float, float]:
    """Median images/s of an epoch over each loader, their epochs interleaved (so a change of
    load on the machine hits both alike); the first epoch of each is a warm-up. With ``data``,
    every timed epoch trains a fresh copy of the same initial network (the same work each
    time), else the batches are only made."""
    rates: tuple[list[float], list[float]] = ([], [])
    x, y = next(iter(loaders[0]))
    one = [(x, y)]  # train_model scores after each epoch: one batch, the same for both
    for i in range(repeats + 1):
        for loader, found in zip(loaders, rates, strict=True):
            model = _model(data) if data is not None else None
            start = time.perf_counter()
            if model is None:
                for _ in loader:
                    pass
            else:
                train_model(model, loader, one, config=TrainingConfig(epochs=1))
            if i:
                found.append(n / (time.perf_counter() - start))
    return statistics.median(rates[0]), statistics.median(rates[1])


def speed(data: DataSplits, repeats: int) -> list[dict[str, Any]]:
    images, labels = data.train.tensors  # type: ignore[attr-defined]
    n = len(labels)
    plain = DataLoader(
        data.train, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    fast = make_loader(data, "train", batch_size=BATCH, seed=0)
    rows = []
    for what, model_data in (("loading", None), ("training", data)):
        base, ours = _epoch_rates((plain, fast), n, model_data, repeats)
        rows.append({"epoch": what, "dataloader": base, "fast_path": ours, "ratio": ours / base})
    try:
        from optuna_nas.data._vision import import_torchvision

        import_torchvision()
        from torchvision.transforms import v2
    except ImportError:
        return rows
    side = data.input_shape[1]
    per_sample = v2.Compose([v2.RandomCrop(side, padding=2), v2.RandomHorizontalFlip()])
    slow = DataLoader(
        _PerSample(images, labels, per_sample),
        batch_size=BATCH,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    augmented = make_loader(data.replace(augment=RandomCropFlip(padding=2)), "train", seed=0)
    base, ours = _epoch_rates((slow, augmented), n, data, repeats)
    rows.append(
        {
            "epoch": "training + crop/flip",
            "dataloader": base,
            "fast_path": ours,
            "ratio": ours / base,
        }
    )
    return rows


def accuracy(data: DataSplits, epochs: int, seeds: list[int]) -> list[dict[str, Any]]:
    # Digits are not mirror-symmetric: the crop alone (a shift of up to 2 px), padded with the
    # normalised value of a black pixel (the smallest one).
    black = float(data.train.tensors[0].min())  # type: ignore[attr-defined]
    rows = []
    for augment in (None, RandomCropFlip(padding=2, flip=False, fill=black)):
        variant = data.replace(augment=augment)
        for seed in seeds:
            model = _model(variant, seed)
            train = make_loader(variant, "train", batch_size=BATCH, seed=seed)
            val = make_loader(variant, "val")
            result = train_model(model, train, val, config=TrainingConfig(epochs=epochs))
            test = make_loader(variant, "test")
            rows.append(
                {
                    "augment": "shifts of up to 2 px" if augment else "none",
                    "seed": seed,
                    "val_accuracy": result.final_val_accuracy,
                    "test_accuracy": evaluate_accuracy(model, test, device="cpu"),
                }
            )
    return rows


def section(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "## Data loading: the in-memory fast path",
        "",
        f"`python benchmarks/data_loading.py` (batch {BATCH}), "
        f"{m['processor'] or m['platform']}, torch "
        f"{m['torch']}, {m['threads']} torch thread(s). Images/s, the median of "
        f"{result['repeats']} epochs after a warm-up, the two loaders' epochs interleaved; the "
        "model is one chain network (3 convolutions, 32 channels, a residual skip); the "
        "DataLoader is a plain "
        "`DataLoader(TensorDataset, shuffle=True, generator)` over the same tensors (the same "
        "batches); with augmentation it applies torchvision's per-sample `RandomCrop` + "
        "`RandomHorizontalFlip`, the fast path `RandomCropFlip` batch-wise.",
        "",
        "| data (training images) | epoch | DataLoader img/s | fast path img/s | ratio |",
        "|---|---|---|---|---|",
    ]
    for r in result["speed"]:
        lines.append(
            f"| {r['data']} ({r['train_images']}) | {r['epoch']} | {r['dataloader']:,.0f} | "
            f"{r['fast_path']:,.0f} | "
            f"{r['ratio']:.2f}x |"
        )
    lines += [
        "",
        f"Accuracy of the same chain network on {result['data']} after {result['epochs']} "
        "epochs (SGD, cosine), "
        "with and without random shifts of up to 2 pixels (`RandomCropFlip(padding=2, "
        "flip=False)`, padded with black; digits are not mirror-symmetric):",
        "",
        "| augmentation | seed | val accuracy | test accuracy |",
        "|---|---|---|---|",
    ]
    for r in result["accuracy"]:
        lines.append(
            f"| {r['augment']} | {r['seed']} | {r['val_accuracy']:.4f} | "
            f"{r['test_accuracy']:.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="digits, 1 repeat, 1 epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    data = load_digits() if args.smoke else load_mnist_5k()
    repeats, epochs = (1, 1) if args.smoke else (args.repeats, args.epochs)
    sets = [data] if args.smoke else [data, load_digits()]
    result: dict[str, Any] = {
        "data": data.name,
        "train_images": data.size("train"),
        "repeats": repeats,
        "epochs": epochs,
        "speed": [
            {"data": d.name, "train_images": d.size("train"), **row}
            for d in sets
            for row in speed(d, repeats)
        ],
        "accuracy": accuracy(data, epochs, [0] if args.smoke else [0, 1]),
        "machine": machine(),
    }
    if not args.smoke:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "data_loading.json").write_text(json.dumps(result, indent=1) + "\n")
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from _results import regenerate

        regenerate(args.out)
    print(section(result))
    return result


if __name__ == "__main__":
    main()
