"""Bundled real data sets and their loaders.

Every loader returns :class:`DataSplits`: seeded, stratified train/validation/test splits,
normalised with training statistics only. :func:`make_loaders` wraps them in data loaders.
"""

from optuna_nas.data._digits import load_digits
from optuna_nas.data._mnist import load_mnist_5k
from optuna_nas.data._splits import DataSplits
from optuna_nas.data._splits import make_loaders

__all__ = [
    "DataSplits",
    "load_digits",
    "load_mnist_5k",
    "make_loaders",
]
