"""Open an Optuna storage from a URL, with heartbeats, and fail once and clearly when it can't.

Supported URLs (the same string every worker of a study is started with):

``sqlite:///relative.db``, ``sqlite:////absolute.db``
    One file, the default for a single worker (``RDBStorage``; its trial state changes take
    the write lock when they begin, :mod:`optuna_nas.storage._sqlite`, so that workers sharing
    the file never both take one enqueued trial).
``postgresql+psycopg2://user:pass@host:5432/db``, ``mysql+pymysql://user:pass@host:3306/db``
    A database server through SQLAlchemy (``RDBStorage``), for many workers on many machines.
    ``postgres://`` (an alias SQLAlchemy dropped in 1.4) is refused with the spelling to use.
``journal:///relative.log``, ``journal:////absolute.log``
    Optuna's journal file (``JournalStorage`` over ``JournalFileBackend``), for workers that share
    a file system (NFS) but no database server.
``redis://host:6379/0``, ``rediss://...``; optional ``?prefix=name``
    Optuna's journal in Redis (``JournalRedisBackend``); ``prefix`` namespaces its keys.
``grpc://host:port``
    Optuna's gRPC storage proxy (:class:`~optuna_nas.storage.GrpcHeartbeatStorage`, a
    ``GrpcStorageProxy``) in front of an RDB, served by ``optuna-nas storage-server``
    (:func:`~optuna_nas.storage.start_storage_server`): many workers, one set of database
    connections, one trial cache. Needs ``pip install 'optuna-nas[grpc]'``.

Every storage gets heartbeats (``heartbeat_interval`` seconds) so that a trial left ``RUNNING``
by a dead worker is marked ``FAIL`` and re-enqueued with the same parameters
(:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`). RDB storages use Optuna's own
heartbeat table; journal and gRPC storages keep them in a trial system attr
(:class:`~optuna_nas.storage._heartbeat.AttrHeartbeat`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
import time
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit
from urllib.parse import urlunsplit
import warnings

import optuna
from optuna.storages import BaseStorage

from optuna_nas.storage._filelock import HolderFileLock
from optuna_nas.storage._heartbeat import JournalHeartbeatStorage
from optuna_nas.storage._sqlite import SQLiteStorage

_SQLITE_HEADER = b"SQLite format 3\x00"
_SCHEMA_ATTEMPTS = 3
_DEFAULT_PORTS = {
    "postgresql": 5432,
    "mysql": 3306,
    "mariadb": 3306,
    "redis": 6379,
    "rediss": 6379,
}


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs).

    Works on the text alone, so it never raises, even for a URL that cannot be opened (a port
    that is not a number, an unbalanced IPv6 bracket).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, hostport = rest[:end].rpartition("@")  # as urllib: the last "@" ends it
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hostport}{rest[end:]}"


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = 60,
    grace_period: int | None = None,
    max_retry: int | None = 3,
    sqlite_timeout: float = 60.0,
) -> BaseStorage:
    """Return the Optuna storage for ``url`` (see the module docstring for the URL forms).

    Args:
        url: Where the study lives; the same string for every worker.
        heartbeat_interval: Seconds between a running trial's heartbeats; ``None`` turns
            heartbeats (and so the detection of trials left ``RUNNING`` by dead workers) off.
        grace_period: Seconds without a heartbeat after which a running trial is stale
            (default: twice ``heartbeat_interval``, as in Optuna).
        max_retry: How often one stale trial is re-enqueued (``None``: without limit).
        sqlite_timeout: Seconds a SQLite writer waits for the file lock before
            ``database is locked``.

    Raises:
        ValueError: the URL is malformed (a port outside ``1..65535`` or not a number, the
            ``postgres://`` alias, ``grpc://`` without a port), names a missing directory or a
            non-SQLite file, or needs a driver that is not installed (grpcio for ``grpc://``).
            Nothing is created.
        ConnectionError: the server does not answer or refuses the login, or a ``grpc://``
            server is not an ``optuna-nas storage-server``. Nothing is created.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(
            f"`url` must look like 'sqlite:///study.db', 'postgresql+psycopg2://user@host/db', "
            f"'mysql+pymysql://user@host/db', 'journal:///study.log', 'redis://host:6379/0' or "
            f"'grpc://host:port', but got {url!r}."
        )
    _check_heartbeat(heartbeat_interval, grace_period, max_retry)
    scheme = url.split("://", 1)[0].lower()
    backend = scheme.split("+", 1)[0]
    if backend == "postgres":
        _refuse_postgres_alias(url)
    if backend in _DEFAULT_PORTS:
        _check_port(url, backend)
    if backend == "sqlite":
        return _open_sqlite(url, heartbeat_interval, grace_period, max_retry, sqlite_timeout)
    if backend in ("postgresql", "mysql", "mariadb"):
        return _open_server(url, heartbeat_interval, grace_period, max_retry)
    if scheme == "grpc":
        from optuna_nas.storage._grpc import connect_grpc

        return connect_grpc(
            url,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=_retry_callback(heartbeat_interval, max_retry),
        )
    if scheme == "journal":
        backend_obj: Any = _journal_file(url)
    elif scheme in ("redis", "rediss"):
        backend_obj = _journal_redis(url)
    else:
        raise ValueError(
            f"the storage URL {mask_url(url)!r} has the unknown scheme {scheme!r}; use sqlite, "
            "postgresql+psycopg2, mysql+pymysql, journal, redis or grpc."
        )
    return JournalHeartbeatStorage(
        backend_obj,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        heartbeat_stale_trial_callback=_retry_callback(heartbeat_interval, max_retry),
    )


def _check_heartbeat(interval: int | None, grace: int | None, max_retry: int | None) -> None:
    for name, value in (("heartbeat_interval", interval), ("grace_period", grace)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"`{name}` must be None or a positive int, but got {value!r}.")
        if value is not None and value < 1:
            raise ValueError(f"`{name} >= 1` must hold, but got {name}={value}.")
    if max_retry is not None and (isinstance(max_retry, bool) or max_retry < 0):
        raise ValueError(f"`max_retry` must be None or an int >= 0, but got {max_retry!r}.")


def _refuse_postgres_alias(url: str) -> None:
    """``postgres://`` is not a SQLAlchemy scheme (1.4 dropped the alias), so Optuna, its CLI and
    optuna-dashboard cannot open such a URL. It is refused with the spelling that works rather
    than rewritten, so that the URL a user passes on is one every Optuna tool opens."""
    scheme, rest = url.split("://", 1)
    driver = scheme.partition("+")[2] or "psycopg2"
    fixed = mask_url(f"postgresql+{driver}://{rest}")
    raise ValueError(
        f"the storage URL {mask_url(url)!r} uses the scheme {scheme!r}, which SQLAlchemy (and so "
        f"Optuna and optuna-dashboard) does not accept since SQLAlchemy 1.4; write it as "
        f"{fixed!r}."
    )


def _check_port(url: str, backend: str) -> None:
    """A server URL's port, if it has one, must be a decimal int in ``[1, 65535]``."""
    netloc = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    hostport = netloc.rpartition("@")[2]
    if ":" not in hostport or hostport.endswith("]"):  # no port ("[::1]": IPv6, no port)
        return
    host, _, port = hostport.rpartition(":")
    if not port:  # "host:": the driver's default, as in urllib
        return
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(
            f"the port of the storage URL {mask_url(url)!r} must be an int with "
            f"`1 <= port <= 65535`, but got {port!r}; write e.g. {host}:{_DEFAULT_PORTS[backend]} "
            f"(the default {backend} port), or leave the port out for the default."
        )


def _retry_callback(interval: int | None, max_retry: int | None) -> Any:
    if interval is None:
        return None
    with warnings.catch_warnings():  # experimental since Optuna 2.8; we rely on it on purpose
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)


def _rdb(
    url: str,
    interval: int | None,
    grace: int | None,
    max_retry: int | None,
    engine_kwargs: dict[str, Any],
    cls: type[optuna.storages.RDBStorage] = optuna.storages.RDBStorage,
) -> BaseStorage:
    import sqlalchemy

    callback = _retry_callback(interval, max_retry)
    for attempt in range(_SCHEMA_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return cls(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=interval,
                    grace_period=grace,
                    heartbeat_stale_trial_callback=callback,
                )
        except (
            sqlalchemy.exc.IntegrityError,  # version row inserted twice
            sqlalchemy.exc.ProgrammingError,  # PostgreSQL / MySQL: table already exists
            sqlalchemy.exc.OperationalError,  # SQLite: table already exists, database locked
        ) as err:
            # Optuna creates its schema unguarded: of two workers started at once on a fresh
            # database, one fails to create a table or version row the other just created.
            # A second attempt finds the schema in place.
            if attempt + 1 == _SCHEMA_ATTEMPTS:
                raise err
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _local_path(url: str, scheme: str, what: str) -> Path:
    prefix = f"{scheme}:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(
            f"a {what} URL must be '{prefix}relative/path' or '{prefix}/absolute/path', "
            f"but got {url!r}."
        )
    path = Path(url[len(prefix) :].split("?", 1)[0])
    if not path.parent.is_dir():
        raise ValueError(
            f"the directory of the {what} {url!r} ({path.parent.resolve()}) does not exist; "
            "create it first or fix the path."
        )
    if path.is_dir():
        raise ValueError(f"the {what} URL {url!r} names a directory, not a file.")
    return path


def _open_sqlite(
    url: str, interval: int | None, grace: int | None, max_retry: int | None, timeout: float
) -> BaseStorage:
    path = _local_path(url, "sqlite", "SQLite database")
    existed = path.exists()
    if existed and path.stat().st_size > 0:
        with path.open("rb") as f:
            if f.read(len(_SQLITE_HEADER)) != _SQLITE_HEADER:
                raise ValueError(
                    f"the SQLite URL {url!r} names {path.resolve()}, which is not a SQLite "
                    "database; choose another file name."
                )
    try:
        return _rdb(
            url, interval, grace, max_retry, {"connect_args": {"timeout": timeout}}, SQLiteStorage
        )
    except Exception as err:
        if not existed and path.exists() and path.stat().st_size == 0:
            path.unlink()  # the empty file our failed attempt left; never another's database
        raise ConnectionError(
            f"cannot open the SQLite database {url!r}: {_first_line(err)}. Check that the "
            "directory is writable and the file is not on a network file system."
        ) from err


def _open_server(
    url: str, interval: int | None, grace: int | None, max_retry: int | None
) -> BaseStorage:
    import sqlalchemy
    from sqlalchemy.engine import make_url

    masked = mask_url(url)
    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
        dialect.import_dbapi()
    except sqlalchemy.exc.ArgumentError as err:
        raise ValueError(f"the storage URL {masked!r} is malformed: {_first_line(err)}.") from err
    except (sqlalchemy.exc.NoSuchModuleError, ImportError) as err:
        raise ValueError(
            f"the storage URL {masked!r} needs a database driver that is not installed "
            f"({_first_line(err)}); install psycopg2-binary for PostgreSQL or pymysql for MySQL "
            "and write the URL as postgresql+psycopg2://... or mysql+pymysql://...."
        ) from err
    connect_args = {"connect_timeout": 10}
    probe = sqlalchemy.create_engine(url, connect_args=connect_args, poolclass=sqlalchemy.NullPool)
    try:
        with probe.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.SQLAlchemyError as err:
        reason = _first_line(getattr(err, "orig", None) or err)
        raise ConnectionError(
            f"cannot connect to the storage {masked!r}: {reason}. Check "
            f"that the server is running and reachable at {parsed.host}:{parsed.port or 'default'}"
            f", that user {parsed.username!r} and its password are right, and that database "
            f"{parsed.database!r} exists."
        ) from err
    finally:
        probe.dispose()
    kwargs: dict[str, Any] = {"connect_args": connect_args, "pool_pre_ping": True}
    return _rdb(url, interval, grace, max_retry, kwargs)


def _journal_file(url: str) -> Any:
    path = _local_path(url, "journal", "journal file")
    lock = HolderFileLock(str(path))  # a kill -9 inside the lock does not stall it for 30 s
    return optuna.storages.journal.JournalFileBackend(str(path), lock_obj=lock)


def _journal_redis(url: str) -> Any:
    if importlib.util.find_spec("redis") is None:
        raise ValueError(f"the storage URL {mask_url(url)!r} needs `pip install redis`.")
    import redis

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    prefix = query.pop("prefix", "")
    plain = urlunsplit(parts._replace(query=urlencode(query)))
    try:
        redis.Redis.from_url(plain, socket_connect_timeout=10).ping()
    except (redis.RedisError, ValueError) as err:
        raise ConnectionError(
            f"cannot connect to the Redis storage {mask_url(url)!r}: {_first_line(err)}. Check "
            f"that Redis is running and reachable at {parts.hostname}:{parts.port or 6379} and "
            "that the password and database number are right."
        ) from err
    with warnings.catch_warnings():  # experimental since Optuna 3.1
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.journal.JournalRedisBackend(plain, prefix=prefix)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0].rstrip(".") if text else type(err).__name__
