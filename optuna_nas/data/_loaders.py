"""The one place where batches are made: :func:`make_loader` for every evaluator and search.

Two paths give the same kind of object, a re-iterable of ``(images, labels)`` batches already
on the training device (each iteration is one epoch):

- **in memory** (a split that is a ``TensorDataset`` of images and labels, or a ``Subset`` of
  one, with no per-sample transform): batches are sliced from the tensors -- on the device,
  when ``loader.preload`` -- with no per-sample Python and no worker processes. Shuffling
  draws from the loader's generator exactly as a :class:`~torch.utils.data.DataLoader` with
  ``shuffle=True`` and the same generator does, so an in-memory split gives exactly the batches
  a plain ``DataLoader`` over the same tensors gives, at a fraction of the cost;
- **any other split**: a :class:`~torch.utils.data.DataLoader` with the data's
  :class:`~optuna_nas.data.LoaderSettings`, items read through the split's per-sample
  transform with a per-item seed (see :func:`~optuna_nas.data._items.read_item`) and checked as
  they are read; batches are copied to the device from pinned memory without blocking when the
  device is CUDA.

Either way, ``augment`` (a :class:`~optuna_nas.data.BatchTransform`) runs on each training
batch on the device, drawing from its own generator seeded by the loader's seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset
from torch.utils.data import Sampler

from optuna_nas._validation import check_int
from optuna_nas._validation import is_int
from optuna_nas.data._augment import BatchTransform
from optuna_nas.data._items import Transform
from optuna_nas.data._items import read_item
from optuna_nas.data._splits import SPLITS
from optuna_nas.data._splits import DataSplits
from optuna_nas.data._validate import DataError
from optuna_nas.data._validate import check_sample

Batch = tuple[torch.Tensor, torch.Tensor]

_AUGMENT_STREAM = 0x5DEECE66D
"""Offset of the augmentation generator's seed from the loader's, so the two streams differ."""


class Batches:
    """A re-iterable of ``(images, labels)`` batches on one device; one iteration is one epoch.

    Made by :func:`make_loader`; ``len()`` is the number of batches of an epoch.
    """

    def __init__(
        self,
        data: DataSplits,
        split: str,
        *,
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        seed: int,
        device: torch.device,
    ) -> None:
        self.data, self.split, self.device = data, split, device
        self.batch_size = batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.generator = torch.Generator().manual_seed(seed)
        self.augment: BatchTransform | None = data.augment if split == "train" else None
        self._augment_generator = torch.Generator().manual_seed(seed ^ _AUGMENT_STREAM)
        self.in_memory = data.tensors(split) is not None
        self._loader: DataLoader[Any] | None = None
        if not self.in_memory:
            self._loader = _data_loader(self, data.split(split), data.transform(split))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The generators' states between epochs, for a checkpoint (tensors only)."""
        return {
            "generator": self.generator.get_state(),
            "augment": self._augment_generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Continue the epochs from a :meth:`state_dict`: the next epoch draws what it would
        have drawn after the epochs the state was saved at."""
        self.generator.set_state(state["generator"])
        self._augment_generator.set_state(state["augment"])

    def __len__(self) -> int:
        n = len(self.data.split(self.split))  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        batches = self._in_memory() if self.in_memory else self._from_loader()
        for images, labels in batches:
            if self.augment is not None:
                images = self.augment(images, generator=self._augment_generator)
            yield images, labels

    def _in_memory(self) -> Iterator[Batch]:
        images, labels = self.data.resident(self.split, self.device)
        n, b = len(labels), self.batch_size
        stop = n - n % b if self.drop_last else n
        if not self.shuffle:
            for start in range(0, stop, b):
                yield (
                    _to(images[start : start + b], self.device),
                    _to(labels[start : start + b], self.device),
                )
            return
        # As a DataLoader with shuffle=True does: one draw for its worker seed, then the
        # RandomSampler's permutation, and one more (dropped) permutation when the epoch ends.
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        order = torch.randperm(n, generator=self.generator).to(images.device)
        for start in range(0, stop, b):
            index = order[start : start + b]
            yield (
                _to(images.index_select(0, index), self.device),
                _to(labels.index_select(0, index), self.device),
            )
        torch.randperm(n, generator=self.generator)

    def _from_loader(self) -> Iterator[Batch]:
        assert self._loader is not None
        non_blocking = bool(self._loader.pin_memory)
        try:
            for images, labels in self._loader:
                yield (
                    images.to(self.device, non_blocking=non_blocking),
                    labels.to(self.device, non_blocking=non_blocking),
                )
        except DataError as e:  # raised in a worker: keep the first line, drop its traceback
            raise DataError(str(e).split("\n\nOriginal Traceback")[0].strip()) from None


def _to(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    return t if t.device == device else t.to(device)


class _SeededOrder(Sampler[tuple[int, int]]):
    """Yields ``(index, item seed)``: the epoch's order and a seed for each item's transform."""

    def __init__(self, n: int, *, shuffle: bool, generator: torch.Generator) -> None:
        self.n, self.shuffle, self.generator = n, shuffle, generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if not self.shuffle:
            yield from ((i, i) for i in range(self.n))
            return
        epoch = int(torch.empty((), dtype=torch.int64).random_(generator=self.generator))
        order = torch.randperm(self.n, generator=self.generator).tolist()
        yield from ((i, (epoch * 1_000_003 + i) % 2**63) for i in order)


class _CheckedItems(Dataset[Batch]):
    """A split's items through its per-sample transform, each checked as it is read."""

    def __init__(self, data: DataSplits, split: str, transform: Transform | None) -> None:
        self.dataset = data.split(split)
        self.transform = transform
        self.where = f"data {data.name!r}, split {split!r}"
        self.input_shape = data.input_shape
        self.num_classes = data.num_classes

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Batch:
        index, seed = key
        image, label = check_sample(
            read_item(self.dataset, index, self.transform, seed),
            where=f"{self.where}, index {index}",
            input_shape=self.input_shape,
            num_classes=self.num_classes,
        )
        return image, torch.tensor(label, dtype=torch.int64)


def _data_loader(batches: Batches, dataset: Dataset[Any], transform: Transform | None) -> Any:
    settings = batches.data.loader
    items = _CheckedItems(batches.data, batches.split, transform)
    extra: dict[str, Any] = {}
    if settings.num_workers > 0:
        extra["persistent_workers"] = settings.persistent_workers
        if settings.prefetch_factor is not None:
            extra["prefetch_factor"] = settings.prefetch_factor
    return DataLoader(
        items,
        batch_size=batches.batch_size,
        sampler=_SeededOrder(len(items), shuffle=batches.shuffle, generator=batches.generator),
        drop_last=batches.drop_last,
        num_workers=settings.num_workers,
        pin_memory=settings.pin_memory and batches.device.type == "cuda",
        generator=batches.generator,
        **extra,
    )


def make_loader(
    data: DataSplits,
    split: str,
    *,
    batch_size: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    shuffle: bool | None = None,
) -> Batches:
    """Batches of one split of ``data`` on ``device``: the one place loaders are made.

    The training split is reshuffled every epoch (in an order drawn from a generator seeded
    with ``seed``), gets ``data.augment`` and keeps its last, smaller batch unless
    ``data.loader.drop_last``; validation and test are read in order, whole (unless
    ``shuffle``: DARTS, say, draws shuffled validation batches to train alpha).

    Args:
        data: The data.
        split: ``"train"``, ``"val"`` or ``"test"``.
        batch_size: Items per batch; None: ``data.loader.batch_size`` for training and
            ``data.loader.eval_batch_size`` (or ``batch_size``) for the others.
        seed: Seed of the training order, the per-item transforms and ``augment``.
        device: Where the batches are delivered (never chosen automatically).
        shuffle: Reshuffle every epoch; None: for the training split only.
    """
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, but got {split!r}.")
    if batch_size is None:
        batch_size = data.loader.batch_size
        if split != "train" and data.loader.eval_batch_size is not None:
            batch_size = data.loader.eval_batch_size
    batch_size = check_int("batch_size", batch_size, minimum=1)
    train = split == "train"
    return Batches(
        data,
        split,
        batch_size=batch_size,
        shuffle=train if shuffle is None else bool(shuffle),
        drop_last=train and data.loader.drop_last,
        seed=seed,
        device=torch.device(device),
    )


def make_loaders(
    data: DataSplits,
    *,
    batch_size: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[Batches, Batches, Batches | None]:
    """``(train, val, test)`` batches of ``data`` (test None when the data has no test split).

    ``batch_size`` is the training batch size (None: ``data.loader.batch_size``); validation
    and test use ``data.loader.eval_batch_size`` when set, else the same. See
    :func:`make_loader`.
    """
    if batch_size is None:
        batch_size = data.loader.batch_size
    eval_size = data.loader.eval_batch_size or batch_size
    common: dict[str, Any] = {"seed": seed, "device": device}
    return (
        make_loader(data, "train", batch_size=batch_size, **common),
        make_loader(data, "val", batch_size=eval_size, **common),
        make_loader(data, "test", batch_size=eval_size, **common)
        if data.test is not None
        else None,
    )


def sample_batch(
    data: DataSplits,
    split: str,
    *,
    size: int,
    seed: int,
    device: str | torch.device = "cpu",
) -> Batch:
    """``size`` items of ``split`` drawn without replacement by a generator seeded with ``seed``.

    The same images for every candidate, e.g. the one mini-batch of a zero-cost proxy. They are
    not augmented: items go through the evaluation transform and the checks.
    """
    dataset = data.split(split)
    n = len(dataset)  # type: ignore[arg-type]
    if not is_int(size) or not 1 <= size <= n:
        raise ValueError(
            f"`size` must be an int in [1, {n}] (the {split!r} split's items), but got {size=}."
        )
    index = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size]
    pair = data.tensors(split)
    if pair is not None:
        images, labels = pair[0][index], pair[1][index]
    else:
        items = _CheckedItems(data, split, data.eval_transform)
        read = [items[(int(i), int(i))] for i in index]
        images = torch.stack([image for image, _ in read])
        labels = torch.stack([label for _, label in read])
    device = torch.device(device)
    return images.to(device), labels.to(device)
