"""The server of ``grpc://`` storage URLs: Optuna's gRPC proxy and our ``optuna_nas.Storage``
service (see :mod:`optuna_nas.storage._grpc`) in front of one RDB, on one port."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
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
        return {"protocol": PROTOCOL, "time": time.time(), "pid": os.getpid()}

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
    #: The other server processes on the same port (``processes > 1``).
    _children: list[subprocess.Popen[str]] = dataclasses.field(default_factory=list, repr=False)

    def stop(self, grace: float | None = None) -> None:
        """Stop serving; calls still running get ``grace`` seconds (``None``: none)."""
        for child in self._children:  # each stops with the same grace
            with contextlib.suppress(OSError, ValueError):
                child.stdin.write(json.dumps({"stop": grace}) + "\n")  # type: ignore[union-attr]
                child.stdin.close()  # type: ignore[union-attr]
        self._server.stop(grace).wait()
        for child in self._children:
            try:
                child.wait(timeout=(grace or 0) + 10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            child.stdout.close()  # type: ignore[union-attr]  # (closed already once it started)

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
    storage: str,
    *,
    port: int,
    host: str = "127.0.0.1",
    threads: int = 16,
    processes: int = 1,
) -> StorageServer:
    """Serve the RDB ``storage`` to workers at ``grpc://host:port`` and return at once.

    The server answers Optuna's gRPC proxy service in front of the RDB (what
    :func:`optuna.storages.run_grpc_proxy_server` serves) and our ``optuna_nas.Storage``
    service (see the module docstring). It has no TLS and no authentication: listen on
    127.0.0.1, or on a network only trusted machines reach.

    One Python process serves every call under one interpreter lock; with many workers and
    short trials it becomes the bottleneck (about 50 ms of its CPU per trial here, so some 20
    trials/s at most). ``processes > 1`` starts that many server processes on the same port
    (``SO_REUSEPORT``: the kernel spreads the workers' connections over them). They share
    nothing but the database: each keeps its own cache of finished trials, which never change,
    and reads the unfinished ones from the database on every call, as one process does; the
    claims and heartbeats live in the database. The extra processes stop with this one, and
    also when it dies (they watch a pipe from it and their parent). Spreading connections
    over processes that share a port is Linux's ``SO_REUSEPORT``; elsewhere the option may be
    accepted without the spreading.

    Args:
        storage: The RDB URL (``sqlite:///``, ``postgresql+psycopg2://``, ``mysql+pymysql://``).
        port: The port to listen on; ``0``: one the OS chooses (see ``StorageServer.port``).
        host: The address to listen on; ``0.0.0.0`` for every interface.
        threads: Calls served at once, per process.
        processes: Server processes on the port.

    Raises:
        ValueError: ``storage`` is not an RDB URL, grpcio is missing, or an argument is out
            of range.
        ConnectionError: the database does not answer.
        OSError: the port cannot be bound (in use, or ``host`` is not an address of this
            machine).
    """
    from optuna_nas.storage._urls import mask_url

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
    for name, value in (("threads", threads), ("processes", processes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name} >= 1` must hold, but got {name}={value!r}.")
    check_grpc_installed("optuna-nas storage-server")
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if processes > 1 and port != 0:
        _check_port_free(host, port, address)
    server, bound = _serve(storage, address, threads, reuse_port=processes > 1)
    children: list[subprocess.Popen[str]] = []
    try:
        shared = f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"
        for _ in range(processes - 1):
            _start_child(storage, shared, threads, children)
        for child in children:
            _await_child(child)
    except BaseException:
        StorageServer(url="", port=bound, _server=server, _children=children).stop()
        raise
    name = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    name = f"[{name}]" if ":" in name else name
    return StorageServer(
        url=f"grpc://{name}:{bound}", port=bound, _server=server, _children=children
    )


def _port_error(address: str) -> OSError:
    return OSError(
        f"the storage server cannot listen on {address}: the port is in use or the host is not "
        "an address of this machine; choose another --port (or --host)."
    )


def _check_port_free(host: str, port: int, address: str) -> None:
    """Raise if ``host:port`` is taken, on any address the host name resolves to: with
    ``SO_REUSEPORT`` on, gRPC would share a port that another server (also with it on, gRPC's
    default) holds instead of failing."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as err:
        raise _port_error(address) from err
    for family, kind, proto, _, where in found:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
            try:
                probe.bind(where)
            except OSError as err:
                raise _port_error(address) from err


def _serve(storage: str, address: str, threads: int, *, reuse_port: bool) -> tuple[Any, int]:
    """Start one server process's gRPC server on ``address``; return it and its port."""
    import grpc

    from optuna_nas.storage._urls import open_storage

    # Without SO_REUSEPORT (on by default in gRPC) a second server on a busy port fails; with
    # several processes it is what lets them share the port (see _check_port_free).
    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads),
        options=[("grpc.so_reuseport", 1 if reuse_port else 0)],
    )
    try:  # the port first: a busy one fails before the database is touched
        bound = server.add_insecure_port(address)
    except RuntimeError as err:
        raise _port_error(address) from err
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
    return server, bound


# An extra server process: ``_child_main`` (run by ``python -c``) reads one JSON line (storage
# URL, address, threads) from stdin, never the command line (the URL may hold a password),
# answers one JSON line on stdout ({"port": p} or {"error": kind, "message": m}) and then
# writes nothing more there (its stdout goes to stderr). It serves until a line {"stop": grace}
# arrives, or its stdin ends, or its parent is gone (it was re-parented: a copy of the pipe in
# another child of the parent would keep the stdin open).
_CHILD_ERRORS: dict[str, type[Exception]] = {
    "ValueError": ValueError,
    "ConnectionError": ConnectionError,
    "OSError": OSError,
}
_CHILD_START_S = 120.0
_CHILD_GRACE_S = 5.0  # when the parent is gone or the pipe ends without a stop line
_CHILD_CODE = "from optuna_nas.storage._grpc_server import _child_main; _child_main()"


def _start_child(
    storage: str, address: str, threads: int, children: list[subprocess.Popen[str]]
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD_CODE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    children.append(child)  # stopped by the caller if anything below fails
    request = {"storage": storage, "address": address, "threads": threads}
    child.stdin.write(json.dumps(request) + "\n")  # type: ignore[union-attr]
    child.stdin.flush()  # type: ignore[union-attr]


def _await_child(child: subprocess.Popen[str]) -> None:
    """Wait for a child's one line; raise its start-up error as the parent's own."""
    ready: list[str] = []
    reader = threading.Thread(target=lambda: ready.append(child.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(_CHILD_START_S)
    line = ready[0] if ready else ""
    try:
        answer = json.loads(line) if line.strip() else {}
    except json.JSONDecodeError:
        answer = {}
    if "port" in answer:
        child.stdout.close()  # type: ignore[union-attr]
        return
    if "error" in answer:
        raise _CHILD_ERRORS.get(answer["error"], RuntimeError)(answer["message"])
    if reader.is_alive():
        raise RuntimeError(f"a storage server process did not start in {_CHILD_START_S:.0f} s")
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=5)
    raise RuntimeError(
        f"a storage server process did not start (exit code {child.poll()}): {line.strip()!r}"
    )


def _child_main() -> None:
    parent = os.getppid()
    request = json.loads(sys.stdin.readline())
    try:
        server, bound = _serve(
            request["storage"], request["address"], request["threads"], reuse_port=True
        )
    except Exception as err:
        kind = next((k for k, v in _CHILD_ERRORS.items() if isinstance(err, v)), "RuntimeError")
        print(json.dumps({"error": kind, "message": str(err)}), flush=True)
        sys.exit(1)
    print(json.dumps({"port": bound}), flush=True)
    os.dup2(2, 1)  # nobody reads our stdout any more: a full pipe would block a print
    grace: list[float | None] = [_CHILD_GRACE_S]
    done = threading.Event()

    def read_stop() -> None:
        # Only our parent writes here; a line we cannot read stops us with the default grace.
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            line = sys.stdin.readline()  # "" at the end of the pipe
            if line.strip():
                grace[0] = json.loads(line)["stop"]
        done.set()

    threading.Thread(target=read_stop, daemon=True).start()
    # Ctrl-C reaches the whole process group: the parent then sends the stop line, or is gone.
    with contextlib.suppress(KeyboardInterrupt):
        while not done.wait(1.0):
            if os.getppid() != parent:  # re-parented: the parent died
                break
    server.stop(grace[0]).wait()
