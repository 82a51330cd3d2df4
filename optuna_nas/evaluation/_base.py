"""The evaluator interface: how one candidate spec is scored.

An evaluator turns a spec into objective values (validation accuracy, at least) and metrics.
The per-trial pipeline (:class:`optuna_nas.objective.NASObjective`) calls it after the cheap,
pre-training checks; it never sees an Optuna trial, only a ``report(step, value) -> bool``
callback that may stop it (the pipeline adapts that to ``trial.report`` / ``should_prune``).
Evaluators that share state across trials through the study (a supernet in the artifact store)
receive the study once through :meth:`Evaluator.attach`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
import math
import statistics
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

import torch

from optuna_nas._validation import check_int
from optuna_nas.data import DataSplits
from optuna_nas.data import make_loaders
from optuna_nas.evaluation._hardware import check_device
from optuna_nas.evaluation._hardware import isolated_rng
from optuna_nas.evaluation._training import Checkpoint
from optuna_nas.evaluation._training import TrainingConfig
from optuna_nas.evaluation._training import TrainingResult
from optuna_nas.evaluation._training import train_model
from optuna_nas.nn import build_model
from optuna_nas.spec import ArchitectureSpec

if TYPE_CHECKING:
    import optuna

Report = Callable[[int, float], bool]


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """What an evaluator found for one spec.

    Attributes:
        values: Objective values by name, e.g. ``{"val_accuracy": 0.97}`` (a fraction).
        metrics: JSON-serialisable extras stored as trial user attrs (cost, curve, ...).
        stopped_early: True when ``report`` asked to stop before the end (the trial is pruned).
        model: The trained model, when the evaluator trained one (for latency or weights).
    """

    values: Mapping[str, float]
    metrics: Mapping[str, Any] = field(default_factory=dict)
    stopped_early: bool = False
    model: torch.nn.Module | None = None


class Evaluator(abc.ABC):
    """Scores a spec; see the module docstring.

    ``data`` is the data set the evaluator scores on, when it has one; the pipeline checks up
    front that the search space builds networks for it.
    """

    data: DataSplits | None = None

    supports_checkpoints: ClassVar[bool] = False
    """True for evaluators whose ``evaluate`` takes ``checkpoint=`` (a
    :class:`~optuna_nas.evaluation._training.Checkpoint`): the pipeline then passes one that
    keeps the training state in the study's artifact store, so a killed trial's retry resumes
    from its last epoch."""

    supports_params: ClassVar[bool] = False
    """True for evaluators whose ``evaluate`` takes ``params=`` (the trial's sampled params, a
    dict): the pipeline then passes them, so an evaluator that learns from params (a
    performance predictor) need not look the candidate up in the study."""

    def attach(self, study: optuna.Study) -> None:  # noqa: B027 - optional hook
        """Called by the pipeline with the study before each evaluation; default: nothing."""

    @abc.abstractmethod
    def evaluate(self, spec: ArchitectureSpec, *, report: Report | None, seed: int) -> Evaluation:
        """Score ``spec``; ``seed`` seeds weight init and data order for this candidate."""


class _TrainingEvaluator(Evaluator):
    """An evaluator that trains the candidate (a network for it) and scores it by its final
    validation accuracy: what :class:`FullTraining` and :class:`ProxyTraining` share."""

    training: TrainingConfig
    batch_size: int
    device: torch.device
    supports_checkpoints = True

    def evaluate(
        self,
        spec: ArchitectureSpec,
        *,
        report: Report | None,
        seed: int,
        checkpoint: Checkpoint | None = None,
    ) -> Evaluation:
        network, data, metrics = self._task(spec)
        model, result = train_candidate(
            network,
            data,
            training=self.training,
            batch_size=self.batch_size,
            device=self.device,
            report=report,
            seed=seed,
            checkpoint=checkpoint,
        )
        return Evaluation(
            values={"val_accuracy": result.final_val_accuracy},
            metrics={**training_metrics(result), **metrics},
            stopped_early=result.stopped_early,
            model=model if network is spec else None,  # a rescaled network is not the candidate
        )

    @abc.abstractmethod
    def _task(self, spec: ArchitectureSpec) -> tuple[ArchitectureSpec, DataSplits, dict[str, Any]]:
        """The network to train for ``spec`` (``spec`` itself, or a cheaper one), the data to
        train and score it on, and metrics to record with the training ones."""


class FullTraining(_TrainingEvaluator):
    """Train the candidate from scratch with :func:`train_model` and report every epoch.

    Args:
        data: Any :class:`~optuna_nas.data.DataSplits`: it trains on ``train`` and scores on
            ``val``, through :func:`~optuna_nas.data.make_loaders`.
        training: The training recipe.
        batch_size: Training batch size (None: ``data.loader.batch_size``).
        device: Where to train (never chosen automatically).
    """

    data: DataSplits

    def __init__(
        self,
        data: DataSplits,
        *,
        training: TrainingConfig,
        batch_size: int | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.data = check_data(data)
        self.training = training
        self.batch_size = resolve_batch_size(batch_size, data)
        self.device = check_device(device)

    def _task(self, spec: ArchitectureSpec) -> tuple[ArchitectureSpec, DataSplits, dict[str, Any]]:
        return spec, self.data, {}


def train_candidate(
    spec: ArchitectureSpec,
    data: DataSplits,
    *,
    training: TrainingConfig,
    batch_size: int,
    device: torch.device,
    report: Report | None,
    seed: int,
    checkpoint: Checkpoint | None = None,
) -> tuple[torch.nn.Module, TrainingResult]:
    """Build ``spec`` with weights seeded by ``seed`` and train it on ``data``.

    The initial weights, the data order and augmentation, and every random draw of training
    (dropout, say) come from streams seeded with ``seed`` alone: two candidates training in
    parallel threads get exactly what serial runs would, and the caller's random state is left
    as it was.
    """
    train, val, _ = make_loaders(data, batch_size=batch_size, seed=seed, device=device)
    model = build_seeded(spec, seed=seed)
    result = train_model(
        model,
        train,
        val,
        config=training,
        device=device,
        report=report,
        input_shape=spec.input_shape,
        seed=seed,
        checkpoint=checkpoint,
    )
    return model, result


def build_seeded(spec: ArchitectureSpec, *, seed: int) -> torch.nn.Module:
    """``build_model(spec)`` with its initial weights drawn from a stream seeded by ``seed``.

    torch's initialisers draw from the global generator, so the build runs in
    :func:`isolated_rng`: two threads building at once each get their seed's weights (the
    same as ``torch.manual_seed(seed)`` then a build), and the caller's state is untouched.
    """
    with isolated_rng(seed):
        return build_model(spec)


def check_data(data: object) -> DataSplits:
    """``data`` if it is a :class:`~optuna_nas.data.DataSplits`, else a clear ``TypeError``."""
    if not isinstance(data, DataSplits):
        raise TypeError(
            f"`data` must be an optuna_nas.data.DataSplits, but got {type(data).__name__}; wrap "
            "your datasets: DataSplits(train=..., val=...)."
        )
    return data


def resolve_batch_size(batch_size: int | None, data: DataSplits) -> int:
    """An evaluator's training batch size: its own if given, else the data's loader setting."""
    if batch_size is None:
        return data.loader.batch_size
    return check_int("batch_size", batch_size, minimum=1)


def training_metrics(result: TrainingResult) -> dict[str, Any]:
    """The user attrs a trained candidate records: validation and train-loss curves, speed,
    time, epochs, divergence (plain JSON: a non-finite loss is stored as its string)."""
    losses = [round(x, 5) if math.isfinite(x) else str(x) for x in result.train_loss_history]
    speeds = [round(x, 1) for x in result.images_per_second_history]
    return {
        "val_accuracy_curve": list(result.val_accuracy_history),
        "train_loss_curve": losses,
        "images_per_second_curve": speeds,
        "images_per_second": round(statistics.median(speeds), 1) if speeds else None,
        "train_seconds": round(result.train_seconds, 3),
        "epochs_run": result.epochs_run,
        "diverged": result.diverged,
    }
