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


def test_mobile_latency_runs_with_a_latency_constraint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
    assert "The latency limit 1000 ms rejected 2 of 3 trials" in capsys.readouterr().out


def test_mobile_latency_says_when_its_limit_rejected_nothing(tmp_path: Path) -> None:
    module = _load("mobile_latency")
    study = optuna.create_study(directions=["maximize", "minimize"])
    for latency in (0.5, 0.7, 0.9):
        study.add_trial(
            optuna.trial.create_trial(
                values=[0.9, latency],
                user_attrs={"latency_ms": latency},
                system_attrs={"constraints:latency_ms": latency - 2.0},
            )
        )
    line = module.what_the_limit_did(study, 2.0)
    assert "rejected no trial (latencies 0.50-0.90 ms on this machine)" in line
    assert "--max-latency-ms 0.7 (the median latency)" in line
    assert "rejected 1 of 1" in module.what_the_limit_did(_one_infeasible(), 0.1)
    empty = optuna.create_study(directions=["maximize", "minimize"])
    assert "no complete trial" in module.what_the_limit_did(empty, 2.0)


def _one_infeasible() -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(
        optuna.trial.create_trial(
            values=[0.0, 0.3],
            user_attrs={"latency_ms": 0.3},
            system_attrs={"constraints:latency_ms": 0.2},
        )
    )
    return study


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
    with pytest.raises(SystemExit, match="does not exist") as info:
        _load("nb201_tabular").main(["--csv", str(tmp_path / "no.csv"), "--trials", "1"])
    # The message says what the table is and where it comes from, without pointing at a file
    # of this project's workspace that a user of the package does not have.
    message = str(info.value)
    assert "not shipped with optuna-nas" in message and "NATS-Bench" in message
    assert "--csv PATH" in message and "NASBENCH201_CSV" in message
    assert "shared/nasbench/README.md" not in message


def test_nb201_tabular_names_the_columns_a_table_lacks(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("index,arch,params_m,test_acc_200ep,valid_acc_200ep\n0,|none~0|,0.1,10,10\n")
    module = _load("nb201_tabular")
    with pytest.raises(SystemExit, match=r"lacks the column\(s\) \['valid_acc_12ep'\]"):
        module.main(["--csv", str(table), "--fidelity", "12", "--trials", "1"])
    with pytest.raises(SystemExit, match="has 1 distinct architectures, not the 15625"):
        module.main(["--csv", str(table), "--trials", "1"])
    (tmp_path / "u.csv").write_text("arch,acc\n|none~0|,10\n")
    with pytest.raises(SystemExit, match=r"lacks the column\(s\) \['index', 'params_m'"):
        module.main(["--csv", str(tmp_path / "u.csv"), "--trials", "1"])


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
    with pytest.raises(SystemExit, match=r"no CIFAR10 in .*data_batch_1.*nothing is downloaded"):
        module.main(["--data-dir", str(tmp_path / "absent"), "--device", "cpu"])
    data = tmp_path / "cifar-10-batches-py"
    _fake_cifar(data)
    storage = f"sqlite:///{tmp_path / 'c.db'}"
    if not torch.cuda.is_available():
        with pytest.raises(
            SystemExit, match=r"names a CUDA GPU, but none is available.*--device cpu"
        ):
            module.main(["--data-dir", str(tmp_path), "--storage", storage])
    study = module.main(
        [
            "--data-dir",
            str(tmp_path),
            "--device",
            "cpu",
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
