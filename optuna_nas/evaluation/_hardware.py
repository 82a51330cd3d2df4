"""What the training loop needs from real hardware: device and setting checks, autocast,
cuDNN autotuning and a per-call random stream.

Everything here is used by :func:`~optuna_nas.evaluation.train_model`; :func:`check_device`
and :func:`isolated_rng` are public too, for code around the loop (checking a user's device,
building a candidate's initial weights from its seed).
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import importlib.util
import os
import shutil
import threading
from typing import TYPE_CHECKING
from typing import Any

import torch

if TYPE_CHECKING:
    from optuna_nas.evaluation._training import TrainingConfig

PRECISIONS = ("fp32", "bf16", "fp16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
"""The ``torch.compile`` modes that capture CUDA graphs (through CUDA graph trees)."""

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_device(device: str | torch.device) -> torch.device:
    """The :class:`torch.device` that ``device`` names, checked to exist on this machine.

    ``"cuda"`` without an index resolves to the current CUDA device, so the result always
    carries the index that was used. Nothing is chosen automatically: a device that is not
    there is an error, never a fallback to the CPU.

    Raises:
        ValueError: If ``device`` is not a device name, names a device type this machine does
            not have (``"cuda"`` without CUDA), or an index past the number of devices
            (``"cuda:7"`` on a one-GPU machine); the message says what to pass instead.
    """
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"`device` must name a torch device such as 'cpu' or 'cuda:0', but got {device!r}."
        ) from None
    if resolved.type == "cpu":
        return torch.device("cpu")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"`device={str(device)!r}` names a CUDA device, but CUDA is not available here "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda}); pass "
                "device='cpu' or run on a machine with a CUDA GPU."
            )
        count = torch.cuda.device_count()
        index = torch.cuda.current_device() if resolved.index is None else resolved.index
    else:
        accelerator = torch.accelerator.current_accelerator()
        if accelerator is None or accelerator.type != resolved.type:
            have = "none" if accelerator is None else repr(accelerator.type)
            raise ValueError(
                f"`device={str(device)!r}` names a {resolved.type!r} device, but this machine's "
                f"accelerator is {have}; pass device='cpu' or an available device."
            )
        count = torch.accelerator.device_count()
        index = 0 if resolved.index is None else resolved.index
    if index >= count:
        raise ValueError(
            f"`device={str(device)!r}` names {resolved.type} device {index}, but this machine "
            f"has {count} (indices 0..{count - 1}); pass one of "
            f"{resolved.type}:0 .. {resolved.type}:{count - 1}."
        )
    return torch.device(resolved.type, index)


def check_config_for_device(config: TrainingConfig, device: torch.device) -> None:
    """Reject settings ``device`` cannot honour, before anything is trained.

    Raises:
        ValueError: ``precision="fp16"`` off CUDA, bf16 where autocast has no bf16, a
            CUDA-graph ``compile`` mode or ``cudnn_benchmark`` off CUDA.
        RuntimeError: ``compile`` set where ``torch.compile`` cannot run (the reason is named).
    """
    cuda = device.type == "cuda"
    if config.precision == "fp16" and not cuda:
        raise ValueError(
            f"`precision='fp16'` needs a CUDA device (fp16 autocast with a GradScaler), but "
            f"device={str(device)!r}; use precision='bf16' (or 'fp32') there."
        )
    if config.precision == "bf16":
        if not torch.amp.is_autocast_available(device.type):
            raise ValueError(
                f"`precision='bf16'`: torch has no autocast for device={str(device)!r}; pass "
                "precision='fp32'."
            )
        if cuda and not torch.cuda.is_bf16_supported(including_emulation=False):
            raise ValueError(
                f"`precision='bf16'` needs a GPU with bf16 support (Ampere or newer), but "
                f"{torch.cuda.get_device_name(device)} has none; use precision='fp16'."
            )
    if config.cudnn_benchmark and not cuda:
        raise ValueError(
            f"`cudnn_benchmark=True` autotunes cuDNN convolutions on CUDA devices only, but "
            f"device={str(device)!r}; pass cudnn_benchmark=False."
        )
    if config.compile is None:
        return
    if config.compile in CUDA_GRAPH_MODES and not cuda:
        raise ValueError(
            f"`compile={config.compile!r}` captures CUDA graphs and needs a CUDA device, but "
            f"device={str(device)!r}; pass compile='default' (or "
            "'max-autotune-no-cudagraphs') there, or compile=None."
        )
    problem = _compile_problem(device)
    if problem is not None:
        raise RuntimeError(
            f"`compile={config.compile!r}` needs torch.compile, which cannot run here: "
            f"{problem}; pass compile=None."
        )


def _compile_problem(device: torch.device) -> str | None:
    """Why ``torch.compile`` (TorchInductor) cannot run for ``device`` here, or None."""
    # A private module, but the only place torch says whether TorchDynamo runs here.
    from torch._dynamo.eval_frame import is_dynamo_supported

    if not is_dynamo_supported():
        return "TorchDynamo does not support this Python version or platform"
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        return "TorchInductor generates Triton kernels on CUDA and Triton is not installed"
    if device.type == "cpu":
        compilers = [os.environ.get("CXX"), "g++", "clang++", "c++"]
        if not any(shutil.which(cxx) for cxx in compilers if cxx):
            return "TorchInductor generates C++ on the CPU and no C++ compiler is on PATH"
    return None


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Autocast to ``precision``'s dtype on ``device``; nothing for fp32."""
    dtype = _AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class _CudnnBenchmark:
    """``torch.backends.cudnn.benchmark`` on while at least one training call wants it.

    The flag is process-wide: the first call that turns it on saves the previous value, the
    last one to finish restores it, so concurrent trials in threads do not undo each other.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = False

    @contextlib.contextmanager
    def __call__(self, enabled: bool) -> Iterator[None]:
        if not enabled:
            yield
            return
        with self._lock:
            if self._users == 0:
                self._saved = torch.backends.cudnn.benchmark
                torch.backends.cudnn.benchmark = True
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    torch.backends.cudnn.benchmark = self._saved


cudnn_benchmark = _CudnnBenchmark()


def check_seed(seed: int | None) -> int | None:
    """``seed`` if it is None or a valid torch seed, an int in ``[0, 2**64)``."""
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64
    ):
        raise ValueError(f"`seed` must be None or an int in [0, 2**64), but got {seed=}.")
    return seed


@contextlib.contextmanager
def isolated_rng(seed: int, *, device: str | torch.device = "cpu") -> Iterator[None]:
    """Run a block with torch's global generators (CPU and ``device``'s) seeded with ``seed``.

    The block is isolated like one step of a seeded :func:`train_model` call (see
    :class:`RngStream`): blocks and steps of other threads never run in between, and the
    generators' previous states are restored afterwards. For example, build a candidate's
    initial weights from its seed while other trials train in other threads::

        with isolated_rng(seed):
            model = build_model(spec)

    Raises:
        ValueError: If ``seed`` is not an int in ``[0, 2**64)`` or ``device`` does not exist.
    """
    if check_seed(seed) is None:
        raise ValueError("`seed` must be an int in [0, 2**64), but got seed=None.")
    with RngStream(seed, check_device(device)):
        yield


_RNG_LOCK = threading.RLock()
"""Held while a seeded training call has its stream in torch's global generators."""


class RngStream:
    """A private random stream for one training call, swapped into torch's global generators.

    Dropout and other random ops in a model, an unseeded DataLoader's shuffle and its worker
    seeds all draw from torch's *global* generators (the CPU one and the device's), which every
    thread of a process shares; :func:`torch.random.fork_rng` saves and restores them but does
    not keep two threads apart. So each ``with stream:`` block takes one process-wide lock,
    puts this call's generator states in, runs, saves them back and restores what was there
    before. Blocks of different calls never overlap, so a seeded call draws exactly the
    numbers a serial run with the same seed draws, whatever other threads do, and the
    caller's global state is untouched (``fork_rng``'s guarantee). Code that draws from the
    global generators *outside* such blocks while seeded calls run in other threads is not
    isolated from them.

    With ``seed=None`` the stream is the global generators themselves: no lock, no swap.
    """

    def __init__(self, seed: int | None, device: torch.device) -> None:
        self._device = device if device.type != "cpu" else None
        self._states: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self._outside: tuple[torch.Tensor, torch.Tensor | None] | None = None
        if seed is not None:
            device_state = None
            if self._device is not None:
                device_state = torch.Generator(device=self._device).manual_seed(seed).get_state()
            self._states = (torch.Generator().manual_seed(seed).get_state(), device_state)

    def __enter__(self) -> None:
        if self._states is None:
            return
        _RNG_LOCK.acquire()
        try:
            self._outside = self._swap(self._states)
        except BaseException:
            _RNG_LOCK.release()
            raise

    def __exit__(self, *exc_info: object) -> None:
        if self._states is None or self._outside is None:
            return
        try:
            self._states = self._swap(self._outside)
        finally:
            self._outside = None
            _RNG_LOCK.release()

    def state(self) -> list[torch.Tensor | None] | None:
        """The stream's generator states (``[cpu, device]``), for a checkpoint; None unseeded.

        Only meaningful between ``with`` blocks (inside one, the states are in torch's globals).
        """
        return None if self._states is None else list(self._states)

    def load_state(self, state: list[torch.Tensor | None] | None) -> None:
        """Continue from the states :meth:`state` returned (ignored for an unseeded stream)."""
        if self._states is not None and state is not None:
            cpu, device = state
            if cpu is not None:
                self._states = (cpu, device if self._device is not None else None)

    def _swap(
        self, states: tuple[torch.Tensor, torch.Tensor | None]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Install ``(cpu, device)`` generator states; return the ones they replace."""
        cpu, device = states
        old_cpu = torch.get_rng_state()
        torch.set_rng_state(cpu)
        old_device = None
        if self._device is not None and device is not None:
            module = torch.get_device_module(self._device)
            old_device = module.get_rng_state(self._device)
            module.set_rng_state(device, self._device)
        return old_cpu, old_device
