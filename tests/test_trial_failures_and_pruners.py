"""One candidate's failure never kills the study; every Optuna pruner drives early stopping.

A diverging candidate, or one that runs out of memory for real (a capped address space), fails
its own trial with a stored reason and the study goes on; each of Optuna's pruners stops trials
of the real pipeline (real training on digits) through ``trial.report`` / ``should_prune``, and
pruned trials keep their curves.
"""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
from optuna.trial import TrialState
import pytest
import torch

from optuna_nas.data import DataSplits
from optuna_nas.data import load_digits
from optuna_nas.evaluation import Evaluation
from optuna_nas.evaluation import Evaluator
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import Report
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.objective import NASObjective
from optuna_nas.objective import is_out_of_memory
from optuna_nas.spaces import ChainSpace
from optuna_nas.spec import ArchitectureSpec

EPOCHS = 3


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_digits(seed=0)


def small_space(data: DataSplits) -> ChainSpace:
    return ChainSpace(
        input_shape=data.input_shape,
        num_outputs=data.num_classes,
        max_depth=2,
        widths=(8, 16),
        stride_layers=(2,),
    )


class FirstCandidate(Evaluator):
    """Evaluates the candidate with seed 0 with ``first``, every other one with ``rest``."""

    def __init__(self, first: Evaluator, rest: Evaluator, data: DataSplits) -> None:
        self.first, self.rest, self.data = first, rest, data

    def evaluate(self, spec: ArchitectureSpec, *, report: Report | None, seed: int) -> Evaluation:
        return (self.first if seed == 0 else self.rest).evaluate(spec, report=report, seed=seed)


def _run(data: DataSplits, first: Evaluator) -> optuna.Study:
    rest = FullTraining(data, training=TrainingConfig(epochs=1), batch_size=128)
    objective = NASObjective(
        small_space(data), FirstCandidate(first, rest, data), objectives=("val_accuracy",)
    )
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.optimize(objective, n_trials=3, catch=(RuntimeError,))
    return study


def test_a_diverging_candidate_fails_with_its_reason_and_the_study_goes_on(
    digits: DataSplits,
) -> None:
    exploding = TrainingConfig(epochs=2, lr=1e12, grad_clip=None, nesterov=False)
    study = _run(digits, FullTraining(digits, training=exploding, batch_size=128))
    first, *others = study.trials
    assert first.state is TrialState.FAIL
    assert first.user_attrs["diverged"] is True
    assert first.user_attrs["fail_reason"].startswith("training diverged")
    assert [t.state for t in others] == [TrialState.COMPLETE] * 2


# A real allocation failure, not a simulated one: the worker's address space is capped 512 MiB
# above what it uses after warming up, so a candidate with 8,192-channel layers (GiBs of weights
# and activations) makes torch's CPU allocator fail while the 8-channel candidates train. It runs
# in a subprocess so that the cap does not reach the test process.
_OOM_WORKER = """
import json, resource, sys
import optuna, torch
from optuna_nas.data import load_digits
from optuna_nas.evaluation import FullTraining, TrainingConfig
from optuna_nas.objective import NASObjective
from optuna_nas.objective import is_out_of_memory
from optuna_nas.spaces import ChainSpace
from optuna_nas.storage import run_study

torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.ERROR)
data = load_digits(seed=0)
space = ChainSpace(input_shape=data.input_shape, num_outputs=data.num_classes, max_depth=2,
                   widths=(8, 8192), stride_layers=(2,))
evaluator = FullTraining(data, training=TrainingConfig(epochs=1), batch_size=128)
objective = NASObjective(space, evaluator, objectives=("val_accuracy",))
study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
run_study(optuna.create_study(), lambda t: 0.0, n_trials=1)  # warm up before the cap
status = open("/proc/self/status").read().splitlines()
vm = int(next(line for line in status if line.startswith("VmSize")).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + 512 * 2**20, resource.RLIM_INFINITY))
run_study(study, objective, n_trials=3)  # no `catch`: a failed candidate must not stop it
json.dump([[t.state.name, t.params, t.user_attrs.get("fail_reason")] for t in study.trials],
          sys.stdout)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="caps memory with RLIMIT_AS")
def test_a_real_cpu_out_of_memory_fails_only_that_candidate() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _OOM_WORKER], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    trials = json.loads(done.stdout.splitlines()[-1])
    wide = [any(v == 8192 for v in params.values()) for _, params, _ in trials]
    assert any(wide), "the seeded sampler drew no 8,192-channel candidate"
    for (state, _, reason), is_wide in zip(trials, wide, strict=True):
        if is_wide:
            assert state == "FAIL"
            assert reason.startswith("out of memory while evaluating this candidate")
            assert "can't allocate memory" in reason
        else:
            assert state == "COMPLETE"
    assert sum(state == "COMPLETE" for state, _, _ in trials) == 3


def test_out_of_memory_is_recognised_on_cuda_and_cpu() -> None:
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    with pytest.raises(RuntimeError) as cpu:
        torch.empty(2**48, dtype=torch.uint8)  # beyond any address space: fails at once
    assert is_out_of_memory(cpu.value)
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


# PatientPruner (the seed's patience rule) is covered on real curves in
# tests/pruners/test_patience_pruner.py: it prunes only when a curve stops improving, which
# these short, steadily rising curves rarely do.
PRUNERS = {
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=1),
    "percentile": lambda: optuna.pruners.PercentilePruner(75.0, n_startup_trials=1),
    "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1),
    "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=EPOCHS),
    "threshold": lambda: optuna.pruners.ThresholdPruner(lower=0.9),
    "wilcoxon": lambda: optuna.pruners.WilcoxonPruner(p_threshold=0.5, n_startup_steps=1),
}


@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_each_optuna_pruner_stops_trials_and_keeps_their_curves(
    name: str, digits: DataSplits
) -> None:
    evaluator = FullTraining(digits, training=TrainingConfig(epochs=EPOCHS), batch_size=128)
    objective = NASObjective(small_space(digits), evaluator, objectives=("val_accuracy",))
    # HyperbandPruner assigns trials to brackets by hashing the study name with the trial
    # number, so a fixed name keeps the run reproducible.
    study = optuna.create_study(
        study_name=f"pruner-{name}",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=1),
        pruner=PRUNERS[name](),
    )
    study.optimize(objective, n_trials=8)
    pruned = [t for t in study.trials if t.state is TrialState.PRUNED]
    assert pruned, f"{name} pruned none of {len(study.trials)} trials"
    for t in study.trials:
        assert t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        curve = t.user_attrs["val_accuracy_curve"]
        assert [t.intermediate_values[step] for step in sorted(t.intermediate_values)] == curve
    assert all(len(t.user_attrs["val_accuracy_curve"]) < EPOCHS for t in pruned)


def test_pareto_pruner_uses_latency_measured_before_training(digits: DataSplits) -> None:
    from optuna_nas.pruners import ParetoPruner

    evaluator = FullTraining(digits, training=TrainingConfig(epochs=EPOCHS), batch_size=128)
    objectives = ("val_accuracy", "latency_ms")
    objective = NASObjective(small_space(digits), evaluator, objectives=objectives)
    study = optuna.create_study(
        directions=objective.directions,
        sampler=optuna.samplers.RandomSampler(seed=2),
        pruner=ParetoPruner(objectives=objectives),
    )
    study.optimize(objective, n_trials=6)
    for t in study.trials:
        assert t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        assert t.user_attrs["latency_ms"] > 0  # known before the first epoch was reported
        curve = t.user_attrs["val_accuracy_curve"]
        assert [t.intermediate_values[step] for step in sorted(t.intermediate_values)] == curve
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        assert t.values[1] == t.user_attrs["latency_ms"]
