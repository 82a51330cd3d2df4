"""Small real data and spaces for the DARTS tests."""

from __future__ import annotations

import random

import torch
from torch.utils.data import TensorDataset

from optuna_nas.data import DataSplits
from optuna_nas.data import load_digits
from optuna_nas.samplers._darts import DartsSearchConfig
from optuna_nas.spaces import CellSpace


def dot_pairs(
    n: int, *, size: int, gap: int, pairs: int, generator: torch.Generator
) -> TensorDataset:
    """Images holding ``pairs`` pairs of dots ``gap`` px apart: all horizontal (class 0) or all
    vertical (class 1); every dot is +1 or -1 at random, on noise of std 0.1.

    Built so that, of the NAS-Bench-201 ops on the one edge of :func:`dot_pair_space` (after
    its linear 3x3 stem), only ``nor_conv_3x3`` solves it (1.00 alone in the benchmark):

    * every dot is at least two pixels from the border and at Chebyshev distance >= 3 from
      every dot of another pair (its own partner is ``gap`` = 4 away), so each 3x3 window
      holds at most one dot and sees it exactly as anywhere else. ``skip_connect`` and
      ``nor_conv_1x1`` compute per-pixel functions of 3x3 windows, which the global average
      pool sums into a function of the dots' signs alone: the same in both classes, chance
      accuracy whatever the weights;
    * ``avg_pool_3x3`` after the linear stem is one linear 5x5 filter before the classifier's
      ReLU. It spans a pair, but a linear filter's response to a pair of random signs is
      ``s1 * a + s2 * b``, which cancels or flips sign with the dots, so no single ReLU unit
      fires for a horizontal pair of every sign pattern. Several units can cover some sign
      patterns, and the 5x5 view also sees dots of other pairs 3-4 px away (whose offsets
      follow the class's orientation), so it is a weaker competitor, not at chance: trained
      alone it reaches about 0.70 in ``benchmarks/darts.py``;
    * ``nor_conv_3x3`` is ReLU -> 3x3 conv on the stem: ReLU units for +dots and -dots give
      ``|dot|`` and the 3x3 conv adds the ones 2 px left and right (or above and below) of
      its centre: a pair detector of every sign pattern, 5x5 receptive field.
    """
    y = torch.randint(0, 2, (n,), generator=generator)
    x = 0.1 * torch.randn(n, 1, size, size, generator=generator)
    rng = random.Random(int(torch.randint(2**31, (1,), generator=generator)))
    lo, hi = 2, size - 3  # dot coordinates in [lo, hi]
    for i in range(n):
        dots: list[tuple[int, int]] = []
        tries = 0
        while len(dots) < 2 * pairs:
            tries += 1
            if tries % 100 == 0:  # the pairs so far leave no room: start the image again
                dots = []
            a, b = rng.randint(lo, hi - gap), rng.randint(lo, hi)
            pair = [(b, a), (b, a + gap)] if int(y[i]) == 0 else [(a, b), (a + gap, b)]
            if all(max(abs(r - q), abs(c - p)) >= 3 for r, c in pair for q, p in dots):
                dots += pair
        for r, c in dots:
            x[i, 0, r, c] += rng.choice((-1.0, 1.0))
    return TensorDataset(x, y)


def dot_pair_data(seed: int = 0, *, n_train: int = 2000, n_val: int = 300) -> DataSplits:
    """The synthetic task of the DARTS benchmark: :func:`dot_pairs`, 12x12, 3 pairs, gap 4."""
    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> TensorDataset:
        return dot_pairs(n, size=12, gap=4, pairs=3, generator=g)

    return DataSplits(
        train=split(n_train),
        val=split(n_val),
        test=split(100),
        input_shape=(1, 12, 12),
        num_classes=2,
        name="dot_pairs",
    )


def dot_pair_space() -> CellSpace:
    """Linear 3x3 stem (8 channels), one cell with one searched edge, BN-ReLU, pool, linear."""
    return CellSpace(
        input_shape=(1, 12, 12),
        num_outputs=2,
        init_channels=8,
        num_stages=1,
        cells_per_stage=1,
        num_nodes=2,
    )


SYNTHETIC_SEARCH = DartsSearchConfig(epochs=30, warmup_epochs=10, weight_lr=0.1)
"""The DARTS search of the synthetic benchmark (chosen on search seeds 100-104).

DARTS's defaults assume ~20,000 weight steps (50 CIFAR-10 epochs); here an epoch is 32 steps,
and at weight lr 0.025 the supernet had not learned a first version of this task (the same
without the 3 px spacing) after 30 epochs (training loss still ln 2, search seed 100), which
leaves alpha to noise. Weight lr 0.1 and a 10-epoch warm-up (PC-DARTS's
third) let it learn; everything else is the default config.
"""


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
