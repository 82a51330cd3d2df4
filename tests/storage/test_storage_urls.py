"""open_storage: each URL kind opens, bad ones fail once and clearly, nothing is half-created,
and awkward names and attributes survive a round trip through every storage."""

from __future__ import annotations

from collections.abc import Iterator
import importlib.util
from pathlib import Path

import optuna
import pytest

from optuna_nas.storage import JournalHeartbeatStorage
from optuna_nas.storage import mask_url
from optuna_nas.storage import open_storage
from tests.storage.backends import ALL_BACKENDS
from tests.storage.backends import cleanup
from tests.storage.backends import make_url
from tests.storage.backends import new_name
from tests.storage.backends import server_url

AWKWARD = 'Robert\'); DROP TABLE studies;-- "quoted" \\ % _ ✓ 日本語 🚀'


@pytest.fixture(params=ALL_BACKENDS)
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = make_url(request.param, tmp_path)
    yield url
    cleanup(url, NAMES)


NAMES: list[str] = []


def test_each_url_kind_opens_the_right_storage(any_url: str) -> None:
    storage = open_storage(any_url, heartbeat_interval=5)
    if any_url.startswith(("journal", "redis")):
        assert isinstance(storage, JournalHeartbeatStorage)
    else:
        assert isinstance(storage, optuna.storages.RDBStorage)
    assert storage.get_heartbeat_interval() == 5  # type: ignore[attr-defined]


def test_awkward_names_and_attrs_round_trip(any_url: str) -> None:
    name = new_name(NAMES, stem=AWKWARD)
    study = optuna.create_study(
        study_name=name, storage=open_storage(any_url, heartbeat_interval=None)
    )
    study.set_user_attr(AWKWARD, AWKWARD)
    trial = study.ask()
    trial.set_user_attr(AWKWARD, {AWKWARD: [AWKWARD, 1.5]})
    study.tell(trial, 1.0)

    fresh = open_storage(
        any_url, heartbeat_interval=None
    )  # another connection / a fresh journal replay
    assert name in optuna.get_all_study_names(fresh)
    again = optuna.load_study(study_name=name, storage=fresh)
    assert again.user_attrs == {AWKWARD: AWKWARD}
    assert again.trials[0].user_attrs == {AWKWARD: {AWKWARD: [AWKWARD, 1.5]}}


def test_malformed_urls_name_themselves() -> None:
    with pytest.raises(ValueError, match=r"`url` must look like .* but got 'study\.db'"):
        open_storage("study.db")
    with pytest.raises(ValueError, match=r"'mongodb://x/y' has the unknown scheme 'mongodb'"):
        open_storage("mongodb://x/y")
    with pytest.raises(ValueError, match="`heartbeat_interval >= 1` must hold"):
        open_storage("sqlite:///x.db", heartbeat_interval=0)


@pytest.mark.parametrize("scheme", ["sqlite", "journal"])
def test_missing_directory_creates_nothing(scheme: str, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(ValueError, match=r"does not exist; create it first"):
        open_storage(f"{scheme}:///{missing / 'study.db'}")
    assert list(tmp_path.iterdir()) == []


def test_non_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database")
    with pytest.raises(ValueError, match=r"which is not a SQLite database"):
        open_storage(f"sqlite:///{notes}")
    assert notes.read_text() == "not a database"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_unwritable_sqlite_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "study.db"
    target.mkdir()  # a directory where the file should be
    with pytest.raises(ValueError, match="names a directory, not a file"):
        open_storage(f"sqlite:///{target}")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://postgres:s3cret@127.0.0.1:1/test",
        "mysql+pymysql://root:s3cret@127.0.0.1:1/test",
        "redis://:s3cret@127.0.0.1:1/0",
    ],
)
def test_unreachable_server_masks_password(url: str) -> None:
    with pytest.raises(ConnectionError) as info:
        open_storage(url)
    message = str(info.value)
    assert "s3cret" not in message
    assert mask_url(url) in message and ":***@127.0.0.1:1" in message
    assert "127.0.0.1:1" in message.split("Check")[1]  # says where to look


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_missing_database_is_named(kind: str, tmp_path: Path) -> None:
    url = make_url(kind, tmp_path)  # skips if the server is down
    bad = url.rsplit("/", 1)[0] + "/optuna_nas_no_such_database"
    with pytest.raises(ConnectionError, match="database 'optuna_nas_no_such_database' exists"):
        open_storage(bad)


def test_missing_driver_says_what_to_install() -> None:
    assert importlib.util.find_spec("pg8000") is None
    with pytest.raises(ValueError, match="needs a database driver that is not installed"):
        open_storage("postgresql+pg8000://postgres@127.0.0.1:5432/test")


def test_mask_url() -> None:
    assert mask_url("postgresql://u:p@h:5/d") == "postgresql://u:***@h:5/d"
    assert mask_url("sqlite:///a.db") == "sqlite:///a.db"
    assert mask_url(server_url("redis")) == server_url("redis")
