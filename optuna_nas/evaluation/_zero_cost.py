"""Zero-cost proxies: score an untrained network from one mini-batch, without training.

Four proxies, each a function of a freshly initialised model and one batch:

* ``synflow``: synaptic flow (Tanaka et al., NeurIPS 2020) as a NAS proxy (Abdelfattah et al.,
  "Zero-Cost Proxies for Lightweight NAS", ICLR 2021). As in their code
  (``foresight/pruners/measures/synflow.py``): a copy of the network *without batch norm*
  (their ``get_prunable_copy(bn=False)``; here every ``BatchNorm2d`` is replaced by an
  identity), converted to double precision, every parameter and buffer replaced by its absolute
  value, one forward of an all-ones input of batch 1, ``sum(output).backward()``, and the
  score is ``sum |w * dL/dw|`` over the weights of every ``Conv2d`` and ``Linear`` layer. No data
  or labels are used.
* ``naswot``: "Neural Architecture Search without Training" (Mellor et al., ICML 2021): for every
  ReLU, the binary code ``c_i = [x_i > 0]`` of each sample's input to it; the kernel
  ``K = sum over ReLUs of (c c^T + (1 - c)(1 - c)^T)`` (Hamming agreement between samples),
  and the score is ``log |det K|``. Their code hooks ``nn.ReLU`` only; this one also hooks the
  other activations of the op vocabulary (ReLU6, SiLU, GELU, Hardswish, Tanh) with the same
  ``x > 0`` code, so that networks without ReLU get a score. Train mode, no gradients.
* ``snip``: connection sensitivity (Lee et al., ICLR 2019), as Abdelfattah et al. use it:
  ``sum |w * dL/dw|`` over ``Conv2d`` and ``Linear`` weights, ``L`` the cross-entropy of the
  batch in train mode (their mask-gradient formulation gives exactly ``|w * dL/dw|``).
* ``grad_norm``: ``sum over Conv2d/Linear layers of ||dL/dw||_2`` (Abdelfattah et al.), same
  loss.

Higher is better for all four (the papers rank by the raw score).
"""

from __future__ import annotations

from collections.abc import Callable
import copy
import math
import time

import torch
from torch import nn
import torch.nn.functional as F

from optuna_nas._validation import check_int
from optuna_nas.data import DataSplits
from optuna_nas.data import sample_batch
from optuna_nas.evaluation._base import Evaluation
from optuna_nas.evaluation._base import Evaluator
from optuna_nas.evaluation._base import Report
from optuna_nas.evaluation._base import build_seeded
from optuna_nas.evaluation._base import check_data
from optuna_nas.evaluation._hardware import check_device
from optuna_nas.spec import ArchitectureSpec

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.Tanh)


def _weighted_layers(model: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _without_batchnorm(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every ``BatchNorm2d`` replaced by ``nn.Identity``."""
    clone = copy.deepcopy(model)
    for parent in list(clone.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(parent, name, nn.Identity())
    return clone


def synflow(model: nn.Module, inputs: torch.Tensor) -> float:
    """The synflow score of ``model`` (see the module docstring); ``model`` is not modified.

    Only the shape of ``inputs`` (one sample's) and its device are used.
    """
    net = _without_batchnorm(model).double()
    with torch.no_grad():
        for tensor in net.state_dict().values():
            tensor.abs_()
    net.zero_grad()
    ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64, device=inputs.device)
    torch.autograd.backward(net(ones).sum())
    score = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for layer in _weighted_layers(net):
        if layer.weight.grad is not None:
            score += (layer.weight.detach() * layer.weight.grad).abs().sum()
    return float(score.item())


def _sum_over_layers(
    net: nn.Module, term: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> float:
    """The sum of ``term(weight, weight.grad)`` over the Conv2d and Linear layers of ``net``
    that have a gradient."""
    total = 0.0
    for layer in _weighted_layers(net):
        if layer.weight.grad is not None:
            total += float(term(layer.weight.detach(), layer.weight.grad).item())
    return total


def _loss_gradients(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> nn.Module:
    """A train-mode deep copy of ``model`` whose ``.grad`` holds the batch's loss gradient."""
    net = copy.deepcopy(model).train()
    net.zero_grad()
    torch.autograd.backward(F.cross_entropy(net(inputs), labels))
    return net


def snip(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """``sum |w * dL/dw|`` over Conv2d and Linear weights (Lee et al. 2019); see the module."""
    net = _loss_gradients(model, inputs, labels)
    return _sum_over_layers(net, lambda w, grad: (w * grad).abs().sum())


def grad_norm(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """``sum ||dL/dw||_2`` over Conv2d and Linear layers (Abdelfattah et al. 2021)."""
    net = _loss_gradients(model, inputs, labels)
    return _sum_over_layers(net, lambda w, grad: grad.norm())


def naswot(model: nn.Module, inputs: torch.Tensor) -> float:
    """``log |det K|`` of the activation-pattern kernel (Mellor et al. 2021); see the module.

    Raises:
        ValueError: If the model has no activation to read a pattern from.
    """
    n = inputs.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=inputs.device)

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        codes = (args[0].reshape(n, -1) > 0).to(torch.float64)
        kernel.add_(codes @ codes.T + (1.0 - codes) @ (1.0 - codes).T)

    activations = [m for m in model.modules() if isinstance(m, _ACTIVATIONS)]
    if not activations:
        raise ValueError(
            "naswot reads the activation patterns of the network's activations, but the model "
            f"has none of {[a.__name__ for a in _ACTIVATIONS]}."
        )
    handles = [m.register_forward_hook(hook) for m in activations]
    was_training = model.training
    try:
        model.train()
        with torch.no_grad():
            model(inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return float(torch.linalg.slogdet(kernel)[1].item())


ZERO_COST_PROXIES: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], float]] = {
    "synflow": lambda m, x, y: synflow(m, x),
    "naswot": lambda m, x, y: naswot(m, x),
    "snip": snip,
    "grad_norm": grad_norm,
}
"""Proxy name -> ``score(model, inputs, labels)``; higher is better for each."""


def zero_cost_score(
    spec: ArchitectureSpec,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    proxy: str,
    seed: int,
) -> float:
    """Build ``spec`` with weights seeded by ``seed`` and score it with ``proxy`` on one batch."""
    if proxy not in ZERO_COST_PROXIES:
        raise ValueError(f"`proxy` must be one of {sorted(ZERO_COST_PROXIES)}, but got {proxy!r}.")
    model = build_seeded(spec, seed=seed).to(inputs.device)
    return ZERO_COST_PROXIES[proxy](model, inputs, labels)


class ZeroCostEvaluator(Evaluator):
    """Score each candidate with a zero-cost proxy at initialisation, on one mini-batch.

    Args:
        data: The task (any :class:`~optuna_nas.data.DataSplits`); the mini-batch is
            ``batch_size`` training images drawn with ``batch_seed``
            (:func:`~optuna_nas.data.sample_batch`, un-augmented), the same batch for every
            candidate, as in the papers.
        proxy: ``"synflow"``, ``"naswot"``, ``"snip"`` or ``"grad_norm"``.
        batch_size: Images in the mini-batch (Mellor et al. use 128; Abdelfattah et al. 64).
        device: Where the network runs (never chosen automatically).
        batch_seed: Seed of the mini-batch draw.

    The value is ``{"zero_cost": score}`` (higher is better; add ``"zero_cost": "maximize"`` to
    the objectives); no accuracy is claimed. A non-finite score (e.g. NASWOT's ``-inf`` for a
    singular kernel, synflow overflowing) is returned as is; the pipeline records it as the
    worst value. ``Evaluation.model`` is the untrained network (for cost objectives).
    """

    data: DataSplits

    def __init__(
        self,
        data: DataSplits,
        *,
        proxy: str,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
        batch_seed: int = 0,
    ) -> None:
        if proxy not in ZERO_COST_PROXIES:
            raise ValueError(
                f"`proxy` must be one of {sorted(ZERO_COST_PROXIES)}, but got {proxy!r}."
            )
        batch_size = check_int("batch_size", batch_size, minimum=2)
        self.data = check_data(data)
        n = len(data.train)  # type: ignore[arg-type]
        if batch_size > n:
            raise ValueError(
                f"`batch_size` must be at most the {n} training images, but got {batch_size=}."
            )
        self.proxy = proxy
        self.device = check_device(device)
        self.inputs, self.labels = sample_batch(
            data, "train", size=batch_size, seed=batch_seed, device=self.device
        )

    def evaluate(self, spec: ArchitectureSpec, *, report: Report | None, seed: int) -> Evaluation:
        start = time.perf_counter()
        model = build_seeded(spec, seed=seed).to(self.device)
        score = ZERO_COST_PROXIES[self.proxy](model, self.inputs, self.labels)
        return Evaluation(
            values={"zero_cost": score},
            metrics={
                "zero_cost_proxy": self.proxy,
                f"zero_cost_{self.proxy}": score if math.isfinite(score) else str(score),
                "zero_cost_seconds": round(time.perf_counter() - start, 4),
            },
            model=model,
        )
