"""Artifacts are stored with the MIME type they have, not one ``mimetypes`` guesses.

``mimetypes.guess_type`` answers from the platform's tables, and some map ``.pt`` to
``application/vnd.snesdev-page-table`` (issue #16); each test makes the guess wrong on purpose,
so an upload that relies on it fails here on every platform.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts import get_all_artifact_meta
import pytest
import torch

from optuna_nas.export import save_weights
from optuna_nas.report import DIAGRAM_NAME
from optuna_nas.report import attach_architecture
from optuna_nas.spaces import ChainSpace

WRONG = "application/vnd.snesdev-page-table"


@pytest.fixture
def wrong_guesses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mimetypes, "guess_type", lambda *args, **kwargs: (WRONG, None))


def _study(tmp_path: Path) -> tuple[optuna.Study, FileSystemArtifactStore]:
    (tmp_path / "art").mkdir()
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'm.db'}")
    return study, FileSystemArtifactStore(str(tmp_path / "art"))


@pytest.mark.usefixtures("wrong_guesses")
def test_the_diagram_is_stored_as_svg(tmp_path: Path) -> None:
    study, store = _study(tmp_path)
    trial = study.ask()
    spec = ChainSpace(input_shape=(1, 8, 8), num_outputs=10, max_depth=3).suggest(trial)
    attach_architecture(trial, spec, artifact_store=store)
    (meta,) = get_all_artifact_meta(trial)
    assert (meta.filename, meta.mimetype) == (DIAGRAM_NAME, "image/svg+xml")


@pytest.mark.usefixtures("wrong_guesses")
def test_the_weights_are_stored_as_octet_stream(tmp_path: Path) -> None:
    study, store = _study(tmp_path)
    trial = study.ask()
    save_weights(trial, torch.nn.Linear(2, 2), artifact_store=store)
    (meta,) = get_all_artifact_meta(trial)
    assert (meta.filename, meta.mimetype) == ("weights.pt", "application/octet-stream")
