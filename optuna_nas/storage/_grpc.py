"""Many workers on one RDB through Optuna's gRPC storage proxy, with heartbeats and claims.

Workers open ``grpc://host:port`` (:class:`GrpcHeartbeatStorage`, a
:class:`optuna.storages.GrpcStorageProxy`); one server, :func:`start_storage_server` (the
``optuna-nas storage-server`` command), holds the database connections. The server answers
Optuna's own proxy service (``optuna.StorageService``, what
:func:`optuna.storages.run_grpc_proxy_server` serves) and, on the same port, a small service of
ours, ``optuna_nas.Storage``, for what Optuna's storage API cannot express:

``Hello``
    The protocol version, checked when a worker opens the URL (and the connection probe), and
    the server process's pid.
``Now``, ``Beat``, ``Stale``
    The server's clock; a trial's heartbeat stamped with it; the study's running trials whose
    heartbeat is older than a grace period by it. Heartbeats are trial system attrs
    (:class:`~optuna_nas.storage._heartbeat.AttrHeartbeat`) on one clock for all workers, as
    the database clock is for :class:`~optuna.storages.RDBStorage`; the server reads its clock
    and writes (or reads) the attr in one call, where a worker would need two (and a stale
    check would send it every running trial).
``Claim``, ``TakeOver``, ``ClaimJob``, ``Job``, ``ReplaceJob``
    The study's claim board (deduplication, trial slots, supernet and DARTS jobs), run by the
    server on the RDB behind it: the same ``optuna_nas_claims`` / ``optuna_nas_jobs`` tables a
    worker that opens the RDB URL directly uses, so direct and proxied workers of one study agree.

Messages of our service are JSON. Every call has a deadline (``timeout``). A server that is down,
refuses the connection or does not answer in time raises a :class:`ConnectionError` naming the
URL; nothing is retried: the worker stops, and rerunning it resumes the study (its trial left
``RUNNING`` is failed by its heartbeat and retried with the same params). Only a heartbeat that
fails is logged and skipped, so that a running trial survives a short outage of the server.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import json
from typing import Any
import warnings

import optuna
from optuna.trial import FrozenTrial

from optuna_nas import _compat
from optuna_nas.storage import _claims
from optuna_nas.storage._claims import ClaimBoard
from optuna_nas.storage._claims import JobOwner
from optuna_nas.storage._heartbeat import AttrHeartbeat
from optuna_nas.storage._heartbeat import StaleCallback

#: The version of the ``optuna_nas.Storage`` service; server and workers must agree.
PROTOCOL = 2
#: Seconds one call to the server may take before it fails with a ``ConnectionError``.
RPC_TIMEOUT_S = 60.0
#: Seconds the connection probe of :func:`connect_grpc` waits for the server.
CONNECT_TIMEOUT_S = 10.0
SERVICE = "optuna_nas.Storage"
METHODS = ("Hello", "Now", "Beat", "Stale", "Claim", "TakeOver", "ClaimJob", "Job", "ReplaceJob")
_INSTALL = "pip install 'optuna-nas[grpc]'"
_logger = optuna.logging.get_logger(__name__)


def parse_grpc_url(url: str) -> tuple[str, int]:
    """``(host, port)`` of ``grpc://host:port`` (``grpc://[::1]:port`` for IPv6)."""
    rest = url.split("://", 1)[1]
    example = "write e.g. grpc://127.0.0.1:13000 (the --port of `optuna-nas storage-server`)"
    if not rest or any(c in rest for c in "/?#@"):
        raise ValueError(f"a gRPC storage URL is grpc://host:port, but got {url!r}; {example}.")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or host.endswith(":"):
        raise ValueError(f"the gRPC storage URL {url!r} names no port; {example}.")
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(
            f"the port of the gRPC storage URL {url!r} must be an int with "
            f"`1 <= port <= 65535`, but got {port!r}; {example}."
        )
    return host, int(port)


def check_grpc_installed(what: str) -> None:
    """Raise a ``ValueError`` naming ``what`` and the fix unless grpcio and protobuf work."""
    try:
        import grpc  # noqa: F401

        _compat.grpc_api_module()
    except (ImportError, RuntimeError) as err:  # RuntimeError: a grpcio too old for Optuna
        raise ValueError(
            f"{what} needs grpcio and protobuf ({first_line(err)}); install them with "
            f"`{_INSTALL}`."
        ) from err


def connect_grpc(
    url: str,
    *,
    heartbeat_interval: int | None,
    grace_period: int | None,
    heartbeat_stale_trial_callback: StaleCallback | None,
) -> GrpcHeartbeatStorage:
    """Open ``grpc://host:port`` once the server has answered (see :func:`open_storage`)."""
    parse_grpc_url(url)
    check_grpc_installed(f"the storage URL {url!r}")
    storage = GrpcHeartbeatStorage(
        url,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        heartbeat_stale_trial_callback=heartbeat_stale_trial_callback,
    )
    try:
        hello = storage._nas.call("Hello", {}, timeout=CONNECT_TIMEOUT_S)
    except BaseException:
        storage.close()
        raise
    if hello.get("protocol") != PROTOCOL:
        storage.close()
        raise ConnectionError(
            f"the storage server at {url} speaks protocol {hello.get('protocol')!r} and this "
            f"optuna-nas protocol {PROTOCOL}; run the same optuna-nas version on the server and "
            "the workers."
        )
    return storage


class GrpcHeartbeatStorage(_compat.HookedGrpcStorageProxy, AttrHeartbeat):
    """Optuna's :class:`~optuna.storages.GrpcStorageProxy` with heartbeats, the claim board and
    clear errors, for a server started by :func:`start_storage_server`.

    Open it with ``open_storage("grpc://host:port")``, which also checks that the server
    answers. Trials come back with their params and attrs in name order
    (:func:`canonical_order`), the same in every worker.

    Args:
        url: ``grpc://host:port`` of the server.
        heartbeat_interval: Seconds between heartbeats of a running trial; ``None``: off.
        grace_period: Seconds without a heartbeat before a running trial is stale
            (default ``2 * heartbeat_interval``, as in ``RDBStorage``).
        heartbeat_stale_trial_callback: Called with each trial failed for being stale.
        timeout: Seconds one call to the server may take.
    """

    def __init__(
        self,
        url: str,
        *,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
        heartbeat_stale_trial_callback: StaleCallback | None = None,
        timeout: float = RPC_TIMEOUT_S,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"`timeout > 0` must hold, but got {timeout=}.")
        host, port = parse_grpc_url(url)
        self.url = url
        self._timeout = float(timeout)
        self._init_heartbeat(heartbeat_interval, grace_period, heartbeat_stale_trial_callback)
        with warnings.catch_warnings():  # experimental since Optuna 4.2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(host=host, port=port)

    def wrap_stub(self, stub: Any) -> Any:
        # A deadline and our errors on every call of Optuna's stub (and so of its trial cache).
        return _DeadlineStub(stub, self.url, self._timeout)

    @staticmethod
    def on_cached_trial(trial: FrozenTrial) -> FrozenTrial:
        return canonical_order(trial)

    def on_channel(self, channel: Any) -> None:
        self._nas = _NasClient(channel, self.url, self._timeout)
        with _claims._BOARDS_LOCK:  # claim_board(self) finds it; see optuna_nas.storage._claims
            _claims._BOARDS[self] = _GrpcBoard(self._nas)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return canonical_order(super().get_trial(trial_id))

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        del state["_nas"]
        return state

    def _now(self) -> float:
        return float(self._nas.call("Now", {})["time"])

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self._nas.call("Beat", {"trial_id": trial_id})
        except ConnectionError as err:  # the next beat tries again; the grace period covers it
            _logger.warning(f"The heartbeat of trial id {trial_id} was not recorded: {err}")

    def stale_trial_ids(self, study_id: int) -> list[int]:
        grace = self.stale_after()
        if grace is None:
            return []
        return list(self._nas.call("Stale", {"study_id": study_id, "grace": grace})["trial_ids"])


def canonical_order(trial: FrozenTrial) -> FrozenTrial:
    """``trial`` with its params, distributions and attrs in name order and its intermediate
    values in step order, in place.

    The proxy sends them as protobuf maps, which arrive in an order that changes from process
    to process; code that iterates ``trial.params`` (a mutation picking the i-th name) would
    draw differently in every worker despite its seed. The RDB gives insertion (suggestion)
    order, so the two agree where a space suggests its names in sorted order.
    """
    trial.params = dict(sorted(trial.params.items()))
    trial.distributions = dict(sorted(trial.distributions.items()))
    trial.user_attrs = dict(sorted(trial.user_attrs.items()))
    trial.system_attrs = dict(sorted(trial.system_attrs.items()))
    trial.intermediate_values = dict(sorted(trial.intermediate_values.items()))
    return trial


class _DeadlineStub:
    """Optuna's ``StorageServiceStub`` whose calls carry a deadline and raise our errors."""

    def __init__(self, stub: Any, url: str, timeout: float) -> None:
        self._stub, self._url, self._timeout = stub, url, timeout

    def __getattr__(self, name: str) -> Callable[[Any], Any]:
        method = getattr(self._stub, name)

        def call(request: Any) -> Any:
            return _guarded(self._url, lambda: method(request, timeout=self._timeout))

        return call


class _NasClient:
    """The client of our ``optuna_nas.Storage`` service: JSON in, JSON out."""

    def __init__(self, channel: Any, url: str, timeout: float) -> None:
        self._url, self._timeout = url, timeout
        self._methods = {
            name: channel.unary_unary(
                f"/{SERVICE}/{name}", request_serializer=dumps, response_deserializer=loads
            )
            for name in METHODS
        }

    def call(self, name: str, request: dict[str, Any], timeout: float | None = None) -> Any:
        method = self._methods[name]
        deadline = self._timeout if timeout is None else timeout
        return _guarded(self._url, lambda: method(request, timeout=deadline))


def _guarded(url: str, call: Callable[[], Any]) -> Any:
    import grpc

    try:
        return call()
    except grpc.RpcError as err:
        code = err.code()
        if code in (  # Optuna's client turns these into KeyError, ValueError, ...
            grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.ALREADY_EXISTS,
            grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.INVALID_ARGUMENT,
        ):
            raise
        raise _error(url, code, err.details() or "") from None


def _error(url: str, code: Any, details: str) -> Exception:
    import grpc

    host, port = parse_grpc_url(url)
    reason = f"{code.name}: {first_line(details) or 'no details'}"
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return ConnectionError(
            f"the server at {url} is not an optuna-nas storage server ({reason}); a plain Optuna "
            f"gRPC proxy lacks the heartbeat clock and claim board optuna-nas needs. Start it "
            f"with `optuna-nas storage-server --storage <RDB URL> --port {port}`."
        )
    if code in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
    ):
        return ConnectionError(
            f"the gRPC storage proxy {url} does not answer ({reason}). Check that "
            f"`optuna-nas storage-server --storage <RDB URL> --port {port}` is running on "
            f"{host} and reachable from this machine, then run this again (a worker rerun "
            "resumes the study where it stopped)."
        )
    return RuntimeError(f"the gRPC storage proxy {url} failed ({reason}); see the server's log.")


class _GrpcBoard(ClaimBoard):
    """The claim board of the RDB behind the server, by RPC."""

    def __init__(self, client: _NasClient) -> None:
        self._client = client

    def claim(self, study_id: int, key: str, trial_id: int) -> int:
        request = {"study_id": study_id, "key": key, "trial_id": trial_id}
        return int(self._client.call("Claim", request)["owner"])

    def take_over(self, study_id: int, key: str, old: int, new: int) -> bool:
        request = {"study_id": study_id, "key": key, "old": old, "new": new}
        return bool(self._client.call("TakeOver", request)["ok"])

    def claim_job(self, study_id: int, key: str, owner: JobOwner) -> JobOwner:
        request = {"study_id": study_id, "key": key, "owner": dataclasses.asdict(owner)}
        return JobOwner(**self._client.call("ClaimJob", request)["holder"])

    def job(self, study_id: int, key: str) -> JobOwner | None:
        holder = self._client.call("Job", {"study_id": study_id, "key": key})["holder"]
        return None if holder is None else JobOwner(**holder)

    def replace_job(
        self, study_id: int, key: str, expected: JobOwner, new: JobOwner | None
    ) -> bool:
        request = {
            "study_id": study_id,
            "key": key,
            "expected": dataclasses.asdict(expected),
            "new": None if new is None else dataclasses.asdict(new),
        }
        return bool(self._client.call("ReplaceJob", request)["ok"])


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def loads(data: bytes) -> Any:
    return json.loads(data)


def first_line(err: BaseException | str) -> str:
    lines = str(err).strip().splitlines()
    if lines:
        return lines[0].rstrip(".")
    return "" if isinstance(err, str) else type(err).__name__
