"""The per-trial pipeline: suggest a spec, record it, build it, train it, return its objectives.

:class:`NASObjective` is a plain callable for :meth:`optuna.study.Study.optimize`. Everything a
later process needs is written to the trial: the spec as JSON (``user_attrs["spec"]``), its
canonical hash, its parameter count and FLOPs (computed from the spec's inferred shapes before
any training, without building the network), the validation curve and the training time.
Plain Optuna tools read all of it without importing optuna_nas. The per-trial bookkeeping is
kept to a few storage round trips: the spec's attrs are written in one transaction on an RDB,
and the study's history is read once per worker (see below), not once per trial.

Before training, the trial looks its canonical hash up in the study (race-free between workers,
see :mod:`optuna_nas.storage._dedup`): an architecture already evaluated, or being evaluated by
another worker, is not trained again; the trial copies that trial's values and metrics and
records ``user_attrs["duplicate_of"]``. The finished trials are looked up once, on the first
trial of a study in this process; architectures evaluated after that hold claims, which every
trial checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
import math
from typing import Any
from typing import Literal

import optuna
from optuna.trial import FrozenTrial
import torch

from optuna_nas import _compat
from optuna_nas._checkpoint import TrialCheckpoint
from optuna_nas._compat import ArtifactStore
from optuna_nas._compat import set_trial_user_attrs
from optuna_nas._compat import started_system_attrs
from optuna_nas._failures import CandidateFailed
from optuna_nas._study_setup import check_setup
from optuna_nas._study_setup import describe_setup
from optuna_nas.constraints import Constraints
from optuna_nas.data import DataError
from optuna_nas.evaluation import Evaluator
from optuna_nas.export import save_weights as upload_weights
from optuna_nas.metrics import count_flops
from optuna_nas.metrics import count_params
from optuna_nas.metrics import measure_latency
from optuna_nas.nn import build_model
from optuna_nas.pruners import report_and_prune
from optuna_nas.report import attach_architecture
from optuna_nas.spaces import SearchSpace
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import canonical_hash
from optuna_nas.storage import copy_duplicate
from optuna_nas.storage import find_or_claim
from optuna_nas.storage._dedup import finished_by_hash

__all__ = ["OBJECTIVES", "CandidateFailed", "NASObjective", "is_out_of_memory"]

#: Objective name -> Optuna direction. Accuracy is a fraction in [0, 1].
OBJECTIVES: dict[str, Literal["maximize", "minimize"]] = {
    "val_accuracy": "maximize",
    "params": "minimize",
    "flops": "minimize",
    "latency_ms": "minimize",
    "zero_cost": "maximize",  # ZeroCostEvaluator's proxy score
    "predicted_accuracy": "maximize",  # PredictorEvaluator: trained during warm-up, then predicted
}


class NASObjective:
    """Evaluate each trial's architecture and return the requested objectives.

    Args:
        space: The search space.
        evaluator: How a candidate is scored, e.g.
            :class:`~optuna_nas.evaluation.FullTraining`; if it has ``data``, the space must
            build networks for that data's shape and classes.
        objectives: Names from :data:`OBJECTIVES`, in the order the study's directions follow
            (:attr:`directions` gives them).
        seed: Base seed; trial ``n`` is evaluated with seed ``seed + n``.
        device: Where the latency objective is measured, before training, on a fresh build of
            the spec (never chosen automatically).
        latency_batch_size: Batch size of the latency measurement, if requested.
        deduplicate: Evaluate each canonical architecture once per study (see the module
            docstring); ``False`` trains every trial.
        duplicate_timeout: Seconds a trial waits for another worker's trial that evaluates the
            same architecture before it fails with
            :class:`~optuna_nas.storage.DuplicateWaitTimeout` (``None``: as long as that trial
            runs; with heartbeats a dead worker's trial is failed and taken over).
        duplicate_poll_interval: Seconds between checks of that trial's state.
        artifact_store: Where each trial's architecture diagram (and, with ``save_weights``,
            its trained weights) is uploaded, so optuna-dashboard shows them and
            ``optuna-nas export`` finds them; ``None`` uploads nothing.
        save_weights: Upload each trained model's ``state_dict`` to ``artifact_store``.
        constraints: Hardware/accuracy limits. Those computable before training (params,
            FLOPs, layers, latency, peak memory) are checked first: an infeasible candidate is
            recorded with ``trial.set_constraint`` and its reasons in
            ``user_attrs["constraint_violations"]``, trains zero steps, and completes with its
            cost objectives (accuracy objectives get their worst value), so TPE, NSGA-II and GP
            learn the feasible region and ``study.best_trials`` leaves it out.
        allow_setup_change: Resume a study made with another space, other objectives or
            another evaluator kind (see :meth:`check_study`), recording this set-up; by
            default that is refused with one error listing the differences.

    Single-objective studies report the validation accuracy every epoch with ``trial.report``
    and stop when ``trial.should_prune()`` says so. Optuna refuses ``trial.report`` in
    multi-objective studies, so there the curve is written as intermediate values through the
    storage and a trial stops only for a pruner with ``supports_multi_objective`` (e.g.
    :class:`~optuna_nas.pruners.ParetoPruner`); see :func:`~optuna_nas.pruners.report_and_prune`.
    The curve is also kept in ``user_attrs["val_accuracy_curve"]``.

    A candidate whose training diverges (non-finite loss) or runs out of memory (any form:
    ``torch.OutOfMemoryError``, a ``RuntimeError`` with an allocator's out-of-memory message,
    ``MemoryError``; while building, timing or evaluating it) raises :class:`CandidateFailed`
    with the reason (also in ``user_attrs["fail_reason"]``).
    :func:`~optuna_nas.storage.run_study` records that trial as failed and goes on; with plain
    ``study.optimize`` pass ``catch=(CandidateFailed,)``.
    """

    def __init__(
        self,
        space: SearchSpace,
        evaluator: Evaluator,
        *,
        objectives: Sequence[str] = ("val_accuracy", "params"),
        seed: int = 0,
        device: str | torch.device = "cpu",
        latency_batch_size: int = 1,
        deduplicate: bool = True,
        duplicate_timeout: float | None = None,
        duplicate_poll_interval: float = 1.0,
        artifact_store: ArtifactStore | None = None,
        save_weights: bool = False,
        constraints: Constraints | None = None,
        allow_setup_change: bool = False,
    ) -> None:
        if save_weights and artifact_store is None:
            raise ValueError(
                "`save_weights=True` needs an `artifact_store` to upload the weights to, but got "
                "artifact_store=None; pass e.g. optuna.artifacts.FileSystemArtifactStore(dir)."
            )
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
        data = evaluator.data
        if data is not None and (space.input_shape, space.num_outputs) != (
            data.input_shape,
            data.num_classes,
        ):
            raise ValueError(
                f"the space builds networks for input_shape={space.input_shape} and "
                f"num_outputs={space.num_outputs}, but the data {data.name!r} has "
                f"input_shape={data.input_shape} and {data.num_classes} classes; create the "
                "space with the data's input_shape and num_classes."
            )
        if isinstance(latency_batch_size, bool) or latency_batch_size < 1:
            raise ValueError(
                f"`latency_batch_size >= 1` must hold, but got {latency_batch_size=}."
            )
        self.space = space
        self.evaluator = evaluator
        self.objectives = tuple(objectives)
        self.seed = seed
        self.device = torch.device(device)
        if duplicate_timeout is not None and not duplicate_timeout > 0:
            raise ValueError(
                f"`duplicate_timeout` must be None or > 0, but got {duplicate_timeout=}."
            )
        if not duplicate_poll_interval > 0:
            raise ValueError(
                f"`duplicate_poll_interval > 0` must hold, but got {duplicate_poll_interval=}."
            )
        self.latency_batch_size = latency_batch_size
        self.deduplicate = bool(deduplicate)
        self.duplicate_timeout = duplicate_timeout
        self.duplicate_poll_interval = duplicate_poll_interval
        self.artifact_store = artifact_store
        self.save_weights = save_weights
        self.constraints = constraints
        self._data_recorded: str | None = None
        self.allow_setup_change = bool(allow_setup_change)
        self._setup = describe_setup(space, self.objectives, evaluator)
        self._checked: tuple[int, str] | None = None
        # The study's finished trials by canonical hash, read once per study (see _copy_duplicate).
        self._finished: tuple[tuple[int, str], dict[str, FrozenTrial]] | None = None

    @property
    def directions(self) -> list[Literal["maximize", "minimize"]]:
        """The study directions matching :attr:`objectives`."""
        return [OBJECTIVES[o] for o in self.objectives]

    def check_study(self, study: optuna.Study) -> None:
        """Record this objective's set-up with a new study, or check it against a resumed one.

        The space (type, options, parameter distributions), the objective names (also set as
        the study's Optuna metric names) and the evaluator's kind are stored in the study; a
        resumed study made with others raises one ``SetupError`` listing the differences,
        before any trial (``run_study`` calls this first; ``__call__`` does on its first trial).
        ``allow_setup_change=True`` records the new set-up instead.
        """
        where = (_compat.study_id(study), study.study_name)
        if self._checked != where:
            check_setup(study, self._setup, allow_change=self.allow_setup_change)
            self._checked = where

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        self.check_study(trial.study)
        spec = self.space.suggest(trial)
        values = self._record_spec(trial, spec)
        if self._infeasible(trial, spec, values):
            return self._output({o: values.get(o, _worst(o)) for o in self.objectives})
        copied = self._copy_duplicate(trial, values["canonical_hash"])
        if copied is not None:
            return copied
        curve: list[float] = []
        result = self._evaluate(trial, spec, curve)
        return self._finish(trial, result, values, curve)

    def _record_spec(self, trial: optuna.Trial, spec: ArchitectureSpec) -> dict[str, Any]:
        """Store the spec, its hash, parameter count and FLOPs (and its diagram) with the trial;
        return the cost values known before any training."""
        params, flops = count_params(spec), count_flops(spec)  # from the spec's shapes: cheap
        values: dict[str, Any] = {
            "params": float(params),
            "flops": float(flops),
            "canonical_hash": canonical_hash(spec),
        }
        set_trial_user_attrs(  # one transaction on an RDB, not one per attr
            trial,
            {
                "spec": spec.to_json(),  # a string: optuna-dashboard shows it whole
                "canonical_hash": values["canonical_hash"],
                "params": params,
                "flops": flops,
            },
        )
        if self.artifact_store is not None:
            attach_architecture(trial, spec, artifact_store=self.artifact_store)
        return values

    def _infeasible(
        self, trial: optuna.Trial, spec: ArchitectureSpec, values: dict[str, Any]
    ) -> bool:
        """Measure latency if it is an objective, then check the constraints computable before
        training; True if the candidate breaks one (it is recorded, and nothing is trained)."""
        if "latency_ms" in self.objectives:
            # Latency does not depend on the weights: measured on a fresh build before any
            # training, so it is a known cost while accuracy evolves (ParetoPruner reads it).
            with self._out_of_memory_fails(trial, "building and timing"):
                values["latency_ms"] = self._latency(build_model(spec), spec)
            trial.set_user_attr("latency_ms", values["latency_ms"])
        return self.constraints is not None and bool(self.constraints.record(trial, spec))

    def _copy_duplicate(
        self, trial: optuna.Trial, spec_hash: str
    ) -> float | tuple[float, ...] | None:
        """The values of the trial that trains (or trained) this architecture, copied into this
        one; None if this trial is the one to train it (or deduplication is off)."""
        if not self.deduplicate:
            return None
        # The history is read once per study: trials finished later were evaluated under
        # claims, which find_or_claim checks (reading it per trial cost a round trip each).
        study = trial.study
        where = (_compat.study_id(study), study.study_name)
        if self._finished is None or self._finished[0] != where:
            self._finished = (where, finished_by_hash(study))
        source = find_or_claim(
            trial,
            spec_hash,
            timeout=self.duplicate_timeout,
            poll_interval=self.duplicate_poll_interval,
            finished=self._finished[1],
        )
        if source is None:
            return None
        copied = copy_duplicate(trial, source, keep=("spec", "params", "flops"))
        return copied if isinstance(copied, float) else tuple(copied)

    def _evaluate(self, trial: optuna.Trial, spec: ArchitectureSpec, curve: list[float]) -> Any:
        """Run the evaluator, reporting every epoch to the trial (``curve`` collects them)."""

        def report(step: int, accuracy: float) -> bool:
            curve.append(accuracy)
            trial.set_user_attr("val_accuracy_curve", curve)
            return report_and_prune(trial, step, accuracy)

        self.evaluator.attach(trial.study)
        self._record_data(trial.study)
        # A retry (after its worker died) trains with the seed of the trial it replaces and
        # resumes from that trial's last checkpoint, so it ends as that trial would have.
        seed = self.seed + _original_trial_number(trial)
        extra: dict[str, Any] = {}
        checkpoint = None
        if self.artifact_store is not None and self.evaluator.supports_checkpoints:
            checkpoint = TrialCheckpoint(trial, self.artifact_store)
            extra["checkpoint"] = checkpoint
        if self.evaluator.supports_params:
            extra["params"] = dict(trial.params)
        try:
            with self._out_of_memory_fails(trial, "evaluating"), self._data_error_recorded(trial):
                return self.evaluator.evaluate(spec, report=report, seed=seed, **extra)
        finally:  # the trial ends here, whatever happened: its scratch state goes
            if checkpoint is not None:
                checkpoint.discard()

    def _finish(
        self, trial: optuna.Trial, result: Any, values: dict[str, Any], curve: list[float]
    ) -> float | tuple[float, ...]:
        """Record what the evaluation found; fail a diverged candidate, prune a stopped one,
        or return the objective values."""
        set_trial_user_attrs(trial, result.metrics)  # one transaction on an RDB
        if result.metrics.get("diverged"):
            raise self._fail(
                trial,
                f"training diverged: the loss became non-finite by epoch "
                f"{result.metrics.get('epochs_run')}; the architecture or the learning rate is "
                "unstable",
            )
        if self.save_weights and self.artifact_store is not None and result.model is not None:
            upload_weights(trial, result.model, artifact_store=self.artifact_store)
        if result.stopped_early:
            if self.constraints is not None and curve:
                self.constraints.record_accuracy(trial, curve[-1])
            raise optuna.TrialPruned(f"stopped early after {len(curve)} reports")
        for key, value in result.values.items():
            # NaN says nothing: the worst value. An infinity is a real extreme (an overflowing
            # synflow score is the largest there is) and Optuna stores it as such.
            values[key] = _worst(key) if math.isnan(value) else value
        if self.constraints is not None:
            accuracy = values.get("val_accuracy", values.get("predicted_accuracy"))
            if accuracy is not None:
                self.constraints.record_accuracy(trial, accuracy)
        missing = [o for o in self.objectives if o not in values]
        if missing:
            raise ValueError(
                f"{type(self.evaluator).__name__} gave no value for objective(s) {missing}; "
                f"it gave {sorted(k for k in values if k != 'canonical_hash')}."
            )
        return self._output(values)

    def _output(self, values: dict[str, Any]) -> float | tuple[float, ...]:
        out = tuple(float(values[o]) for o in self.objectives)
        return out[0] if len(out) == 1 else out

    def _record_data(self, study: optuna.Study) -> None:
        """Name the study's data in its user attrs once (``data``, and ``data_source`` when it
        can be loaded again), so ``export --retrain`` finds it without this process."""
        data = self.evaluator.data
        if data is None or self._data_recorded == study.study_name:
            return
        attrs = study.user_attrs
        if attrs.get("data") != data.name:
            study.set_user_attr("data", data.name)
        if data.source is not None and attrs.get("data_source") != data.source:
            study.set_user_attr("data_source", data.source)
        self._data_recorded = study.study_name

    @contextmanager
    def _data_error_recorded(self, trial: optuna.Trial) -> Iterator[None]:
        """Bad data is the set-up's fault, not the candidate's: the trial records why it failed
        and the error stops the study (every other trial would fail the same way)."""
        try:
            yield
        except DataError as e:
            trial.set_user_attr("fail_reason", f"bad data: {e}")
            raise

    @contextmanager
    def _out_of_memory_fails(self, trial: optuna.Trial, doing: str) -> Iterator[None]:
        try:
            yield
        except (RuntimeError, MemoryError) as e:  # torch.OutOfMemoryError is a RuntimeError
            if not is_out_of_memory(e):
                raise
            if torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
                torch.cuda.empty_cache()  # leave the memory to the next candidate
            raise self._fail(trial, f"out of memory while {doing} this candidate: {e}") from e

    @staticmethod
    def _fail(trial: optuna.Trial, reason: str) -> CandidateFailed:
        trial.set_user_attr("fail_reason", reason)
        return CandidateFailed(f"trial {trial.number}: {reason}")

    def _latency(self, model: torch.nn.Module, spec: ArchitectureSpec) -> float:
        return measure_latency(
            model.to(self.device),
            input_shape=spec.input_shape,
            batch_size=self.latency_batch_size,
            device=self.device,
        ).median_ms


def _original_trial_number(trial: optuna.Trial) -> int:
    """The number of the trial ``trial`` retries (Optuna's ``failed_trial``), else its own.

    As :func:`optuna_nas._checkpoint.original_trial_number`, from the attrs the trial started
    with (``failed_trial`` is set when a retry is created), so no storage read per trial.
    """
    failed = started_system_attrs(trial).get("failed_trial")
    return int(failed) if isinstance(failed, int) else trial.number


def _worst(objective: str) -> Any:
    """The value a non-finite result (a diverged network) is recorded as."""
    return 0.0 if OBJECTIVES.get(objective) == "maximize" else math.inf


# CUDA's caching allocator raises torch.OutOfMemoryError; the CPU allocator (c10's
# DefaultCPUAllocator), older torch builds, cuDNN/cuBLAS workspaces and other backends raise a
# plain RuntimeError with one of these messages; Python's own allocator raises MemoryError.
_OUT_OF_MEMORY_MESSAGES = (
    "DefaultCPUAllocator: can't allocate memory",
    "DefaultCPUAllocator: not enough memory",
    "CUDA out of memory",
    "CUDA error: out of memory",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_ALLOC_FAILED",
    "HIP out of memory",
    "MPS backend out of memory",
    "XPU out of memory",
)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is running out of memory: torch's ``OutOfMemoryError``, a
    ``RuntimeError`` with an allocator's out-of-memory message (CUDA, CPU, ROCm, MPS, XPU), or
    Python's ``MemoryError``."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(
        m in str(error) for m in _OUT_OF_MEMORY_MESSAGES
    )
