"""Issue #14.2: corrupted or deleted artifacts, on real SQLite and PostgreSQL studies.

Before: a truncated or deleted supernet failed every following trial with no way to retrain;
a deleted weights file made ``export`` say only "not found"; an unreadable one printed a
pickle traceback. After: the supernet is retrained once or the study stops (an option), with
the artifact id named; ``export`` names the trial, the artifact id and the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import pickle

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState
import pytest
import torch

from optuna_nas.cli import main
from optuna_nas.data import DataSplits
from optuna_nas.data import load_digits
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.evaluation import WeightSharingEvaluator
from optuna_nas.evaluation._supernet_evaluator import ATTR_PREFIX
from optuna_nas.evaluation._supernet_evaluator import SupernetUnavailable
from optuna_nas.export import export_trial
from optuna_nas.export import save_weights
from optuna_nas.nn import build_model
from optuna_nas.objective import NASObjective
from optuna_nas.spaces import ChainSpace
from optuna_nas.storage import ArtifactMissing
from optuna_nas.storage import open_storage
from tests.storage.backends import cleanup
from tests.storage.backends import make_url
from tests.storage.backends import new_name


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_digits(seed=0)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    names: list[str] = []
    url = make_url(request.param, tmp_path)
    yield url, names
    cleanup(url, names)


def _space(data: DataSplits) -> ChainSpace:
    return ChainSpace(
        input_shape=data.input_shape, num_outputs=data.num_classes, max_depth=3, widths=(8,)
    )


def _ws_study(
    data: DataSplits, url: str, name: str, store: FileSystemArtifactStore, **kwargs: str
) -> tuple[optuna.Study, NASObjective, WeightSharingEvaluator]:
    space = _space(data)
    ev = WeightSharingEvaluator(
        data,
        space=space,
        artifact_store=store,
        training=TrainingConfig(epochs=1),
        poll_interval_s=0.05,
        claim_heartbeat_s=0.5,
        **kwargs,  # type: ignore[arg-type]
    )
    objective = NASObjective(space, ev, objectives=("val_accuracy",), deduplicate=False)
    study = optuna.create_study(
        storage=open_storage(url, heartbeat_interval=None),
        study_name=name,
        directions=objective.directions,
        load_if_exists=True,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    return study, objective, ev


def _stored_supernet(
    data: DataSplits, url: str, names: list[str], tmp_path: Path
) -> tuple[str, FileSystemArtifactStore, str]:
    """A study whose supernet is trained and stored; returns its name, store and artifact id."""
    store = FileSystemArtifactStore(str(tmp_path / "artifacts"))
    (tmp_path / "artifacts").mkdir()
    name = new_name(names)
    study, objective, ev = _ws_study(data, url, name, store)
    study.optimize(objective, n_trials=1)
    assert ev.artifact_id is not None
    return name, store, ev.artifact_id


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_bad_supernet_is_retrained_once_and_no_trial_fails(
    digits: DataSplits, url: tuple[str, list[str]], tmp_path: Path, damage: str
) -> None:
    name, store, old = _stored_supernet(digits, url[0], url[1], tmp_path)
    path = tmp_path / "artifacts" / old
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    else:
        path.unlink()
    study, objective, ev = _ws_study(digits, url[0], name, store, on_bad_supernet="retrain")
    study.optimize(objective, n_trials=3)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    assert ev.training_steps_run == 17  # one epoch of 17 batches: retrained exactly once
    record = study._storage.get_study_system_attrs(study._study_id)[ATTR_PREFIX + ev.fingerprint]
    assert record["artifact_id"] == ev.artifact_id != old
    assert record["replaced"] == [old]
    assert {t.user_attrs["supernet_artifact_id"] for t in study.trials[1:]} == {ev.artifact_id}


def test_a_bad_supernet_stops_the_study_once_naming_the_artifact(
    digits: DataSplits, url: tuple[str, list[str]], tmp_path: Path
) -> None:
    name, store, old = _stored_supernet(digits, url[0], url[1], tmp_path)
    (tmp_path / "artifacts" / old).unlink()
    study, objective, _ = _ws_study(digits, url[0], name, store, on_bad_supernet="stop")
    with pytest.raises(SupernetUnavailable, match=f"artifact {old} is missing") as err:
        study.optimize(objective, n_trials=3)
    assert "FileSystemArtifactStore" in str(err.value) and str(tmp_path) in str(err.value)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]


def _weights_study(url: str, names: list[str], tmp_path: Path) -> tuple[optuna.Study, str, Path]:
    """A study whose trial 0 saved its weights; returns it, the weights' id and the folder."""
    folder = tmp_path / "weights-artifacts"
    folder.mkdir()
    store = FileSystemArtifactStore(str(folder))
    space = _space(load_digits(seed=0))

    def objective(trial: optuna.Trial) -> float:
        spec = space.suggest(trial)
        trial.set_user_attr("spec", spec.to_json())
        save_weights(trial, build_model(spec), artifact_store=store)
        return 0.5

    study = optuna.create_study(
        storage=open_storage(url, heartbeat_interval=None), study_name=new_name(names)
    )
    study.optimize(objective, n_trials=1)
    return study, study.trials[0].user_attrs["weights_artifact_id"], folder


def test_export_of_deleted_weights_names_the_trial_the_artifact_and_the_store(
    url: tuple[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study, artifact_id, folder = _weights_study(url[0], url[1], tmp_path)
    (folder / artifact_id).unlink()
    store = FileSystemArtifactStore(str(folder))
    with pytest.raises(ArtifactMissing) as err:
        export_trial(study, study.trials[0], tmp_path / "out", artifact_store=store)
    message = str(err.value)
    for part in ("trial 0", study.study_name, artifact_id, str(folder), "--retrain"):
        assert part in message, (part, message)

    args = ["export", "--storage", url[0], "--study", study.study_name, "--trial", "0"]
    args += ["--out", str(tmp_path / "cli-out"), "--artifact-dir", str(folder)]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and artifact_id in lines[0] and "trial 0" in lines[0], lines


def test_export_of_unpicklable_weights_is_one_line_not_a_traceback(
    url: tuple[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study, artifact_id, folder = _weights_study(url[0], url[1], tmp_path)
    (folder / artifact_id).write_bytes(
        pickle.dumps(Path("not weights"), protocol=2)
    )  # not a state
    args = ["export", "--storage", url[0], "--study", study.study_name, "--trial", "0"]
    args += ["--out", str(tmp_path / "cli-out"), "--artifact-dir", str(folder)]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert artifact_id in lines[0] and "not a readable torch state" in lines[0]


def test_the_cli_turns_any_unpickling_error_into_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna_nas.cli as cli

    def unpickling(args: object) -> None:
        raise pickle.UnpicklingError("invalid load key, 'x'.")

    monkeypatch.setattr(cli, "_spec", unpickling)
    with pytest.raises(SystemExit) as exit_info:
        main(["spec", "--storage", "sqlite:///nowhere.db", "--trial", "0"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "optuna-nas spec: error: invalid load key, 'x'."
    ]
