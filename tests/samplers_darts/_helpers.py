"""Small real data and spaces for the DARTS tests."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from optuna_nas.data import DataSplits
from optuna_nas.data import load_digits
from optuna_nas.samplers._darts import DartsSearchConfig
from optuna_nas.spaces import CellSpace


def dot_pairs(n: int, *, size: int, gap: int, generator: torch.Generator) -> TensorDataset:
    """Images holding two bright dots ``gap`` apart: horizontal pairs are class 0, vertical 1.

    Every dot is at least two pixels from the border, so a single dot looks the same to any
    3x3 feature wherever it is: the class shows only in how the two dots relate, ``gap`` = 4
    pixels apart. A stem 3x3 conv followed by skip / 1x1 conv sees 3x3 windows only, and
    average pooling after a linear stem is one linear 5x5 filter; the task needs two stacked
    nonlinear 3x3 convolutions (the stem, then ``nor_conv_3x3``: a 5x5 receptive field).
    """
    y = torch.randint(0, 2, (n,), generator=generator)
    x = 0.1 * torch.randn(n, 1, size, size, generator=generator)
    for i in range(n):
        a = int(torch.randint(2, size - 2 - gap, (1,), generator=generator))
        b = int(torch.randint(2, size - 2, (1,), generator=generator))
        r, c, dr, dc = (b, a, 0, gap) if int(y[i]) == 0 else (a, b, gap, 0)
        x[i, 0, r, c] += 1.0
        x[i, 0, r + dr, c + dc] += 1.0
    return TensorDataset(x, y)


def dot_pair_data(seed: int = 0, size: int = 12, gap: int = 4) -> DataSplits:
    g = torch.Generator().manual_seed(seed)
    return DataSplits(
        train=dot_pairs(600, size=size, gap=gap, generator=g),
        val=dot_pairs(300, size=size, gap=gap, generator=g),
        test=dot_pairs(100, size=size, gap=gap, generator=g),
        input_shape=(1, size, size),
        num_classes=2,
        name="dot_pairs",
    )


def tiny_digits() -> DataSplits:
    """A slice of the bundled digits: enough for a search that takes a fraction of a second."""
    d = load_digits(seed=0)

    def head(split: TensorDataset, n: int) -> TensorDataset:
        x, y = split.tensors
        return TensorDataset(x[:n], y[:n])

    return DataSplits(
        train=head(d.train, 128),
        val=head(d.val, 64),
        test=head(d.test, 64),
        input_shape=d.input_shape,
        num_classes=d.num_classes,
        name="digits_tiny",
    )


def tiny_space() -> CellSpace:
    return CellSpace(
        input_shape=(1, 8, 8),
        num_outputs=10,
        init_channels=4,
        num_stages=1,
        cells_per_stage=1,
        num_nodes=3,
    )


TINY_CONFIG = DartsSearchConfig(epochs=2, batch_size=64, relaxation="softmax")
