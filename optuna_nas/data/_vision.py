"""Common image sets from a local folder: CIFAR-10/100 and any ``ImageFolder`` tree.

Nothing is ever downloaded: a missing folder raises ``FileNotFoundError`` naming the folder and
where to get the data. CIFAR is read from its "python version" pickles straight into memory (the
fast path, with the standard crop-and-flip augmentation batch-wise on the device); image folders
are read with torchvision (``pip install 'optuna-nas[vision]'``), per sample or, with
``in_memory=True``, decoded once into tensors. The library imports without torchvision.
"""

from __future__ import annotations

from collections.abc import Sequence
import os
from pathlib import Path
import pickle
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from optuna_nas._validation import check_optional_int
from optuna_nas._validation import is_int
from optuna_nas.data._augment import RandomCropFlip
from optuna_nas.data._splits import DataSplits
from optuna_nas.data._splits import LoaderSettings

_CIFAR = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "labels": b"labels",
        "classes": 10,
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "torchvision": "CIFAR10",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "labels": b"fine_labels",
        "classes": 100,
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "torchvision": "CIFAR100",
    },
}


def import_torchvision() -> ModuleType:
    """Import torchvision, or raise an ``ImportError`` that says how to install it.

    A torchvision wheel built for another torch build (e.g. PyPI's CUDA torchvision beside a
    CPU-only torch) cannot load its C++ operators, and its import then fails on the fake-tensor
    registration of ``torchvision::nms``. Its data sets and transforms are pure Python, so the
    two operator schemas it registers are declared first and the import retried; torchvision's
    detection operators stay unavailable, as torchvision itself reports when they are called.
    """
    try:
        import torchvision
    except ModuleNotFoundError as e:
        raise ImportError(
            "this needs torchvision: pip install 'optuna-nas[vision]' (a torchvision matching "
            f"your torch {torch.__version__})."
        ) from e
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
        library = torch.library.Library("torchvision", "FRAGMENT")  # type: ignore[no-untyped-call]
        for op in ("nms", "qnms"):
            schema = f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
            library.define(schema)  # type: ignore[no-untyped-call]
        _KEEP.append(library)
        import torchvision
    module: ModuleType = torchvision
    return module


_KEEP: list[Any] = []
"""Operator declarations of :func:`import_torchvision`, kept alive for the process."""


def _cifar_folder(root: str | os.PathLike[str], kind: str) -> Path:
    info = _CIFAR[kind]
    names = [*info["train"], *info["test"]]  # type: ignore[misc]
    base = Path(root).expanduser()
    for folder in (base, base / str(info["folder"])):
        if all((folder / n).is_file() for n in names):
            return folder
    raise FileNotFoundError(
        f"no {kind.upper()} in {str(base)!r}: expected the python version's {', '.join(names)} "
        f"there or in its {info['folder']}/. Download and extract {info['url']} into that "
        f"folder (or run torchvision.datasets.{info['torchvision']}({str(base)!r}, "
        "download=True) once); nothing is downloaded implicitly."
    )


def _read_cifar(folder: Path, files: Sequence[str], key: bytes) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in files:
        with (folder / name).open("rb") as f:
            batch = pickle.load(f, encoding="bytes")  # the CIFAR format is a pickle
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[key], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _load_cifar(
    kind: str,
    root: str | os.PathLike[str],
    *,
    seed: int,
    val_size: int,
    augment: bool,
    subset: int | None,
    loader: LoaderSettings | None,
) -> DataSplits:
    info = _CIFAR[kind]
    folder = _cifar_folder(root, kind)
    images, labels = _read_cifar(folder, info["train"], info["labels"])  # type: ignore[arg-type]
    test_x, test_y = _read_cifar(folder, info["test"], info["labels"])  # type: ignore[arg-type]
    if not is_int(val_size) or not 0 < val_size < len(images):
        raise ValueError(f"`val_size` must be an int in (0, {len(images)}), but got {val_size=}.")
    check_optional_int("subset", subset, minimum=1)
    order = np.random.default_rng(seed).permutation(len(images))
    val_idx, train_idx = order[:val_size], order[val_size:][:subset]
    x = torch.from_numpy(images).float().div_(255.0)
    mean = x[train_idx].mean(dim=(0, 2, 3))
    std = x[train_idx].std(dim=(0, 2, 3))

    def split(t: torch.Tensor, y: np.ndarray) -> TensorDataset:
        normed = (t - mean[None, :, None, None]) / std[None, :, None, None]
        return TensorDataset(normed.contiguous(), torch.from_numpy(y))

    return DataSplits(
        train=split(x[train_idx], labels[train_idx]),
        val=split(x[val_idx], labels[val_idx]),
        test=split(torch.from_numpy(test_x).float().div_(255.0), test_y),
        num_classes=int(info["classes"]),  # type: ignore[call-overload]
        name=kind if subset is None else f"{kind}_sub{subset}",
        augment=RandomCropFlip(padding=4, fill=(-mean / std).tolist()) if augment else None,
        loader=loader,
        source={
            "loader": kind,
            "root": str(Path(root).expanduser().resolve()),
            "seed": seed,
            "val_size": val_size,
            "subset": subset,
        },
    )


def load_cifar10(
    root: str | os.PathLike[str],
    *,
    seed: int = 0,
    val_size: int = 5000,
    augment: bool = True,
    subset: int | None = None,
    loader: LoaderSettings | None = None,
) -> DataSplits:
    """CIFAR-10 (Krizhevsky, 2009) from a local folder, in memory, with standard augmentation.

    ``root`` holds the python version's ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``
    (or its ``cifar-10-batches-py/`` does). ``val_size`` of the 50,000 training images (drawn
    with ``seed``) become the validation split; the official 10,000 test images are the test
    split. Images are scaled to [0, 1] and normalised per channel with the training split's
    mean and standard deviation. With ``augment``, training batches get a random crop after
    4-pixel padding (with black) and a horizontal flip, batch-wise on the device
    (:class:`~optuna_nas.data.RandomCropFlip`). ``subset`` keeps that many training images.

    Raises:
        FileNotFoundError: If the files are not there (the message says where to get them).
    """
    return _load_cifar(
        "cifar10",
        root,
        seed=seed,
        val_size=val_size,
        augment=augment,
        subset=subset,
        loader=loader,
    )


def load_cifar100(
    root: str | os.PathLike[str],
    *,
    seed: int = 0,
    val_size: int = 5000,
    augment: bool = True,
    subset: int | None = None,
    loader: LoaderSettings | None = None,
) -> DataSplits:
    """CIFAR-100 (100 fine classes) from ``root`` (``train`` and ``test``, or its
    ``cifar-100-python/``); otherwise exactly as :func:`load_cifar10`."""
    return _load_cifar(
        "cifar100",
        root,
        seed=seed,
        val_size=val_size,
        augment=augment,
        subset=subset,
        loader=loader,
    )
