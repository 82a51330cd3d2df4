"""A supervised training loop for image classifiers, fast on real hardware.

It knows nothing of Optuna: progress goes out through a ``report(epoch, val_accuracy) -> bool``
callback, which an objective adapts to ``trial.report`` / ``trial.should_prune``, and one log
line per epoch on the ``"optuna_nas.training"`` logger (INFO). Device checks, autocast and
the per-call random stream live in ``_hardware``; one epoch, one step and the optimiser in
``_step``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import logging
import math
import time
from typing import Any
from typing import Literal
from typing import Protocol

import torch
from torch import nn

from optuna_nas.evaluation._hardware import COMPILE_MODES
from optuna_nas.evaluation._hardware import PRECISIONS
from optuna_nas.evaluation._hardware import RngStream
from optuna_nas.evaluation._hardware import autocast
from optuna_nas.evaluation._hardware import check_config_for_device
from optuna_nas.evaluation._hardware import check_device
from optuna_nas.evaluation._hardware import check_seed
from optuna_nas.evaluation._hardware import cudnn_benchmark
from optuna_nas.evaluation._hardware import isolated_rng
from optuna_nas.evaluation._step import Batches
from optuna_nas.evaluation._step import Step
from optuna_nas.evaluation._step import check_batch_shape
from optuna_nas.evaluation._step import for_each_batch
from optuna_nas.evaluation._step import train_one_epoch

_OPTIMIZERS = ("sgd", "adam", "adamw")
_SCHEDULES = ("cosine", "constant")
_FLAGS = ("channels_last", "cudnn_benchmark", "decay_norm_and_bias")

_logger = logging.getLogger("optuna_nas.training")

__all__ = [
    "Batches",
    "TrainingConfig",
    "TrainingResult",
    "check_device",
    "evaluate_accuracy",
    "isolated_rng",
    "train_model",
]


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
        weight_decay: L2 penalty (SGD, Adam) or decoupled decay (AdamW).
        decay_norm_and_bias: Whether ``weight_decay`` applies to norm and bias parameters too.
            True (the default) decays every parameter, as NAS-Bench-201 (Dong & Yang, 2020)
            and DARTS train, so results stay comparable with their tables; False exempts
            every parameter with at most one dimension or named ``*.bias``, as timm's
            ``param_groups_weight_decay`` does (the usual choice with AdamW and large decay).
        schedule: ``"cosine"`` anneals the learning rate once per epoch from ``lr`` towards 0
            over ``epochs`` epochs (SGDR without restarts, Loshchilov & Hutter, 2017), as
            NAS-Bench-201 and DARTS train; ``"constant"`` keeps ``lr``.
        label_smoothing: Label smoothing of the cross-entropy loss (Szegedy et al., 2016).
        grad_clip: If not None, the maximum norm of all gradients together, clipped before
            every step; DARTS-style cells diverge easily without it.
        precision: ``"fp32"``; ``"bf16"`` runs forward passes under bf16 autocast (CPU, and
            CUDA GPUs from Ampere on); ``"fp16"`` runs them under fp16 autocast with a
            dynamic loss scale (:class:`torch.amp.GradScaler`), on CUDA only. Parameters and
            optimiser state stay fp32 (mixed precision, Micikevicius et al., 2018).
        channels_last: Keep the model's 4-D weights and every image batch in the channels-last
            (NHWC) memory format, which tensor-core convolutions read without transposes.
        compile: None trains eagerly; a ``torch.compile`` mode compiles the training forward
            pass and its loss (``"reduce-overhead"`` and ``"max-autotune"`` also capture CUDA
            graphs and need a CUDA device). Shapes are static: a batch whose shape differs
            from the first training batch (the smaller last one) runs eagerly, so nothing
            recompiles; a data layer that drops the last batch avoids even that.
        cudnn_benchmark: Let cuDNN time its convolution algorithms for each new shape and keep
            the fastest (CUDA only; results may then differ in the last bits between runs).
            The flag is process-wide: it is on while any such call runs, and False leaves it
            as it is.

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
    decay_norm_and_bias: bool = True
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    channels_last: bool = False
    compile: (
        Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] | None
    ) = None
    cudnn_benchmark: bool = False

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
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"`precision` must be one of {PRECISIONS}, but got {self.precision!r}."
            )
        if self.compile is not None and self.compile not in COMPILE_MODES:
            raise ValueError(
                f"`compile` must be None (train eagerly) or one of {COMPILE_MODES}, but got "
                f"{self.compile!r}."
            )
        for name in _FLAGS:
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"`{name}` must be a bool, but got {name}={value!r}.")


class Checkpoint(Protocol):
    """Where :func:`train_model` keeps its state between epochs, so a killed run can resume.

    ``state`` holds only tensors and plain Python values (it loads with
    ``torch.load(weights_only=True)``). :func:`train_model` knows nothing of where it goes; the
    objective stores it in the study's artifact store (:mod:`optuna_nas._checkpoint`).
    """

    def load(self) -> dict[str, Any] | None:
        """The last saved state, or None to start from scratch."""

    def save(self, epoch: int, state: dict[str, Any]) -> None:
        """Keep ``state``, the state after ``epoch`` epochs (replacing the one before)."""


@dataclass(frozen=True, kw_only=True)
class TrainingResult:
    """What one call of :func:`train_model` did.

    Epochs are counted from 1: entry ``i`` of each history belongs to epoch ``i + 1``, the
    epoch number ``report`` was called with. The last four histories are what the per-epoch
    log line shows.

    Attributes:
        val_accuracy_history: Validation accuracy (a fraction in [0, 1]) after each epoch.
        train_loss_history: Mean training cross-entropy of each epoch (non-finite for the
            epoch that diverged, if any).
        epoch_seconds_history: Wall-clock seconds of each epoch's training pass (loading
            included, validation not); the first one includes any compilation.
        images_per_second_history: Training images per second of each epoch's training pass.
        final_val_accuracy: Validation accuracy after the last epoch run.
        best_val_accuracy: Highest validation accuracy of any epoch run.
        epochs_run: Number of epochs run, the length of every history.
        stopped_early: Whether ``report`` asked to stop before ``config.epochs``.
        diverged: Whether training stopped because an epoch's loss was not finite.
        train_seconds: Wall-clock seconds of the whole call, validation included.
    """

    val_accuracy_history: tuple[float, ...]
    train_loss_history: tuple[float, ...]
    epoch_seconds_history: tuple[float, ...]
    images_per_second_history: tuple[float, ...]
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
    seed: int | None = None,
    checkpoint: Checkpoint | None = None,
) -> TrainingResult:
    """Train ``model`` with cross-entropy and score it on validation data after every epoch.

    After epoch ``e`` (counted from 1) the loop calls ``report(e, val_accuracy)``; if that
    returns True, training stops and the result has ``stopped_early=True`` (unless ``e`` was
    the last epoch anyway). An objective passes a callback that calls ``trial.report`` and
    returns ``trial.should_prune()``.

    An epoch whose mean loss is not finite ends training with ``diverged=True``: a candidate
    that diverges is a legitimate bad result of a search, not a crash. That epoch is still
    scored and reported like the others, so its validation accuracy is that of the diverged
    weights (usually chance level). The loss is summed on the device and read once per epoch:
    nothing in a step waits for the device (a per-step ``loss.item()`` or NaN check would,
    and would break CUDA graphs).

    Batches already on ``device`` (a data layer may deliver them there) are used as they are;
    others are copied with ``non_blocking=True``, which overlaps the copy with compute when
    the loader pins its memory.

    Args:
        model: A classifier mapping ``(N, *input_shape)`` inputs to ``(N, num_classes)``
            logits. It is moved to ``device`` (and to channels-last if ``config`` says so) and
            trained in place.
        train_loader: Training batches ``(inputs, labels)``, iterated once per epoch.
        val_loader: Validation batches, scored every epoch like :func:`evaluate_accuracy`
            does, in ``config.precision`` and memory format.
        config: Optimiser, schedule, length of training and hardware settings.
        device: Where to train, checked by :func:`check_device`; nothing is chosen
            automatically.
        report: Called after every epoch with ``(epoch, val_accuracy)``; True stops training.
        input_shape: If given, the ``(channels, height, width)`` the model was built for: the
            first batch of each loader is checked against it before anything is trained.
        seed: If given, every random draw of the call (dropout and other random ops, an
            unseeded loader's shuffle, worker seeds) comes from a private stream seeded with
            it, not from the global generators another thread or trial may be using: the
            result then depends only on the model, the data and ``seed``, also when trials
            train in parallel threads (steps of seeded calls then take turns). The model's
            initial weights exist before the call and are not affected (build them under
            :func:`isolated_rng`). None (the default) draws from the global generators, as
            before.
        checkpoint: If given, the state after every epoch but the last (weights, optimiser,
            schedule, scaler, curves, the seeded random stream and the training loader's
            generators) is saved there, and a saved state is loaded first: training resumes
            after the saved epoch, and with a seed and loaders from
            :func:`~optuna_nas.data.make_loader` it ends exactly as an uninterrupted call
            would. The resumed epochs are reported again, so the caller sees every epoch.

    Returns:
        The learning curves and how training ended.

    Raises:
        ValueError: If ``device`` does not exist or cannot honour ``config`` (fp16 or a
            CUDA-graph ``compile`` mode off CUDA), a loader's images do not match
            ``input_shape``, a loader yields no batches, or the model has no trainable
            parameters.
        RuntimeError: If ``config.compile`` is set where ``torch.compile`` cannot run.
    """
    start = time.perf_counter()
    device = check_device(device)
    check_config_for_device(config, device)
    rng = RngStream(check_seed(seed), device)
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("The model has no trainable parameters.")
    if input_shape is not None:
        # The validation loader's order does not matter, so peeking costs no reproducibility;
        # the training loader's first batch is checked inside the first epoch instead, so that
        # a shuffled order is drawn exactly as without the check.
        with rng:
            first = next(iter(val_loader), None)
        check_batch_shape(first, input_shape, "validation")
    step = Step(model, config, device)
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    if config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(step.optimizer, T_max=config.epochs)

    val_history: list[float] = []
    loss_history: list[float] = []
    seconds_history: list[float] = []
    speed_history: list[float] = []
    histories = (val_history, loss_history, seconds_history, speed_history)
    resumable = _Resumable(model, step, scheduler, rng, train_loader, histories)
    stop = diverged = False
    done = 0
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        done = resumable.load(saved)
        _logger.info("resumed after epoch %d/%d from a checkpoint", done, config.epochs)
        for epoch, accuracy in enumerate(val_history, start=1):
            if report is not None and report(epoch, accuracy):
                stop = True
    with cudnn_benchmark(config.cudnn_benchmark):
        for epoch in range(done + 1, config.epochs + 1):
            if stop:
                break
            shape_to_check = input_shape if epoch == 1 else None
            epoch_start = time.perf_counter()
            loss, images = train_one_epoch(step, train_loader, rng, shape_to_check)
            seconds = time.perf_counter() - epoch_start  # Reading the loss synchronised.
            if scheduler is not None:
                scheduler.step()
            accuracy = _evaluate(model, val_loader, device, config, rng)
            loss_history.append(loss)
            val_history.append(accuracy)
            seconds_history.append(seconds)
            speed_history.append(images / seconds if seconds > 0 else math.inf)
            _logger.info(
                "epoch %d/%d: train loss %.4f, val accuracy %.4f, %.2f s, %.0f images/s",
                *(epoch, config.epochs, loss, accuracy, seconds, speed_history[-1]),
            )
            diverged = not math.isfinite(loss)
            if report is not None:
                stop = bool(report(epoch, accuracy))
            if stop or diverged:
                break
            if checkpoint is not None and epoch < config.epochs:
                checkpoint.save(epoch, resumable.state(epoch))

    return TrainingResult(
        val_accuracy_history=tuple(val_history),
        train_loss_history=tuple(loss_history),
        epoch_seconds_history=tuple(seconds_history),
        images_per_second_history=tuple(speed_history),
        final_val_accuracy=val_history[-1],
        best_val_accuracy=max(val_history),
        epochs_run=len(val_history),
        stopped_early=stop and len(val_history) < config.epochs,
        diverged=diverged,
        train_seconds=time.perf_counter() - start,
    )


@dataclass(frozen=True)
class _Resumable:
    """The objects of one :func:`train_model` call whose state an epoch boundary saves
    (see ``checkpoint``) and a resumed call loads back."""

    model: nn.Module
    step: Step
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    rng: RngStream
    loader: Batches
    histories: tuple[list[float], list[float], list[float], list[float]]

    def state(self, epoch: int) -> dict[str, Any]:
        """Everything the boundary after ``epoch`` needs to continue exactly."""
        loader_state = getattr(self.loader, "state_dict", None)
        scaler = self.step.scaler
        return {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.step.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": self.rng.state(),
            "loader": loader_state() if callable(loader_state) else None,
            "histories": [list(h) for h in self.histories],
        }

    def load(self, state: dict[str, Any]) -> int:
        """Load a :meth:`state` into the objects; return the epochs it had done."""
        self.model.load_state_dict(state["model"])
        self.step.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.step.scaler is not None and state["scaler"] is not None:
            self.step.scaler.load_state_dict(state["scaler"])
        self.rng.load_state(state["rng"])
        load_loader = getattr(self.loader, "load_state_dict", None)
        if callable(load_loader) and state["loader"] is not None:
            load_loader(state["loader"])
        for history, saved in zip(self.histories, state["histories"], strict=True):
            history[:] = [float(x) for x in saved]
        return int(state["epoch"])


def evaluate_accuracy(
    model: nn.Module,
    loader: Batches,
    *,
    device: str | torch.device,
    precision: Literal["fp32", "bf16", "fp16"] = "fp32",
) -> float:
    """Top-1 accuracy of ``model`` on ``loader``, as a fraction in [0, 1].

    The model is moved to ``device`` (checked by :func:`check_device`) and run in eval mode,
    under autocast when ``precision`` is ``"bf16"`` or ``"fp16"``; its previous train/eval
    mode is restored afterwards.

    Raises:
        ValueError: If ``loader`` yields no batches, or ``device`` or ``precision`` is invalid.
    """
    device = check_device(device)
    config = TrainingConfig(epochs=1, precision=precision)
    check_config_for_device(config, device)
    return _evaluate(model.to(device), loader, device, config, RngStream(None, device))


@torch.no_grad()
def _evaluate(
    model: nn.Module,
    loader: Batches,
    device: torch.device,
    config: TrainingConfig,
    rng: RngStream,
) -> float:
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)

    def score(inputs: torch.Tensor, labels: torch.Tensor, hits: torch.Tensor) -> None:
        with autocast(config.precision, device):
            logits = model(inputs)
        hits += (logits.argmax(dim=1) == labels).sum()

    try:
        total = for_each_batch(loader, rng, device, config.channels_last, score, correct)
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("The evaluation loader yielded no batches.")
    return int(correct.item()) / total
