"""Issue #14, storage URLs: a URL that cannot work fails before anything connects or is
created, with one error that names the (masked) URL, the rule and the fix; the fix it proposes
works against the real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import re
import socket

import optuna
import pytest

from optuna_nas.storage import mask_url
from optuna_nas.storage import open_storage
from tests.storage.backends import cleanup
from tests.storage.backends import make_url
from tests.storage.backends import new_name


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def names() -> Iterator[list[str]]:
    yield []


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://postgres:s3cret@127.0.0.1:54x2/test",
        "mysql+pymysql://root:s3cret@127.0.0.1:port/test",
        "redis://:s3cret@127.0.0.1:63 79/0",
        "postgresql+psycopg2://postgres:s3cret@127.0.0.1:99999/test",
        "postgresql+psycopg2://postgres:s3cret@127.0.0.1:-1/test",
    ],
)
def test_bad_port_names_the_url_the_rule_and_the_fix(url: str) -> None:
    # Before: a bare `int()` / urllib error ("Port could not be cast to integer value as
    # '54x2'") that named neither the URL nor the fix.
    with pytest.raises(ValueError) as info:
        open_storage(url)
    message = str(info.value)
    assert "s3cret" not in message
    assert ":***@127.0.0.1:" in message  # the URL, masked
    assert "port" in message and "1 <= port <= 65535" in message  # the rule
    assert "e.g. 127.0.0.1:" in message  # the fix, with the URL's own host


def test_mask_url_never_raises_on_a_bad_port() -> None:
    # Before: mask_url itself raised, so no message about the URL could be written.
    assert mask_url("postgresql://u:pw@h:abc/d") == "postgresql://u:***@h:abc/d"
    assert mask_url("redis://:pw@h:99999/0") == "redis://:***@h:99999/0"


@pytest.mark.parametrize("driver", ["", "+psycopg2"])
def test_postgres_scheme_says_how_to_write_the_url(driver: str) -> None:
    # Before: accepted as a backend, then "is malformed: Can't load plugin:
    # sqlalchemy.dialects:postgres". The port is closed: the error comes before any connection.
    url = f"postgres{driver}://postgres:s3cret@127.0.0.1:{_closed_port()}/test"
    with pytest.raises(ValueError) as info:
        open_storage(url)
    message = str(info.value)
    assert "s3cret" not in message and mask_url(url) in message
    fixed = mask_url(url).replace(f"postgres{driver}://", "postgresql+psycopg2://")
    assert f"write it as {fixed!r}" in message
    assert "Can't load plugin" not in message


def test_the_proposed_postgresql_url_opens_the_real_server(
    tmp_path: Path, names: list[str]
) -> None:
    good = make_url("postgresql", tmp_path)  # skips, with the reason, if the server is down
    legacy = "postgres://" + good.split("://", 1)[1]
    with pytest.raises(ValueError) as info:
        open_storage(legacy)
    proposed = re.search(r"write it as '([^']+)'", str(info.value))
    assert proposed is not None and "***" not in good
    try:
        study = optuna.create_study(
            study_name=new_name(names), storage=open_storage(proposed.group(1))
        )
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
        assert len(study.trials) == 1
    finally:
        cleanup(good, names)


def test_sqlite_with_a_port_like_path_is_not_mistaken_for_a_port(tmp_path: Path) -> None:
    # A colon in a SQLite path is no port: the check applies to server URLs only.
    folder = tmp_path / "a:b"
    folder.mkdir()
    url = f"sqlite:///{folder / 'study.db'}"
    study = optuna.create_study(storage=open_storage(url, heartbeat_interval=None))
    assert study.trials == []
