"""Any ``ImageFolder`` tree (``root/<class>/<image>``) as train / validation / test splits."""

from __future__ import annotations

from collections.abc import Sequence
import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset
from torch.utils.data import TensorDataset

from optuna_nas._validation import is_int
from optuna_nas.data._augment import RandomCropFlip
from optuna_nas.data._splits import DataSplits
from optuna_nas.data._splits import LoaderSettings
from optuna_nas.data._splits import stratified_split
from optuna_nas.data._vision import import_torchvision

_STATS_IMAGES = 1000
"""Training images (a seeded sample) the per-channel mean and standard deviation come from."""


def load_image_folder(
    root: str | os.PathLike[str],
    *,
    image_size: int | tuple[int, int],
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    grayscale: bool = False,
    augment: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    in_memory: bool = False,
    loader: LoaderSettings | None = None,
    name: str | None = None,
) -> DataSplits:
    """Images in class folders, read with torchvision's ``ImageFolder``, as :class:`DataSplits`.

    ``root`` is either one tree ``root/<class>/<image>``, split per class into train /
    validation / test with ``seed`` (:func:`~optuna_nas.data._splits.stratified_split`), or
    holds ready-made ``train/`` and ``val/`` trees (and optionally ``test/``), used as they are.

    Every image is resized to ``image_size`` (bilinear), optionally made single-channel, turned
    into a tensor in [0, 1] and normalised with ``mean`` / ``std`` (default: per channel over up
    to 1,000 training images drawn with ``seed``). With ``augment``, training images get a
    random crop after padding by an eighth of their size (with black) and a horizontal flip.

    Args:
        root: The folder.
        image_size: Height and width the images are resized to (an int: square).
        seed: Seed of the split and of the images the statistics come from.
        val_fraction: Fraction of every class for validation (one tree only).
        test_fraction: Fraction of every class for test (one tree only).
        grayscale: Convert to one channel.
        augment: Random crop and flip of training images.
        mean: Per-channel mean to normalise with (None: measured).
        std: Per-channel standard deviation (None: measured).
        in_memory: Decode every image once into tensors (the fast path: batches sliced on the
            device, augmentation batch-wise); for sets that fit in memory. Otherwise images are
            read per sample by a DataLoader with ``loader``'s workers.
        loader: Batch sizes and DataLoader settings.
        name: Name of the data set (default: the folder's name).

    Raises:
        FileNotFoundError: If ``root`` is not a folder of class folders.
        ImportError: If torchvision is not installed.
    """
    tv = import_torchvision()
    transforms = tv.transforms
    base = Path(root).expanduser()
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or any(not is_int(s) or s < 1 for s in size):
        raise ValueError(
            f"`image_size` must be an int >= 1 or a pair of them, but got {image_size=}."
        )
    if not base.is_dir():
        raise FileNotFoundError(
            f"no image folder at {str(base)!r}: expected {base!s}/<class>/<image> (or "
            "train/ and val/ trees of that form); nothing is downloaded."
        )
    head = [transforms.Resize(size)] + ([transforms.Grayscale(1)] if grayscale else [])
    plain = transforms.Compose([*head, transforms.ToTensor()])
    presplit = (base / "train").is_dir() and (base / "val").is_dir()
    folders = ["train", "val", "test"] if presplit else [""]
    trees = {
        f: _image_folder(tv, base / f, plain) for f in folders if f == "" or (base / f).is_dir()
    }
    if presplit:
        splits: dict[str, Any] = {s: trees[s] for s in ("train", "val", "test") if s in trees}
    else:
        tree = trees[""]
        labels = np.asarray(tree.targets)
        parts = stratified_split(
            labels, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction
        )
        splits = {
            s: Subset(tree, p.tolist())
            for s, p in zip(("train", "val", "test"), parts, strict=True)
        }
    if mean is None or std is None:
        mean, std = _statistics(splits["train"], seed=seed)
    normalize = transforms.Normalize(list(mean), list(std))
    fill = [-m / s for m, s in zip(mean, std, strict=True)]
    pad = max(1, min(size) // 8)
    kind = {"image_size": list(size), "grayscale": grayscale, "mean": list(mean), "std": list(std)}
    common: dict[str, Any] = {
        "name": name or base.resolve().name,
        "loader": loader,
        "source": {
            "loader": "image_folder",
            "root": str(base.resolve()),
            "seed": seed,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
            "augment": augment,
            "in_memory": in_memory,
            **kind,
        },
    }
    if in_memory:
        tensors = {s: _decode(d, normalize) for s, d in splits.items()}
        return DataSplits(
            train=tensors["train"],
            val=tensors["val"],
            test=tensors.get("test"),
            augment=RandomCropFlip(padding=pad, fill=fill) if augment else None,
            **common,
        )
    eval_transform = transforms.Compose([*head, transforms.ToTensor(), normalize])
    train_transform = eval_transform
    if augment:
        train_transform = transforms.Compose(
            [
                *head,
                transforms.RandomCrop(size, padding=pad),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                normalize,
            ]
        )
    raw = {s: _with_transform(d, None) for s, d in splits.items()}
    return DataSplits(
        train=raw["train"],
        val=raw["val"],
        test=raw.get("test"),
        train_transform=train_transform,
        eval_transform=eval_transform,
        **common,
    )


def _image_folder(tv: Any, folder: Path, transform: Any) -> Any:
    try:
        return tv.datasets.ImageFolder(str(folder), transform=transform)
    except (FileNotFoundError, RuntimeError) as e:
        raise FileNotFoundError(
            f"no images in class folders under {str(folder)!r}: {e}; expected "
            f"{folder!s}/<class>/<image>."
        ) from None


def _with_transform(dataset: Any, transform: Any) -> Any:
    """The split with the tree's own transform swapped for ``transform`` (None: raw PIL)."""
    tree: Any = copy.copy(dataset.dataset if isinstance(dataset, Subset) else dataset)
    tree.transform = transform
    return Subset(tree, dataset.indices) if isinstance(dataset, Subset) else tree


def _statistics(train: Any, *, seed: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of up to 1,000 training images (seeded)."""
    n = len(train)
    index = np.random.default_rng(seed).choice(n, size=min(n, _STATS_IMAGES), replace=False)
    images = torch.stack([train[int(i)][0] for i in sorted(index)])
    std = images.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return images.mean(dim=(0, 2, 3)).tolist(), std.tolist()


def _decode(dataset: Any, normalize: Any) -> TensorDataset:
    """Every image of ``dataset`` (already resized tensors) normalised into one tensor."""
    images, labels = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    stacked = normalize(torch.stack(images))
    return TensorDataset(stacked.contiguous(), torch.as_tensor(labels, dtype=torch.int64))
