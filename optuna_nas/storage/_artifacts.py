"""The one way optuna_nas puts files in, and takes torch states out of, a study's artifact store.

Every artifact optuna_nas writes goes through :func:`upload_bytes` (or :func:`upload_state` for
a torch state), which writes a temporary file and hands it to
:func:`optuna.artifacts.upload_artifact`, so the artifact is listed under its study or trial
exactly as if a user had uploaded it. Every torch state comes back through
:func:`download_state`: the file is downloaded to a temporary folder and read with
``torch.load(weights_only=True)`` (tensors and plain containers only; no code runs). torch is
imported only when a state is saved or loaded, so the storage package stays torch-free.

What goes wrong is said once, clearly: :class:`ArtifactMissing` when the store has no such
artifact (a deleted file, another store), :class:`ArtifactCorrupt` when the file is there but
is no readable torch state (truncated, overwritten). Both name the artifact id, what it holds
and the store, and are :class:`ArtifactError` (a :class:`RuntimeError`).
"""

from __future__ import annotations

from collections.abc import Mapping
import os
import pickle
import tempfile
from typing import TYPE_CHECKING
from typing import Any
import zipfile

from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts import download_artifact
from optuna.artifacts import upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound

from optuna_nas import _compat

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial
    import torch

    from optuna_nas._compat import ArtifactStore

#: The mimetype of torch files (a guess from the ``.pt`` suffix names a SNES file type).
TORCH_MIMETYPE = "application/octet-stream"


class ArtifactError(RuntimeError):
    """An artifact could not be read back; ``artifact_id`` and ``store`` say which and where."""

    def __init__(self, message: str, *, artifact_id: str, store: str) -> None:
        super().__init__(message)
        self.artifact_id = artifact_id
        self.store = store


class ArtifactMissing(ArtifactError):
    """The artifact store has no artifact with that id."""


class ArtifactCorrupt(ArtifactError):
    """The artifact exists but is not a readable torch state."""


def describe_store(store: ArtifactStore) -> str:
    """A short description of ``store`` for messages: its class and, where known, its place."""
    if isinstance(store, FileSystemArtifactStore):
        return f"{type(store).__name__}({_compat.artifact_store_path(store)!r})"
    # Optuna's GCS and Boto3 stores name their bucket so; another store is named by its class.
    for name in ("bucket_name", "bucket"):
        where = getattr(store, name, None)
        if isinstance(where, str):
            return f"{type(store).__name__}({where!r})"
    return type(store).__name__


def upload_bytes(
    study_or_trial: optuna.Study | optuna.Trial | FrozenTrial,
    store: ArtifactStore,
    data: bytes,
    *,
    filename: str,
    mimetype: str,
) -> str:
    """Upload ``data`` as the artifact ``filename`` of ``study_or_trial``; return its id."""
    if os.path.basename(filename) != filename or not filename:
        raise ValueError(f"`filename` must be a bare file name, but got {filename=}.")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, filename)
        with open(path, "wb") as f:
            f.write(data)
        return upload_artifact(
            artifact_store=store, file_path=path, study_or_trial=study_or_trial, mimetype=mimetype
        )


def upload_state(
    study_or_trial: optuna.Study | optuna.Trial | FrozenTrial,
    store: ArtifactStore,
    state: Mapping[str, Any],
    *,
    filename: str,
) -> str:
    """``torch.save`` ``state`` and upload it as the artifact ``filename``; return its id.

    Tensors are saved as they are (their device included); :func:`download_state` maps them
    to the device the reader asks for.
    """
    import torch  # here, not at the top: optuna_nas.storage stays importable without torch

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, filename)
        torch.save(dict(state), path)
        return upload_artifact(
            artifact_store=store,
            file_path=path,
            study_or_trial=study_or_trial,
            mimetype=TORCH_MIMETYPE,
        )


def download_state(
    store: ArtifactStore,
    artifact_id: str,
    *,
    what: str,
    fix: str,
    map_location: str | torch.device | None = None,
) -> dict[str, Any]:
    """Download the torch state ``artifact_id`` from ``store`` and load it (weights only).

    Args:
        store: The artifact store.
        artifact_id: The artifact's id.
        what: What the artifact holds, for messages ("the supernet of study 'x'").
        fix: What the reader can do about a missing or unreadable artifact, for messages.
        map_location: Where the tensors go (``torch.load``'s argument).

    Raises:
        ArtifactMissing: ``store`` has no artifact ``artifact_id``.
        ArtifactCorrupt: the file cannot be read as a torch state saved by :func:`upload_state`.
    """
    import torch

    where = describe_store(store)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "state.pt")
        try:
            download_artifact(artifact_store=store, file_path=path, artifact_id=artifact_id)
        except ArtifactNotFound as err:
            raise ArtifactMissing(
                f"{what}: artifact {artifact_id} is missing from the artifact store {where}; "
                f"{fix}.",
                artifact_id=artifact_id,
                store=where,
            ) from err
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except (pickle.UnpicklingError, EOFError, RuntimeError, zipfile.BadZipFile) as err:
            # torch.load says "PytorchStreamReader failed reading zip archive" for a truncated
            # file and "Weights only load failed" for one that is not a state: both mean the
            # bytes in the store are not what was uploaded.
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ArtifactCorrupt(
                f"{what}: artifact {artifact_id} in the artifact store {where} is not a "
                f"readable torch state ({reason}); {fix}.",
                artifact_id=artifact_id,
                store=where,
            ) from err
    if not isinstance(state, dict):
        raise ArtifactCorrupt(
            f"{what}: artifact {artifact_id} in the artifact store {where} holds a "
            f"{type(state).__name__}, not the dict of tensors that was uploaded; {fix}.",
            artifact_id=artifact_id,
            store=where,
        )
    return state
