"""Cost metrics of an architecture: parameters, FLOPs, latency and peak memory.

``count_params`` and ``count_flops`` of a spec are computed from its inferred shapes
(:mod:`optuna_nas._spec_costs`): no model is built and nothing runs, so they cost microseconds
and every trial records both before training. Of a model, they read its parameters and run one
forward pass under ``FlopCounterMode``; tests check that both ways agree on every built-in space.
``measure_latency`` and ``measure_peak_memory`` run a real model on the device you name; no
function here picks a device for you.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence
import contextlib
from dataclasses import dataclass
import statistics
import time
from typing import Any
import weakref

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from optuna_nas._spec_costs import spec_flops
from optuna_nas._spec_costs import spec_params
from optuna_nas._validation import check_typed_int
from optuna_nas.nn import BuiltModel
from optuna_nas.spec import ArchitectureSpec


def count_params(model_or_spec: nn.Module | ArchitectureSpec) -> int:
    """The exact number of parameter elements (trainable or not, shared ones counted once).

    A spec's count is computed from its inferred shapes, without building it; it equals that
    of ``build_model(spec)``.
    """
    if isinstance(model_or_spec, ArchitectureSpec):
        return spec_params(model_or_spec)
    if not isinstance(model_or_spec, nn.Module):
        raise TypeError(
            "`model_or_spec` must be an nn.Module or an ArchitectureSpec, "
            f"but got {type(model_or_spec).__name__}."
        )
    return sum(p.numel() for p in model_or_spec.parameters())


def count_flops(
    model_or_spec: nn.Module | ArchitectureSpec,
    *,
    batch_size: int = 1,
    input_shape: Sequence[int] | None = None,
) -> int:
    """Floating-point operations of one inference forward pass, as ``FlopCounterMode`` counts.

    Uses :class:`torch.utils.flop_counter.FlopCounterMode`: a multiply-accumulate counts as 2
    FLOPs, and only the ops it knows (convolutions, matrix products, attention) are counted;
    batch norm, activations, pooling and additions are not. The model runs in eval mode.

    A spec's FLOPs are computed from its inferred shapes (what ``FlopCounterMode`` counts for
    ``build_model(spec)``, without building or running it). A model runs on the device of its
    parameters with a zero input; its eval/train state is restored. ``input_shape``
    (``(C, H, W)``) is needed only for a model that is not a
    :class:`~optuna_nas.nn.BuiltModel`; spec-derived models take it from their spec.
    """
    check_typed_int("batch_size", batch_size, minimum=1)
    if isinstance(model_or_spec, ArchitectureSpec):
        _resolve_input_shape(model_or_spec, input_shape)  # refuses a second input shape
        return spec_flops(model_or_spec, batch_size)
    if not isinstance(model_or_spec, nn.Module):
        raise TypeError(
            "`model_or_spec` must be an nn.Module or an ArchitectureSpec, "
            f"but got {type(model_or_spec).__name__}."
        )
    model = model_or_spec
    shape = _resolve_input_shape(model, input_shape)
    x = torch.zeros((batch_size, *shape), device=_model_device(model))
    counter = FlopCounterMode(display=False)
    with _eval_mode(model), torch.no_grad(), counter:
        model(x)
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class LatencyResult:
    """Wall-clock time of one forward pass over ``repeats`` timed runs, in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    repeats: int
    batch_size: int
    device: str


def measure_latency(
    model: nn.Module,
    *,
    input_shape: Sequence[int],
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    warmup: int = 10,
    repeats: int = 50,
) -> LatencyResult:
    """Time ``model`` on a ``(batch_size, *input_shape)`` standard-normal input on ``device``.

    The model must already be on ``device``. It runs in eval mode under
    ``torch.inference_mode`` (its train/eval state is restored afterwards); ``warmup`` untimed
    runs come first, then each of ``repeats`` runs is timed alone with ``time.perf_counter``,
    with ``torch.cuda.synchronize`` before and after it on CUDA so the time covers the kernels.
    The thread count is whatever ``torch.get_num_threads()`` is: fix it for comparable numbers.
    """
    dev = _check_device(model, device)
    shape = _check_shape(input_shape)
    check_typed_int("batch_size", batch_size, minimum=1)
    check_typed_int("repeats", repeats, minimum=1)
    check_typed_int("warmup", warmup, minimum=0)
    sync = torch.cuda.synchronize if dev.type == "cuda" else _no_sync
    x = _random_input(shape, batch_size, dev)
    times: list[float] = []
    with _eval_mode(model), torch.inference_mode():
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            sync(dev)
            start = time.perf_counter()
            model(x)
            sync(dev)
            times.append((time.perf_counter() - start) * 1e3)
    deciles = statistics.quantiles(times, n=10, method="inclusive") if repeats > 1 else times * 9
    return LatencyResult(
        median_ms=statistics.median(times),
        p10_ms=deciles[0],
        p90_ms=deciles[-1],
        mean_ms=statistics.fmean(times),
        repeats=repeats,
        batch_size=batch_size,
        device=str(dev),
    )


def measure_peak_memory(
    model: nn.Module,
    *,
    input_shape: Sequence[int],
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    training: bool = False,
) -> int:
    """Peak bytes held by ``model``'s tensors during one pass on a ``(batch_size, *input_shape)``
    input on ``device``.

    The peak is the bytes of the model's parameters and buffers plus the most bytes of tensor
    storage alive at once among those created during the pass: the input, activations,
    tensors saved for backward and, when ``training``, the gradients (computed with
    ``torch.autograd.grad`` on the sum of the output, so ``.grad`` fields are left alone).
    Without ``training`` the model runs in eval mode under ``torch.inference_mode``; with it,
    in train mode, and its buffers (batch-norm statistics) and the RNG state are restored.

    On CUDA the extra bytes are ``torch.cuda.max_memory_allocated`` minus the allocation at the
    start (so other tensors on the device do not count; the caching allocator's rounding does).
    On CPU they are measured by a dispatch mode that sees every tensor an ATen op returns and
    a weakref finaliser on each new storage; memory that kernels allocate internally and free
    before returning (e.g. oneDNN workspaces) is not seen.
    """
    dev = _check_device(model, device)
    shape = _check_shape(input_shape)
    check_typed_int("batch_size", batch_size, minimum=1)
    state_bytes = sum({id(s): s.nbytes() for s in _storages(model)}.values())
    saved = {name: b.detach().clone() for name, b in model.named_buffers()}
    devices = [dev] if dev.type == "cuda" else []
    mode = _eval_mode(model) if not training else _train_mode(model)
    with torch.random.fork_rng(devices=devices), mode:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            start = torch.cuda.memory_allocated(dev)
            _one_pass(model, shape, batch_size, dev, training)
            torch.cuda.synchronize(dev)
            extra = torch.cuda.max_memory_allocated(dev) - start
        else:
            with _StorageTracker(_storages(model)) as tracker:
                _one_pass(model, shape, batch_size, dev, training)
            extra = tracker.peak
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(saved[name])
    return state_bytes + extra


# ----------------------------------------------------------------------------- helpers


def _one_pass(
    model: nn.Module, shape: tuple[int, ...], batch_size: int, dev: torch.device, training: bool
) -> None:
    if not training:
        with torch.inference_mode():
            x = _random_input(shape, batch_size, dev)
            model(x)
        return
    x = _random_input(shape, batch_size, dev)
    params = [p for p in model.parameters() if p.requires_grad]
    out = model(x)
    if params:
        grads = torch.autograd.grad(out.sum(), params)
        del grads


def _random_input(shape: tuple[int, ...], batch_size: int, dev: torch.device) -> torch.Tensor:
    """A standard-normal input from a private generator (the global RNG is left alone)."""
    generator = torch.Generator(device=dev).manual_seed(0)
    return torch.randn((batch_size, *shape), device=dev, generator=generator)


class _StorageTracker(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Tracks bytes of tensor storages created under it while they are alive; keeps the peak."""

    def __init__(self, known: Sequence[torch.UntypedStorage]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._known = {id(s) for s in known}
        self._keep = list(known)  # keeps those ids from being reused while tracking
        self._live_ids: set[int] = set()
        self.live = 0
        self.peak = 0

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._track(t.untyped_storage())
        return out

    def _track(self, storage: torch.UntypedStorage) -> None:
        key = id(storage)
        if key in self._known or key in self._live_ids:
            return
        nbytes = storage.nbytes()
        self._live_ids.add(key)
        self.live += nbytes
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._free, key, nbytes)

    def _free(self, key: int, nbytes: int) -> None:
        self._live_ids.discard(key)
        self.live -= nbytes


def _tensors(model: nn.Module) -> Iterator[torch.Tensor]:
    yield from model.parameters()
    yield from model.buffers()


def _storages(model: nn.Module) -> list[torch.UntypedStorage]:
    return [t.untyped_storage() for t in _tensors(model)]


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    with _restore_modes(model):
        model.eval()
        yield


@contextlib.contextmanager
def _train_mode(model: nn.Module) -> Iterator[None]:
    with _restore_modes(model):
        model.train()
        yield


@contextlib.contextmanager
def _restore_modes(model: nn.Module) -> Iterator[None]:
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _no_sync(device: torch.device) -> None:
    pass


def _model_device(model: nn.Module) -> torch.device:
    devices = {t.device for t in _tensors(model)}
    if len(devices) > 1:
        raise ValueError(
            f"the model's tensors are on several devices {sorted(map(str, devices))}."
        )
    return devices.pop() if devices else torch.device("cpu")


def _check_device(model: nn.Module, device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "meta":
        raise ValueError("`device` must hold real memory, but got 'meta'; nothing runs there.")
    if str(dev) == "cuda":  # no index: the current CUDA device, as torch would use
        dev = torch.device("cuda", torch.cuda.current_device())
    for t in _tensors(model):
        if t.device != dev:
            raise ValueError(
                f"the model's tensors must be on `device` ({dev}), but one is on {t.device}; "
                f"move it first with `model.to({str(dev)!r})`."
            )
    return dev


def _check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    ok = (
        isinstance(input_shape, (tuple, list))
        and len(input_shape) >= 1
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in input_shape)
    )
    if not ok:
        raise ValueError(
            "`input_shape` must be a non-empty sequence of positive ints without the batch "
            f"dimension, e.g. (3, 32, 32), but got {input_shape!r}."
        )
    return tuple(input_shape)


def _resolve_input_shape(
    source: nn.Module | ArchitectureSpec, input_shape: Sequence[int] | None
) -> tuple[int, ...]:
    spec = source if isinstance(source, ArchitectureSpec) else None
    if isinstance(source, BuiltModel):
        spec = source.spec
    if spec is None:
        if input_shape is None:
            raise ValueError(
                "`input_shape` is required for a model not built from a spec, but got None."
            )
        return _check_shape(input_shape)
    if input_shape is not None:
        raise ValueError(
            f"`input_shape` must be None for a spec or a built model (it is the spec's "
            f"{spec.input_shape}), but got {input_shape!r}."
        )
    return spec.input_shape
