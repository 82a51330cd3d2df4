"""The per-trial pipeline and the quickstart study, end to end on real data and real SQLite."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import optuna
from optuna.trial import TrialState
import pytest

from optuna_nas.data import load_digits
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.metrics import count_params
from optuna_nas.objective import NASObjective
from optuna_nas.spaces import ChainSpace
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import canonical_hash
from optuna_nas.storage import DUPLICATE_OF

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    return load_digits(seed=0)


def test_trial_records_spec_hash_and_metrics(digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    space = ChainSpace(input_shape=digits.input_shape, num_outputs=digits.num_classes)
    objective = NASObjective(
        space,
        FullTraining(digits, training=TrainingConfig(epochs=2)),
        objectives=("val_accuracy", "params"),
    )
    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    study = optuna.create_study(
        storage=storage,
        directions=objective.directions,
        sampler=optuna.samplers.RandomSampler(seed=1),
    )
    study.optimize(objective, n_trials=3)

    again = optuna.load_study(study_name=study.study_name, storage=storage)
    for t in again.trials:
        assert t.state is TrialState.COMPLETE
        spec = ArchitectureSpec.from_json(t.user_attrs["spec"])
        assert spec == space.decode(t.params)
        assert t.user_attrs["canonical_hash"] == canonical_hash(spec)
        assert t.values[1] == t.user_attrs["params"] == count_params(spec)
        assert len(t.user_attrs["val_accuracy_curve"]) == 2
        assert t.values[0] == t.user_attrs["val_accuracy_curve"][-1]
        assert 0.0 <= t.values[0] <= 1.0
        assert t.user_attrs["flops"] > 0


def test_single_objective_reports_and_prunes(digits) -> None:  # type: ignore[no-untyped-def]
    space = ChainSpace(input_shape=digits.input_shape, num_outputs=digits.num_classes)
    objective = NASObjective(
        space,
        FullTraining(digits, training=TrainingConfig(epochs=3)),
        objectives=("val_accuracy",),
    )
    # No 1-epoch network reaches 100% validation accuracy, so every trial is pruned at epoch 1.
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.ThresholdPruner(lower=1.0),
    )
    study.optimize(objective, n_trials=2)
    for t in study.trials:
        assert t.state is TrialState.PRUNED
        assert list(t.intermediate_values) == [1]
        assert t.user_attrs["epochs_run"] == 1


def test_objective_rejects_bad_arguments(digits) -> None:  # type: ignore[no-untyped-def]
    space = ChainSpace(input_shape=(3, 8, 8), num_outputs=10)
    with pytest.raises(ValueError, match=r"the space builds networks for input_shape=\(3, 8, 8\)"):
        NASObjective(space, FullTraining(digits, training=TrainingConfig(epochs=1)))
    space = ChainSpace(input_shape=digits.input_shape, num_outputs=10)
    with pytest.raises(ValueError, match=r"`objectives` must be distinct names from"):
        NASObjective(
            space,
            FullTraining(digits, training=TrainingConfig(epochs=1)),
            objectives=("accuracy",),
        )


def test_quickstart_resumes_and_plain_optuna_reads_it(tmp_path: Path) -> None:
    db = tmp_path / "quickstart.db"
    cmd = [sys.executable, str(ROOT / "studies" / "quickstart.py"), "--storage", f"sqlite:///{db}"]
    first = subprocess.run(
        [*cmd, "--trials", "2", "--epochs", "1"], capture_output=True, text=True, check=True
    )
    assert "Pareto front" in first.stdout
    assert f"optuna-dashboard sqlite:///{db}" in first.stdout
    subprocess.run([*cmd, "--trials", "3", "--epochs", "1"], capture_output=True, check=True)

    # The plain `optuna trials` command, in a process where importing optuna_nas fails.
    blocked = (
        "import sys; sys.modules['optuna_nas'] = None; from optuna.cli import main; "
        "sys.argv[0] = 'optuna'; sys.exit(main())"
    )
    listed = subprocess.run(
        [
            sys.executable,
            "-c",
            blocked,
            "trials",
            "--storage",
            f"sqlite:///{db}",
            "--study-name",
            "quickstart",
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    trials = json.loads(listed.stdout)
    assert [t["number"] for t in trials] == [0, 1, 2]  # resumed to 3 in all, not 2 + 3
    assert all(t["state"] == "COMPLETE" for t in trials)


def _one_architecture_space(digits):  # type: ignore[no-untyped-def]
    return ChainSpace(
        input_shape=digits.input_shape,
        num_outputs=digits.num_classes,
        min_depth=1,
        max_depth=1,
        ops=("conv_3x3",),
        widths=(8,),
        skips=("none",),
        activations=("relu",),
        stride_layers=(),
    )


class _CountingTraining(FullTraining):
    calls = 0

    def evaluate(self, spec, *, report, seed):  # type: ignore[no-untyped-def]
        type(self).calls += 1
        return super().evaluate(spec, report=report, seed=seed)


def test_same_architecture_is_trained_once_and_copied(digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    space = _one_architecture_space(digits)
    evaluator = _CountingTraining(digits, training=TrainingConfig(epochs=1))
    objective = NASObjective(space, evaluator, objectives=("val_accuracy", "params"))
    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    study = optuna.create_study(storage=storage, directions=objective.directions)
    study.optimize(objective, n_trials=3)
    assert _CountingTraining.calls == 1
    first, *copies = study.trials
    assert DUPLICATE_OF not in first.user_attrs
    for t in copies:
        assert t.state is TrialState.COMPLETE
        assert t.values == first.values
        assert t.user_attrs[DUPLICATE_OF] == 0
        assert t.user_attrs["val_accuracy_curve"] == first.user_attrs["val_accuracy_curve"]
        assert t.user_attrs["canonical_hash"] == first.user_attrs["canonical_hash"]

    again = NASObjective(
        space, evaluator, objectives=("val_accuracy", "params"), deduplicate=False
    )
    study.optimize(again, n_trials=1)
    assert _CountingTraining.calls == 2
    assert DUPLICATE_OF not in study.trials[-1].user_attrs
