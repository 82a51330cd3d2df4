"""Smoke runs of the study scripts a user copies, with tiny budgets."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
import pickle
from types import ModuleType

import numpy as np
import optuna
import pytest
import torch

from optuna_nas.report import DIAGRAM_NAME
from tests.nasbench import nasbench_csv

STUDIES = Path(__file__).resolve().parents[2] / "studies"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"study_{name}", STUDIES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mobile_latency_runs_with_a_latency_constraint(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'm.db'}"
    # A limit no network meets: every trial is rejected before training (no curve), completes
    # as infeasible with its constraint, and never reaches the front.
    study = _load("mobile_latency").main(
        ["--trials", "2", "--epochs", "1", "--storage", storage, "--max-latency-ms", "0.0001"]
    )
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert all(t.constraints["latency_ms"] > 0 for t in trials)
    assert all("val_accuracy_curve" not in t.user_attrs for t in trials)
    assert study.best_trials == []
    # A generous limit: one trial trains, is feasible, and is on the front with its diagram.
    study = _load("mobile_latency").main(
        [
            "--trials",
            "3",
            "--epochs",
            "1",
            "--batch-size",
            "512",
            "--storage",
            storage,
            "--max-latency-ms",
            "1000",
        ]
    )
    done = [t for t in study.get_trials() if t.constraints["latency_ms"] <= 0]
    assert len(done) == 1 and done[0].state is optuna.trial.TrialState.COMPLETE
    assert done[0].values[1] == pytest.approx(done[0].user_attrs["latency_ms"])
    assert [t.number for t in study.best_trials] == [done[0].number]
    assert any(DIAGRAM_NAME in str(v) for v in done[0].system_attrs.values())


def test_nb201_tabular_runs_any_sampler_on_the_table(tmp_path: Path) -> None:
    csv = nasbench_csv()
    study = _load("nb201_tabular").main(
        [
            "--sampler",
            "random",
            "--trials",
            "12",
            "--csv",
            str(csv),
            "--storage",
            f"sqlite:///{tmp_path / 'n.db'}",
        ]
    )
    assert len(study.trials) == 12 and study.study_name == "nb201_random_s0"
    best = study.best_trial
    assert 10.0 <= best.value <= 91.61 and best.user_attrs["nb201_arch"].startswith("|")
    with pytest.raises(SystemExit, match="does not exist"):
        _load("nb201_tabular").main(["--csv", str(tmp_path / "no.csv"), "--trials", "1"])


def _fake_cifar(folder: Path) -> None:
    """A CIFAR-10-format folder (python pickle batches) of random images, 10 per batch."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, size=(20, 3072), dtype=np.uint8),
            b"labels": [i % 10 for i in range(20)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))


def test_cifar10_cells_refuses_without_data_or_gpu_and_runs_with_cpu(tmp_path: Path) -> None:
    module = _load("cifar10_cells")
    with pytest.raises(SystemExit, match=r"no CIFAR-10 in .*data_batch_1"):
        module.main(["--data-dir", str(tmp_path / "absent")])
    data = tmp_path / "cifar-10-batches-py"
    _fake_cifar(data)
    storage = f"sqlite:///{tmp_path / 'c.db'}"
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match=r"no CUDA GPU is available.*--cpu"):
            module.main(["--data-dir", str(tmp_path), "--storage", storage])
    study = module.main(
        [
            "--data-dir",
            str(tmp_path),
            "--cpu",
            "--trials",
            "1",
            "--epochs",
            "1",
            "--cells-per-stage",
            "1",
            "--val-size",
            "20",
            "--batch-size",
            "16",
            "--sampler",
            "random",
            "--storage",
            storage,
        ]
    )
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert json.loads(trial.user_attrs["spec"])["input_shape"] == [3, 32, 32]
