"""Where a DARTS search lives in the study: system attrs for alpha, the artifact store for weights.

Keys (study system attrs, plain JSON, readable without optuna_nas):

* ``darts:settings``: the space's searched and fixed parameters, the search config, the data's
  name and sizes, and the search seed. A study resumed with other settings is refused.
* ``darts:history``: one entry per finished search epoch: ``{"epoch", "alpha": {param:
  [logit per choice]}, "train_loss", "val_loss" (None in warm-up), "tau", "skip_edges",
  "seconds"}``.
* ``darts:checkpoint``: ``{"epoch": n, "artifact_id": id}``, the supernet and optimizer state
  after ``n`` epochs in the artifact store (only with an ``artifact_store``; every epoch's file
  is kept, so each epoch's weights stay retrievable).
* ``darts:result``: ``{"epochs", "stopped_early", "alpha"}`` once the search is over.
* ``darts:claim``: ``{"worker", "heartbeat"}``: the worker running the search.
"""

from __future__ import annotations

from collections.abc import Mapping
import os
import tempfile
import time
from typing import Any

import optuna
from optuna.artifacts import download_artifact
from optuna.artifacts import upload_artifact
from optuna.artifacts._protocol import ArtifactStore
import torch

SETTINGS = "darts:settings"
HISTORY = "darts:history"
CHECKPOINT = "darts:checkpoint"
RESULT = "darts:result"
CLAIM = "darts:claim"


def attrs(study: optuna.Study) -> dict[str, Any]:
    return study._storage.get_study_system_attrs(study._study_id)


def put(study: optuna.Study, key: str, value: Any) -> None:
    study._storage.set_study_system_attr(study._study_id, key, value)


def check_settings(study: optuna.Study, settings: Mapping[str, Any], seed: int) -> int:
    """Record ``settings`` (and ``seed``) or check them against the study's; return the seed.

    The first worker's seed wins, so every worker and every resume share one search.
    """
    stored = attrs(study).get(SETTINGS)
    if stored is None:
        put(study, SETTINGS, {**settings, "seed": seed})
        stored = attrs(study)[SETTINGS]
    mine = {k: v for k, v in stored.items() if k != "seed"}
    if mine != dict(settings):
        diff = sorted(k for k in set(mine) | set(settings) if mine.get(k) != settings.get(k))
        raise ValueError(
            f"study {study.study_name!r} holds a DARTS search with other settings (differing: "
            f"{diff}); resume it with the same space, fixed params, data and search config, "
            "or use a new study."
        )
    return int(stored["seed"])


def try_claim(study: optuna.Study, worker: str, timeout: float) -> bool:
    """Claim the search unless another worker holds a claim fresher than ``timeout`` seconds.

    Storages offer no compare-and-set on study attrs, so the claim is re-read after writing
    it; two workers that write in the same instant can both win (they then compute the same
    seeded search and write the same history).
    """
    claim = attrs(study).get(CLAIM)
    if (
        claim is not None
        and claim["worker"] != worker
        and time.time() - float(claim["heartbeat"]) < timeout
    ):
        return False
    heartbeat(study, worker)
    return bool(attrs(study)[CLAIM]["worker"] == worker)


def heartbeat(study: optuna.Study, worker: str) -> None:
    put(study, CLAIM, {"worker": worker, "heartbeat": time.time()})


def save_checkpoint(
    study: optuna.Study, store: ArtifactStore, epoch: int, state: Mapping[str, Any]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"darts_supernet_epoch{epoch}.pt")
        torch.save(dict(state), path)
        artifact_id = upload_artifact(artifact_store=store, file_path=path, study_or_trial=study)
    put(study, CHECKPOINT, {"epoch": epoch, "artifact_id": artifact_id})


def load_checkpoint(store: ArtifactStore, artifact_id: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "supernet.pt")
        download_artifact(artifact_store=store, artifact_id=artifact_id, file_path=path)
        state: dict[str, Any] = torch.load(path, weights_only=True)
    return state
