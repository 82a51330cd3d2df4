"""Exporting the winner: choosing the trial, its stored weights, torch.export, retraining."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts import download_artifact
import pytest
import torch

from optuna_nas.data import load_digits
from optuna_nas.data import make_loaders
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.evaluation import evaluate_accuracy
from optuna_nas.export import export_trial
from optuna_nas.export import select_trial
from optuna_nas.nn import build_model
from optuna_nas.spec import ArchitectureSpec
from tests.report.nas_study import STUDY
from tests.report.nas_study import nas_study_copy


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[optuna.Study, Path]:
    storage, artifacts = nas_study_copy(tmp_path_factory.mktemp("export"))
    return optuna.load_study(study_name=STUDY, storage=storage), artifacts


def test_select_trial_by_objective_and_limits(stored: tuple[optuna.Study, Path]) -> None:
    study, _ = stored
    trials = study.trials
    most_accurate = max(trials, key=lambda t: (t.values[0], -t.number))
    smallest = min(trials, key=lambda t: (t.values[1], t.number))
    assert select_trial(study).number == most_accurate.number
    assert select_trial(study, objective="params").number == smallest.number
    assert select_trial(study, objective=1).number == smallest.number
    limit = int(smallest.user_attrs["params"])
    assert select_trial(study, max_params=limit).number == smallest.number
    assert select_trial(study, trial=2).number == 2
    with pytest.raises(ValueError, match="no feasible complete trial"):
        select_trial(study, max_params=limit - 1)
    with pytest.raises(ValueError, match="stores 'latency_ms'"):
        select_trial(study, max_latency_ms=1.0)
    with pytest.raises(ValueError, match="must be one of"):
        select_trial(study, objective="latency")
    with pytest.raises(ValueError, match="has no trial 99"):
        select_trial(study, trial=99)


def test_export_uses_the_weights_saved_in_the_study(
    stored: tuple[optuna.Study, Path], tmp_path: Path
) -> None:
    study, artifacts = stored
    trial = select_trial(study)
    store = FileSystemArtifactStore(str(artifacts))
    result = export_trial(study, trial, tmp_path / "out", artifact_store=store)
    assert "trained in the study" in result.weights
    spec = ArchitectureSpec.from_json(result.files["spec"].read_text())
    assert spec.to_json() == trial.user_attrs["spec"]
    download_artifact(
        artifact_store=store,
        artifact_id=trial.user_attrs["weights_artifact_id"],
        file_path=str(tmp_path / "w.pt"),
    )
    saved = torch.load(tmp_path / "w.pt", weights_only=True)
    exported = torch.load(result.files["state_dict"], weights_only=True)
    assert saved.keys() == exported.keys()
    assert all(torch.equal(saved[k], exported[k]) for k in saved)
    # The README's loading snippet: a rebuilt model and the exported program agree.
    model = build_model(spec)
    model.load_state_dict(exported)
    model.eval()
    program = torch.export.load(result.files["program"]).module()
    x = torch.randn(5, *spec.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(program(x), model(x))
    # Without the artifact store the weights are fresh, and the manifest says so.
    fresh = export_trial(study, trial, tmp_path / "fresh")
    assert fresh.weights.startswith("untrained")


def test_export_retrains_from_scratch(stored: tuple[optuna.Study, Path], tmp_path: Path) -> None:
    study, _ = stored
    result = export_trial(study, select_trial(study), tmp_path / "re", retrain_epochs=1)
    assert result.weights == "retrained from scratch for 1 epoch on 'digits'"
    # The reported test accuracy is that of the exported weights on the digits test split.
    spec = ArchitectureSpec.from_json(result.files["spec"].read_text())
    model = build_model(spec)
    model.load_state_dict(torch.load(result.files["state_dict"], weights_only=True))
    _, _, test = make_loaders(load_digits(seed=0), batch_size=100, seed=0)
    assert result.test_accuracy == pytest.approx(evaluate_accuracy(model, test, device="cpu"))
    with pytest.raises(ValueError, match="retrain_epochs >= 1"):
        export_trial(study, select_trial(study), tmp_path / "x", retrain_epochs=0)


def test_export_retrains_with_the_given_recipe(
    stored: tuple[optuna.Study, Path], tmp_path: Path
) -> None:
    study, _ = stored
    trial = select_trial(study)
    recipe = TrainingConfig(epochs=50, precision="bf16", channels_last=True, lr=0.02)
    result = export_trial(study, trial, tmp_path / "bf16", retrain_epochs=1, training=recipe)
    assert result.weights == "retrained from scratch for 1 epoch on 'digits'"  # epochs replaced
    plain = export_trial(study, trial, tmp_path / "fp32", retrain_epochs=1)
    assert result.test_accuracy != plain.test_accuracy  # another recipe, other weights
    with pytest.raises(TypeError, match="`training` must be a TrainingConfig"):
        export_trial(study, trial, tmp_path / "x", retrain_epochs=1, training={"lr": 0.1})  # type: ignore[arg-type]
