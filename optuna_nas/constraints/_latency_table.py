"""A per-op latency lookup table: measure each layer once, predict a network as the sum.

FBNet (Wu et al., CVPR 2019) and ProxylessNAS (Cai et al., ICLR 2019) estimate a network's
latency on a target device as the sum of its layers' latencies, each measured once on that
device for its (op, configuration, input shape) and stored in a table. :class:`LatencyTable`
does the same for :class:`~optuna_nas.spec.ArchitectureSpec` nodes: a key is the node's op, its
full config and the shapes of its inputs; the latency of a spec is the sum over its nodes. An
``identity`` node costs nothing (the builder emits no code for it); ``add``, ``concat`` and
``zero`` are timed as the tensor operations the builder emits. Like FBNet's, the sum ignores the
per-forward overhead outside the layers and any overlap between them; the benchmark
``benchmarks/evaluators.py`` reports the resulting error against measured latency.

The table is JSON (:meth:`LatencyTable.save` / :meth:`LatencyTable.load`): measure it once on
the device (e.g. a phone or an accelerator you do not search on) and predict anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
import json
import operator
import os
from pathlib import Path
import statistics
import time
from typing import Any

import torch

from optuna_nas.nn import build_model
from optuna_nas.nn import module_name
from optuna_nas.spec import ArchitectureSpec

FORMAT_VERSION = 1


def node_key(spec: ArchitectureSpec, node_id: str) -> str:
    """The table key of one node: JSON of its op, full config and input shapes."""
    node = spec.node(node_id)
    shapes = [list(spec.shape(i)) for i in spec.inputs(node_id)]
    return json.dumps([node.op, dict(node.config), shapes], sort_keys=True, separators=(",", ":"))


class LatencyTable:
    """Per-op latencies (ms) on one device at one batch size; see the module docstring.

    Args:
        device: Name of the device the entries were measured on (e.g. ``"cpu"``, ``"cuda"``,
            or any label for a device measured elsewhere).
        batch_size: Batch size of every measurement.
        entries: Key (:func:`node_key`) -> median latency in ms.
        info: Free-form JSON describing the measurement (torch version, threads, ...).
    """

    def __init__(
        self,
        *,
        device: str,
        batch_size: int,
        entries: dict[str, float] | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(device, str) or not device:
            raise ValueError(f"`device` must be a non-empty str, but got {device!r}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size >= 1` must hold, but got {batch_size=}.")
        self.device = device
        self.batch_size = batch_size
        self.entries: dict[str, float] = dict(entries or {})
        self.info: dict[str, Any] = dict(info or {})

    def __len__(self) -> int:
        return len(self.entries)

    # ------------------------------------------------------------------ measuring

    def measure(
        self,
        specs: Iterable[ArchitectureSpec],
        *,
        warmup: int = 10,
        repeats: int = 30,
    ) -> int:
        """Measure every node of ``specs`` whose key is not in the table yet; return how many.

        Runs on :attr:`device`, which must then be a torch device at hand (``"cpu"``,
        ``"cuda"``, ``"cuda:1"``...). Each op runs in eval mode under
        ``torch.inference_mode`` on a standard-normal input of its input shapes, ``warmup``
        untimed runs then ``repeats`` timed ones (synchronised on CUDA); the median is stored.
        """
        dev = torch.device(self.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"`device` {self.device!r} is not available to measure on.")
        added = 0
        gen = torch.Generator(device=dev).manual_seed(0)
        for spec in specs:
            model: torch.nn.Module | None = None
            for node_id in spec.topological_order[1:]:
                key = node_key(spec, node_id)
                if key in self.entries:
                    continue
                if model is None:
                    model = build_model(spec).to(dev).eval()
                fn = _node_callable(spec, node_id, model)
                inputs = [
                    torch.randn((self.batch_size, *spec.shape(i)), device=dev, generator=gen)
                    for i in spec.inputs(node_id)
                ]
                self.entries[key] = (
                    0.0 if fn is None else _time(fn, inputs, dev, warmup=warmup, repeats=repeats)
                )
                added += 1
        self.info.setdefault("torch", torch.__version__)
        self.info.setdefault("threads", torch.get_num_threads())
        return added

    # ------------------------------------------------------------------ predicting

    def missing(self, spec: ArchitectureSpec) -> list[str]:
        """Keys of ``spec``'s nodes that the table lacks."""
        keys = (node_key(spec, n) for n in spec.topological_order[1:])
        return sorted({k for k in keys if k not in self.entries})

    def predict(self, spec: ArchitectureSpec) -> float:
        """The spec's latency in ms: the sum of its nodes' table entries.

        Raises:
            KeyError: If a node's (op, config, input shapes) was never measured; the message
                names the node.
        """
        total = 0.0
        for node_id in spec.topological_order[1:]:
            key = node_key(spec, node_id)
            if key not in self.entries:
                raise KeyError(
                    f"node {node_id!r}: the latency table for device {self.device!r} has no "
                    f"entry for {key}; measure it first with LatencyTable.measure([spec])."
                )
            total += self.entries[key]
        return total

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "device": self.device,
            "batch_size": self.batch_size,
            "info": self.info,
            "entries": dict(sorted(self.entries.items())),
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the table as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LatencyTable:
        """Read a table written by :meth:`save`."""
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{str(path)!r} is not a latency table of format_version {FORMAT_VERSION}."
            )
        return cls(
            device=data["device"],
            batch_size=data["batch_size"],
            entries={str(k): float(v) for k, v in data["entries"].items()},
            info=data.get("info", {}),
        )


Fn = Callable[..., torch.Tensor]


def _node_callable(spec: ArchitectureSpec, node_id: str, model: torch.nn.Module) -> Fn | None:
    """What the built model runs for ``node_id`` (None when it runs nothing)."""
    op = spec.node(node_id).op
    if op == "identity" or (op == "concat" and len(spec.inputs(node_id)) == 1):
        return None
    if op == "zero":
        return lambda x: x.mul(0.0)
    if op == "add":

        def add(*xs: torch.Tensor) -> torch.Tensor:
            out = xs[0]
            for x in xs[1:]:
                out = operator.add(out, x)
            return out

        return add
    if op == "concat":
        return lambda *xs: torch.cat(list(xs), 1)
    module: Fn = getattr(model, module_name(node_id))
    return module


def _time(
    fn: Fn, inputs: list[torch.Tensor], dev: torch.device, *, warmup: int, repeats: int
) -> float:
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda d: None)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            fn(*inputs)
        for _ in range(repeats):
            sync(dev)
            start = time.perf_counter()
            fn(*inputs)
            sync(dev)
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
