"""Batch-wise augmentation: random transforms of a whole batch of image tensors at once.

Per-sample transforms (torchvision's) run in Python once per image, in data-loader workers.
A :class:`BatchTransform` runs once per batch, on the device the batch is on, with every random
number drawn from an explicit :class:`torch.Generator`: it keeps in-memory data on the fast path
(no per-sample Python) and makes augmentation reproducible from the loader's seed alone.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
import math

import torch
import torch.nn.functional as F

from optuna_nas._validation import is_int


class BatchTransform(abc.ABC):
    """A random transform of a batch of images ``(N, C, H, W)`` that keeps its shape.

    Subclasses draw their random numbers from ``generator`` (a CPU generator; the draws are
    moved to the batch's device), never from torch's global random state.
    """

    @abc.abstractmethod
    def __call__(self, images: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """Return the transformed batch (same shape, dtype and device as ``images``)."""


class RandomCropFlip(BatchTransform):
    """Random crop after padding, then a random horizontal flip: the standard CIFAR augmentation.

    Each image is padded by ``padding`` pixels on every side with ``fill`` and cropped back to
    its size at a random offset, then mirrored left-right with probability 0.5 when ``flip``
    (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, section 4.2; the
    ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()`` of torchvision's CIFAR recipes).

    Args:
        padding: Pixels of padding on each side; the crop moves by up to this much. 0 disables
            the crop.
        flip: Whether to mirror half of the images.
        fill: Value of the padded pixels, one for all channels or one per channel. For images
            normalised as ``(x - mean) / std``, ``-mean / std`` per channel pads with black, as
            torchvision pads the raw image before normalising.
    """

    def __init__(
        self, *, padding: int = 4, flip: bool = True, fill: float | Sequence[float] = 0.0
    ):
        if not is_int(padding) or padding < 0:
            raise ValueError(f"`padding` must be an int >= 0, but got {padding=}.")
        fills = (fill,) if isinstance(fill, (int, float)) else tuple(fill)
        if not fills or not all(isinstance(f, (int, float)) and math.isfinite(f) for f in fills):
            raise ValueError(
                f"`fill` must be a finite number or a sequence of them, but got {fill=}."
            )
        self.padding = padding
        self.flip = bool(flip)
        self.fill = tuple(float(f) for f in fills)

    def __repr__(self) -> str:
        return f"RandomCropFlip(padding={self.padding}, flip={self.flip}, fill={self.fill})"

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        if images.dim() != 4:
            raise ValueError(
                f"RandomCropFlip takes a batch (N, C, H, W), but got shape {tuple(images.shape)}."
            )
        n, c, h, w = images.shape
        if len(self.fill) not in (1, c):
            raise ValueError(
                f"RandomCropFlip has {len(self.fill)} fill values for images with {c} channels; "
                "give one value or one per channel."
            )
        out = images
        p = self.padding
        if p > 0:
            offsets = torch.randint(0, 2 * p + 1, (2, n), generator=generator)
            padded = F.pad(images, (p, p, p, p))
            if any(f != 0.0 for f in self.fill):  # the four border strips, in place
                fill = torch.tensor(self.fill, dtype=images.dtype, device=images.device)
                fill = fill.view(1, -1, 1, 1)
                padded[..., :p, :] = fill
                padded[..., -p:, :] = fill
                padded[..., :, :p] = fill
                padded[..., :, -p:] = fill
            dy, dx = offsets.to(images.device)
            rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
            cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]
            batch = torch.arange(n, device=images.device)[:, None, None, None]
            chans = torch.arange(c, device=images.device)[None, :, None, None]
            out = padded[batch, chans, rows, cols]
        if self.flip:
            mirror = torch.rand(n, generator=generator) < 0.5
            out = torch.where(mirror.to(images.device)[:, None, None, None], out.flip(3), out)
        return out
