"""Studies that survive: storages by URL, heartbeats, resume, many workers, deduplication.

* :func:`open_storage` turns a URL (SQLite, PostgreSQL, MySQL, journal file, Redis) into an
  Optuna storage with heartbeats, or fails once, clearly, creating nothing.
* :func:`run_study` runs a study to a total number of finished trials: the same command
  starts it, resumes it after a crash and runs it from N workers at once.
* :func:`find_or_claim` / :func:`copy_duplicate` make sure no architecture is evaluated twice,
  with ownership claims that the storage arbitrates (:func:`claim_board`).
* :class:`JournalHeartbeatStorage` gives Optuna's journal storage the heartbeats RDB has.
"""

from __future__ import annotations

from optuna_nas.storage._claims import ClaimBoard
from optuna_nas.storage._claims import claim_board
from optuna_nas.storage._dedup import DUPLICATE_OF
from optuna_nas.storage._dedup import DuplicateWaitTimeout
from optuna_nas.storage._dedup import copy_duplicate
from optuna_nas.storage._dedup import find_or_claim
from optuna_nas.storage._heartbeat import JournalHeartbeatStorage
from optuna_nas.storage._run import FINISHED
from optuna_nas.storage._run import count_finished
from optuna_nas.storage._run import run_study
from optuna_nas.storage._urls import mask_url
from optuna_nas.storage._urls import open_storage

__all__ = [
    "DUPLICATE_OF",
    "FINISHED",
    "ClaimBoard",
    "DuplicateWaitTimeout",
    "JournalHeartbeatStorage",
    "claim_board",
    "copy_duplicate",
    "count_finished",
    "find_or_claim",
    "mask_url",
    "open_storage",
    "run_study",
]
