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

The worker running the search holds the job ``JOB`` (:func:`optuna_nas.storage.run_job`: a
claim on the study's claim board with a heartbeat thread), not a system attr.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

from optuna_nas import _compat
from optuna_nas._compat import ArtifactStore
from optuna_nas.storage import download_state
from optuna_nas.storage import upload_state

SETTINGS = "darts:settings"
HISTORY = "darts:history"
CHECKPOINT = "darts:checkpoint"
RESULT = "darts:result"
JOB = "darts:search"


def attrs(study: optuna.Study) -> dict[str, Any]:
    return _compat.study_storage(study).get_study_system_attrs(_compat.study_id(study))


def put(study: optuna.Study, key: str, value: Any) -> None:
    _compat.study_storage(study).set_study_system_attr(_compat.study_id(study), key, value)


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


def record_epoch(
    study: optuna.Study,
    store: ArtifactStore | None,
    history: list[dict[str, Any]],
    state: Mapping[str, Any],
) -> None:
    """Record a finished epoch: the history (last entry: the epoch) and, with a ``store``, the
    supernet and optimizer state as its checkpoint."""
    put(study, HISTORY, history)
    if store is not None:
        save_checkpoint(study, store, int(history[-1]["epoch"]) + 1, state)


def save_checkpoint(
    study: optuna.Study, store: ArtifactStore, epoch: int, state: Mapping[str, Any]
) -> None:
    artifact_id = upload_state(study, store, state, filename=f"darts_supernet_epoch{epoch}.pt")
    put(study, CHECKPOINT, {"epoch": epoch, "artifact_id": artifact_id})


def load_checkpoint(study: optuna.Study, store: ArtifactStore, artifact_id: str) -> dict[str, Any]:
    """The checkpoint ``artifact_id``; raises :class:`~optuna_nas.storage.ArtifactError`."""
    return download_state(
        store,
        artifact_id,
        what=f"the DARTS search checkpoint of study {study.study_name!r}",
        fix="the search retrains the weights of the epochs done instead",
    )
