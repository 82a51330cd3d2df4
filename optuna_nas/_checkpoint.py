"""Per-epoch checkpoints of a trial's training in the study's artifact store.

Follows the pattern of Optuna's PyTorch checkpoint example (``pytorch_checkpoint.py``): after
every epoch the training state is saved; a trial killed mid-training (``kill -9``, a lost node)
is marked ``FAIL`` by the heartbeat and re-enqueued with its params by the retry callback,
which also copies the failed trial's system attrs -- among them this module's
``optuna_nas:checkpoint`` record -- so the retry loads the last saved epoch and goes on from
there. The retry trains with the seed of the trial it replaces (see
:func:`original_trial_number`), so it ends exactly as the uninterrupted trial would have.

Checkpoints are written to the store directly (``ArtifactStore.write``), not through
``upload_artifact``: they are scratch state, deleted when the trial ends, and must not leave
entries behind in optuna-dashboard's artifact list. Only the newest one is kept.
"""

from __future__ import annotations

import io
import logging
import pickle
from typing import Any
import uuid

import optuna
from optuna.artifacts.exceptions import ArtifactNotFound
import torch

from optuna_nas import _compat
from optuna_nas._compat import ArtifactStore

CHECKPOINT_ATTR = "optuna_nas:checkpoint"
"""Trial system attr: ``{"epoch": k, "artifact_id": id}`` of the newest checkpoint, or None."""

_logger = logging.getLogger("optuna_nas.checkpoint")


def original_trial_number(trial: optuna.Trial) -> int:
    """The number of the trial ``trial`` retries (Optuna's ``failed_trial``), else its own."""
    attrs = _compat.study_storage(trial.study).get_trial_system_attrs(_compat.trial_id(trial))
    failed = attrs.get("failed_trial")
    return int(failed) if isinstance(failed, int) else trial.number


class TrialCheckpoint:
    """The :class:`~optuna_nas.evaluation._training.Checkpoint` of one running trial."""

    def __init__(self, trial: optuna.Trial, store: ArtifactStore) -> None:
        self.trial = trial
        self.store = store
        self._storage = _compat.study_storage(trial.study)

    def _record(self) -> dict[str, Any] | None:
        record = self._storage.get_trial_system_attrs(_compat.trial_id(self.trial)).get(
            CHECKPOINT_ATTR
        )
        return record if isinstance(record, dict) else None

    def load(self) -> dict[str, Any] | None:
        """The newest checkpoint of this trial or of the trial it retries; None if there is none.

        A checkpoint that is missing or cannot be read costs its epochs, not the trial: it is
        logged and training starts from scratch.
        """
        record = self._record()
        if record is None:
            return None
        artifact_id = record["artifact_id"]
        try:
            with self.store.open_reader(artifact_id) as reader:
                state: dict[str, Any] = torch.load(
                    io.BytesIO(reader.read()), map_location="cpu", weights_only=True
                )
        except (
            ArtifactNotFound,
            OSError,
            RuntimeError,
            EOFError,
            pickle.UnpicklingError,
            KeyError,
        ) as e:
            _logger.warning(
                "trial %d: the checkpoint of epoch %s (artifact %s) cannot be read (%s); "
                "training from scratch.",
                self.trial.number,
                record.get("epoch"),
                artifact_id,
                e,
            )
            return None
        return state

    def save(self, epoch: int, state: dict[str, Any]) -> None:
        """Write ``state`` as a new artifact, record it, then delete the one it replaces."""
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        artifact_id = f"checkpoint-{uuid.uuid4()}"
        self.store.write(artifact_id, buffer)
        old = self._record()
        self._storage.set_trial_system_attr(
            _compat.trial_id(self.trial),
            CHECKPOINT_ATTR,
            {"epoch": epoch, "artifact_id": artifact_id},
        )
        if old is not None:
            self._remove(old["artifact_id"])

    def discard(self) -> None:
        """Delete the newest checkpoint (the trial is ending) and clear the record."""
        old = self._record()
        if old is not None:
            self._storage.set_trial_system_attr(
                _compat.trial_id(self.trial), CHECKPOINT_ATTR, None
            )
            self._remove(old["artifact_id"])

    def _remove(self, artifact_id: str) -> None:
        try:
            self.store.remove(artifact_id)
        except (
            ArtifactNotFound,
            OSError,
        ) as e:  # already gone (another retry's clean-up): harmless
            _logger.debug("checkpoint %s was already removed: %s", artifact_id, e)
