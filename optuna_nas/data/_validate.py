"""The rules a data set must meet, checked once up front and again for every loaded sample.

In-memory tensor splits are checked whole and vectorised when the data object is made. Any other
split is checked on a seeded sample of its items then, and every item is checked again as a
loader reads it (in the loader's worker), so a bad image deep in a folder still gives the same
one-line error naming the split, the index and the rule -- never a raw torch error, and never a
run of trials failed as "unstable".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from optuna_nas._failures import DataError
from optuna_nas._validation import is_int

__all__ = ["DataError", "check_sample", "check_tensors", "sample_indices"]

_SAMPLE = 32
"""Items checked per split (plus the first and the last) when the split is not in memory."""


def check_sample(
    sample: Any,
    *,
    where: str,
    input_shape: tuple[int, int, int] | None,
    num_classes: int | None,
) -> tuple[torch.Tensor, int]:
    """Check one ``(image, label)`` item as a model will see it; return it as ``(tensor, int)``.

    ``where`` names the item (``"data 'x', split 'train', index 3"``). ``input_shape`` and
    ``num_classes`` are checked when given.
    """
    if not isinstance(sample, (tuple, list)) or len(sample) != 2:
        got = (
            f"a {type(sample).__name__} of {len(sample)} items"
            if isinstance(sample, (tuple, list))
            else f"a {type(sample).__name__}"
        )
        raise DataError(
            f"{where}: an item must be an (image, label) pair, but got {got}; make the "
            "Dataset's __getitem__ return exactly (image, label)."
        )
    image, label = sample
    if not isinstance(image, torch.Tensor):
        raise DataError(
            f"{where}: the image must be a torch.Tensor, but got {type(image).__name__}; end the "
            "split's transform with a tensor conversion (e.g. torchvision's ToTensor(), or "
            "v2.ToImage() + v2.ToDtype(torch.float32, scale=True))."
        )
    if not image.is_floating_point():
        raise DataError(
            f"{where}: the image must be a floating-point tensor, but got {image.dtype}; convert "
            "it to float (e.g. ToTensor(), or v2.ToDtype(torch.float32, scale=True))."
        )
    if image.dim() != 3:
        raise DataError(
            f"{where}: the image must have shape (channels, height, width), but got "
            f"{tuple(image.shape)}."
        )
    if input_shape is not None and tuple(image.shape) != tuple(input_shape):
        raise DataError(
            f"{where}: the image has shape {tuple(image.shape)}, but the data's input_shape is "
            f"{tuple(input_shape)}; resize every image to one shape in the split's transform."
        )
    if not bool(torch.isfinite(image).all()):
        raise DataError(f"{where}: the image holds a non-finite value (NaN or inf).")
    return image, _check_label(label, where=where, num_classes=num_classes)


def _check_label(label: Any, *, where: str, num_classes: int | None) -> int:
    value: Any = label
    if isinstance(label, torch.Tensor):
        if label.numel() != 1:
            raise DataError(
                f"{where}: the label must be one class index, but got a tensor of shape "
                f"{tuple(label.shape)}."
            )
        if label.dtype == torch.bool or label.is_floating_point() or label.is_complex():
            raise DataError(_not_integer(where, label.dtype))
        value = int(label.item())
    elif isinstance(label, np.generic):
        if not np.issubdtype(label.dtype, np.integer):
            raise DataError(_not_integer(where, label.dtype))
        value = int(label)
    elif not is_int(label):
        raise DataError(_not_integer(where, type(label).__name__))
    if value < 0 or (num_classes is not None and value >= num_classes):
        limit = f"0..{num_classes - 1} (num_classes={num_classes})" if num_classes else ">= 0"
        raise DataError(
            f"{where}: label {value} is out of range {limit}; labels must be class indices "
            "0 .. num_classes - 1."
        )
    return int(value)


def _not_integer(where: str, kind: object) -> str:
    return (
        f"{where}: the label must be an integer class index, but got {kind}; convert labels "
        "to int64 (e.g. labels.long()) if they are whole numbers."
    )


def check_tensors(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    where: str,
    input_shape: tuple[int, int, int] | None,
    num_classes: int | None,
) -> None:
    """Check a whole in-memory split at once (vectorised): shapes, dtypes, finiteness, labels."""
    if images.dim() != 4:
        raise DataError(
            f"{where}: the images tensor must have shape (N, channels, height, width), but got "
            f"{tuple(images.shape)}."
        )
    if not images.is_floating_point():
        raise DataError(
            f"{where}: the images must be a floating-point tensor, but got {images.dtype}; "
            "convert them (e.g. images.float() / 255, then normalise)."
        )
    if input_shape is not None and tuple(images.shape[1:]) != tuple(input_shape):
        raise DataError(
            f"{where}: the images have shape {tuple(images.shape[1:])}, but the data's "
            f"input_shape is {tuple(input_shape)}."
        )
    if labels.dim() != 1 or len(labels) != len(images):
        raise DataError(
            f"{where}: the labels must be one index per image, shape ({len(images)},), but got "
            f"{tuple(labels.shape)}."
        )
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise DataError(f"{_not_integer(where, labels.dtype)} (index 0)")
    finite = torch.isfinite(images.flatten(1)).all(dim=1)
    if not bool(finite.all()):
        index = int((~finite).nonzero()[0, 0])
        raise DataError(
            f"{where}, index {index}: the image holds a non-finite value (NaN or inf)."
        )
    upper = num_classes if num_classes is not None else None
    bad = labels < 0 if upper is None else (labels < 0) | (labels >= upper)
    if bool(bad.any()):
        index = int(bad.nonzero()[0, 0])
        _check_label(int(labels[index]), where=f"{where}, index {index}", num_classes=num_classes)


def sample_indices(n: int, *, seed: int = 0) -> list[int]:
    """The items of a split of ``n`` checked up front: first, last and a seeded sample."""
    rng = np.random.default_rng(seed)
    drawn = rng.choice(n, size=min(n, _SAMPLE), replace=False).tolist() if n else []
    return sorted({0, n - 1, *drawn}) if n else []
