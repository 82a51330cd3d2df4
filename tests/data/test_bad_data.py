"""Bad data gives one clear error naming the split, the index and the rule, before any training;
a bad item found later fails the study once, with the reason stored, and loses nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import re
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from torch.utils.data import Dataset
from torch.utils.data import IterableDataset
from torch.utils.data import TensorDataset

from optuna_nas.data import DataError
from optuna_nas.data import DataSplits
from optuna_nas.data import load_digits
from optuna_nas.data._validate import sample_indices
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.objective import NASObjective
from optuna_nas.spaces import ChainSpace
from optuna_nas.storage import run_study
from tests.data.own_data import custom_splits


def _tensors(n: int = 40, *, label: Any = None, pixel: float | None = None) -> TensorDataset:
    x = torch.randn(n, 1, 4, 4)
    y = torch.arange(n) % 3
    if pixel is not None:
        x[7, 0, 1, 2] = pixel
    if label is not None:
        y = y.clone()
        y[11] = label
    return TensorDataset(x, y)


@pytest.mark.parametrize(
    ("train", "message"),
    [
        (_tensors(label=14), "split 'train', index 11: label 14 is out of range 0..2"),
        (_tensors(label=-1), "split 'train', index 11: label -1 is out of range 0..2"),
        (_tensors(pixel=float("nan")), "split 'train', index 7: the image holds a non-finite"),
        (_tensors(pixel=float("inf")), "split 'train', index 7: the image holds a non-finite"),
        (
            TensorDataset(torch.randn(4, 1, 4, 4), torch.tensor([0.0, 1.0, 2.0, 0.0])),
            "the label must be an integer class index, but got torch.float32",
        ),
        (
            TensorDataset(torch.randn(0, 1, 4, 4), torch.zeros(0)),
            "split 'train': the split is empty",
        ),
        (
            TensorDataset(torch.zeros(4, 1, 4, 4, dtype=torch.uint8), torch.zeros(4).long()),
            "the images must be a floating-point tensor, but got torch.uint8",
        ),
    ],
)
def test_bad_tensors_fail_when_the_data_is_made(train: TensorDataset, message: str) -> None:
    with pytest.raises(DataError, match=re.escape(message)):
        DataSplits(train=train, val=_tensors(), num_classes=3, name="bad")


class _Items(Dataset[Any]):
    """A user's Dataset returning whatever ``make(index)`` gives."""

    def __init__(self, n: int, make: Any) -> None:
        self.n, self.make = n, make

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Any:
        return self.make(index)


def _good(index: int) -> tuple[torch.Tensor, int]:
    return torch.full((1, 4, 4), float(index % 5)), index % 3


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda i: (*_good(i), "x"), "must be an (image, label) pair, but got a tuple of 3 items"),
        (lambda i: _good(i)[0], "an item must be an (image, label) pair, but got a Tensor"),
        (lambda i: (_good(i)[0], 1.0), "the label must be an integer class index, but got float"),
        (lambda i: (_good(i)[0], 9), "label 9 is out of range 0..2 (num_classes=3)"),
        (lambda i: (np.zeros((4, 4)), 0), "the image must be a torch.Tensor, but got ndarray"),
        (
            lambda i: (torch.full((1, 4, 4), float("nan")), 0),
            "the image holds a non-finite value",
        ),
        (
            lambda i: (torch.zeros(1, 5, 4) if i == 0 else _good(i)[0], 0),
            "the image has shape (1, 5, 4), but the data's input_shape is (1, 4, 4)",
        ),
    ],
)  # fmt: skip
def test_a_bad_item_of_a_dataset_fails_when_the_data_is_made(make: Any, message: str) -> None:
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        DataSplits(
            train=_Items(30, make),
            val=_Items(10, _good),
            num_classes=3,
            input_shape=(1, 4, 4),
            name="mine",
        )
    assert str(caught.value).startswith("data 'mine', split 'train', index ")
    assert "\n" not in str(caught.value)


def test_a_pil_image_without_a_tensor_transform_is_named() -> None:
    from PIL import Image

    images = _Items(8, lambda i: (Image.new("L", (4, 4)), i % 2))
    with pytest.raises(DataError, match="end the split's transform with a tensor conversion"):
        DataSplits(train=images, val=images, num_classes=2)


def test_streams_and_unknown_class_counts_are_refused_clearly() -> None:
    class Stream(IterableDataset[Any]):
        def __iter__(self) -> Iterator[Any]:
            yield _good(0)

    with pytest.raises(TypeError, match="`train` must be a map-style"):
        DataSplits(train=Stream(), val=_Items(4, _good), num_classes=3)
    with pytest.raises(
        ValueError, match=r"cannot infer num_classes from a _Items.*pass num_classes="
    ):
        DataSplits(train=_Items(4, _good), val=_Items(4, _good))
    with pytest.raises(DataError, match="split 'val': the split is empty"):
        DataSplits(train=_Items(4, _good), val=_Items(0, _good), num_classes=3)


def test_a_bad_item_found_during_a_trial_fails_the_study_once_and_keeps_finished_trials(
    tmp_path: Path,
) -> None:
    splits = custom_splits()
    n = len(splits["train"])
    checked = set(sample_indices(n))
    bad = next(i for i in range(n) if i not in checked)  # not in the up-front sample
    broken = _Items(
        n, lambda i: (splits["train"][i][0], 14 if i == bad else splits["train"][i][1])
    )
    good = DataSplits(**splits, num_classes=10, name="digits")
    data = DataSplits(train=broken, val=splits["val"], num_classes=10, name="digits")
    space = ChainSpace(input_shape=(1, 8, 8), num_outputs=10, max_depth=2, widths=(8,),
                       stride_layers=(2,))  # fmt: skip
    storage = f"sqlite:///{tmp_path / 'bad.db'}"

    def run(d: DataSplits, n_trials: int) -> optuna.Study:
        study = optuna.create_study(
            storage=storage, study_name="s", direction="maximize", load_if_exists=True
        )
        objective = NASObjective(
            space, FullTraining(d, training=TrainingConfig(epochs=1)), objectives=("val_accuracy",)
        )
        # As the study scripts do: ValueError fails a trial, yet bad data stops the worker.
        run_study(study, objective, n_trials=n_trials, catch=(RuntimeError, ValueError))
        return study

    run(good, 1)
    with pytest.raises(DataError, match=rf"split 'train', index {bad}: label 14 is out of range"):
        run(data, 3)
    study = optuna.load_study(study_name="s", storage=storage)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
    reason = study.trials[1].user_attrs["fail_reason"]
    assert reason.startswith(f"bad data: data 'digits', split 'train', index {bad}: label 14")
    assert "Traceback" not in reason


def test_bundled_data_passes_and_a_changed_copy_is_checked_again() -> None:
    digits = load_digits()
    x, y = digits.train.tensors
    y = y.clone()
    y[3] = 10
    with pytest.raises(
        DataError, match=r"split 'train', index 3: label 10 is out of range 0\.\.9"
    ):
        digits.replace(train=TensorDataset(x, y))
