"""Smoke run of ``studies/weight_sharing.py``: one supernet per study, trained once, reused on
resume; every candidate is scored with it and nothing is trained per trial."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import optuna
import pytest

STUDY = Path(__file__).resolve().parents[2] / "studies" / "weight_sharing.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("study_weight_sharing", STUDY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_weight_sharing_study_trains_its_supernet_once_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'ws.db'}"
    args = ["--storage", storage, "--supernet-epochs", "1", "--heartbeat", "2"]
    study = _load().main([*args, "--trials", "3"])
    first = capsys.readouterr().out
    assert "Supernet: artifact" in first and "trained here (17 steps)" in first
    study = _load().main([*args, "--trials", "5"])
    second = capsys.readouterr().out
    assert "downloaded from the study" in second and "trained here" not in second
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 5
    artifact_ids = {t.user_attrs["supernet_artifact_id"] for t in trials}
    assert len(artifact_ids) == 1  # one supernet scored all five, across both runs
    assert all(0.0 <= t.values[0] <= 1.0 and t.values[1] > 0 for t in trials)
    assert all("val_accuracy_curve" not in t.user_attrs for t in trials)  # nothing trained
    assert (tmp_path / "ws.artifacts").is_dir()
