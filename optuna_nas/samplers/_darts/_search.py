"""The DARTS search loop: alternating first-order updates of weights and architecture.

Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019, Algorithm 1 with the
first-order approximation (xi = 0): each step first moves alpha down the validation loss with Adam,
then moves the weights down the training loss with SGD (momentum, weight decay, cosine-annealed
learning rate, gradient clipping). The second-order approximation is not offered
(``order=2`` raises). Weights train on ``data.train``, alpha on ``data.val`` (DARTS halves CIFAR's
training set for the same purpose; our splits already hold a validation set).

The collapse onto skip connections (Zela et al., ICLR 2020; Chu et al., "DARTS-: Robustly
Stepping out of Performance Collapse Without Indicators", ICLR 2021) is addressed by DARTS-:
every mixed node gets an auxiliary skip connection ``beta * x`` outside the mix, with ``beta``
decaying linearly from ``aux_skip`` (1) to 0 over the search, so the skip candidate inside the
mix no longer wins merely because it eases the supernet's optimisation; at the end the
auxiliary skip is gone and alpha alone decides. (Nodes whose input and output shapes differ
get no auxiliary skip.) As a guard, the DARTS+ early stop (Liang et al., 2019) is on by
default (``max_skip_edges=2``, DARTS+'s threshold per cell): the search ends after the first
alpha epoch whose argmax architecture has at least that many skip connections, and that
epoch's alpha is the result; DARTS+'s second criterion (stable alpha ranks) is not
implemented. Further, as in the papers: the first ``warmup_epochs`` train the weights only (as
PC-DARTS, Xu et al., ICLR 2020), because alpha learned against untrained convolutions favours
parameter-free ops; batch norm inside the candidates has its affine parameters frozen at
(1, 0), as DARTS searches with ``affine=False``; and pooling candidates are followed by a
``BatchNorm2d(affine=False)``, as in DARTS's search ``MixedOp``, so their output scale matches
the convolutions' (the exported architecture has no such batch norm, also as in DARTS).

``relaxation="gdas"`` replaces the softmax mix with GDAS sampling (Dong & Yang, CVPR 2019):
each batch draws one op per searched parameter by Gumbel-max and trains only that op, with
straight-through gradients to alpha and a temperature falling linearly from ``tau_max`` to
``tau_min`` (10 → 0.1 in GDAS). It is much cheaper per step but, as in the paper, needs long
searches (GDAS runs 250 epochs); on a cell whose only edge feeds a batch norm directly, its
alpha gradient vanishes (batch norm is invariant to the scalar weight), so use ``"softmax"`` there.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import asdict
from dataclasses import dataclass
import math
import time
from typing import Any
from typing import Literal

import torch
from torch import nn
import torch.nn.functional as F

from optuna_nas._experimental import warn_experimental
from optuna_nas._validation import check_int
from optuna_nas._validation import check_optional_int
from optuna_nas._validation import is_int
from optuna_nas.data import Batches
from optuna_nas.data import DataSplits
from optuna_nas.data import make_loader
from optuna_nas.evaluation._hardware import autocast
from optuna_nas.samplers._darts._supernet import DartsSupernet
from optuna_nas.samplers._darts._supernet import export_choices


@dataclass(frozen=True, kw_only=True)
class DartsSearchConfig:
    """Settings of one DARTS search.

    Attributes:
        epochs: Search epochs (passes over ``data.train``), warm-up included. DARTS assumes
            thousands of weight steps (50 CIFAR-10 epochs, ~20,000 steps): alpha only means
            something once the supernet has learned the task, so check the training loss in
            the history (:class:`EpochRecord`). While the supernet is at chance, alpha's
            gradients are noise, and Adam's normalised steps still move it by about
            ``arch_lr`` per step (on ``benchmarks/darts.py``'s synthetic task, 10 epochs at
            ``weight_lr=0.025`` left the loss at ln 2 and alpha ranked ops by chance).
        warmup_epochs: The first epochs train the weights only, alpha fixed at its
            initialisation, as PC-DARTS (Xu et al., ICLR 2020) warms up; without it, alpha learns
            while the convolutions are still untrained and favours parameter-free ops.
            None (default) means ``epochs // 3`` (PC-DARTS: 15 of 50).
        batch_size: Batch size of both splits.
        weight_lr: Initial SGD learning rate of the weights, cosine-annealed to
            ``weight_lr_min`` (DARTS: 0.025 → 0.001).
        weight_lr_min: Final weight learning rate.
        momentum: SGD momentum of the weights (DARTS: 0.9).
        weight_decay: Weight decay of the weights (DARTS: 3e-4).
        grad_clip: Gradient norm clip of the weights (DARTS: 5).
        arch_lr: Adam learning rate of alpha. DARTS uses 3e-4 for ~20,000 steps on CIFAR-10; the
            default 0.01 suits small data sets with tens of steps per epoch.
        arch_weight_decay: Adam weight decay of alpha (DARTS: 1e-3).
        relaxation: ``"softmax"`` (default; DARTS's mix) or ``"gdas"`` (Gumbel sampling).
        tau_max: GDAS's initial Gumbel temperature.
        tau_min: GDAS's final Gumbel temperature.
        aux_skip: DARTS-'s auxiliary skip weight beta at the start of the search, decayed
            linearly to 0 over the epochs; 0 turns it off.
        max_skip_edges: Stop after the first alpha epoch whose argmax has at least this many
            skip connections (DARTS+; default 2); None never stops early.
        order: 1 (first-order DARTS). 2 raises: second-order DARTS is not offered.
        device: Where the supernet trains (never chosen automatically).
        precision: ``"fp32"`` (default) or ``"bf16"`` (autocast of both passes, as
            :class:`~optuna_nas.evaluation.TrainingConfig`'s); ``"fp16"`` is not offered (it
            would need a gradient scaler per optimiser), use bf16.
        channels_last: Image batches in channels-last memory layout (faster convolutions on
            tensor-core GPUs).
    """

    epochs: int = 10
    warmup_epochs: int | None = None
    batch_size: int = 64
    weight_lr: float = 0.025
    weight_lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    arch_lr: float = 0.01
    arch_weight_decay: float = 1e-3
    relaxation: Literal["softmax", "gdas"] = "softmax"
    tau_max: float = 10.0
    tau_min: float = 0.1
    aux_skip: float = 1.0
    max_skip_edges: int | None = 2
    order: int = 1
    device: str = "cpu"
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False

    def __post_init__(self) -> None:
        warn_experimental("DARTS (DartsSearchConfig, DartsSampler)")
        for name in ("epochs", "batch_size"):
            check_int(name, getattr(self, name), minimum=1)
        for name in ("weight_lr", "arch_lr", "grad_clip", "tau_max", "tau_min"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"`{name}` must be finite and > 0, but got {name}={v!r}.")
        for name in ("weight_lr_min", "weight_decay", "arch_weight_decay", "aux_skip"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"`{name}` must be finite and >= 0, but got {name}={v!r}.")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"`0 <= momentum < 1` must hold, but got momentum={self.momentum}.")
        if self.tau_min > self.tau_max:
            raise ValueError(
                f"`tau_min <= tau_max` must hold, but got ({self.tau_min=}, {self.tau_max=})."
            )
        if self.relaxation not in ("gdas", "softmax"):
            raise ValueError(
                f"`relaxation` must be 'gdas' or 'softmax', but got {self.relaxation!r}."
            )
        w = self.warmup_epochs
        if w is not None and (not is_int(w) or not 0 <= w < self.epochs):
            raise ValueError(
                f"`0 <= warmup_epochs < epochs` must hold, but got ({w=}, {self.epochs=})."
            )
        check_optional_int("max_skip_edges", self.max_skip_edges, minimum=1)
        if self.order == 2:
            raise ValueError(
                "`order=2` (second-order DARTS, the unrolled alpha gradient) is not offered; "
                "use order=1, the first-order approximation."
            )
        if self.order != 1:
            raise ValueError(f"`order` must be 1, but got order={self.order!r}.")
        if not isinstance(self.device, str):
            raise TypeError(f"`device` must be a str such as 'cpu', but got {self.device!r}.")
        if self.precision == "fp16":  # type: ignore[comparison-overlap]
            raise ValueError(
                "`precision='fp16'` is not offered for the DARTS search (it would need a "
                "gradient scaler per optimiser); use precision='bf16'."
            )
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"`precision` must be 'fp32' or 'bf16', but got {self.precision!r}.")
        if not isinstance(self.channels_last, bool):
            raise ValueError(
                f"`channels_last` must be a bool, but got channels_last={self.channels_last!r}."
            )

    def to_dict(self) -> dict[str, Any]:
        """The settings a study records; the hardware options only where they differ from
        their defaults, so a search recorded before they existed resumes unchanged."""
        out = asdict(self)
        for name, default in (("precision", "fp32"), ("channels_last", False)):
            if out[name] == default:
                del out[name]
        return out

    @property
    def warmup(self) -> int:
        """The number of warm-up epochs (``warmup_epochs`` resolved)."""
        return self.epochs // 3 if self.warmup_epochs is None else self.warmup_epochs

    def tau(self, epoch: int) -> float:
        """GDAS's temperature in ``epoch`` (from 0): linear from tau_max to tau_min."""
        if self.epochs == 1:
            return self.tau_max
        return self.tau_max - (self.tau_max - self.tau_min) * epoch / (self.epochs - 1)


@dataclass(frozen=True, kw_only=True)
class EpochRecord:
    """What one search epoch left behind (one entry of the study's alpha history)."""

    epoch: int
    alpha: Mapping[str, list[float]]
    train_loss: float
    val_loss: float
    tau: float
    skip_edges: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "alpha": dict(self.alpha),
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "tau": self.tau,
            "skip_edges": self.skip_edges,
            "seconds": self.seconds,
        }


class SearchState:
    """The supernet and its two optimizers (and cosine schedule) during a search."""

    def __init__(self, net: DartsSupernet, config: DartsSearchConfig) -> None:
        self.net = net.to(torch.device(config.device))
        self.config = config
        self.w_opt = torch.optim.SGD(
            net.weight_parameters(),
            lr=config.weight_lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        self.a_opt = torch.optim.Adam(
            net.arch_parameters(),
            lr=config.arch_lr,
            betas=(0.5, 0.999),
            weight_decay=config.arch_weight_decay,
        )

    def set_epoch_lr(self, epoch: int) -> None:
        c = self.config
        lr = (
            c.weight_lr_min
            + (c.weight_lr - c.weight_lr_min) * (1 + math.cos(math.pi * epoch / c.epochs)) / 2
        )
        for group in self.w_opt.param_groups:
            group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "w_opt": self.w_opt.state_dict(),
            "a_opt": self.a_opt.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])


def _loader(
    data: DataSplits, split: str, batch_size: int, seed: int, device: torch.device
) -> Batches:
    return make_loader(data, split, batch_size=batch_size, seed=seed, device=device, shuffle=True)


def _on(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def _cycle(loader: Batches) -> Iterator[Any]:
    while True:
        yield from loader


def skip_edges(state: SearchState, alpha: Mapping[str, list[float]]) -> int:
    """Searched parameters whose argmax choice is a skip connection."""
    choices = export_choices(state.net.plan, alpha)
    return sum(p.skip[p.choices.index(choices[p.name])] for p in state.net.plan.params)


def run_epoch(
    state: SearchState,
    data: DataSplits,
    *,
    epoch: int,
    seed: int,
    update_alpha: bool,
) -> EpochRecord:
    """One search epoch (counted from 0); ``update_alpha=False`` trains weights only.

    Data order and Gumbel noise come from generators seeded by ``(seed, epoch)``, so an epoch
    run after a resume draws exactly what it would have drawn without the interruption.
    """
    start = time.perf_counter()
    c = state.config
    device = torch.device(c.device)
    base = seed * 1_000_003 + epoch * 7919
    gumbel = torch.Generator(device=device).manual_seed(base + 3)
    tau = c.tau(epoch)
    state.set_epoch_lr(epoch)
    state.net.aux_skip = c.aux_skip * (1 - epoch / c.epochs)
    state.net.train()
    val_batches = _cycle(_loader(data, "val", c.batch_size, base + 2, device))
    # Summed on the device and read once per epoch: no step waits for the host.
    t_sum = torch.zeros((), device=device)
    v_sum = torch.zeros((), device=device)
    n = 0
    for xt, yt in _loader(data, "train", c.batch_size, base + 1, device):
        xt, yt = _on(xt, device, c.channels_last), yt.to(device, non_blocking=True)
        if update_alpha:
            xv, yv = next(val_batches)
            xv, yv = _on(xv, device, c.channels_last), yv.to(device, non_blocking=True)
            state.a_opt.zero_grad(set_to_none=True)
            with autocast(c.precision, device):
                arch = state.net.arch_weights(c.relaxation, tau=tau, generator=gumbel)
                v_loss = F.cross_entropy(state.net(xv, arch), yv)
            torch.autograd.backward(v_loss)
            state.a_opt.step()
            v_sum += v_loss.detach().float()
        state.w_opt.zero_grad(set_to_none=True)
        with autocast(c.precision, device):
            weights = state.net.arch_weights(c.relaxation, tau=tau, generator=gumbel)
            t_loss = F.cross_entropy(state.net(xt, [(w.detach(), i) for w, i in weights]), yt)
        torch.autograd.backward(t_loss)
        nn.utils.clip_grad_norm_(state.net.weight_parameters(), c.grad_clip)
        state.w_opt.step()
        t_sum += t_loss.detach().float()
        n += 1
    alpha = state.net.alpha_dict()
    return EpochRecord(
        epoch=epoch,
        alpha=alpha,
        train_loss=float(t_sum.item()) / n,
        val_loss=float(v_sum.item()) / n if update_alpha else float("nan"),
        tau=tau,
        skip_edges=skip_edges(state, alpha),
        seconds=time.perf_counter() - start,
    )


def search(
    state: SearchState,
    data: DataSplits,
    *,
    seed: int,
    start_epoch: int,
    on_epoch: Callable[[EpochRecord, SearchState], None],
) -> tuple[int, bool]:
    """Run epochs ``start_epoch .. epochs - 1``; return (epochs done, stopped early)."""
    c = state.config
    for epoch in range(start_epoch, c.epochs):
        update = epoch >= c.warmup
        record = run_epoch(state, data, epoch=epoch, seed=seed, update_alpha=update)
        on_epoch(record, state)
        skips = record.skip_edges
        if update and c.max_skip_edges is not None and skips >= c.max_skip_edges:
            return epoch + 1, True
    return c.epochs, False
