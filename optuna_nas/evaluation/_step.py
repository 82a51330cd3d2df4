"""One epoch and one step of :func:`~optuna_nas.evaluation.train_model`, and its optimiser."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from optuna_nas.evaluation._hardware import CUDA_GRAPH_MODES
from optuna_nas.evaluation._hardware import RngStream
from optuna_nas.evaluation._hardware import autocast

if TYPE_CHECKING:
    from optuna_nas.evaluation._training import TrainingConfig

Batches = Iterable[Sequence[torch.Tensor]]
"""What the loop trains and evaluates on: a re-iterable of ``(inputs, labels)`` batches, such
as a :class:`~torch.utils.data.DataLoader`."""


class LossOf(nn.Module):
    """The mean cross-entropy of a model on a batch: the function that gets compiled."""

    def __init__(self, model: nn.Module, label_smoothing: float) -> None:
        super().__init__()
        self.model = model
        self.label_smoothing = label_smoothing

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self.model(inputs)
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)


class Step:
    """One optimisation step on a batch, with the call's precision, compilation and scaling.

    Only the forward pass and loss are compiled: the optimiser step stays eager (fused into a
    few kernels on CUDA), so the learning rate remains a float the scheduler can change.
    """

    def __init__(self, model: nn.Module, config: TrainingConfig, device: torch.device) -> None:
        self.model = model
        self.config = config
        self.device = device
        self.params = [p for p in model.parameters() if p.requires_grad]
        # On CUDA the fused optimisers update all parameters in a few kernels and let a
        # GradScaler skip overflowing steps without reading the overflow flag on the host.
        fused = device.type == "cuda"
        self.optimizer = make_optimizer(param_groups(model, config), config, fused=fused)
        self.scaler = torch.amp.GradScaler(device.type) if config.precision == "fp16" else None
        self.loss_of = LossOf(model, config.label_smoothing)
        self.compiled: Callable[..., torch.Tensor] | None = None
        if config.compile is not None:
            self.compiled = torch.compile(self.loss_of, mode=config.compile, dynamic=False)
        self.cuda_graphs = config.compile in CUDA_GRAPH_MODES
        self.static_shape: tuple[torch.Size, torch.Size] | None = None

    def __call__(self, inputs: torch.Tensor, labels: torch.Tensor, loss_sum: torch.Tensor) -> None:
        """Train on one batch and add its summed loss to ``loss_sum`` (on the device)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss_of: Callable[..., torch.Tensor] = self.loss_of
        if self.compiled is not None:
            shape = (inputs.shape, labels.shape)
            if self.static_shape is None:
                self.static_shape = shape
            if shape == self.static_shape:
                loss_of = self.compiled
                if self.cuda_graphs:  # A new iteration: the last one's graph outputs are dead.
                    torch.compiler.cudagraph_mark_step_begin()  # type: ignore[no-untyped-call]
        with autocast(self.config.precision, self.device):
            loss = loss_of(inputs, labels)
        # Tensor.backward is untyped in torch's stubs.
        torch.autograd.backward(self.scaler.scale(loss) if self.scaler else loss)
        if self.config.grad_clip is not None:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # Fused optimisers skip inf steps without a sync.
            self.scaler.update()
        else:
            self.optimizer.step()
        loss_sum += loss.detach().float() * labels.shape[0]


def make_optimizer(
    params: list[nn.Parameter] | list[dict[str, Any]], config: TrainingConfig, *, fused: bool
) -> torch.optim.Optimizer:
    """The optimiser ``config`` names over ``params`` (tensors or groups); ``fused`` takes
    torch's fused implementation (CUDA), else its default one."""
    groups: Any = params
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov is not False,
            weight_decay=config.weight_decay,
            fused=fused or None,
        )
    betas = (config.momentum, 0.999)
    optimizer = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return optimizer(
        groups, lr=config.lr, betas=betas, weight_decay=config.weight_decay, fused=fused or None
    )


def param_groups(model: nn.Module, config: TrainingConfig) -> list[dict[str, Any]]:
    """The trainable parameters of ``model`` as optimiser groups.

    With ``config.decay_norm_and_bias`` (or no weight decay) one group holds them all. Without
    it, parameters with at most one dimension (norm scales and shifts, biases, learnable
    scalars) or named ``*.bias`` get no weight decay: exactly timm's
    ``param_groups_weight_decay`` (``timm/optim/_param_groups.py``).
    """
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if config.decay_norm_and_bias or config.weight_decay == 0:
        return [{"params": [p for _, p in named]}]
    decay = [p for name, p in named if not _no_decay(name, p)]
    no_decay = [p for name, p in named if _no_decay(name, p)]
    groups: list[dict[str, Any]] = []
    if decay:
        groups.append({"params": decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def _no_decay(name: str, param: nn.Parameter) -> bool:
    return param.ndim <= 1 or name.endswith(".bias")


def train_one_epoch(
    step: Step, loader: Batches, rng: RngStream, input_shape: tuple[int, int, int] | None
) -> tuple[float, int]:
    """One pass over ``loader``: the mean per-sample loss (maybe not finite) and the count."""
    step.model.train()
    loss_sum = torch.zeros((), device=step.device)
    check = (input_shape, "training") if input_shape is not None else None
    total = for_each_batch(
        loader, rng, step.device, step.config.channels_last, step, loss_sum, check=check
    )
    if total == 0:
        raise ValueError(
            "The training loader yielded no batches; pass a re-iterable loader (not a "
            "generator) with at least one batch."
        )
    return float(loss_sum.item()) / total, total


def for_each_batch(
    loader: Batches,
    rng: RngStream,
    device: torch.device,
    channels_last: bool,
    consume: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None],
    into: torch.Tensor,
    *,
    check: tuple[tuple[int, int, int], str] | None = None,
) -> int:
    """Call ``consume(inputs, labels, into)`` on every batch of ``loader`` (unpacked onto
    ``device``); return the number of samples.

    Fetching a batch (a shuffle, the loader's augmentation) and consuming it (dropout) both
    draw from ``rng``, so each batch is one ``with rng:`` block: the stream's lock is taken
    once per batch and free between batches. ``check`` is the ``(input_shape, split)`` the
    first batch must match (:func:`check_batch_shape`).
    """
    with rng:
        batches = iter(loader)
    total = 0
    while True:
        with rng:
            batch = next(batches, None)
            if batch is None:
                break
            if check is not None:
                check_batch_shape(batch, *check)
                check = None
            inputs, labels = unpack(batch, device, channels_last)
            consume(inputs, labels, into)
        total += labels.shape[0]
    return total


def unpack(
    batch: Sequence[torch.Tensor], device: torch.device, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    if len(batch) != 2:
        raise ValueError(
            f"A loader must yield (inputs, labels) batches, but one yielded {len(batch)} items."
        )
    inputs, labels = batch
    # ``to`` returns the tensor itself when it is already on ``device``: no copy.
    inputs = inputs.to(device, non_blocking=True)
    labels = labels.to(device, non_blocking=True)
    if channels_last:
        if inputs.dim() != 4:
            raise ValueError(
                f"`channels_last=True` applies to 4-D (N, C, H, W) image batches, but a batch "
                f"has shape {tuple(inputs.shape)}; pass channels_last=False."
            )
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return inputs, labels


def check_batch_shape(
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
