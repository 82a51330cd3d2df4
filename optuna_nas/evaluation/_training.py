"""A plain supervised training loop for image classifiers.

It knows nothing of Optuna: progress goes out through a ``report(epoch, val_accuracy) -> bool``
callback, which an objective adapts to ``trial.report`` / ``trial.should_prune``.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
import math
import time
from typing import Literal

import torch
from torch import nn
import torch.nn.functional as F

Batches = Iterable[Sequence[torch.Tensor]]
"""What the loop trains and evaluates on: a re-iterable of ``(inputs, labels)`` batches, such
as a :class:`~torch.utils.data.DataLoader`."""

_OPTIMIZERS = ("sgd", "adam", "adamw")
_SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """How to train one candidate network.

    Attributes:
        epochs: Number of passes over the training data (fewer if ``report`` stops training).
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"`` (decoupled weight decay, Loshchilov &
            Hutter, 2019).
        lr: Initial learning rate.
        momentum: SGD momentum; for Adam and AdamW it is ``beta1``, the same role (the decay of
            the gradient's moving average), so its default 0.9 is Adam's default too.
        nesterov: Use Nesterov momentum with SGD (needs ``momentum > 0``). ``None`` (the
            default) means True for SGD; Adam and AdamW have no Nesterov form in this loop, so
            ``nesterov=True`` with them is an error rather than silently ignored.
        weight_decay: L2 penalty (SGD, Adam) or decoupled decay (AdamW) on all parameters.
        schedule: ``"cosine"`` anneals the learning rate once per epoch from ``lr`` towards 0
            over ``epochs`` epochs (SGDR without restarts, Loshchilov & Hutter, 2017), as
            NAS-Bench-201 and DARTS train; ``"constant"`` keeps ``lr``.
        label_smoothing: Label smoothing of the cross-entropy loss (Szegedy et al., 2016).
        grad_clip: If not None, the maximum norm of all gradients together, clipped before
            every step; DARTS-style cells diverge easily without it.

    Raises:
        ValueError: If a field breaks its rule; the message names the field and its value.
    """

    epochs: int
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool | None = None
    weight_decay: float = 5e-4
    schedule: Literal["cosine", "constant"] = "cosine"
    label_smoothing: float = 0.0
    grad_clip: float | None = 5.0

    def __post_init__(self) -> None:
        epochs = self.epochs
        if isinstance(epochs, bool) or epochs < 1:
            raise ValueError(f"`epochs >= 1` must hold, but got {epochs=}.")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(
                f"`optimizer` must be one of {_OPTIMIZERS}, but got {self.optimizer!r}."
            )
        if self.schedule not in _SCHEDULES:
            raise ValueError(f"`schedule` must be one of {_SCHEDULES}, but got {self.schedule!r}.")
        lr = self.lr
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"`lr` must be finite and > 0, but got {lr=}.")
        momentum = self.momentum
        if not 0 <= momentum < 1:
            raise ValueError(f"`0 <= momentum < 1` must hold, but got {momentum=}.")
        if self.optimizer != "sgd" and self.nesterov:
            raise ValueError(
                f"`nesterov=True` applies to optimizer='sgd' only, but got "
                f"optimizer={self.optimizer!r}; leave nesterov unset for Adam/AdamW."
            )
        if self.optimizer == "sgd" and self.nesterov is not False and momentum == 0:
            raise ValueError(
                "`momentum > 0` must hold for SGD with nesterov=True, but got momentum=0; "
                "pass nesterov=False for plain SGD."
            )
        weight_decay = self.weight_decay
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"`weight_decay` must be finite and >= 0, but got {weight_decay=}.")
        label_smoothing = self.label_smoothing
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"`0 <= label_smoothing < 1` must hold, but got {label_smoothing=}.")
        grad_clip = self.grad_clip
        if grad_clip is not None and not (math.isfinite(grad_clip) and grad_clip > 0):
            raise ValueError(f"`grad_clip` must be None or finite and > 0, but got {grad_clip=}.")


@dataclass(frozen=True, kw_only=True)
class TrainingResult:
    """What one call of :func:`train_model` did.

    Epochs are counted from 1: entry ``i`` of each history belongs to epoch ``i + 1``, the
    epoch number ``report`` was called with.

    Attributes:
        val_accuracy_history: Validation accuracy (a fraction in [0, 1]) after each epoch.
        train_loss_history: Mean training cross-entropy of each epoch (non-finite for the
            epoch that diverged, if any).
        final_val_accuracy: Validation accuracy after the last epoch run.
        best_val_accuracy: Highest validation accuracy of any epoch run.
        epochs_run: Number of epochs run, the length of both histories.
        stopped_early: Whether ``report`` asked to stop before ``config.epochs``.
        diverged: Whether training stopped because an epoch's loss was not finite.
        train_seconds: Wall-clock seconds of the whole call, validation included.
    """

    val_accuracy_history: tuple[float, ...]
    train_loss_history: tuple[float, ...]
    final_val_accuracy: float
    best_val_accuracy: float
    epochs_run: int
    stopped_early: bool
    diverged: bool
    train_seconds: float


def train_model(
    model: nn.Module,
    train_loader: Batches,
    val_loader: Batches,
    *,
    config: TrainingConfig,
    device: str | torch.device = "cpu",
    report: Callable[[int, float], bool] | None = None,
    input_shape: tuple[int, int, int] | None = None,
) -> TrainingResult:
    """Train ``model`` with cross-entropy and score it on validation data after every epoch.

    After epoch ``e`` (counted from 1) the loop calls ``report(e, val_accuracy)``; if that
    returns True, training stops and the result has ``stopped_early=True`` (unless ``e`` was
    the last epoch anyway). An objective passes a callback that calls ``trial.report`` and
    returns ``trial.should_prune()``.

    An epoch whose mean loss is not finite ends training with ``diverged=True``: a candidate
    that diverges is a legitimate bad result of a search, not a crash. That epoch is still
    scored and reported like the others, so its validation accuracy is that of the diverged
    weights (usually chance level). The check runs once per epoch, not per step, to avoid a
    device synchronisation on every step.

    Args:
        model: A classifier mapping ``(N, *input_shape)`` inputs to ``(N, num_classes)``
            logits. It is moved to ``device`` and trained in place.
        train_loader: Training batches ``(inputs, labels)``, iterated once per epoch.
        val_loader: Validation batches, scored with :func:`evaluate_accuracy` every epoch.
        config: Optimiser, schedule and length of training.
        device: Where to train; nothing is chosen automatically.
        report: Called after every epoch with ``(epoch, val_accuracy)``; True stops training.
        input_shape: If given, the ``(channels, height, width)`` the model was built for: the
            first batch of each loader is checked against it before anything is trained.

    Returns:
        The learning curves and how training ended.

    Raises:
        ValueError: If a loader's images do not match ``input_shape``, a loader yields no
            batches, or the model has no trainable parameters.
    """
    start = time.perf_counter()
    device = torch.device(device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("The model has no trainable parameters.")
    if input_shape is not None:
        # The validation loader's order does not matter, so peeking costs no reproducibility;
        # the training loader's first batch is checked inside the first epoch instead, so that
        # a shuffled order is drawn exactly as without the check.
        _check_batch_shape(next(iter(val_loader), None), input_shape, "validation")
    optimizer = _make_optimizer(params, config)
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    if config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)

    val_history: list[float] = []
    loss_history: list[float] = []
    stop = diverged = False
    for epoch in range(1, config.epochs + 1):
        shape_to_check = input_shape if epoch == 1 else None
        loss = _train_one_epoch(model, train_loader, optimizer, config, device, shape_to_check)
        if scheduler is not None:
            scheduler.step()
        accuracy = evaluate_accuracy(model, val_loader, device=device)
        loss_history.append(loss)
        val_history.append(accuracy)
        diverged = not math.isfinite(loss)
        if report is not None:
            stop = bool(report(epoch, accuracy))
        if stop or diverged:
            break

    return TrainingResult(
        val_accuracy_history=tuple(val_history),
        train_loss_history=tuple(loss_history),
        final_val_accuracy=val_history[-1],
        best_val_accuracy=max(val_history),
        epochs_run=len(val_history),
        stopped_early=stop and len(val_history) < config.epochs,
        diverged=diverged,
        train_seconds=time.perf_counter() - start,
    )


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, loader: Batches, *, device: str | torch.device) -> float:
    """Top-1 accuracy of ``model`` on ``loader``, as a fraction in [0, 1].

    The model is moved to ``device`` and run in eval mode; its previous train/eval mode is
    restored afterwards.

    Raises:
        ValueError: If ``loader`` yields no batches.
    """
    device = torch.device(device)
    model.to(device)
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total = 0
    try:
        for batch in loader:
            inputs, labels = _unpack(batch, device)
            correct += (model(inputs).argmax(dim=1) == labels).sum()
            total += labels.shape[0]
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("The evaluation loader yielded no batches.")
    return int(correct.item()) / total


def _train_one_epoch(
    model: nn.Module,
    loader: Batches,
    optimizer: torch.optim.Optimizer,
    config: TrainingConfig,
    device: torch.device,
    input_shape: tuple[int, int, int] | None,
) -> float:
    """Run one pass over ``loader``; return the mean per-sample loss (possibly not finite)."""
    model.train()
    loss_sum = torch.zeros((), device=device)
    total = 0
    for batch in loader:
        if input_shape is not None:
            _check_batch_shape(batch, input_shape, "training")
            input_shape = None
        inputs, labels = _unpack(batch, device)
        loss = F.cross_entropy(model(inputs), labels, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)  # Tensor.backward is untyped in torch's stubs.
        if config.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        loss_sum += loss.detach() * labels.shape[0]
        total += labels.shape[0]
    if total == 0:
        raise ValueError(
            "The training loader yielded no batches; pass a re-iterable loader (not a "
            "generator) with at least one batch."
        )
    return float(loss_sum.item()) / total


def _make_optimizer(params: list[nn.Parameter], config: TrainingConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov is not False,
            weight_decay=config.weight_decay,
        )
    betas = (config.momentum, 0.999)
    if config.optimizer == "adam":
        return torch.optim.Adam(
            params, lr=config.lr, betas=betas, weight_decay=config.weight_decay
        )
    return torch.optim.AdamW(params, lr=config.lr, betas=betas, weight_decay=config.weight_decay)


def _unpack(
    batch: Sequence[torch.Tensor], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    if len(batch) != 2:
        raise ValueError(
            f"A loader must yield (inputs, labels) batches, but one yielded {len(batch)} items."
        )
    inputs, labels = batch
    return inputs.to(device), labels.to(device)


def _check_batch_shape(
    batch: Sequence[torch.Tensor] | None, input_shape: tuple[int, int, int], split: str
) -> None:
    if batch is None:
        raise ValueError(f"The {split} loader yielded no batches.")
    got = tuple(batch[0].shape[1:])
    if got != tuple(input_shape):
        raise ValueError(
            f"The {split} loader yields images of shape {got} but the spec's input_shape is "
            f"{tuple(input_shape)}; build the spec for the data's shape or pass matching data."
        )
