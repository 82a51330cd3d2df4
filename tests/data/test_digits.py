from __future__ import annotations

import ast
from importlib import resources
from pathlib import Path
import re
import subprocess
import sys

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import numpy.typing as npt
import pytest
import torch
from torch.utils.data import TensorDataset

import optuna_nas.data
from optuna_nas.data import DataSplits
from optuna_nas.data import LoaderSettings
from optuna_nas.data import load_digits
from optuna_nas.data import make_loaders
from optuna_nas.data._splits import stratified_split


def _bundled() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    with (
        resources.files("optuna_nas.data").joinpath("digits.npz").open("rb") as f,
        np.load(f) as npz,
    ):
        return npz["images"], npz["labels"]


def test_bundled_arrays_equal_sklearn_digits() -> None:
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    images, labels = _bundled()
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8)
    assert labels.dtype == np.uint8 and labels.shape == (1797,)
    reference = sklearn_datasets.load_digits()
    np.testing.assert_array_equal(images, reference.images)
    np.testing.assert_array_equal(labels, reference.target)


def test_data_package_does_not_import_sklearn() -> None:
    package_dir = Path(optuna_nas.data.__file__).parent
    for source in package_dir.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "sklearn" for n in names), source.name


def test_splits_shapes_and_types() -> None:
    splits = load_digits()
    assert splits.input_shape == (1, 8, 8)
    assert splits.num_classes == 10
    assert splits.name == "digits"
    assert len(splits.train) + len(splits.val) + len(splits.test) == 1797
    for split in (splits.train, splits.val, splits.test):
        images, labels = split.tensors
        assert images.dtype == torch.float32 and images.shape[1:] == (1, 8, 8)
        assert labels.dtype == torch.int64 and labels.shape == (images.shape[0],)
        assert set(labels.tolist()) == set(range(10))


def test_splits_are_stratified() -> None:
    _, raw_labels = _bundled()
    class_sizes = np.bincount(raw_labels)
    splits = load_digits(val_fraction=0.25, test_fraction=0.15)
    for split, fraction in ((splits.val, 0.25), (splits.test, 0.15)):
        counts = torch.bincount(split.tensors[1], minlength=10).numpy()
        np.testing.assert_array_equal(counts, np.round(fraction * class_sizes))


def test_normalised_with_train_statistics_only() -> None:
    images, labels = _bundled()
    splits = load_digits(seed=3)
    idx = stratified_split(labels, seed=3, val_fraction=0.2, test_fraction=0.2)
    raw = torch.from_numpy(images.astype(np.float32)).unsqueeze(1)
    train_raw = raw[torch.from_numpy(idx[0])]
    mean, std = train_raw.mean(), train_raw.std()
    for split, split_idx in zip((splits.train, splits.val, splits.test), idx, strict=True):
        expected = (raw[torch.from_numpy(split_idx)] - mean) / std
        torch.testing.assert_close(split.tensors[0], expected)
        np.testing.assert_array_equal(split.tensors[1].numpy(), labels[split_idx])
    assert abs(float(splits.train.tensors[0].mean())) < 1e-5
    assert abs(float(splits.train.tensors[0].std()) - 1) < 1e-5


def test_same_seed_same_split_and_different_seed_different_split() -> None:
    a, b, c = load_digits(seed=7), load_digits(seed=7), load_digits(seed=8)
    for x, y in zip(a.train.tensors + a.val.tensors, b.train.tensors + b.val.tensors, strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a.val.tensors[1], c.val.tensors[1])


def test_same_seed_same_split_in_a_fresh_process(request: pytest.FixtureRequest) -> None:
    code = (
        "from optuna_nas.data import load_digits\n"
        "s = load_digits(seed=5)\n"
        "print(s.val.tensors[1].tolist() + s.test.tensors[1].tolist())\n"
        "print(s.val.tensors[0].sum().item())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=request.config.rootpath,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    here = load_digits(seed=5)
    assert out[0] == str(here.val.tensors[1].tolist() + here.test.tensors[1].tolist())
    assert float(out[1]) == here.val.tensors[0].sum().item()


@settings(max_examples=30, deadline=None)
@given(
    labels=st.lists(st.integers(0, 4), min_size=10, max_size=200),
    seed=st.integers(0, 2**32 - 1),
    val_fraction=st.floats(0.05, 0.45),
    test_fraction=st.floats(0.05, 0.45),
)
def test_stratified_split_partitions_every_class(
    labels: list[int], seed: int, val_fraction: float, test_fraction: float
) -> None:
    y = np.array(labels)
    try:
        train, val, test = stratified_split(
            y, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction
        )
    except ValueError as err:
        assert "would be empty" in str(err)
        return
    together = np.concatenate([train, val, test])
    np.testing.assert_array_equal(np.sort(together), np.arange(len(y)))
    for label in np.unique(y):
        n = int(np.sum(y == label))
        assert np.sum(y[val] == label) == round(val_fraction * n)
        assert np.sum(y[test] == label) == round(test_fraction * n)


def test_resolution_resizes() -> None:
    splits = load_digits(resolution=16)
    assert splits.input_shape == (1, 16, 16)
    assert splits.name == "digits_16x16"
    assert splits.train.tensors[0].shape[1:] == (1, 16, 16)
    assert abs(float(splits.train.tensors[0].mean())) < 1e-5
    assert load_digits(resolution=8).name == "digits"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_fraction": 0.0}, "`0 < val_fraction < 1` must hold, but got val_fraction=0.0."),
        ({"val_fraction": 1.0}, "`0 < val_fraction < 1` must hold, but got val_fraction=1.0."),
        ({"test_fraction": -0.1}, "`0 < test_fraction < 1` must hold, but got test_fraction=-0.1"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "`val_fraction + test_fraction < 1`"),
        ({"val_fraction": 1e-4}, "validation split of 1797 samples would be empty"),
        ({"resolution": 0}, "`resolution` must be None or an int >= 1, but got resolution=0."),
        ({"seed": -1}, "`seed >= 0` must hold, but got seed=-1."),
    ],
)
def test_invalid_arguments_are_named(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        load_digits(**kwargs)  # type: ignore[arg-type]


def test_make_loaders_seeded_shuffle() -> None:
    splits = load_digits()
    first, second, other = (make_loaders(splits, batch_size=64, seed=s)[0] for s in (1, 1, 2))
    labels_first = torch.cat([y for _, y in first])
    assert torch.equal(labels_first, torch.cat([y for _, y in second]))
    assert not torch.equal(labels_first, torch.cat([y for _, y in other]))
    assert not torch.equal(labels_first, splits.train.tensors[1])
    assert torch.equal(torch.sort(labels_first).values, torch.sort(splits.train.tensors[1]).values)


def test_make_loaders_val_and_test_in_order() -> None:
    splits = load_digits()
    _, val, test = make_loaders(splits, batch_size=100, seed=0)
    assert torch.equal(torch.cat([x for x, _ in val]), splits.val.tensors[0])
    assert torch.equal(torch.cat([y for _, y in test]), splits.test.tensors[1])


def test_make_loaders_validates() -> None:
    with pytest.raises(ValueError, match=re.escape("`batch_size >= 1`")):
        make_loaders(load_digits(), seed=0, batch_size=0)
    with pytest.raises(ValueError, match=re.escape("`num_workers` must be an int >= 0")):
        LoaderSettings(num_workers=-1)


def test_data_splits_checks_shapes() -> None:
    data = TensorDataset(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match=re.escape("the images have shape (1, 8, 8)")):
        DataSplits(
            train=data, val=data, test=data, input_shape=(3, 8, 8), num_classes=10, name="x"
        )
