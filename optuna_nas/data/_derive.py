"""Cheaper versions of a data set, for proxy tasks: fewer training images, a lower resolution.

Both work on any :class:`~optuna_nas.data.DataSplits`: in-memory splits are cut or resized
once (and stay on the fast path); any other split gets a ``Subset`` or a resize after its
per-sample transform.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Subset
from torch.utils.data import TensorDataset

from optuna_nas._validation import is_int
from optuna_nas.data._items import Transform
from optuna_nas.data._items import dataset_labels
from optuna_nas.data._splits import DataSplits


def split_labels(data: DataSplits, split: str) -> torch.Tensor:
    """Every label of ``split``: from memory or ``targets`` when there, else by reading items."""
    dataset = data.split(split)
    labels = dataset_labels(dataset)
    if labels is None:  # a Dataset that only gives labels with its images: read them all once
        labels = torch.as_tensor([int(dataset[i][1]) for i in range(len(dataset))])  # type: ignore[arg-type]
    return labels.to(torch.int64)


def subsample_splits(data: DataSplits, *, fraction: float, seed: int) -> DataSplits:
    """Keep ``ceil(fraction * n_c)`` training images of every class ``c`` (at least one).

    The images kept are drawn by :func:`numpy.random.default_rng` seeded with ``seed`` and then
    shuffled together; validation and test splits are untouched, so a proxy is scored on the
    same images as full training. An in-memory training split stays in memory; any other
    becomes a :class:`~torch.utils.data.Subset` of it.
    """
    if isinstance(fraction, bool) or not (
        isinstance(fraction, (int, float)) and 0 < fraction <= 1
    ):
        raise ValueError(f"`0 < fraction <= 1` must hold, but got {fraction=}.")
    if fraction == 1:
        return data
    rng = np.random.default_rng(seed)
    y = split_labels(data, "train").numpy()
    keep = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        keep.append(rng.choice(idx, size=max(1, math.ceil(fraction * len(idx))), replace=False))
    order = rng.permutation(np.concatenate(keep))
    pair = data.tensors("train")
    train: Any
    if pair is not None:
        index = torch.from_numpy(order)
        train = TensorDataset(pair[0][index].contiguous(), pair[1][index].contiguous())
    else:
        train = Subset(data.train, order.tolist())
    return data.replace(train=train, name=f"{data.name}_frac{fraction:g}", source=None)


class ResizeAfter:
    """A per-sample transform followed by a bilinear, antialiased resize of the image tensor."""

    def __init__(self, transform: Transform | None, size: tuple[int, int]) -> None:
        self.transform, self.size = transform, size

    def __call__(self, image: Any) -> Any:
        if self.transform is not None:
            image = self.transform(image)
        if not isinstance(image, torch.Tensor) or image.dim() != 3:
            return image  # the sample check names what is wrong with it
        return _resize(image[None], self.size)[0]

    def __repr__(self) -> str:
        return f"ResizeAfter({self.transform!r}, size={self.size})"


def _resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(
        images, size=size, mode="bilinear", align_corners=False, antialias=True
    ).contiguous()


def resize_splits(data: DataSplits, *, resolution: int | tuple[int, int]) -> DataSplits:
    """Resize every split's images to ``resolution`` (an int for square images).

    Bilinear interpolation with antialiasing (:func:`torch.nn.functional.interpolate`), as
    :func:`~optuna_nas.data.load_digits` resizes. In-memory splits are resized once; the others
    are resized after their per-sample transform, as they are loaded. Images already
    normalised stay roughly zero-mean (interpolation is a weighted mean).
    """
    size = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
    if len(size) != 2 or any(not is_int(s) or s < 1 for s in size):
        raise ValueError(
            f"`resolution` must be an int >= 1 or a pair of them, but got {resolution=}."
        )
    hw = (int(size[0]), int(size[1]))
    if hw == data.input_shape[1:]:
        return data
    changes: dict[str, Any] = {
        "input_shape": (data.input_shape[0], *hw),
        "name": f"{data.name}_{hw[0]}x{hw[1]}",
        "source": None,
    }
    train = data.tensors("train")
    if train is not None:
        changes["train"] = TensorDataset(_resize(train[0], hw), train[1])
    else:
        changes["train_transform"] = ResizeAfter(data.train_transform, hw)
    evals = [s for s in ("val", "test") if s == "val" or data.test is not None]
    pairs = {s: data.tensors(s) for s in evals}
    if all(p is not None for p in pairs.values()):
        for s, p in pairs.items():
            assert p is not None
            changes[s] = TensorDataset(_resize(p[0], hw), p[1])
    else:
        changes["eval_transform"] = ResizeAfter(data.eval_transform, hw)
    return data.replace(**changes)
