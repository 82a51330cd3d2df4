"""The per-trial pipeline: suggest a spec, record it, build it, train it, return its objectives.

:class:`NASObjective` is a plain callable for :meth:`optuna.study.Study.optimize`. Everything a
later process needs is written to the trial: the spec as JSON (``user_attrs["spec"]``), its
canonical hash, its parameter count and FLOPs (computed before any training), the validation
curve and the training time. Plain Optuna tools read all of it without importing optuna_nas.
"""

from __future__ import annotations

from collections.abc import Sequence
import math
from typing import Literal

import optuna
import torch

from optuna_nas.data import DataSplits
from optuna_nas.data import make_loaders
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.evaluation import train_model
from optuna_nas.metrics import count_flops
from optuna_nas.metrics import count_params
from optuna_nas.metrics import measure_latency
from optuna_nas.nn import build_model
from optuna_nas.spaces import SearchSpace
from optuna_nas.spec import canonical_hash

#: Objective name -> Optuna direction. Accuracy is a fraction in [0, 1].
OBJECTIVES: dict[str, Literal["maximize", "minimize"]] = {
    "val_accuracy": "maximize",
    "params": "minimize",
    "flops": "minimize",
    "latency_ms": "minimize",
}


class NASObjective:
    """Train each trial's architecture on ``data`` and return the requested objectives.

    Args:
        space: The search space; its ``input_shape`` and ``num_outputs`` must match ``data``.
        data: Train/validation/test splits (the test split is never used here).
        objectives: Names from :data:`OBJECTIVES`, in the order the study's directions follow
            (:attr:`directions` gives them).
        training: Epochs, optimiser and schedule for every trial.
        batch_size: Training and evaluation batch size.
        seed: Base seed; trial ``n`` initialises its weights and shuffles with ``seed + n``.
        device: Where to train and time the model (never chosen automatically).
        latency_batch_size: Batch size of the latency measurement, if requested.

    Single-objective studies report the validation accuracy every epoch with ``trial.report``
    and stop when ``trial.should_prune()`` says so. Optuna does not allow ``trial.report`` in
    multi-objective studies, so there the curve is kept in ``user_attrs["val_accuracy_curve"]``.
    """

    def __init__(
        self,
        space: SearchSpace,
        data: DataSplits,
        *,
        objectives: Sequence[str] = ("val_accuracy", "params"),
        training: TrainingConfig,
        batch_size: int = 64,
        seed: int = 0,
        device: str | torch.device = "cpu",
        latency_batch_size: int = 1,
    ) -> None:
        if isinstance(objectives, str) or not objectives:
            raise ValueError(
                f"`objectives` must be a non-empty sequence of names, but got {objectives!r}."
            )
        unknown = [o for o in objectives if o not in OBJECTIVES]
        if unknown or len(set(objectives)) != len(objectives):
            raise ValueError(
                f"`objectives` must be distinct names from {sorted(OBJECTIVES)}, "
                f"but got {list(objectives)!r}."
            )
        if (space.input_shape, space.num_outputs) != (data.input_shape, data.num_classes):
            raise ValueError(
                f"the space builds networks for input_shape={space.input_shape} and "
                f"num_outputs={space.num_outputs}, but the data {data.name!r} has "
                f"input_shape={data.input_shape} and {data.num_classes} classes; create the "
                "space with the data's input_shape and num_classes."
            )
        if batch_size < 1 or latency_batch_size < 1:
            raise ValueError(
                f"`batch_size >= 1` and `latency_batch_size >= 1` must hold, but got "
                f"({batch_size=}, {latency_batch_size=})."
            )
        self.space = space
        self.data = data
        self.objectives = tuple(objectives)
        self.training = training
        self.batch_size = batch_size
        self.seed = seed
        self.device = torch.device(device)
        self.latency_batch_size = latency_batch_size

    @property
    def directions(self) -> list[Literal["maximize", "minimize"]]:
        """The study directions matching :attr:`objectives`."""
        return [OBJECTIVES[o] for o in self.objectives]

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        spec = self.space.suggest(trial)
        metrics: dict[str, float] = {
            "params": float(count_params(spec)),
            "flops": float(count_flops(spec)),
        }
        trial.set_user_attr("spec", spec.to_dict())
        trial.set_user_attr("canonical_hash", canonical_hash(spec))
        trial.set_user_attr("params", int(metrics["params"]))
        trial.set_user_attr("flops", int(metrics["flops"]))

        single = len(self.objectives) == 1
        curve: list[float] = []

        def report(epoch: int, accuracy: float) -> bool:
            curve.append(accuracy)
            trial.set_user_attr("val_accuracy_curve", curve)
            if not single:
                return False
            trial.report(accuracy, epoch)
            return trial.should_prune()

        torch.manual_seed(self.seed + trial.number)
        model = build_model(spec)
        train, val, _ = make_loaders(
            self.data, batch_size=self.batch_size, seed=self.seed + trial.number
        )
        result = train_model(
            model,
            train,
            val,
            config=self.training,
            device=self.device,
            report=report,
            input_shape=spec.input_shape,
        )
        trial.set_user_attr("train_seconds", round(result.train_seconds, 3))
        trial.set_user_attr("epochs_run", result.epochs_run)
        trial.set_user_attr("diverged", result.diverged)
        if result.stopped_early:
            raise optuna.TrialPruned(f"pruned after epoch {result.epochs_run}")
        accuracy = result.final_val_accuracy
        metrics["val_accuracy"] = accuracy if math.isfinite(accuracy) else 0.0
        if "latency_ms" in self.objectives:
            latency = measure_latency(
                model,
                input_shape=spec.input_shape,
                batch_size=self.latency_batch_size,
                device=self.device,
            )
            metrics["latency_ms"] = latency.median_ms
            trial.set_user_attr("latency_ms", latency.median_ms)
        values = tuple(metrics[o] for o in self.objectives)
        return values[0] if single else values
