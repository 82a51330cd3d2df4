"""Hardware constraints on a candidate, checked before any training where possible.

:class:`Constraints` holds the limits. Everything but the accuracy floor is a function of the
spec alone, so :meth:`Constraints.check_before_training` finds an infeasible candidate before a
single training step. :meth:`Constraints.constraint_values` gives Optuna's constraint values
(``<= 0`` feasible), which :meth:`Constraints.record` stores with Optuna 5's
``trial.set_constraint``: TPE, NSGA-II/III and the GP sampler then model the feasible region
themselves, and ``study.best_trials`` leaves infeasible trials out of the Pareto front.

Each value is the *relative* excess ``value / limit - 1`` (``1 - accuracy / min_accuracy`` for
the accuracy floor), so constraints of different units weigh alike in the samplers' summed
violation (TPE and NSGA-II add the positive values up).
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import TYPE_CHECKING
from typing import Any

import torch

from optuna_nas._compat import set_trial_user_attrs
from optuna_nas.constraints._latency_table import LatencyTable
from optuna_nas.metrics import count_flops
from optuna_nas.metrics import count_params
from optuna_nas.metrics import measure_latency
from optuna_nas.metrics import measure_peak_memory
from optuna_nas.nn import build_model
from optuna_nas.spec import ArchitectureSpec

if TYPE_CHECKING:
    import optuna

WEIGHTED_OPS = ("conv", "sep_conv", "mbconv", "linear")
"""Ops counted as a layer by ``max_layers``: the ones with weights."""

_UNITS = {
    "params": "",
    "flops": " FLOPs",
    "layers": " layers",
    "latency_ms": " ms",
    "peak_memory_bytes": " bytes",
    "accuracy": "",
}


@dataclass(frozen=True)
class Violation:
    """One broken constraint: the measured ``value`` and the ``limit`` it breaks."""

    name: str
    value: float
    limit: float

    @property
    def message(self) -> str:
        unit = _UNITS.get(self.name, "")
        rule = ">=" if self.name == "accuracy" else "<="
        return (
            f"{self.name} must be {rule} {self.limit:g}{unit}, but the candidate has "
            f"{self.value:g}{unit}."
        )

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, kw_only=True)
class Constraints:
    """Limits a candidate must respect; ``None`` leaves a quantity free.

    Args:
        max_params: Most parameter elements (:func:`~optuna_nas.metrics.count_params`, computed
            from the spec's shapes: no model is built).
        max_flops: Most FLOPs of one forward at batch 1 (:func:`~optuna_nas.metrics.count_flops`,
            likewise computed from the spec).
        max_latency_ms: Most median forward latency in ms, at ``latency_batch_size``, on
            ``latency_device``.
        latency_device: Where latency counts. ``"cpu"`` and ``"cuda[:i]"`` (when available)
            are measured on a freshly built model with :func:`~optuna_nas.metrics.measure_latency`;
            any other device (or CUDA not at hand) needs ``latency_table``.
        latency_batch_size: Batch size of the latency measurement or table.
        latency_table: A :class:`LatencyTable` measured on ``latency_device``: when given, the
            latency is predicted from it (FBNet / ProxylessNAS) instead of measured.
        max_peak_memory_bytes: Most bytes alive during one inference forward on CPU at
            ``latency_batch_size`` (:func:`~optuna_nas.metrics.measure_peak_memory`).
        max_layers: Most weighted layers (nodes of :data:`WEIGHTED_OPS`).
        min_accuracy: Least validation accuracy (a fraction); known only after training.

    Raises:
        ValueError: If a limit is not positive, or the latency device can be neither measured
            nor looked up.
    """

    max_params: int | None = None
    max_flops: int | None = None
    max_latency_ms: float | None = None
    latency_device: str = "cpu"
    latency_batch_size: int = 1
    latency_table: LatencyTable | None = None
    max_peak_memory_bytes: int | None = None
    max_layers: int | None = None
    min_accuracy: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_params", "max_flops", "max_peak_memory_bytes", "max_layers"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(
                    f"`{name}` must be None or an int >= 1, but got {name}={value!r}."
                )
        lat = self.max_latency_ms
        if lat is not None and not (
            isinstance(lat, (int, float)) and math.isfinite(lat) and lat > 0
        ):
            raise ValueError(f"`max_latency_ms` must be None or finite and > 0, but got {lat!r}.")
        acc = self.min_accuracy
        if acc is not None and not (isinstance(acc, (int, float)) and 0 < acc <= 1):
            raise ValueError(f"`min_accuracy` must be None or in (0, 1], but got {acc!r}.")
        bs = self.latency_batch_size
        if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
            raise ValueError(f"`latency_batch_size >= 1` must hold, but got {bs!r}.")
        table = self.latency_table
        if table is not None:
            if (table.device, table.batch_size) != (self.latency_device, bs):
                raise ValueError(
                    f"`latency_table` was measured on device {table.device!r} at batch size "
                    f"{table.batch_size}, but latency_device={self.latency_device!r} and "
                    f"latency_batch_size={bs}."
                )
        elif lat is not None and not _at_hand(self.latency_device):
            raise ValueError(
                f"`latency_device` {self.latency_device!r} is not at hand to measure on; pass a "
                "`latency_table` measured on it (LatencyTable.measure / LatencyTable.load)."
            )

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the constraints set, in the order they are recorded."""
        pairs = (
            ("params", self.max_params),
            ("flops", self.max_flops),
            ("layers", self.max_layers),
            ("peak_memory_bytes", self.max_peak_memory_bytes),
            ("latency_ms", self.max_latency_ms),
            ("accuracy", self.min_accuracy),
        )
        return tuple(name for name, limit in pairs if limit is not None)

    def limit(self, name: str) -> float:
        limits: dict[str, Any] = {
            "params": self.max_params,
            "flops": self.max_flops,
            "layers": self.max_layers,
            "peak_memory_bytes": self.max_peak_memory_bytes,
            "latency_ms": self.max_latency_ms,
            "accuracy": self.min_accuracy,
        }
        if limits.get(name) is None:
            raise KeyError(f"no constraint {name!r} is set; set ones are {list(self.names)}.")
        return float(limits[name])

    def measure(self, spec: ArchitectureSpec) -> dict[str, float]:
        """The pre-training quantities that have a limit, measured for ``spec``."""
        if not isinstance(spec, ArchitectureSpec):
            raise TypeError(f"`spec` must be an ArchitectureSpec, but got {type(spec).__name__}.")
        out: dict[str, float] = {}
        names = self.names
        if "params" in names:
            out["params"] = float(count_params(spec))
        if "flops" in names:
            out["flops"] = float(count_flops(spec))
        if "layers" in names:
            out["layers"] = float(sum(n.op in WEIGHTED_OPS for n in spec.nodes))
        if "peak_memory_bytes" in names or "latency_ms" in names:
            model: torch.nn.Module | None = None
            if "peak_memory_bytes" in names:
                model = build_model(spec)
                out["peak_memory_bytes"] = float(
                    measure_peak_memory(
                        model, input_shape=spec.input_shape, batch_size=self.latency_batch_size
                    )
                )
            if "latency_ms" in names:
                if self.latency_table is not None:
                    out["latency_ms"] = self.latency_table.predict(spec)
                else:
                    dev = torch.device(self.latency_device)
                    model = (model if model is not None else build_model(spec)).to(dev)
                    out["latency_ms"] = measure_latency(
                        model,
                        input_shape=spec.input_shape,
                        batch_size=self.latency_batch_size,
                        device=dev,
                    ).median_ms
        return out

    def violations(self, measured: dict[str, float]) -> list[Violation]:
        """The constraints that ``measured`` (name -> value) breaks."""
        out = []
        for name, value in measured.items():
            limit = self.limit(name)
            broken = value < limit if name == "accuracy" else value > limit
            if broken:
                out.append(Violation(name, value, limit))
        return out

    def check_before_training(self, spec: ArchitectureSpec) -> list[Violation]:
        """Every pre-training constraint ``spec`` breaks (empty when feasible so far)."""
        return self.violations(self.measure(spec))

    def constraint_values(
        self,
        spec: ArchitectureSpec | None = None,
        accuracy: float | None = None,
        *,
        measured: dict[str, float] | None = None,
    ) -> dict[str, float]:
        """Optuna constraint values, name -> relative excess (``<= 0`` feasible).

        Pre-training ones come from ``measured`` or, if None, from :meth:`measure` of ``spec``;
        ``"accuracy"`` is included when ``accuracy`` is given and ``min_accuracy`` is set.
        """
        if measured is None:
            if spec is None:
                raise ValueError("`spec` or `measured` must be given, but both are None.")
            measured = self.measure(spec)
        out = {name: value / self.limit(name) - 1.0 for name, value in measured.items()}
        if accuracy is not None and self.min_accuracy is not None:
            acc = accuracy if math.isfinite(accuracy) else 0.0
            out["accuracy"] = 1.0 - acc / self.min_accuracy
        return out

    def record(
        self,
        trial: optuna.trial.Trial,
        spec: ArchitectureSpec,
    ) -> list[Violation]:
        """Check ``spec`` before training and record the result on ``trial``.

        Sets ``trial.set_constraint(name, value)`` for every pre-training constraint,
        ``user_attrs["constraint_metrics"]`` (name -> measured value) and
        ``user_attrs["constraint_violations"]`` (one message per violation, empty if none).
        If the candidate is infeasible and ``min_accuracy`` is set, the accuracy constraint is
        recorded too, as for accuracy 0 (it will not be trained), so every trial of the study
        carries the same constraint names, which the GP sampler needs. Returns the violations.
        """
        measured = self.measure(spec)
        found = self.violations(measured)
        values = self.constraint_values(measured=measured, accuracy=0.0 if found else None)
        for name, value in values.items():
            trial.set_constraint(name, value)
        set_trial_user_attrs(  # one transaction on an RDB
            trial,
            {
                "constraint_metrics": measured,
                "constraint_violations": [v.message for v in found],
            },
        )
        return found

    def record_accuracy(self, trial: optuna.trial.Trial, accuracy: float) -> Violation | None:
        """Record the accuracy floor after training (no-op if ``min_accuracy`` is None)."""
        if self.min_accuracy is None:
            return None
        value = self.constraint_values(measured={}, accuracy=accuracy)["accuracy"]
        trial.set_constraint("accuracy", value)
        if value > 0:
            violation = Violation("accuracy", accuracy, self.min_accuracy)
            previous = list(trial.user_attrs.get("constraint_violations", []))
            trial.set_user_attr("constraint_violations", [*previous, violation.message])
            return violation
        return None


def _at_hand(device: str) -> bool:
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        return False
    if dev.type == "cpu":
        return True
    if dev.type == "cuda":
        return torch.cuda.is_available() and (dev.index or 0) < torch.cuda.device_count()
    return False
