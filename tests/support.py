"""Helpers shared by the tests against the real stack."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import grpc
from aiokafka import AIOKafkaProducer
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from agenttrace.settings import Settings
from pipeline.envelope import Envelope, Group
from pipeline.events import TIME_FIELDS
from pipeline.times import to_micros
from sinks.clickhouse.client import ClickHouse
from sinks.postgres.keys import NewKey

# A developer may point the edge tests at an api of their own working tree.
API = os.environ.get("AGENTTRACE_TEST_API", "http://127.0.0.1:8080")
# ... and its OTLP/gRPC listener (HOST:PORT).
GRPC = os.environ.get("AGENTTRACE_TEST_GRPC", "127.0.0.1:4317")
WORKER = "http://127.0.0.1:8081"
# `make up` runs the Postgres stage in a worker of its own.
WORKER_POSTGRES = "http://127.0.0.1:8082"
WORKER_2 = "http://127.0.0.1:8083"  # the ClickHouse stage's second process
AGENTTRACE = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "agenttrace"
T = TypeVar("T")


def deep_copy(obj: T) -> T:
    """A deep copy of a dataclass instance, also of a compiled class (ops/stack/native.py), which
    copy.deepcopy cannot make: a compiled class's __new__ runs its __init__, which takes arguments."""
    return replace(obj, **{f.name: copy.deepcopy(getattr(obj, f.name)) for f in fields(obj)})


def basic_auth(key: NewKey) -> dict[str, str]:
    token = base64.b64encode(f"{key.public_key}:{key.secret_key}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def eventually(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, timeout_s: float = 20.0, every_s: float = 0.2
) -> T:
    """Poll `probe` until `done(result)`, or fail with the last result after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await probe()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s; last result: {result!r}")
        await asyncio.sleep(every_s)


async def read_trace(
    key: NewKey, trace_id: str, complete: Callable[[dict[str, Any]], bool], *, timeout_s: float = 45.0
) -> dict[str, Any]:
    """GET /api/public/traces/{trace_id}, as Langfuse's clients read it, until its document
    is `complete` (the stages write the trace's parts at their own pace)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:

        async def read() -> dict[str, Any]:
            async with http.get(f"{API}/api/public/traces/{trace_id}", headers=basic_auth(key)) as r:
                return await r.json() if r.status == 200 else {}

        return await eventually(read, lambda doc: bool(doc) and complete(doc), timeout_s=timeout_s)


async def rows(ch: ClickHouse, sql: str) -> list[dict[str, Any]]:
    """Query and return dicts; `sql` must name its columns explicitly."""
    cols = [c.strip().split(" AS ")[-1] for c in sql.split("SELECT", 1)[1].split("FROM", 1)[0].split(",")]
    return [dict(zip(cols, r, strict=True)) for r in await ch.fetch(sql)]


async def otlp_error(r: aiohttp.ClientResponse) -> tuple[int, str]:
    """The code and message of an OTLP/HTTP error answer: a google.rpc.Status in the request's
    encoding, as the specification requires (and exporters parse for their logs)."""
    if r.content_type == "application/json":
        doc = await r.json()
        assert set(doc) == {"code", "message"}, doc
        return int(doc["code"]), str(doc["message"])
    assert r.content_type == "application/x-protobuf", r.content_type
    status = Status()
    status.ParseFromString(await r.read())
    return status.code, status.message


async def scrape(http: Any, base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of `base`/metrics as {(sample name, labels): value}."""
    async with http.get(f"{base}/metrics") as r:
        assert r.status == 200, r.status
        text = await r.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """One sample's value, 0 when absent (a counter not yet incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def envelope(
    project_id: str, etype: str, body: dict[str, Any], ts_iso: str, *, event_id: str | None = None
) -> Envelope:
    """An envelope as the edge builds it (body times as µs), for tests that append to the events
    topic directly."""
    now = time.time_ns() // 1000
    return Envelope(
        id=event_id or str(uuid.uuid4()),
        project_id=project_id,
        type=etype,
        ts=to_micros(ts_iso) or now,
        received_at=now,
        body=edge_body(etype, body),
        request_id="test",
    )


def admin_token() -> str:
    """The api's admin token, as ops/stack/app.sh starts it: the environment's, else the stack's file."""
    path = Path(__file__).resolve().parents[1] / ".stack" / "admin-token"
    token = os.environ.get("AGENTTRACE_ADMIN_TOKEN") or (path.read_text().strip() if path.exists() else "")
    assert token, f"no admin token: `make up` writes {path} and starts the api with it"
    return token


def edge_body(etype: str, body: dict[str, Any]) -> dict[str, Any]:
    """The body with its times as µs, as the edge leaves it."""
    return {k: _micros_or_as_is(v) if k in TIME_FIELDS.get(etype, ()) else v for k, v in body.items()}


def _micros_or_as_is(value: Any) -> Any:
    """A time as the edge stores it; anything else as it is, for tests of poison events."""
    try:
        return to_micros(value)
    except ValueError:
        return value


async def produce(settings: Settings, envelopes: list[Envelope], *, grouped: int = 0) -> None:
    """Append envelopes to the events topic under their usual keys, acknowledged by the broker:
    the first `grouped` of them in one record as the edge writes it (version 3, the fields they
    share taken from the first), the rest one per record (version 2, as the log once held)."""
    records = [(envelopes[0].key(), group_record(envelopes[:grouped]))] if grouped else []
    records += [(env.key(), env.encode()) for env in envelopes[grouped:]]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(settings.topics.events, value, key=key)
    finally:
        await producer.stop()


def group_record(envelopes: list[Envelope]) -> bytes:
    first = envelopes[0]
    opening = Group.opening(
        first.project_id, first.received_at, first.request_id, first.sdk_name, first.sdk_version, first.source
    )
    group = Group(opening)
    for env in envelopes:
        group.add(Group.item(env.id, env.type, env.ts, env.body))
    return group.record()


async def agenttrace(*args: str, timeout_s: float = 60.0) -> tuple[int, str, str]:
    """Run the CLI as an operator would; (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        str(AGENTTRACE), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    return proc.returncode or 0, out.decode(), err.decode()


# --- OTLP/gRPC ---------------------------------------------------------------------------------

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def otlp_request(spans: int, *, trace_id: bytes | None = None, invalid: int = 0) -> bytes:
    """A serialized ExportTraceServiceRequest: one trace of `spans` valid spans (the first its
    root) followed by `invalid` spans with a zero trace id, which the edge rejects."""
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    trace_id = trace_id or uuid.uuid4().bytes
    root = os.urandom(8)
    for i in range(spans + invalid):
        span = scope.spans.add()
        span.trace_id = trace_id if i < spans else bytes(16)
        span.span_id = root if i == 0 else os.urandom(8)
        if 0 < i < spans:
            span.parent_span_id = root
        span.name = f"s{i}"
        span.start_time_unix_nano = 1_795_773_600_000_000_000 + i
        span.end_time_unix_nano = span.start_time_unix_nano + 1_000_000
    return request.SerializeToString()


def grpc_auth(key: NewKey) -> tuple[tuple[str, str], ...]:
    """The key as `authorization` metadata (gRPC keys are lower-case)."""
    return (("authorization", basic_auth(key)["Authorization"]),)


class Answer:
    """What a unary gRPC call ended with: its code, details, trailers and response bytes."""

    def __init__(self, code: grpc.StatusCode, details: str, trailers: dict[str, Any], response: bytes | None) -> None:
        self.code, self.details, self.trailers, self.response = code, details, trailers, response

    def __repr__(self) -> str:
        return f"Answer({self.code}, {self.details!r})"


async def grpc_export(
    channel: grpc.aio.Channel,
    body: bytes,
    metadata: tuple[tuple[str, str], ...] = (),
    *,
    timeout_s: float = 10,
    **kwargs: Any,
) -> Answer:
    """Call TraceService/Export on a grpc.aio channel with a serialized request."""
    call = channel.unary_unary(EXPORT)(body, metadata=metadata, timeout=timeout_s, **kwargs)
    try:
        response = await call
    except grpc.aio.AioRpcError as exc:
        return Answer(exc.code(), exc.details() or "", dict(exc.trailing_metadata() or ()), None)
    return Answer(grpc.StatusCode.OK, "", dict(await call.trailing_metadata() or ()), response)


class TcpPath:
    """A TCP proxy from `listen` to `upstream` that can pass, stall (hold every byte, as a hung
    server would) or cut (reset connections and refuse new ones)."""

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        self.listen, self.upstream = listen, upstream
        self.mode = "pass"
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, *self.listen, reuse_address=True)

    async def stop(self) -> None:
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stall(self) -> None:
        self.mode = "stall"
        self._flowing.clear()

    def cut(self) -> None:
        self.mode = "cut"
        self._flowing.set()
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        self.mode = "pass"
        self._flowing.set()
        if self._server is None:
            await self.start()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._flowing.wait()
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self._flowing.wait()
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.transport.abort()
