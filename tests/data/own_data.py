""" "Your own data" written by the tests themselves: PNG class folders, CIFAR-format pickles and a
custom ``Dataset`` class, all made from the bundled 8x8 digits (no download)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
import pickle
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Dataset

PER_CLASS = 24
"""Digits per class in the written sets: small enough for a test, large enough to learn."""


def digit_arrays(
    per_class: int = PER_CLASS,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """The first ``per_class`` bundled digits of every class, as 0..255 pixels and labels."""
    path = resources.files("optuna_nas.data").joinpath("digits.npz")
    with path.open("rb") as f, np.load(f) as npz:
        images, labels = npz["images"], npz["labels"].astype(np.int64)
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
    return (images[keep].astype(np.float32) * (255 / 16)).astype(np.uint8), labels[keep]


def write_png_tree(root: Path, per_class: int = PER_CLASS) -> Path:
    """``root/<class name>/<i>.png`` grey-scale 8x8 PNGs; returns ``root``."""
    from PIL import Image

    images, labels = digit_arrays(per_class)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / f"digit_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(folder / f"{i:04d}.png")
    return root


def write_cifar_pickles(root: Path, per_class: int = PER_CLASS) -> Path:
    """The CIFAR-10 python version's six pickles, holding 32x32 RGB digits; returns the folder.

    Each digit is upscaled 4x (nearest) and coloured by its index, so the channels differ.
    """
    images, labels = digit_arrays(per_class)
    big = images.repeat(4, axis=1).repeat(4, axis=2)
    tint = np.linspace(0.6, 1.0, 3)[None, :, None, None]
    rgb = (big[:, None].astype(np.float32) * tint).astype(np.uint8)
    order = np.random.default_rng(0).permutation(len(labels))
    rgb, labels = rgb[order], labels[order]
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    n_test = len(labels) // 6
    chunks = np.array_split(np.arange(n_test, len(labels)), 5)
    files = {"test_batch": np.arange(n_test)} | {
        f"data_batch_{i + 1}": c for i, c in enumerate(chunks)
    }
    for name, index in files.items():
        batch = {
            b"data": rgb[index].reshape(len(index), -1),
            b"labels": labels[index].tolist(),
        }
        with (folder / name).open("wb") as f:
            pickle.dump(batch, f)
    return folder


class DigitsOnTheFly(Dataset[tuple[torch.Tensor, int]]):
    """A user's own Dataset: scales each digit to [-1, 1] when asked; no ``classes``."""

    def __init__(self, images: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64]) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(self.images[index].astype(np.float32) / 127.5 - 1.0)
        return image[None], int(self.labels[index])


def custom_splits(**kwargs: Any) -> dict[str, DigitsOnTheFly]:
    """Train / val / test of :class:`DigitsOnTheFly` (alternating thirds of the digits)."""
    images, labels = digit_arrays()
    parts = {s: np.arange(i, len(labels), 3) for i, s in enumerate(("train", "val", "test"))}
    return {s: DigitsOnTheFly(images[p], labels[p]) for s, p in parts.items()}
