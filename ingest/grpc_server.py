"""The gRPC listener of the edge: a grpc.aio server on the API's event loop, beside aiohttp.

What `health.http.observe` and `translate` are to HTTP, `unary` is to a gRPC method: a request
id (from `x-request-id` metadata, or made), the metrics of go-grpc-prometheus (the names and
label values Grafana's gRPC dashboards expect), one JSON log line per call, and the edge's
failures as status codes with the OTLP retry semantics:

| failure | code | RetryInfo |
|---|---|---|
| bad or missing key | UNAUTHENTICATED | |
| undecodable message | INVALID_ARGUMENT | |
| message past max_body_bytes | RESOURCE_EXHAUSTED | none: not retryable |
| rate limit | RESOURCE_EXHAUSTED | until the window resets |
| bytes in flight, Kafka or the key store unavailable | UNAVAILABLE | a few seconds |

RetryInfo travels twice: in `grpc-status-details-bin` (google.rpc.Status, read by Go clients
and the Collector) and as `google.rpc.retryinfo-bin`, the trailer the Python exporter reads.
Anything else is a bug: logged with its traceback and answered INTERNAL.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from loguru import logger
from prometheus_client import Counter, Histogram

from health.http import LATENCY_BUCKETS, request_id_from
from ingest.auth import AuthUnavailable, Unauthorized
from ingest.config import join_address, split_address
from ingest.encoding import BodyTooLarge, ClientError
from ingest.limits import Overloaded, RateLimited
from ingest.publisher import PublishError

# go-grpc-prometheus spells codes as Go's codes.Code.String(): OK, Unauthenticated, ...
GO_CODE = {
    code: "OK" if code is grpc.StatusCode.OK else code.name.title().replace("_", "").replace("Cancelled", "Canceled")
    for code in grpc.StatusCode
}
STARTED = Counter(
    "grpc_server_started_total", "RPCs started on the server", ["grpc_type", "grpc_service", "grpc_method"]
)
HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, whatever their status",
    ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
)
SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time from an RPC's start to its answer",
    ["grpc_type", "grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)
# Codes the server is to blame for, logged as warnings (as HTTP's 5xx are).
_SERVER_SIDE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})
_RETRY_INFO_KEY = "google.rpc.retryinfo-bin"
# Seconds a client should wait when Kafka or the key store does not answer (HTTP: Retry-After: 5).
UNAVAILABLE_RETRY_S = 5


@dataclass
class Call:
    """One RPC as its method sees it: metadata (text values, lower-case keys) and what its log
    line and trailers will carry."""

    request_id: str
    metadata: dict[str, str]
    project_id: str | None = None
    log: dict[str, Any] = field(default_factory=dict)
    log_msg: str = "rpc"
    trailers: list[tuple[str, str]] = field(default_factory=list)


Method = Callable[[bytes, Call], Awaitable[bytes]]


def status_for(exc: Exception) -> tuple[grpc.StatusCode, str, float | None]:
    """(code, message, retry delay in seconds or None) for a failure of the edge."""
    if isinstance(exc, Unauthorized):
        return grpc.StatusCode.UNAUTHENTICATED, str(exc), None
    if isinstance(exc, BodyTooLarge):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, exc.message, None
    if isinstance(exc, ClientError):
        return grpc.StatusCode.INVALID_ARGUMENT, exc.message, None
    if isinstance(exc, RateLimited):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), float(exc.reset_s)
    if isinstance(exc, Overloaded):
        return grpc.StatusCode.UNAVAILABLE, str(exc), float(exc.retry_after_s)
    if isinstance(exc, PublishError | AuthUnavailable):
        return grpc.StatusCode.UNAVAILABLE, "the event log is unavailable; retry later", float(UNAVAILABLE_RETRY_S)
    return grpc.StatusCode.INTERNAL, "internal error; it has been logged", None


def retry_trailers(code: grpc.StatusCode, message: str, delay_s: float) -> tuple[tuple[str, bytes], ...]:
    """RetryInfo in both carriers: the google.rpc.Status details and the Python exporter's trailer."""
    info = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=int(delay_s), nanos=int(delay_s % 1 * 1e9))
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=[detail]))
    return (*status.trailing_metadata, (_RETRY_INFO_KEY, info.SerializeToString()))


def unary(service: str, method: str, handle: Method) -> grpc.RpcMethodHandler:
    """A unary method taking and returning serialized messages, observed and translated."""
    labels = ("unary", service, method)
    # Every series exists from the start, as go-grpc-prometheus's InitializeMetrics makes them.
    STARTED.labels(*labels)
    SECONDS.labels(*labels)
    for code in GO_CODE.values():
        HANDLED.labels(*labels, code)
    path = f"/{service}/{method}"

    async def observed(request: Message, context: grpc.aio.ServicerContext) -> bytes:
        raw = request.take()
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        call = Call(request_id_from(metadata.get("x-request-id")), metadata)
        STARTED.labels(*labels).inc()
        start = time.perf_counter()

        # Recorded before the answer leaves (abort() sends it at once): a client that reads
        # /metrics after its answer sees its call counted.
        def record(code: grpc.StatusCode, error: str | None = None) -> None:
            elapsed = time.perf_counter() - start
            HANDLED.labels(*labels, GO_CODE[code]).inc()
            SECONDS.labels(*labels).observe(elapsed)
            log = logger.warning if code in _SERVER_SIDE else logger.info
            log(
                call.log_msg if code is grpc.StatusCode.OK else "rpc",
                request_id=call.request_id,
                project_id=call.project_id,
                method="POST",
                path=path,
                grpc_code=GO_CODE[code],
                duration_ms=round(elapsed * 1000, 2),
                error=error,
                **call.log,
            )

        trailers: tuple[tuple[str, str | bytes], ...] = (("x-request-id", call.request_id),)
        try:
            response = await handle(raw, call)
        except asyncio.CancelledError:  # the client went away or the server is stopping
            record(grpc.StatusCode.CANCELLED)
            raise
        except Exception as exc:
            code, message, retry_s = status_for(exc)
            if code is grpc.StatusCode.INTERNAL:
                logger.exception("unhandled error", request_id=call.request_id, path=path)
            record(code, str(exc)[:300] or type(exc).__name__)
            trailers += tuple(call.trailers)
            if retry_s is not None:
                trailers += retry_trailers(code, message, retry_s)
            # abort() raises with this exception as its context, and grpc keeps what it raised
            # in cycles only a full collection frees: the frames of its traceback held the
            # message (100 refused messages of 9 MiB kept the api at 1 GB). Their locals go now.
            chained: BaseException | None = exc
            while chained is not None:
                traceback.clear_frames(chained.__traceback__)
                chained = chained.__cause__ or chained.__context__
            del raw
            await context.abort(code, message, trailing_metadata=trailers)
            raise  # abort() raised already; this line is for the type checker
        record(grpc.StatusCode.OK)
        context.set_trailing_metadata(trailers + tuple(call.trailers))
        return response

    # The method sees the bytes, to bound and decode them itself.
    return grpc.unary_unary_rpc_method_handler(observed, request_deserializer=Message)


class Message:
    """A request's bytes, handed over once: grpc keeps its request objects in reference cycles
    (freed by a full collection, rare in the api), so it must not hold the bytes themselves."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def take(self) -> bytes:
        data, self._data = self._data, None
        return data or b""


class GrpcListener:
    """A grpc.aio server with `start()`/`stop()`; created inside the running loop, as grpc.aio
    objects belong to the loop they were made on."""

    def __init__(
        self,
        address: str,
        handlers: Sequence[grpc.GenericRpcHandler],
        *,
        max_message_bytes: int,
        grace_s: float,
    ) -> None:
        self.address = address
        self.port: int | None = None
        self._handlers = tuple(handlers)
        self._max_message_bytes = max_message_bytes
        self._grace_s = grace_s
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        server = grpc.aio.server(
            handlers=self._handlers,
            options=[
                # grpc's default (1) lets a second process bind the same port silently and
                # take half the connections; off, a busy port fails start-up instead.
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", self._max_message_bytes),
                ("grpc.max_concurrent_streams", 100),
                # Exporters hold one connection for hours; re-dialling every 10 min spreads them
                # over new replicas.
                ("grpc.max_connection_age_ms", 600_000),
                ("grpc.max_connection_age_grace_ms", 30_000),
            ],
        )
        try:
            self.port = server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen for gRPC on {self.address}: {exc}") from None
        await server.start()
        self._server = server

    async def stop(self) -> None:
        """Refuse new RPCs, give in-flight ones `grace_s` for their Kafka acknowledgement."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(self._grace_s)

    async def ping(self) -> None:
        """An HTTP/2 handshake with the listener, as a client would make it."""
        if self._server is None or self.port is None:
            raise ConnectionError("the gRPC listener is not running")
        host, _ = split_address(self.address)
        host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        async with grpc.aio.insecure_channel(join_address(host, self.port)) as channel:
            await channel.channel_ready()
