"""The server of ``grpc://`` storage URLs: Optuna's gRPC proxy and our ``optuna_nas.Storage``
service (see :mod:`optuna_nas.storage._grpc`) in front of one RDB, on one port."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import dataclasses
import socket
import time
from types import TracebackType
from typing import Any
from typing import cast

import optuna
from optuna.storages import BaseStorage

from optuna_nas import _compat
from optuna_nas.storage import _claims
from optuna_nas.storage._claims import JobOwner
from optuna_nas.storage._grpc import METHODS
from optuna_nas.storage._grpc import PROTOCOL
from optuna_nas.storage._grpc import SERVICE
from optuna_nas.storage._grpc import check_grpc_installed
from optuna_nas.storage._grpc import dumps
from optuna_nas.storage._grpc import loads
from optuna_nas.storage._heartbeat import find_stale
from optuna_nas.storage._heartbeat import write_heartbeat


class _NasService:
    """The server side of ``optuna_nas.Storage`` over the board of the RDB ``storage``."""

    def __init__(self, storage: BaseStorage) -> None:
        self._storage = storage
        self._board = _claims.claim_board(storage)  # creates its tables now, before serving

    def Hello(self, request: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"protocol": PROTOCOL, "time": time.time()}

    def Now(self, request: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"time": time.time()}

    def Beat(self, r: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"ok": write_heartbeat(self._storage, r["trial_id"], time.time())}

    def Stale(self, r: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"trial_ids": find_stale(self._storage, r["study_id"], r["grace"], time.time())}

    def Claim(self, r: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"owner": self._board.claim(r["study_id"], r["key"], r["trial_id"])}

    def TakeOver(self, r: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"ok": self._board.take_over(r["study_id"], r["key"], r["old"], r["new"])}

    def ClaimJob(self, r: dict[str, Any], context: Any) -> dict[str, Any]:
        holder = self._board.claim_job(r["study_id"], r["key"], JobOwner(**r["owner"]))
        return {"holder": dataclasses.asdict(holder)}

    def Job(self, r: dict[str, Any], context: Any) -> dict[str, Any]:
        holder = self._board.job(r["study_id"], r["key"])
        return {"holder": None if holder is None else dataclasses.asdict(holder)}

    def ReplaceJob(self, r: dict[str, Any], context: Any) -> dict[str, Any]:
        new = None if r["new"] is None else JobOwner(**r["new"])
        expected = JobOwner(**r["expected"])
        return {"ok": self._board.replace_job(r["study_id"], r["key"], expected, new)}


@dataclasses.dataclass
class StorageServer:
    """A running storage server (made by :func:`start_storage_server`); a context manager that
    stops it on exit."""

    #: The URL workers open: ``grpc://host:port``.
    url: str
    #: The port it listens on (the one the OS chose for ``port=0``).
    port: int
    _server: Any = dataclasses.field(repr=False)

    def stop(self, grace: float | None = None) -> None:
        """Stop serving; calls still running get ``grace`` seconds (``None``: none)."""
        self._server.stop(grace).wait()

    def wait(self) -> None:
        """Block until the server stops."""
        self._server.wait_for_termination()

    def __enter__(self) -> StorageServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_storage_server(
    storage: str, *, port: int, host: str = "127.0.0.1", threads: int = 16
) -> StorageServer:
    """Serve the RDB ``storage`` to workers at ``grpc://host:port`` and return at once.

    The server answers Optuna's gRPC proxy service in front of the RDB (what
    :func:`optuna.storages.run_grpc_proxy_server` serves) and our ``optuna_nas.Storage``
    service (see the module docstring). It has no TLS and no authentication: listen on
    127.0.0.1, or on a network only trusted machines reach.

    Args:
        storage: The RDB URL (``sqlite:///``, ``postgresql+psycopg2://``, ``mysql+pymysql://``).
        port: The port to listen on; ``0``: one the OS chooses (see ``StorageServer.port``).
        host: The address to listen on; ``0.0.0.0`` for every interface.
        threads: Calls served at once.

    Raises:
        ValueError: ``storage`` is not an RDB URL, grpcio is missing, or an argument is out
            of range.
        ConnectionError: the database does not answer.
        OSError: the port cannot be bound (in use, or ``host`` is not an address of this
            machine).
    """
    from optuna_nas.storage._urls import mask_url
    from optuna_nas.storage._urls import open_storage

    scheme = storage.split("://", 1)[0].split("+", 1)[0].lower() if "://" in storage else ""
    if scheme not in ("sqlite", "postgresql", "mysql", "mariadb"):
        raise ValueError(
            f"the storage server serves an RDB (sqlite:///, postgresql+psycopg2://, "
            f"mysql+pymysql://), but got {mask_url(storage)!r}; Optuna's gRPC proxy does not "
            "serve journal or Redis storages (optuna/optuna#6084): let workers open such a URL "
            "directly."
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"`0 <= port <= 65535` must hold, but got {port=!r}.")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"`threads >= 1` must hold, but got {threads=!r}.")
    check_grpc_installed("optuna-nas storage-server")
    import grpc

    # Without SO_REUSEPORT (on by default in gRPC) a second server on a busy port fails.
    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads), options=[("grpc.so_reuseport", 0)]
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:  # the port first: a busy one fails before the database is touched
        bound = server.add_insecure_port(address)
    except RuntimeError as err:
        raise OSError(
            f"the storage server cannot listen on {address}: the port is in use or {host} is not "
            "an address of this machine; choose another --port (or --host)."
        ) from err
    try:
        # The cache every Optuna process puts in front of an RDB (optuna.storages.get_storage),
        # with the reads it makes for concurrent calls shared.
        rdb = cast(optuna.storages.RDBStorage, open_storage(storage, heartbeat_interval=None))
        backend = _compat.SharedReadCache(rdb)
        service = _NasService(backend)
    except BaseException:
        server.stop(None)
        raise
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(service, name), request_deserializer=loads, response_serializer=dumps
        )
        for name in METHODS
    }
    _compat.add_storage_proxy_service(server, backend)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.start()
    name = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    name = f"[{name}]" if ":" in name else name
    return StorageServer(url=f"grpc://{name}:{bound}", port=bound, _server=server)
