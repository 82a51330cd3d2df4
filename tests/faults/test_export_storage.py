"""``optuna-nas export --retrain`` on a server storage needs no artifact folder (#14, item 5)."""

from __future__ import annotations

from pathlib import Path
import uuid

import optuna
import pytest

from optuna_nas.cli import main
from optuna_nas.data import load_digits
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.objective import NASObjective
from optuna_nas.spaces import ChainSpace
from tests.storage.backends import cleanup
from tests.storage.backends import make_url


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_export_retrain_on_a_server_needs_no_artifact_dir(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = make_url(backend, tmp_path)
    name = f"export-{uuid.uuid4().hex[:8]}"
    try:
        data = load_digits()
        objective = NASObjective(
            ChainSpace(input_shape=data.input_shape, num_outputs=10),
            FullTraining(data, training=TrainingConfig(epochs=1)),
            objectives=("val_accuracy",),
        )
        study = optuna.create_study(storage=url, study_name=name, direction="maximize")
        study.optimize(objective, n_trials=1)
        out = tmp_path / "out"
        main(["export", "--storage", url, "--study", name, "--best", "--retrain", "1",
              "--out", str(out)])  # fmt: skip
        assert (out / "model.pt2").is_file()
        assert "retrained from scratch for 1 epoch on 'digits'" in capsys.readouterr().out
    finally:
        cleanup(url, [name])
