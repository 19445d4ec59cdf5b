"""OTLP/gRPC at the edge: TraceService/Export with the semantics of OTLP/HTTP, in gRPC's terms.

Spans are appended with the caller's request id and counted; a wrong key is UNAUTHENTICATED;
invalid spans give OK with partial_success; a message past the body limit is RESOURCE_EXHAUSTED
without RetryInfo (not retryable), the rate limit is RESOURCE_EXHAUSTED with it; nothing a client
sends gives INTERNAL. Most tests use the api under test (AGENTTRACE_TEST_GRPC); the rate limit
and the HTTP port's answer to gRPC clients need an api of their own.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import uuid
from collections.abc import AsyncIterator

import aiohttp
import grpc
import orjson
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from agenttrace.settings import Settings
from sinks.postgres.keys import NewKey
from tests.edge_process import edge_process
from tests.stack.test_edge_limits import _fresh_window, envelopes_of, events_tail
from tests.support import API, GRPC, Answer, grpc_auth, grpc_export, otlp_request, sample, scrape

pytestmark = pytest.mark.stack

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
RPC = {"grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": "Export"}
RETRY_INFO = "google.rpc.retryinfo-bin"
STATUS_DETAILS = "grpc-status-details-bin"


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(GRPC) as ch:
        yield ch


def response_of(answer: Answer) -> ExportTraceServiceResponse:
    assert answer.code is grpc.StatusCode.OK, answer
    assert answer.response is not None
    return ExportTraceServiceResponse.FromString(answer.response)


def retry_delay(answer: Answer) -> float:
    """The RetryInfo delay, which must agree in both carriers."""
    info = error_details_pb2.RetryInfo.FromString(answer.trailers[RETRY_INFO])
    status = status_pb2.Status.FromString(answer.trailers[STATUS_DETAILS])
    assert status.code == answer.code.value[0] and status.message == answer.details
    (detail,) = status.details
    carried = error_details_pb2.RetryInfo()
    assert detail.Unpack(carried) and carried == info
    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9


async def test_spans_are_appended_with_the_request_id_and_counted(
    channel: grpc.aio.Channel, settings: Settings, http: aiohttp.ClientSession, project: NewKey
) -> None:
    before = await scrape(http, API)
    sent = f"grpc-{uuid.uuid4().hex}"
    async with events_tail(settings) as consumer:
        answer = await grpc_export(channel, otlp_request(3), (*grpc_auth(project), ("x-request-id", sent)))
        envelopes = await envelopes_of(consumer, project.project_id, 4)  # the trace and 3 observations
    assert not response_of(answer).HasField("partial_success")
    assert answer.trailers["x-request-id"] == sent
    assert {e.request_id for e in envelopes} == {sent}
    assert {e.source for e in envelopes} == {"otlp_grpc"}

    after = await scrape(http, API)
    for name, labels, grew in (
        ("traces_ingested_total", {"source": "otlp_grpc"}, 1),
        ("observations_ingested_total", {"source": "otlp_grpc"}, 3),
        ("grpc_server_handled_total", {**RPC, "grpc_code": "OK"}, 1),
        ("grpc_server_handling_seconds_count", RPC, 1),
        ("grpc_server_started_total", RPC, 1),
    ):
        assert sample(after, name, **labels) - sample(before, name, **labels) >= grew, name
    # Every code is a series from the start, so a rate over "Unavailable" is 0, not absent.
    assert (("grpc_server_handled_total", frozenset({**RPC, "grpc_code": "Unavailable"}.items()))) in after


async def test_bearer_secret_and_gzip(channel: grpc.aio.Channel, project: NewKey) -> None:
    bearer = (("authorization", f"Bearer {project.secret_key}"),)
    answer = await grpc_export(channel, otlp_request(2), bearer, compression=grpc.Compression.Gzip)
    assert not response_of(answer).HasField("partial_success")
    assert answer.trailers["x-request-id"]  # made when the client sends none


@pytest.mark.parametrize("authorization", [None, "Bearer sk-wrong", "Basic bm90OmtleQ==", "Token x"])
async def test_a_wrong_or_missing_key_is_unauthenticated(
    channel: grpc.aio.Channel, http: aiohttp.ClientSession, authorization: str | None
) -> None:
    before = await scrape(http, API)
    metadata = (("authorization", authorization),) if authorization else ()
    answer = await grpc_export(channel, otlp_request(1), metadata)
    assert answer.code is grpc.StatusCode.UNAUTHENTICATED, answer
    assert RETRY_INFO not in answer.trailers
    after = await scrape(http, API)
    code = {**RPC, "grpc_code": "Unauthenticated"}
    assert sample(after, "grpc_server_handled_total", **code) > sample(before, "grpc_server_handled_total", **code)


async def test_invalid_spans_give_partial_success(channel: grpc.aio.Channel, project: NewKey) -> None:
    answer = await grpc_export(channel, otlp_request(2, invalid=3), grpc_auth(project))
    partial = response_of(answer).partial_success
    assert partial.rejected_spans == 3
    assert "invalid trace id" in partial.error_message


async def test_an_empty_request_is_a_success(channel: grpc.aio.Channel, project: NewKey) -> None:
    assert not response_of(await grpc_export(channel, b"", grpc_auth(project))).HasField("partial_success")


async def test_a_malformed_message_is_invalid_argument(channel: grpc.aio.Channel, project: NewKey) -> None:
    answer = await grpc_export(channel, b"\xff\xff\xff\xff", grpc_auth(project))
    assert answer.code is grpc.StatusCode.INVALID_ARGUMENT, answer
    assert "malformed protobuf" in answer.details


def big_request(size: int) -> bytes:
    request = ExportTraceServiceRequest.FromString(otlp_request(1))
    request.resource_spans[0].scope_spans[0].spans[0].name = "x" * size
    return request.SerializeToString()


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip], ids=["plain", "gzip"])
async def test_a_message_past_the_body_limit_is_resource_exhausted_and_not_retryable(
    channel: grpc.aio.Channel, project: NewKey, compression: grpc.Compression
) -> None:
    body = big_request(5 * 1024 * 1024 + 1024)  # the shared api's AGENTTRACE_MAX_BODY_BYTES, and more
    assert len(gzip.compress(body)) < 64 * 1024  # with gzip the limit holds after decompression
    answer = await grpc_export(channel, body, grpc_auth(project), compression=compression)
    assert answer.code is grpc.StatusCode.RESOURCE_EXHAUSTED, answer
    assert RETRY_INFO not in answer.trailers and STATUS_DETAILS not in answer.trailers


# ---------------------------------------------------------------------------------------------
# Nothing a client sends gives INTERNAL (or UNKNOWN, an exception escaping the method) or stops
# the listener: random bytes, and valid messages with bytes flipped, cut, inserted or repeated.


def rich_request(rng: random.Random) -> ExportTraceServiceRequest:
    """A request that touches most of the mapping: GenAI attributes of every value type, nested
    values, events and links."""
    request = ExportTraceServiceRequest.FromString(otlp_request(3, trace_id=rng.randbytes(16)))
    rs = request.resource_spans[0]
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="fuzz"))
    rs.scope_spans[0].scope.name = "fuzz"
    for span in rs.scope_spans[0].spans:
        span.attributes.extend(
            [
                KeyValue(key="gen_ai.operation.name", value=AnyValue(string_value="chat")),
                KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="gpt-4o")),
                KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=rng.randint(0, 1000))),
                KeyValue(key="gen_ai.request.temperature", value=AnyValue(double_value=rng.random())),
                KeyValue(key="gen_ai.input.messages", value=AnyValue(string_value='[{"role":"user"}]')),
                KeyValue(key="gen_ai.prompt.0.role", value=AnyValue(string_value="user")),
                KeyValue(key="gen_ai.prompt.0.content", value=AnyValue(string_value="hi")),
                KeyValue(key="flag", value=AnyValue(bool_value=True)),
                KeyValue(key="blob", value=AnyValue(bytes_value=rng.randbytes(8))),
            ]
        )
        nested = span.attributes.add(key="nested").value.kvlist_value.values.add(key="list")
        nested.value.array_value.values.add(string_value="a")
        event = span.events.add(name="exception", time_unix_nano=span.start_time_unix_nano)
        event.attributes.add(key="exception.message", value=AnyValue(string_value="boom"))
        span.links.add(trace_id=rng.randbytes(16), span_id=rng.randbytes(8))
        span.status.code = rng.choice([0, 1, 2])
    return request


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        kind = rng.randrange(5)
        at = rng.randrange(len(buf) + 1)
        if kind == 0 and buf:  # flip a byte
            buf[min(at, len(buf) - 1)] = rng.randrange(256)
        elif kind == 1:  # cut
            del buf[at : at + rng.randint(1, 16)]
        elif kind == 2:  # insert
            buf[at:at] = rng.randbytes(rng.randint(1, 8))
        elif kind == 3:  # repeat a slice (fields appear twice, lengths disagree)
            buf[at:at] = buf[at : at + rng.randint(1, 64)]
        else:  # a varint that claims a huge length or tag
            buf[at:at] = b"\xff\xff\xff\xff\x0f"
    return bytes(buf)


FUZZ_SEED = 11
FUZZ_CASES = 300


async def test_fuzzed_messages_never_give_internal(
    channel: grpc.aio.Channel, http: aiohttp.ClientSession, project: NewKey
) -> None:
    rng = random.Random(FUZZ_SEED)
    bodies = [rng.randbytes(rng.randint(0, 2048)) for _ in range(FUZZ_CASES // 3)]
    bodies += [mutate(rng, rich_request(rng).SerializeToString()) for _ in range(FUZZ_CASES - len(bodies))]
    before = await scrape(http, API)
    codes: dict[str, int] = {}
    for start in range(0, len(bodies), 25):
        chunk = bodies[start : start + 25]
        answers = await asyncio.gather(*(grpc_export(channel, body, grpc_auth(project)) for body in chunk))
        for i, answer in enumerate(answers, start):
            assert answer.code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), (i, answer)
            codes[answer.code.name] = codes.get(answer.code.name, 0) + 1
    assert codes.get("OK") and codes.get("INVALID_ARGUMENT"), codes  # both paths were exercised
    # The listener still serves, and counted no failure of its own.
    assert response_of(await grpc_export(channel, otlp_request(1), grpc_auth(project)))
    after = await scrape(http, API)
    for code in ("Internal", "Unknown"):
        labels = {**RPC, "grpc_code": code}
        assert sample(after, "grpc_server_handled_total", **labels) == sample(
            before, "grpc_server_handled_total", **labels
        )


# ---------------------------------------------------------------------------------------------
# An api of its own: the rate limit, the health check, and gRPC clients on the HTTP port.

RATE = 50


async def test_rate_limit_is_resource_exhausted_with_retry_info(project: NewKey) -> None:
    async with (
        edge_process({"AGENTTRACE_RATE_LIMIT_PER_MINUTE": str(RATE)}) as edge,
        grpc.aio.insecure_channel(edge.grpc) as channel,
    ):
        await _fresh_window()
        remaining = []
        for _ in range(RATE // 10):
            answer = await grpc_export(channel, otlp_request(9), grpc_auth(project))  # 10 events
            assert response_of(answer)
            assert answer.trailers["x-ratelimit-limit"] == str(RATE)
            remaining.append(int(answer.trailers["x-ratelimit-remaining"]))
        assert remaining == [40, 30, 20, 10, 0]

        answer = await grpc_export(channel, otlp_request(1), grpc_auth(project))
        assert answer.code is grpc.StatusCode.RESOURCE_EXHAUSTED, answer
        assert 0 < retry_delay(answer) <= 60  # retryable: until the window resets
        status = status_pb2.Status.FromString(answer.trailers[STATUS_DETAILS])
        assert status.code == code_pb2.RESOURCE_EXHAUSTED


async def test_health_log_lines_and_grpc_clients_on_the_http_port(project: NewKey) -> None:
    async with edge_process({}) as edge:
        async with aiohttp.ClientSession() as http, http.get(f"{edge.url}/health") as r:
            assert (await r.json())["checks"]["grpc"]["status"] == "healthy"
        # One JSON line per call, with the fields of an HTTP request's line.
        sent = f"grpc-log-{uuid.uuid4().hex}"
        async with grpc.aio.insecure_channel(edge.grpc) as channel:
            answer = await grpc_export(channel, otlp_request(2), (*grpc_auth(project), ("x-request-id", sent)))
            assert response_of(answer)
            refused = await grpc_export(channel, otlp_request(1), (("x-request-id", f"{sent}-refused"),))
            assert refused.code is grpc.StatusCode.UNAUTHENTICATED
        await asyncio.sleep(0.5)
        docs = [orjson.loads(text) for text in edge.log_text().splitlines() if text.startswith("{")]
        lines = {doc.get("request_id"): doc for doc in docs}
        line = lines[sent]
        assert (line["level"], line["msg"], line["grpc_code"]) == ("info", "otlp spans ingested", "OK")
        assert (line["project_id"], line["observations_count"], line["events"]) == (project.project_id, 2, 3)
        assert line["path"] == f"/{SERVICE}/Export" and line["duration_ms"] >= 0
        assert lines[f"{sent}-refused"]["grpc_code"] == "Unauthenticated"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{edge.port}") as wrong_port:
            for _ in range(3):
                answer = await grpc_export(wrong_port, otlp_request(1), timeout_s=5)
                assert answer.code is grpc.StatusCode.UNAVAILABLE, answer
                assert "http1.x server" in answer.details, answer  # a clear reason, at once
        await asyncio.sleep(0.5)
        lines = [orjson.loads(line) for line in edge.log_text().splitlines() if line.startswith("{")]
        assert [line for line in lines if line["level"] == "error"] == []
