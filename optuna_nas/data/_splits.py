"""The data object every evaluator takes, and the seeded splits of the bundled data sets.

:class:`DataSplits` holds any map-style datasets with their transforms and loader settings.
Every bundled data set goes through :func:`build_splits`, so they all share one splitting,
normalisation and resizing rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torch.utils.data import TensorDataset

from optuna_nas._validation import check_int
from optuna_nas._validation import check_optional_int
from optuna_nas._validation import is_int
from optuna_nas.data._augment import BatchTransform
from optuna_nas.data._items import Transform
from optuna_nas.data._items import check_map_style
from optuna_nas.data._items import dataset_classes
from optuna_nas.data._items import dataset_labels
from optuna_nas.data._items import read_item
from optuna_nas.data._items import tensor_pair
from optuna_nas.data._validate import DataError
from optuna_nas.data._validate import check_sample
from optuna_nas.data._validate import check_tensors
from optuna_nas.data._validate import sample_indices

SPLITS = ("train", "val", "test")
"""The split names, in the order :func:`~optuna_nas.data.make_loaders` returns their loaders."""


@dataclass(frozen=True, kw_only=True)
class LoaderSettings:
    """How batches are loaded, for every evaluator that uses the data.

    Attributes:
        batch_size: Training batch size of evaluators not given their own ``batch_size``.
        eval_batch_size: Batch size of validation and test passes (None: ``batch_size``); no
            gradients are kept there, so it may be larger.
        num_workers: Worker processes of the :class:`~torch.utils.data.DataLoader` of a split
            that is not in memory (in-memory tensors need none).
        pin_memory: Load batches into pinned host memory and copy them to a CUDA device without
            blocking (only where the device is CUDA; elsewhere pinning has no use).
        persistent_workers: Keep the worker processes between epochs (needs ``num_workers``).
        prefetch_factor: Batches each worker loads ahead (None: the DataLoader's default).
        preload: Copy in-memory tensor splits to the training device once and slice batches
            there (the fast path); False keeps them in host memory and copies each batch.
        drop_last: Drop the last, smaller training batch, so every step has the same shape.
    """

    batch_size: int = 64
    eval_batch_size: int | None = None
    num_workers: int = 0
    pin_memory: bool = True
    persistent_workers: bool = False
    prefetch_factor: int | None = None
    preload: bool = True
    drop_last: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "eval_batch_size", "prefetch_factor"):
            value = getattr(self, name)
            if value is None and name != "batch_size":
                continue
            if not is_int(value) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1, but got {name}={value!r}.")
        workers = self.num_workers
        if not is_int(workers) or workers < 0:
            raise ValueError(
                f"`num_workers` must be an int >= 0, but got num_workers={workers!r}."
            )
        if workers == 0 and (self.persistent_workers or self.prefetch_factor is not None):
            raise ValueError(
                "`persistent_workers` and `prefetch_factor` need worker processes, but got "
                f"num_workers=0 ({self.persistent_workers=}, {self.prefetch_factor=}); "
                "set num_workers >= 1 or leave them at their defaults."
            )


class DataSplits:
    """A labelled image data set in train, validation and (optionally) test splits.

    Every evaluator, the DARTS search and export take this one object. A split is any
    map-style :class:`~torch.utils.data.Dataset` of ``(image, label)`` items: a
    :class:`~torch.utils.data.TensorDataset`, a :class:`~torch.utils.data.Subset` (e.g. from
    :func:`~torch.utils.data.random_split`), torchvision's ``ImageFolder`` or ``CIFAR10``, or
    your own class. Items must become float tensors shaped ``input_shape`` (after the split's
    transform) with integer labels ``0 .. num_classes - 1``.

    In-memory splits (a ``TensorDataset`` of images and labels, or a ``Subset`` of one, with
    no per-sample transform) take the fast path: batches are sliced from the tensors, on the
    training device when ``loader.preload``, with no per-sample Python; ``augment`` keeps them
    there. Any other split goes through a :class:`~torch.utils.data.DataLoader` with the
    ``loader`` settings. Loaders are made in one place, :func:`~optuna_nas.data.make_loader`.

    The data is checked when this object is made, before any training: in-memory splits whole,
    others on a seeded sample of items (and every item again as it is loaded). A broken rule
    raises one :class:`~optuna_nas.data.DataError` (a ``ValueError``) naming the split, the
    index and the rule.

    Args:
        train: Training items.
        val: Validation items: the split a search scores architectures on.
        test: Held-out items, for the final architecture only (optional).
        input_shape: ``(channels, height, width)`` of one image; inferred from the first
            training item when None, checked against every split otherwise.
        num_classes: Number of classes; when None, taken from the training set's ``classes``
            (torchvision's sets), else from in-memory labels (largest + 1), else from
            ``targets``; a set with none of these must be given it.
        name: Short name of the data set, for reports and fingerprints.
        train_transform: Per-sample transform of training images (augmentation), e.g. a
            torchvision ``Compose``; runs in the loader's workers.
        eval_transform: Per-sample transform of validation and test images.
        augment: A :class:`~optuna_nas.data.BatchTransform` applied to every training batch on
            the training device, e.g. ``RandomCropFlip()``: augmentation that keeps the fast
            path.
        loader: Batch sizes and DataLoader settings (:class:`LoaderSettings`).
        source: How to load this data again in another process, as JSON (set by the bundled
            and torchvision loaders; stored with a study so ``export --retrain`` finds it).
    """

    def __init__(
        self,
        *,
        train: Dataset[Any],
        val: Dataset[Any],
        test: Dataset[Any] | None = None,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        name: str = "data",
        train_transform: Transform | None = None,
        eval_transform: Transform | None = None,
        augment: BatchTransform | None = None,
        loader: LoaderSettings | None = None,
        source: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"`name` must be a non-empty str, but got {name=}.")
        for arg, value in (
            ("train_transform", train_transform),
            ("eval_transform", eval_transform),
        ):
            if value is not None and not callable(value):
                raise TypeError(f"`{arg}` must be callable or None, but got {value!r}.")
        if augment is not None and not isinstance(augment, BatchTransform):
            raise TypeError(
                f"`augment` must be a BatchTransform (e.g. RandomCropFlip()) or None, but got "
                f"{augment!r}; per-sample transforms go in `train_transform`."
            )
        if loader is not None and not isinstance(loader, LoaderSettings):
            raise TypeError(f"`loader` must be a LoaderSettings or None, but got {loader!r}.")
        self.train, self.val, self.test = train, val, test
        self.name = name
        self.train_transform, self.eval_transform = train_transform, eval_transform
        self.augment = augment
        self.loader = loader if loader is not None else LoaderSettings()
        self.source = dict(source) if source is not None else None
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor] | None] = {}
        self._resident: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        sizes = {s: check_map_style(d, where=f"`{s}`") for s, d in self._splits().items()}
        for split, size in sizes.items():
            if size == 0:
                raise DataError(
                    f"data {name!r}, split {split!r}: the split is empty; every split needs at "
                    "least one item."
                )
        self.input_shape = self._input_shape(input_shape)
        self.num_classes = self._num_classes(num_classes)
        for split in self._splits():
            self._check(split)

    # ------------------------------------------------------------------ access

    def _splits(self) -> dict[str, Dataset[Any]]:
        found = {"train": self.train, "val": self.val}
        if self.test is not None:
            found["test"] = self.test
        return found

    def split(self, name: str) -> Dataset[Any]:
        """The dataset of split ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in SPLITS:
            raise ValueError(f"`split` must be one of {SPLITS}, but got {name!r}.")
        dataset = self._splits().get(name)
        if dataset is None:
            raise ValueError(
                f"data {self.name!r} has no {name!r} split; pass `test=` to have one."
            )
        return dataset

    def size(self, split: str) -> int:
        """The number of items of split ``name``."""
        return len(self.split(split))  # type: ignore[arg-type]

    def transform(self, split: str) -> Transform | None:
        """The per-sample transform of ``split``."""
        return self.train_transform if split == "train" else self.eval_transform

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(images, labels)`` of an in-memory split without a per-sample transform, else None.

        These splits take the fast path (batches sliced from the tensors).
        """
        if split not in self._tensors:
            dataset = self.split(split)
            self._tensors[split] = None if self.transform(split) else tensor_pair(dataset)
        return self._tensors[split]

    def resident(self, split: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The fast-path tensors of ``split`` on ``device``, copied there once and kept."""
        pair = self.tensors(split)
        if pair is None:
            raise ValueError(f"split {split!r} of data {self.name!r} is not in memory.")
        if not self.loader.preload or device.type == "cpu":
            return pair
        key = (split, str(device))
        if key not in self._resident:
            self._resident[key] = (pair[0].to(device), pair[1].to(device))
        return self._resident[key]

    def replace(self, **changes: Any) -> DataSplits:
        """A copy with some constructor arguments changed (checked again)."""
        args: dict[str, Any] = {
            "train": self.train,
            "val": self.val,
            "test": self.test,
            "input_shape": self.input_shape,
            "num_classes": self.num_classes,
            "name": self.name,
            "train_transform": self.train_transform,
            "eval_transform": self.eval_transform,
            "augment": self.augment,
            "loader": self.loader,
            "source": self.source,
        }
        unknown = set(changes) - set(args)
        if unknown:
            raise TypeError(f"DataSplits has no argument(s) {sorted(unknown)}.")
        return DataSplits(**{**args, **changes})

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={self.size(s)}" for s in self._splits())
        return (
            f"DataSplits(name={self.name!r}, {sizes}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes})"
        )

    # ------------------------------------------------------------------ inference, checks

    def _where(self, split: str) -> str:
        return f"data {self.name!r}, split {split!r}"

    def _input_shape(self, given: Sequence[int] | None) -> tuple[int, int, int]:
        if given is not None:
            shape = tuple(given)
            if len(shape) != 3 or any(not is_int(d) or d < 1 for d in shape):
                raise ValueError(
                    "`input_shape` must be three positive ints (channels, height, width), "
                    f"but got input_shape={given!r}."
                )
            return (int(shape[0]), int(shape[1]), int(shape[2]))
        pair = self.tensors("train")
        if pair is not None:
            found = tuple(pair[0].shape[1:])
        else:
            item = read_item(self.train, 0, self.train_transform, seed=0)
            image, _ = check_sample(
                item, where=f"{self._where('train')}, index 0", input_shape=None, num_classes=None
            )
            found = tuple(image.shape)
        if len(found) != 3:
            raise DataError(
                f"{self._where('train')}: images must have shape (channels, height, width), "
                f"but got {found}."
            )
        return (int(found[0]), int(found[1]), int(found[2]))

    def _num_classes(self, given: int | None) -> int:
        if given is None:
            given = dataset_classes(self.train)
        if given is None:
            labels = [self.tensors(s) for s in self._splits()]
            if all(p is not None for p in labels):
                given = max(int(p[1].max()) for p in labels if p is not None) + 1
        if given is None:
            targets = dataset_labels(self.train)
            if targets is not None and not targets.is_floating_point():
                given = int(targets.max()) + 1
        if given is None:
            raise ValueError(
                f"data {self.name!r}: cannot infer num_classes from a "
                f"{type(self.train).__name__} (it has no `classes` or `targets`); pass "
                "num_classes=."
            )
        return check_int("num_classes", given, minimum=2)

    def _check(self, split: str) -> None:
        where = self._where(split)
        pair = self.tensors(split)
        if pair is not None:
            check_tensors(
                *pair, where=where, input_shape=self.input_shape, num_classes=self.num_classes
            )
            return
        dataset = self.split(split)
        for index in sample_indices(self.size(split)):
            check_sample(
                read_item(dataset, index, self.transform(split), seed=index),
                where=f"{where}, index {index}",
                input_shape=self.input_shape,
                num_classes=self.num_classes,
            )


def build_splits(
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.uint8],
    *,
    name: str,
    num_classes: int,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    resolution: int | None,
) -> DataSplits:
    """Split, optionally resize, and normalise a bundled grey-scale image set.

    Args:
        images: ``(N, H, W)`` integer pixel values.
        labels: ``(N,)`` class indices in ``0 .. num_classes - 1``.
        name: Data set name; ``_{r}x{r}`` is appended when resized.
        num_classes: Number of classes.
        seed: Seed of the split (see :func:`stratified_split`).
        val_fraction: Fraction of every class that goes to the validation split.
        test_fraction: Fraction of every class that goes to the test split.
        resolution: If given, images are resized to ``resolution x resolution`` with bilinear
            interpolation (:func:`torch.nn.functional.interpolate`, ``antialias=True``).

    Returns:
        The splits, normalised with the mean and standard deviation of the training pixels
        (after resizing), so no statistic leaks from validation or test data. Their
        ``source`` loads them again: the bundled loader ``name`` with these arguments.
    """
    source = {
        "loader": name,
        "seed": seed,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "resolution": resolution,
    }
    _check_split_args(
        seed=seed, val_fraction=val_fraction, test_fraction=test_fraction, resolution=resolution
    )
    train_idx, val_idx, test_idx = stratified_split(
        labels, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction
    )
    x = torch.from_numpy(images.astype(np.float32)).unsqueeze(1)
    if resolution is not None and (resolution, resolution) != tuple(x.shape[2:]):
        x = F.interpolate(
            x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True
        )
        name = f"{name}_{resolution}x{resolution}"
    y = torch.from_numpy(labels.astype(np.int64))
    train_x = x[torch.from_numpy(train_idx)]
    mean = train_x.mean()
    std = train_x.std()
    x = (x - mean) / std

    def subset(idx: npt.NDArray[np.int64]) -> TensorDataset:
        t = torch.from_numpy(idx)
        return TensorDataset(x[t].contiguous(), y[t].contiguous())

    channels, height, width = x.shape[1:]
    return DataSplits(
        train=subset(train_idx),
        val=subset(val_idx),
        test=subset(test_idx),
        input_shape=(int(channels), int(height), int(width)),
        num_classes=num_classes,
        name=name,
        source=source,
    )


def stratified_split(
    labels: npt.NDArray[np.integer],
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Split sample indices into train, validation and test, class by class.

    Each class of ``n`` samples gives ``round(val_fraction * n)`` samples to validation,
    ``round(test_fraction * n)`` to test and the rest to train, chosen by a
    :func:`numpy.random.default_rng` seeded with ``seed``; each split is then shuffled by the
    same generator, so its order mixes the classes. The result depends only on the labels, the
    seed and the fractions (for a given NumPy version), not on the process or hash seed.
    """
    rng = np.random.default_rng(seed)
    parts: tuple[list[npt.NDArray[np.int64]], ...] = ([], [], [])
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label).astype(np.int64))
        n_val = round(val_fraction * len(idx))
        n_test = round(test_fraction * len(idx))
        parts[1].append(idx[:n_val])
        parts[2].append(idx[n_val : n_val + n_test])
        parts[0].append(idx[n_val + n_test :])
    train, val, test = (rng.permutation(np.concatenate(p)) for p in parts)
    for split_name, split, arg in (
        ("training", train, f"{val_fraction=}, {test_fraction=}"),
        ("validation", val, f"{val_fraction=}"),
        ("test", test, f"{test_fraction=}"),
    ):
        if len(split) == 0:
            raise ValueError(
                f"The {split_name} split of {len(labels)} samples would be empty with ({arg}); "
                "choose fractions that leave at least one sample of some class in every split."
            )
    return train, val, test


def _check_split_args(
    *, seed: int, val_fraction: float, test_fraction: float, resolution: int | None
) -> None:
    if seed < 0:
        raise ValueError(f"`seed >= 0` must hold, but got {seed=}.")
    if not 0 < val_fraction < 1:
        raise ValueError(f"`0 < val_fraction < 1` must hold, but got {val_fraction=}.")
    if not 0 < test_fraction < 1:
        raise ValueError(f"`0 < test_fraction < 1` must hold, but got {test_fraction=}.")
    if not val_fraction + test_fraction < 1:
        raise ValueError(
            "`val_fraction + test_fraction < 1` must hold, "
            f"but got ({val_fraction=}, {test_fraction=})."
        )
    check_optional_int("resolution", resolution, minimum=1)
