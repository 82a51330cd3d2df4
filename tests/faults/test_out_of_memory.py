"""Out of memory in every form fails only its trial, with the reason stored (issue #14, item 3),
and an overflowing zero-cost score is recorded as the best value, not the worst (item 7)."""

from __future__ import annotations

from pathlib import Path
import uuid

import optuna
import pytest
import torch

from optuna_nas.data import load_digits
from optuna_nas.evaluation import Evaluation
from optuna_nas.evaluation import Evaluator
from optuna_nas.evaluation import Report
from optuna_nas.objective import NASObjective
from optuna_nas.objective import is_out_of_memory
from optuna_nas.spaces import ChainSpace
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.storage import run_study
from tests.storage.backends import cleanup
from tests.storage.backends import make_url

OOM_FORMS = [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 79.15 GiB total)"),
    RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously..."),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"),
    MemoryError(),
]


@pytest.mark.parametrize("error", OOM_FORMS, ids=lambda e: type(e).__name__ + ":" + str(e)[:12])
def test_every_out_of_memory_form_is_recognised(error: BaseException) -> None:
    assert is_out_of_memory(error)


def test_other_errors_are_not_out_of_memory() -> None:
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory"))  # not an allocator's error


class _Failing(Evaluator):
    """Raises the next error of ``errors`` for each candidate, then scores 0.5."""

    def __init__(self, errors: list[BaseException]) -> None:
        self.data = load_digits()
        self.errors = list(errors)

    def evaluate(self, spec: ArchitectureSpec, *, report: Report | None, seed: int) -> Evaluation:
        if self.errors:
            raise self.errors.pop(0)
        return Evaluation(values={"val_accuracy": 0.5})


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_out_of_memory_fails_only_its_trial_and_the_study_goes_on(
    backend: str, tmp_path: Path
) -> None:
    url = make_url(backend, tmp_path)
    name = f"oom-{uuid.uuid4().hex[:8]}"
    try:
        study = optuna.create_study(storage=url, study_name=name, direction="maximize")
        data = load_digits()
        space = ChainSpace(input_shape=data.input_shape, num_outputs=10)
        objective = NASObjective(
            space, _Failing(OOM_FORMS), objectives=("val_accuracy",), deduplicate=False
        )
        run_study(study, objective, n_trials=2)  # no `catch`: OOM is always the candidate's
        states = [t.state for t in study.trials]
        failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
        assert len(failed) == len(OOM_FORMS)
        assert states.count(optuna.trial.TrialState.COMPLETE) == 2
        for trial in failed:
            assert trial.user_attrs["fail_reason"].startswith(
                "out of memory while evaluating this candidate"
            )
    finally:
        cleanup(url, [name])


class _Overflowing(Evaluator):
    def __init__(self, score: float) -> None:
        self.data = load_digits()
        self.score = score

    def evaluate(self, spec: ArchitectureSpec, *, report: Report | None, seed: int) -> Evaluation:
        return Evaluation(values={"zero_cost": self.score})


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_overflowing_zero_cost_score_is_the_best_and_nan_the_worst(
    backend: str, tmp_path: Path
) -> None:
    url = make_url(backend, tmp_path)
    name = f"zc-{uuid.uuid4().hex[:8]}"
    try:
        study = optuna.create_study(storage=url, study_name=name, direction="maximize")
        data = load_digits()
        space = ChainSpace(input_shape=data.input_shape, num_outputs=10)
        for score in (3.0, float("inf"), float("nan")):
            objective = NASObjective(
                space, _Overflowing(score), objectives=("zero_cost",), deduplicate=False
            )
            study.optimize(objective, n_trials=1)
        values = [t.value for t in optuna.load_study(study_name=name, storage=url).trials]
        assert values == [3.0, float("inf"), 0.0]
        assert study.best_trial.number == 1
    finally:
        cleanup(url, [name])
