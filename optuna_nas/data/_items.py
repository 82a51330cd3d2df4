"""What the data layer needs to know about a user's ``Dataset``: items, tensors, labels, classes.

A split may be any map-style :class:`torch.utils.data.Dataset` of ``(image, label)`` items:
a :class:`~torch.utils.data.TensorDataset`, a :class:`~torch.utils.data.Subset` (what
:func:`~torch.utils.data.random_split` returns), torchvision's ``ImageFolder`` / ``CIFAR10``,
or a user's own class. These helpers look through ``Subset`` to the data underneath, so a
``random_split`` of in-memory tensors still takes the tensor fast path.
"""

from __future__ import annotations

from collections.abc import Callable
import random
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torch.utils.data import IterableDataset
from torch.utils.data import Subset
from torch.utils.data import TensorDataset

Transform = Callable[[Any], Any]
"""A per-sample transform: takes what the dataset returns as image, returns the image."""


def check_map_style(dataset: Any, *, where: str) -> int:
    """The length of ``dataset``, or a ``TypeError`` naming ``where`` if it is not map-style."""
    if isinstance(dataset, IterableDataset) or not (
        hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")
    ):
        raise TypeError(
            f"{where} must be a map-style torch.utils.data.Dataset (with __getitem__ and "
            f"__len__), but got {type(dataset).__name__}; wrap a stream in a map-style Dataset "
            "or load it into a TensorDataset."
        )
    return len(dataset)


def tensor_pair(dataset: Dataset[Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(images, labels)`` tensors of an in-memory split, or None.

    A ``TensorDataset`` of two tensors gives them; a ``Subset`` of one gives them indexed by the
    subset's indices (a copy, made once).
    """
    if isinstance(dataset, TensorDataset):
        return (dataset.tensors[0], dataset.tensors[1]) if len(dataset.tensors) == 2 else None
    if isinstance(dataset, Subset):
        inner = tensor_pair(dataset.dataset)
        if inner is None:
            return None
        index = torch.as_tensor(list(dataset.indices), dtype=torch.int64)
        return inner[0][index], inner[1][index]
    return None


def dataset_classes(dataset: Any) -> int | None:
    """The number of classes a dataset declares (``classes``, as torchvision's sets do), if any."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    classes = getattr(dataset, "classes", None)
    if isinstance(classes, (list, tuple)) and classes:
        return len(classes)
    return None


def dataset_labels(dataset: Any) -> torch.Tensor | None:
    """Every label of a split without reading its images, where the dataset allows it.

    In-memory tensors give theirs; torchvision's sets expose ``targets``; a ``Subset`` indexes
    its parent's. Otherwise None (the caller reads the items).
    """
    pair = tensor_pair(dataset)
    if pair is not None:
        return pair[1]
    if isinstance(dataset, Subset):
        inner = dataset_labels(dataset.dataset)
        if inner is None:
            return None
        return inner[torch.as_tensor(list(dataset.indices), dtype=torch.int64)]
    targets = getattr(dataset, "targets", None)
    if targets is None:
        return None
    labels = torch.as_tensor(np.asarray(targets))
    return labels if labels.dim() == 1 and len(labels) == len(dataset) else None


def read_item(dataset: Dataset[Any], index: int, transform: Transform | None, seed: int) -> Any:
    """``dataset[index]`` with ``transform`` applied to its image, reproducibly.

    A random per-sample transform (torchvision's) draws from the global random states of torch,
    Python and NumPy. Those are seeded with ``seed`` for this one item and restored afterwards,
    so an item's augmentation depends only on the loader's seed, the epoch and the index: not on
    the number of loader workers, nor on anything else the process draws.
    """
    item = dataset[index]
    if transform is None or not isinstance(item, (tuple, list)) or len(item) != 2:
        return item
    image, label = item
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % 2**32)
            image = transform(image)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return image, label
