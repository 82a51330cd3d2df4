"""Studies that survive: storages by URL, heartbeats, resume, many workers, deduplication.

* :func:`open_storage` turns a URL (SQLite, PostgreSQL, MySQL, journal file, Redis, gRPC
  proxy) into an Optuna storage with heartbeats, or fails once, clearly, creating nothing.
* :func:`start_storage_server` (``optuna-nas storage-server``) serves an RDB to many workers
  through Optuna's gRPC storage proxy; workers open it as ``grpc://host:port``
  (:class:`GrpcHeartbeatStorage`), with heartbeats and the claim board as on the RDB.
* :func:`run_study` runs a study to a total number of finished trials: the same command
  starts it, resumes it after a crash and runs it from N workers at once.
* :func:`find_or_claim` / :func:`copy_duplicate` make sure no architecture is evaluated twice,
  with ownership claims that the storage arbitrates (:func:`claim_board`).
* :func:`run_job` runs work that only one worker of a study may do (supernet training, a DARTS
  search) under one claim protocol: a heartbeat thread, takeover after two missed heartbeats, a
  pid liveness check on the same host.
* :func:`upload_state` / :func:`download_state` (and :func:`upload_bytes`) are the one way
  artifacts are saved and loaded; a missing or unreadable one raises an :class:`ArtifactError`
  naming its id and the store.
* :class:`JournalHeartbeatStorage` gives Optuna's journal storage the heartbeats RDB has.
"""

from __future__ import annotations

from optuna_nas.storage._artifacts import ArtifactCorrupt
from optuna_nas.storage._artifacts import ArtifactError
from optuna_nas.storage._artifacts import ArtifactMissing
from optuna_nas.storage._artifacts import download_state
from optuna_nas.storage._artifacts import upload_bytes
from optuna_nas.storage._artifacts import upload_state
from optuna_nas.storage._claims import ClaimBoard
from optuna_nas.storage._claims import JobOwner
from optuna_nas.storage._claims import claim_board
from optuna_nas.storage._dedup import DUPLICATE_OF
from optuna_nas.storage._dedup import DuplicateWaitTimeout
from optuna_nas.storage._dedup import copy_duplicate
from optuna_nas.storage._dedup import find_or_claim
from optuna_nas.storage._grpc import GrpcHeartbeatStorage
from optuna_nas.storage._grpc_server import StorageServer
from optuna_nas.storage._grpc_server import start_storage_server
from optuna_nas.storage._heartbeat import JournalHeartbeatStorage
from optuna_nas.storage._jobs import JobLease
from optuna_nas.storage._jobs import JobLost
from optuna_nas.storage._jobs import run_job
from optuna_nas.storage._run import FINISHED
from optuna_nas.storage._run import count_finished
from optuna_nas.storage._run import run_study
from optuna_nas.storage._urls import mask_url
from optuna_nas.storage._urls import open_storage

__all__ = [
    "DUPLICATE_OF",
    "FINISHED",
    "ArtifactCorrupt",
    "ArtifactError",
    "ArtifactMissing",
    "ClaimBoard",
    "DuplicateWaitTimeout",
    "GrpcHeartbeatStorage",
    "JobLease",
    "JobLost",
    "JobOwner",
    "JournalHeartbeatStorage",
    "StorageServer",
    "claim_board",
    "copy_duplicate",
    "count_finished",
    "download_state",
    "find_or_claim",
    "mask_url",
    "open_storage",
    "run_job",
    "run_study",
    "start_storage_server",
    "upload_bytes",
    "upload_state",
]
