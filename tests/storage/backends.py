"""Storage URLs for the storage tests: real SQLite files, journal files and the servers of
this machine (PostgreSQL, MySQL/MariaDB, Redis), each reachable through an environment
variable. A server test is skipped, with the reason, only when the server does not answer."""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import functools
import os
from pathlib import Path
import uuid

import optuna
import pytest

from optuna_nas.storage import open_storage

SERVER_URLS = {
    "postgresql": (
        "OPTUNA_NAS_TEST_POSTGRES_URL",
        "postgresql+psycopg2://postgres@127.0.0.1:5432/test",
    ),
    "mysql": ("OPTUNA_NAS_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
    "redis": ("OPTUNA_NAS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
}
ALL_BACKENDS = ("sqlite", "postgresql", "mysql", "journal", "redis")


def server_url(kind: str) -> str:
    variable, default = SERVER_URLS[kind]
    return os.environ.get(variable, default)


@functools.cache
def _unreachable(kind: str) -> str | None:
    try:
        open_storage(server_url(kind), heartbeat_interval=None)
    except (ConnectionError, ValueError) as err:
        return str(err)
    return None


def make_url(kind: str, tmp_path: Path) -> str:
    """A fresh storage URL of ``kind``; skips if the server is unreachable."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    if kind == "journal":
        return f"journal:///{tmp_path / 'study.log'}"
    reason = _unreachable(kind)
    if reason is not None:
        variable = SERVER_URLS[kind][0]
        pytest.skip(f"{kind} storage unavailable (URL from {variable}): {reason}")
    url = server_url(kind)
    if kind == "redis":  # a private key prefix, deleted afterwards
        url += ("&" if "?" in url else "?") + f"prefix=optuna-nas-test-{uuid.uuid4().hex}"
    return url


def cleanup(url: str, study_names: list[str]) -> None:
    """Delete the studies (their claims go with them) and a Redis test prefix's keys."""
    if url.startswith("redis"):
        import redis

        base, _, prefix = url.partition("?prefix=")
        client = redis.Redis.from_url(base)
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        return
    if url.startswith(("postgresql", "mysql")):
        storage = open_storage(url, heartbeat_interval=None)
        for name in study_names:
            with contextlib.suppress(KeyError):
                optuna.delete_study(study_name=name, storage=storage)


@pytest.fixture
def study_names() -> Iterator[list[str]]:
    """Unique study names; append to the list to have them deleted by ``storage_url``."""
    yield []


@pytest.fixture(params=ALL_BACKENDS)
def any_url(
    request: pytest.FixtureRequest, tmp_path: Path, study_names: list[str]
) -> Iterator[str]:
    url = make_url(request.param, tmp_path)
    yield url
    cleanup(url, study_names)


def new_name(study_names: list[str], stem: str = "optuna-nas-test") -> str:
    name = f"{stem}-{uuid.uuid4().hex}"
    study_names.append(name)
    return name
