"""Proxy tasks: spec rescaling, data reduction, and reduced training on the real digits."""

from __future__ import annotations

from collections.abc import Iterator
import math

import numpy as np
import pytest
import torch

from optuna_nas.data import DataSplits
from optuna_nas.data import load_digits
from optuna_nas.evaluation import ProxyTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.evaluation import rescale_spec
from optuna_nas.evaluation import resize_splits
from optuna_nas.evaluation import subsample_splits
from optuna_nas.metrics import count_params
from optuna_nas.nn import build_model
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import spec_from_layers


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One torch thread: on a shared 2-core machine two threads are many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_digits(seed=0)


def _chain(input_shape: tuple[int, int, int] = (1, 8, 8)) -> ArchitectureSpec:
    layers = [
        ("stem", "conv", {"channels": 16, "kernel": 3}, ["input"]),
        ("c1", "sep_conv", {"channels": 32, "kernel": 3, "stride": 2}, ["stem"]),
        ("c2", "conv", {"channels": 12, "kernel": 3, "groups": 4}, ["c1"]),
        ("gap", "global_pool", {}, ["c2"]),
        ("hidden", "linear", {"features": 20, "activation": "relu"}, ["gap"]),
        ("fc", "linear", {"features": 10}, ["hidden"]),
    ]
    return spec_from_layers(layers, input_shape=input_shape, num_outputs=10)


def test_rescale_spec_scales_widths_but_not_the_classifier() -> None:
    spec = _chain()
    half = rescale_spec(spec, width_multiplier=0.5)
    assert half.node("stem").config["channels"] == 8
    assert half.node("c1").config["channels"] == 16
    assert half.node("c2").config["channels"] == 8  # 6 rounded to a multiple of groups=4
    assert half.node("hidden").config["features"] == 10
    assert half.node("fc").config["features"] == 10
    assert half.shape("fc") == (10,)
    assert half.metadata["rescaled"]["width_multiplier"] == 0.5
    assert count_params(half) < count_params(spec)
    assert build_model(half)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert rescale_spec(spec).nodes == spec.nodes  # identity transform keeps the layers


def test_rescale_spec_changes_the_input_shape_and_revalidates() -> None:
    spec = _chain()
    small = rescale_spec(spec, input_shape=(1, 6, 6))
    assert small.input_shape == (1, 6, 6)
    assert small.shape("c1") == (32, 3, 3)
    with pytest.raises(ValueError, match=r"input_shape=\(1, 2, 2\).*node 'c2'"):
        rescale_spec(spec, input_shape=(1, 2, 2))
    for bad in (0.0, -1.0, math.inf, True):
        with pytest.raises(ValueError, match="width_multiplier"):
            rescale_spec(spec, width_multiplier=bad)


def test_subsample_is_stratified_seeded_and_keeps_validation(digits: DataSplits) -> None:
    sub = subsample_splits(digits, fraction=0.25, seed=3)
    labels = digits.train.tensors[1].numpy()
    kept = sub.train.tensors[1].numpy()
    for c in range(10):
        assert (kept == c).sum() == math.ceil(0.25 * (labels == c).sum())
    again = subsample_splits(digits, fraction=0.25, seed=3)
    assert torch.equal(sub.train.tensors[0], again.train.tensors[0])
    other = subsample_splits(digits, fraction=0.25, seed=4)
    assert not torch.equal(sub.train.tensors[0], other.train.tensors[0])
    assert sub.val is digits.val and sub.test is digits.test
    with pytest.raises(ValueError, match="fraction"):
        subsample_splits(digits, fraction=0.0, seed=0)


def test_resize_splits(digits: DataSplits) -> None:
    small = resize_splits(digits, resolution=4)
    assert small.input_shape == (1, 4, 4)
    assert tuple(small.val.tensors[0].shape[1:]) == (1, 4, 4)
    assert torch.equal(small.val.tensors[1], digits.val.tensors[1])
    with pytest.raises(ValueError, match="resolution"):
        resize_splits(digits, resolution=0)


def test_proxy_training_reports_every_epoch_on_a_reduced_task(digits: DataSplits) -> None:
    spec = _chain()
    proxy = ProxyTraining(
        digits,
        training=TrainingConfig(epochs=20),
        epochs=3,
        data_fraction=0.5,
        resolution=6,
        width_multiplier=0.5,
        batch_size=16,
    )
    assert proxy.proxy_data.input_shape == (1, 6, 6)
    assert len(proxy.proxy_data.train) < len(digits.train)
    reports: list[tuple[int, float]] = []

    def report(epoch: int, accuracy: float) -> bool:
        reports.append((epoch, accuracy))
        return False

    result = proxy.evaluate(spec, report=report, seed=0)
    assert [e for e, _ in reports] == [1, 2, 3]
    assert result.metrics["val_accuracy_curve"] == [a for _, a in reports]
    assert result.values["val_accuracy"] == reports[-1][1]
    assert result.values["val_accuracy"] > 0.3  # it learns even at 6x6, half width
    assert result.metrics["proxy"] == {
        "data_fraction": 0.5,
        "epochs": 3,
        "resolution": 6,
        "width_multiplier": 0.5,
    }
    assert result.model is None  # the trained proxy is not the candidate


def test_proxy_training_without_rescaling_returns_the_model_and_stops(
    digits: DataSplits,
) -> None:
    spec = _chain()
    proxy = ProxyTraining(digits, training=TrainingConfig(epochs=5), data_fraction=0.2)
    result = proxy.evaluate(spec, report=lambda e, a: e >= 2, seed=1)
    assert result.stopped_early
    assert result.metrics["epochs_run"] == 2
    assert result.model is not None and result.model.spec == spec  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"data_fraction": 0.0}, "data_fraction"),
        ({"data_fraction": 1.5}, "data_fraction"),
        ({"epochs": 0}, "epochs"),
        ({"resolution": 0}, "resolution"),
        ({"width_multiplier": 0.0}, "width_multiplier"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_proxy_training_rejects_bad_arguments(
    digits: DataSplits, kwargs: dict[str, float], name: str
) -> None:
    with pytest.raises(ValueError, match=name):
        ProxyTraining(digits, training=TrainingConfig(epochs=1), **kwargs)  # type: ignore[arg-type]


def test_same_seed_same_proxy_result(digits: DataSplits) -> None:
    proxy = ProxyTraining(digits, training=TrainingConfig(epochs=1), data_fraction=0.3)
    a = proxy.evaluate(_chain(), report=None, seed=5).values["val_accuracy"]
    b = proxy.evaluate(_chain(), report=None, seed=5).values["val_accuracy"]
    assert a == b
    assert np.isfinite(a)
