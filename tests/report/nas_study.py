"""A small real NAS study shared by the report, CLI, export and dashboard tests.

Small chain-space CNNs are trained for one epoch on the bundled digits data; each trial stores
its spec, hash, params and FLOPs (as NASObjective does), gets its architecture attached for
optuna-dashboard and its trained weights saved as an artifact. Built once per test process
and copied for each test that changes it.
"""

from __future__ import annotations

import atexit
from pathlib import Path
import shutil
import tempfile
import warnings

import optuna
from optuna.artifacts import FileSystemArtifactStore

from optuna_nas.data import load_digits
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.export import save_weights
from optuna_nas.metrics import count_flops
from optuna_nas.metrics import count_params
from optuna_nas.report import attach_architecture
from optuna_nas.spaces import ChainSpace
from optuna_nas.spec import canonical_hash

STUDY = "nas"
TRIALS = 3
_BUILT: dict[str, Path] = {}


def _build(folder: Path) -> None:
    storage = f"sqlite:///{folder / 'nas.db'}"
    store = FileSystemArtifactStore(str(folder / "nas.artifacts"))
    (folder / "nas.artifacts").mkdir()
    data = load_digits(seed=0)
    space = ChainSpace(
        input_shape=data.input_shape, num_outputs=data.num_classes, max_depth=3, widths=(8, 16)
    )
    evaluator = FullTraining(data, training=TrainingConfig(epochs=1), batch_size=128)
    study = optuna.create_study(
        storage=storage,
        study_name=STUDY,
        directions=["maximize", "minimize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["val_accuracy", "params"])
    study.set_user_attr("data", "digits")

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        spec = space.suggest(trial)
        trial.set_user_attr("spec", spec.to_json())
        trial.set_user_attr("canonical_hash", canonical_hash(spec))
        trial.set_user_attr("params", count_params(spec))
        trial.set_user_attr("flops", count_flops(spec))
        attach_architecture(trial, spec, artifact_store=store)
        result = evaluator.evaluate(spec, report=None, seed=trial.number)
        assert result.model is not None
        save_weights(trial, result.model, artifact_store=store)
        return result.values["val_accuracy"], float(count_params(spec))

    study.optimize(objective, n_trials=TRIALS)


def nas_study_copy(dest: Path) -> tuple[str, Path]:
    """Copy the shared study into ``dest``; return its storage URL and artifact folder."""
    if "dir" not in _BUILT:
        folder = Path(tempfile.mkdtemp(prefix="optuna_nas_report_"))
        atexit.register(shutil.rmtree, folder, True)
        _build(folder)
        _BUILT["dir"] = folder
    src = _BUILT["dir"]
    shutil.copy(src / "nas.db", dest / "nas.db")
    shutil.copytree(src / "nas.artifacts", dest / "nas.artifacts")
    return f"sqlite:///{dest / 'nas.db'}", dest / "nas.artifacts"
