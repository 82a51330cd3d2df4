from __future__ import annotations

import ast
from pathlib import Path
import re
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data import TensorDataset

from optuna_nas.data import DataSplits
from optuna_nas.data import load_digits
from optuna_nas.data import make_loaders
import optuna_nas.evaluation
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.evaluation import TrainingResult
from optuna_nas.evaluation import evaluate_accuracy
from optuna_nas.evaluation import train_model

Loader = DataLoader[tuple[torch.Tensor, ...]]


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_digits(seed=0)


def _cnn() -> nn.Sequential:
    """A small real CNN for 1x8x8 digits: two 3x3 conv-BN-ReLU layers, max-pool, linear."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 10),
    )


def _train(digits: DataSplits, *, seed: int = 0, epochs: int = 4, **kwargs: Any) -> TrainingResult:
    torch.manual_seed(seed)
    train, val, _ = make_loaders(digits, batch_size=32, seed=seed)
    return train_model(_cnn(), train, val, config=TrainingConfig(epochs=epochs), **kwargs)


def test_small_cnn_learns_digits(digits: DataSplits) -> None:
    # Over seeds 0..3 of split and init this reaches 0.975-0.997 after 4 epochs (chance: 0.1).
    result = _train(digits, input_shape=digits.input_shape)
    assert result.final_val_accuracy > 0.9
    assert result.epochs_run == 4
    assert len(result.val_accuracy_history) == len(result.train_loss_history) == 4
    assert result.final_val_accuracy == result.val_accuracy_history[-1]
    assert result.best_val_accuracy == max(result.val_accuracy_history)
    assert result.train_loss_history[-1] < result.train_loss_history[0]
    assert not result.stopped_early and not result.diverged
    assert result.train_seconds > 0


def test_same_seeds_same_history(digits: DataSplits) -> None:
    first = _train(digits, seed=1, epochs=2)
    second = _train(digits, seed=1, epochs=2)
    assert first.val_accuracy_history == second.val_accuracy_history
    assert first.train_loss_history == second.train_loss_history


def test_report_sees_every_epoch_and_can_stop(digits: DataSplits) -> None:
    calls: list[tuple[int, float]] = []

    def report(epoch: int, accuracy: float) -> bool:
        calls.append((epoch, accuracy))
        return epoch == 2

    result = _train(digits, epochs=5, report=report)
    assert [epoch for epoch, _ in calls] == [1, 2]
    assert tuple(accuracy for _, accuracy in calls) == result.val_accuracy_history
    assert all(0 <= accuracy <= 1 for _, accuracy in calls)
    assert result.epochs_run == 2 and result.stopped_early


def test_stop_on_last_epoch_is_not_early(digits: DataSplits) -> None:
    result = _train(digits, epochs=1, report=lambda epoch, accuracy: True)
    assert result.epochs_run == 1 and not result.stopped_early


def test_validation_shape_mismatch_is_one_clear_error(digits: DataSplits) -> None:
    message = (
        "The validation loader yields images of shape (1, 8, 8) but the spec's input_shape is "
        "(3, 32, 32); build the spec for the data's shape or pass matching data."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        _train(digits, input_shape=(3, 32, 32))


def test_training_shape_mismatch_is_caught_before_any_step(digits: DataSplits) -> None:
    big = load_digits(resolution=16)
    train, _, _ = make_loaders(big, batch_size=32, seed=0)
    _, val, _ = make_loaders(digits, batch_size=32, seed=0)
    model = _cnn()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(
        ValueError, match=re.escape("training loader yields images of shape (1, 16")
    ):
        train_model(model, train, val, config=TrainingConfig(epochs=1), input_shape=(1, 8, 8))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_divergence_ends_training_without_raising(digits: DataSplits) -> None:
    model = _cnn()
    head = model[-1]
    assert isinstance(head, nn.Linear)
    nn.init.constant_(head.weight, float("nan"))
    train, val, _ = make_loaders(digits, batch_size=32, seed=0)
    calls: list[int] = []

    def report(epoch: int, accuracy: float) -> bool:
        calls.append(epoch)
        return False

    result = train_model(model, train, val, config=TrainingConfig(epochs=3), report=report)
    assert result.diverged and not result.stopped_early
    assert result.epochs_run == 1 and calls == [1]
    assert not torch.isfinite(torch.tensor(result.train_loss_history[0]))
    assert 0 <= result.final_val_accuracy <= 1


@pytest.mark.parametrize(
    "config",
    [
        TrainingConfig(epochs=2, optimizer="adam", lr=3e-3, schedule="constant"),
        TrainingConfig(epochs=2, optimizer="adamw", lr=3e-3, weight_decay=0.05),
        TrainingConfig(epochs=2, momentum=0.0, nesterov=False, grad_clip=None),
        TrainingConfig(epochs=2, label_smoothing=0.1),
    ],
)
def test_every_optimiser_and_option_learns(digits: DataSplits, config: TrainingConfig) -> None:
    torch.manual_seed(0)
    train, val, _ = make_loaders(digits, batch_size=32, seed=0)
    result = train_model(_cnn(), train, val, config=config, device=torch.device("cpu"))
    assert result.final_val_accuracy > 0.8


def test_evaluate_accuracy_counts_and_restores_mode(digits: DataSplits) -> None:
    class AlwaysThree(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = torch.zeros(x.shape[0], 10)
            logits[:, 3] = 1.0
            return logits

    model = AlwaysThree().train()
    _, val, _ = make_loaders(digits, batch_size=50, seed=0)
    labels = digits.val.tensors[1]
    expected = float((labels == 3).sum()) / len(labels)
    assert evaluate_accuracy(model, val, device="cpu") == pytest.approx(expected)
    assert model.training


def test_empty_and_malformed_loaders_are_rejected(digits: DataSplits) -> None:
    empty: Loader = DataLoader(TensorDataset(torch.zeros(0, 1, 8, 8)), batch_size=4)
    with pytest.raises(ValueError, match="yielded no batches"):
        evaluate_accuracy(_cnn(), empty, device="cpu")
    triples: Loader = DataLoader(
        TensorDataset(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.int64), torch.zeros(4)),
        batch_size=4,
    )
    with pytest.raises(ValueError, match="must yield \\(inputs, labels\\) batches"):
        evaluate_accuracy(_cnn(), triples, device="cpu")
    train, val, _ = make_loaders(digits, batch_size=256, seed=0)
    once = iter(list(train))  # An iterator is exhausted after the first epoch.
    with pytest.raises(ValueError, match="not a generator"):
        train_model(_cnn(), once, val, config=TrainingConfig(epochs=2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "`epochs >= 1` must hold, but got epochs=0."),
        ({"optimizer": "rmsprop"}, "`optimizer` must be one of ('sgd', 'adam', 'adamw'), but got"),
        ({"lr": 0.0}, "`lr` must be finite and > 0, but got lr=0.0."),
        ({"lr": float("nan")}, "`lr` must be finite and > 0, but got lr=nan."),
        ({"momentum": 1.0}, "`0 <= momentum < 1` must hold, but got momentum=1.0."),
        ({"momentum": 0.0}, "`momentum > 0` must hold for SGD with nesterov=True"),
        (
            {"optimizer": "adam", "nesterov": True},
            "`nesterov=True` applies to optimizer='sgd' only",
        ),
        ({"weight_decay": -1e-4}, "`weight_decay` must be finite and >= 0, but got weight_decay="),
        ({"schedule": "step"}, "`schedule` must be one of ('cosine', 'constant'), but got 'step'"),
        ({"label_smoothing": 1.0}, "`0 <= label_smoothing < 1` must hold, but got label_smo"),
        ({"grad_clip": 0.0}, "`grad_clip` must be None or finite and > 0, but got grad_clip=0.0."),
    ],
)
def test_config_validation_names_field_rule_and_value(
    kwargs: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"epochs": 1} | kwargs
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainingConfig(**arguments)


def test_config_is_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        TrainingConfig(3)  # type: ignore[call-arg]
    config = TrainingConfig(epochs=3)
    with pytest.raises(AttributeError):
        config.epochs = 4  # type: ignore[misc]


def test_training_module_does_not_import_optuna() -> None:
    source = Path(optuna_nas.evaluation.__file__).parent / "_training.py"
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        assert not any(name.split(".")[0] == "optuna" for name in names)
