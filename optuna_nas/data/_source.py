"""Load a data set again from the JSON ``source`` its loader recorded (for ``export --retrain``).

A study records ``DataSplits.source`` in its user attrs; another process (the ``optuna-nas``
command, a resumed worker) rebuilds the same splits from it. Data from a user's own ``Dataset``
has no source: such code passes its ``DataSplits`` to :func:`~optuna_nas.export.export_trial`.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
import os
from typing import Any

from optuna_nas.data._digits import load_digits
from optuna_nas.data._folder import load_image_folder
from optuna_nas.data._mnist import load_mnist_5k
from optuna_nas.data._splits import DataSplits
from optuna_nas.data._vision import load_cifar10
from optuna_nas.data._vision import load_cifar100

_LOADERS: dict[str, Callable[..., DataSplits]] = {
    "digits": load_digits,
    "mnist_5k": load_mnist_5k,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "image_folder": load_image_folder,
}
_FOLDER_LOADERS = ("cifar10", "cifar100", "image_folder")


def load_source(
    source: Mapping[str, Any], *, root: str | os.PathLike[str] | None = None
) -> DataSplits:
    """The :class:`DataSplits` that ``source`` describes; ``root`` replaces its folder.

    Raises:
        ValueError: If ``source`` names no known loader or holds arguments it does not take.
    """
    kwargs = dict(source)
    loader = kwargs.pop("loader", None)
    if loader not in _LOADERS:
        raise ValueError(
            f"the data source names loader {loader!r}; known loaders are {sorted(_LOADERS)} "
            "(a study on your own Dataset must be given its data in Python)."
        )
    if root is not None:
        if loader not in _FOLDER_LOADERS:
            raise ValueError(f"the {loader!r} data is bundled and reads no folder; drop the root.")
        kwargs["root"] = root
    if loader == "image_folder":
        kwargs["image_size"] = tuple(kwargs["image_size"])
    try:
        return _LOADERS[loader](**kwargs)
    except TypeError as e:
        raise ValueError(
            f"the data source {dict(source)!r} does not fit {loader!r}: {e}"
        ) from None
