"""Seeded stratified train/validation/test splits of a labelled image set, and their loaders.

Every bundled data set goes through :func:`build_splits`, so they all share one splitting,
normalisation and resizing rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data import TensorDataset


@dataclass(frozen=True)
class DataSplits:
    """A labelled image data set split into train, validation and test sets.

    Attributes:
        train: Training images and labels.
        val: Validation images and labels: the split a search scores architectures on.
        test: Held-out images and labels: look at them once, for the final architecture.
        input_shape: ``(channels, height, width)`` of one image, the shape an architecture
            spec is built for.
        num_classes: Number of classes; labels are ``0 .. num_classes - 1``.
        name: Short name of the data set, for reports.

    Each split is a :class:`~torch.utils.data.TensorDataset` of float32 images shaped
    ``(N, *input_shape)`` and int64 labels shaped ``(N,)``.
    """

    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    input_shape: tuple[int, int, int]
    num_classes: int
    name: str

    def __post_init__(self) -> None:
        if len(self.input_shape) != 3 or any(d < 1 for d in self.input_shape):
            raise ValueError(
                "`input_shape` must be three positive ints (channels, height, width), "
                f"but got input_shape={self.input_shape!r}."
            )
        if self.num_classes < 2:
            raise ValueError(
                f"`num_classes >= 2` must hold, but got num_classes={self.num_classes}."
            )
        for split_name, split in (("train", self.train), ("val", self.val), ("test", self.test)):
            if len(split.tensors) != 2:
                raise ValueError(
                    f"`{split_name}` must hold exactly two tensors (images, labels), "
                    f"but got {len(split.tensors)}."
                )
            images, _ = split.tensors
            if tuple(images.shape[1:]) != self.input_shape:
                raise ValueError(
                    f"`{split_name}` holds images of shape {tuple(images.shape[1:])}, "
                    f"but input_shape={self.input_shape}."
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
    """Split, optionally resize, and normalise a grey-scale image set.

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
        (after resizing), so no statistic leaks from validation or test data.
    """
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
    if resolution is not None and (isinstance(resolution, bool) or resolution < 1):
        raise ValueError(f"`resolution` must be None or an int >= 1, but got {resolution=}.")


def make_loaders(
    splits: DataSplits, *, batch_size: int, seed: int, num_workers: int = 0
) -> tuple[
    DataLoader[tuple[torch.Tensor, ...]],
    DataLoader[tuple[torch.Tensor, ...]],
    DataLoader[tuple[torch.Tensor, ...]],
]:
    """Make train, validation and test loaders over ``splits``.

    The train loader reshuffles every epoch, in an order drawn from a
    :class:`torch.Generator` seeded with ``seed`` (also the base seed of its worker processes),
    and keeps the last, smaller batch. The validation and test loaders are not shuffled.

    Args:
        splits: The data, e.g. from :func:`~optuna_nas.data.load_digits`.
        batch_size: Samples per batch, for all three loaders.
        seed: Seed of the training order.
        num_workers: Worker processes per loader, as in :class:`~torch.utils.data.DataLoader`.

    Returns:
        ``(train_loader, val_loader, test_loader)``.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size >= 1` must hold, but got {batch_size=}.")
    if num_workers < 0:
        raise ValueError(f"`num_workers >= 0` must hold, but got {num_workers=}.")
    generator = torch.Generator().manual_seed(seed)
    train = DataLoader(
        splits.train,
        batch_size=batch_size,
        shuffle=True,
        generator=generator,
        num_workers=num_workers,
    )
    val = DataLoader(splits.val, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    test = DataLoader(splits.test, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    return train, val, test
