"""The OTLP/gRPC listener without the stack: fakes stand in for the key store and Kafka, a real
grpc.aio server and client talk over loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from aiohttp.http_exceptions import BadHttpMessage
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agenttrace.settings import Settings
from ingest.auth import AuthUnavailable, Unauthorized
from ingest.config import EdgeConfig, join_address, split_address
from ingest.encoding import BodyTooLarge, DecodeError
from ingest.grpc_server import GO_CODE, GrpcListener, retry_trailers, status_for
from ingest.http import PrefaceQuietLogger, is_http2_preface
from ingest.intake import Intake
from ingest.limits import InflightBytes, Overloaded, RateLimited
from ingest.otlp.grpc_service import TraceService
from ingest.publisher import PublishError
from pipeline.envelope import decode_record
from tests.support import EXPORT, otlp_request

AUTH = (("authorization", "Bearer good"),)


class FakeAuth:
    async def project_id(self, header: str | None) -> str:
        if header != "Bearer good":
            raise Unauthorized("invalid API key")
        return "p1"


class FakePublisher:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.failure: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def partition_count(self) -> int:
        return 8

    async def publish(self, records: list[tuple[bytes, bytes]], partitions: int) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        self.records.extend(records)


class NoLimit:
    per_minute = 0

    async def consume(self, project_id: str, events: int) -> None:
        return None


@pytest.fixture
async def edge() -> AsyncIterator[tuple[FakePublisher, grpc.aio.Channel]]:
    publisher = FakePublisher()
    config = EdgeConfig(max_body_bytes=64 * 1024, max_inflight_bytes=64 * 1024)
    intake = Intake(config, FakeAuth(), publisher, InflightBytes(config.max_inflight_bytes), NoLimit())  # type: ignore[arg-type]
    listener = GrpcListener("127.0.0.1:0", [TraceService(intake).handler()], max_message_bytes=1 << 20, grace_s=1)
    await listener.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{listener.port}") as channel:
            yield publisher, channel
    finally:
        await listener.stop()


async def call(channel: grpc.aio.Channel, body: bytes, metadata: Any = AUTH) -> tuple[grpc.StatusCode, Any, dict]:
    try:
        response = await channel.unary_unary(EXPORT)(body, metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details(), dict(exc.trailing_metadata() or ())
    return grpc.StatusCode.OK, ExportTraceServiceResponse.FromString(response), {}


async def test_spans_are_published_and_invalid_ones_reported(edge: tuple[FakePublisher, grpc.aio.Channel]) -> None:
    publisher, channel = edge
    code, response, _ = await call(channel, otlp_request(2, invalid=1))
    assert code is grpc.StatusCode.OK
    assert response.partial_success.rejected_spans == 1
    # The trace and its two observations, in one record (one trace).
    assert [env.type for _, value in publisher.records for env in decode_record(value)] == [
        "trace-create",
        "span-create",
        "span-create",
    ]


async def test_failures_become_codes_with_retry_info_where_a_retry_helps(
    edge: tuple[FakePublisher, grpc.aio.Channel],
) -> None:
    publisher, channel = edge
    assert (await call(channel, otlp_request(1), ()))[0] is grpc.StatusCode.UNAUTHENTICATED
    assert (await call(channel, b"\xff"))[0] is grpc.StatusCode.INVALID_ARGUMENT
    code, _, trailers = await call(channel, b"x" * 70_000)  # past max_body_bytes
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED and "google.rpc.retryinfo-bin" not in trailers

    publisher.failure = PublishError("Kafka did not acknowledge")
    code, details, trailers = await call(channel, otlp_request(1))
    assert code is grpc.StatusCode.UNAVAILABLE
    delay = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]).retry_delay
    assert delay.seconds == 5
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert (status.code, status.message) == (code.value[0], details)


async def test_bytes_in_flight_until_kafka_acknowledged_bound_the_listener(
    edge: tuple[FakePublisher, grpc.aio.Channel],
) -> None:
    publisher, channel = edge
    publisher.gate = asyncio.Event()
    body = otlp_request(1) + b"\x12\x00" * 20_000  # 40 KB of empty resource spans: over half the bound
    first = asyncio.create_task(call(channel, body))
    await asyncio.sleep(0.3)  # the first holds its bytes while Kafka does not answer
    code, _, trailers = await call(channel, body)
    assert code is grpc.StatusCode.UNAVAILABLE
    assert "google.rpc.retryinfo-bin" in trailers
    publisher.gate.set()
    assert (await first)[0] is grpc.StatusCode.OK


async def test_a_busy_port_fails_start_up_and_stop_is_idempotent() -> None:
    first = GrpcListener("127.0.0.1:0", [], max_message_bytes=1024, grace_s=0)
    await first.stop()  # before start: nothing to do
    await first.start()
    try:
        await first.ping()
        second = GrpcListener(f"127.0.0.1:{first.port}", [], max_message_bytes=1024, grace_s=0)
        with pytest.raises(OSError, match="cannot listen for gRPC"):
            await second.start()
    finally:
        await first.stop()
        await first.stop()
    with pytest.raises(ConnectionError):
        await first.ping()


@pytest.mark.parametrize(
    ("exc", "code", "retry"),
    [
        (Unauthorized("no"), grpc.StatusCode.UNAUTHENTICATED, None),
        (DecodeError("bad"), grpc.StatusCode.INVALID_ARGUMENT, None),
        (BodyTooLarge("big"), grpc.StatusCode.RESOURCE_EXHAUSTED, None),
        (RateLimited(10, 0, 17), grpc.StatusCode.RESOURCE_EXHAUSTED, 17.0),
        (Overloaded("busy", 2), grpc.StatusCode.UNAVAILABLE, 2.0),
        (PublishError("down"), grpc.StatusCode.UNAVAILABLE, 5.0),
        (AuthUnavailable("pg down"), grpc.StatusCode.UNAVAILABLE, 5.0),
        (KeyError("bug"), grpc.StatusCode.INTERNAL, None),
    ],
)
def test_status_for(exc: Exception, code: grpc.StatusCode, retry: float | None) -> None:
    found, _, delay = status_for(exc)
    assert (found, delay) == (code, retry)


def test_retry_info_agrees_in_both_carriers() -> None:
    trailers = dict(retry_trailers(grpc.StatusCode.UNAVAILABLE, "busy", 1.5))
    info = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
    assert (info.retry_delay.seconds, info.retry_delay.nanos) == (1, 500_000_000)
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    unpacked = error_details_pb2.RetryInfo()
    assert status.code == 14 and status.details[0].Unpack(unpacked) and unpacked == info


def test_codes_are_spelled_as_go_grpc_prometheus_does() -> None:
    assert GO_CODE[grpc.StatusCode.OK] == "OK"
    assert GO_CODE[grpc.StatusCode.CANCELLED] == "Canceled"
    assert GO_CODE[grpc.StatusCode.RESOURCE_EXHAUSTED] == "ResourceExhausted"
    assert GO_CODE[grpc.StatusCode.UNAUTHENTICATED] == "Unauthenticated"


def test_listening_addresses() -> None:
    edge = EdgeConfig()
    assert edge.listening(None, 18090, 14317).grpc_address == "127.0.0.1:14317"
    both = edge.listening("0.0.0.0", 8080, None)
    assert (both.host, both.grpc_address) == ("0.0.0.0", "0.0.0.0:4317")
    assert EdgeConfig(grpc_address="[::1]:4317").listening(None, 8080, 5000).grpc_address == "[::1]:5000"
    assert split_address("[::]:4317") == ("::", 4317) and join_address("::", 4317) == "[::]:4317"
    assert Settings.from_env({"AGENTTRACE_GRPC_ADDRESS": "10.0.0.1:9999"}).edge.grpc_address == "10.0.0.1:9999"
    for bad in ("4317", "host:", "host:70000", ":4317"):
        with pytest.raises(ValueError, match="GRPC_ADDRESS"):
            EdgeConfig(grpc_address=bad).validate()


def test_only_the_http2_preface_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    preface = BadHttpMessage("Pause on PRI/Upgrade")
    assert is_http2_preface(preface) and not is_http2_preface(BadHttpMessage("bad header"))
    quiet = PrefaceQuietLogger(logging.getLogger("test.aiohttp.server"))
    with caplog.at_level(logging.DEBUG, logger="test.aiohttp.server"):
        quiet.exception("Error handling request from %s", "127.0.0.1", exc_info=preface)
        assert [r.levelno for r in caplog.records] == [logging.DEBUG]
        quiet.exception("Error handling request from %s", "127.0.0.1", exc_info=BadHttpMessage("bad header"))
        assert [r.levelno for r in caplog.records] == [logging.DEBUG, logging.ERROR]
