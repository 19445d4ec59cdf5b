"""Limits at the edge and request ids: what a client sees when it sends too much, too fast or
too many bytes at once, and the request id that follows its events into Kafka.

Body limits and request ids run against the shared API; the rate limit and the in-flight bound
need settings the shared API does not have, so those tests start their own `agenttrace api`.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from agenttrace.settings import Settings
from pipeline.envelope import Envelope, decode_record
from sinks.clickhouse.client import ClickHouse
from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey, create_key
from tests.edge_process import edge_process
from tests.support import API, basic_auth, eventually, otlp_error, rows, sample, scrape

pytestmark = pytest.mark.stack

BATCH = "/api/public/ingestion"
OTLP = "/v1/traces"
LIMIT = 5 * 1024 * 1024  # the shared API's AGENTTRACE_MAX_BODY_BYTES (the default)
OVER = b"\0" * (LIMIT + 1024)
BOMB = gzip.compress(OVER)  # a few KiB on the wire, past the limit once inflated
# OTLP exports are cut into pieces past LIMIT (ingest/otlp/split.py, json_split.py), up to this.
OTLP_LIMIT = 32 * 1024 * 1024  # AGENTTRACE_MAX_OTLP_BODY_BYTES (the default)
OTLP_OVER = b"\0" * (OTLP_LIMIT + 1024)
OTLP_BOMB = gzip.compress(OTLP_OVER)


def batch(n: int, *, pad: int = 0) -> dict:
    """A trace with n - 1 spans; `pad` bytes of filler outside the events."""
    trace_id = f"trace-{uuid.uuid4()}"
    events = [
        {
            "id": str(uuid.uuid4()),
            "type": "trace-create",
            "timestamp": "2026-11-27T10:00:00Z",
            "body": {"id": trace_id, "name": "limits"},
        }
    ]
    events += [
        {
            "id": str(uuid.uuid4()),
            "type": "span-create",
            "timestamp": "2026-11-27T10:00:01Z",
            "body": {"id": f"span-{uuid.uuid4()}", "traceId": trace_id, "name": f"s{i}"},
        }
        for i in range(n - 1)
    ]
    doc: dict = {"batch": events}
    if pad:
        doc["pad"] = "x" * pad
    return doc


def otlp_json(n: int) -> bytes:
    trace_id = uuid.uuid4().hex
    spans = [
        {
            "traceId": trace_id,
            "spanId": uuid.uuid4().hex[:16],
            "name": f"s{i}",
            "kind": 1,
            "startTimeUnixNano": "1795773600000000000",
            "endTimeUnixNano": "1795773601000000000",
        }
        for i in range(n)
    ]
    return orjson.dumps({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans}]}]})


# ---------------------------------------------------------------------------------------------
# Body limit: 413 for a raw body past the limit, a chunked one (aiohttp's client_max_size), and
# a gzip bomb; always through our middleware (JSON error, request id, metrics).


async def _chunks(data: bytes, size: int = 1 << 20) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize(
    ("path", "content_type"),
    [(BATCH, "application/json"), (OTLP, "application/x-protobuf"), (OTLP, "application/json")],
    ids=["batch", "otlp-protobuf", "otlp-json"],
)
@pytest.mark.parametrize("shape", ["raw", "chunked", "gzip-bomb"])
async def test_bodies_past_the_limit_get_413(
    http: aiohttp.ClientSession, project: NewKey, path: str, content_type: str, shape: str
) -> None:
    headers = {**basic_auth(project), "Content-Type": content_type}
    limit, over, bomb = (OTLP_LIMIT, OTLP_OVER, OTLP_BOMB) if path == OTLP else (LIMIT, OVER, BOMB)
    data: object = io.BytesIO(over)  # aiohttp warns about raw bytes this large
    if shape == "chunked":
        data = _chunks(over)  # no Content-Length: the limit hits while reading
    elif shape == "gzip-bomb":
        data, headers["Content-Encoding"] = bomb, "gzip"
    before = sample(await scrape(http, API), "http_requests_total", method="POST", path=path, status="413")
    async with http.post(f"{API}{path}", data=data, headers=headers) as r:
        assert r.status == 413, await r.text()
        assert r.headers["X-Request-ID"]
        if path == OTLP:  # OTLP/HTTP's error body: a Status (code RESOURCE_EXHAUSTED)
            code, message = await otlp_error(r)
            doc = {"error": "too_large" if code == 8 else code, "message": message}
        else:
            doc = await r.json()
    assert doc["error"] == "too_large"
    assert str(limit) in doc["message"]
    after = sample(await scrape(http, API), "http_requests_total", method="POST", path=path, status="413")
    assert after >= before + 1


@pytest.mark.parametrize(("path", "wrap"), [(BATCH, '{"batch":[],"pad":%s}'), (OTLP, '{"resourceSpans":%s}')])
async def test_bodies_of_too_many_tiny_values_get_413_before_they_are_parsed(
    http: aiohttp.ClientSession, project: NewKey, path: str, wrap: str
) -> None:
    """Within the length limit, but ~25 times its length once parsed: past what one request may hold."""
    values = (wrap % ("[" + ",".join(["1"] * 1_500_000) + "]")).encode()
    assert len(values) < LIMIT
    headers = {**basic_auth(project), "Content-Type": "application/json"}
    async with http.post(f"{API}{path}", data=io.BytesIO(values), headers=headers) as r:
        assert r.status == 413, await r.text()
        if path == OTLP:
            code, message = await otlp_error(r)
            doc = {"error": "too_large" if code == 8 else code, "message": message}
        else:
            doc = await r.json()
    assert doc["error"] == "too_large"
    assert re.search(r"holds 150000\d JSON values", doc["message"]), doc["message"]
    # Fewer pass the weighing, and get the route's own answer (the batch is empty; numbers are
    # no resource spans, which OTLP/JSON's reader refuses as malformed).
    fewer = (wrap % ("[" + ",".join(["1"] * 100_000) + "]")).encode()
    async with http.post(f"{API}{path}", data=io.BytesIO(fewer), headers=headers) as r:
        assert r.status in (207, 400), await r.text()


async def test_gzip_bodies_within_the_limit_are_accepted(http: aiohttp.ClientSession, project: NewKey) -> None:
    headers = {**basic_auth(project), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    async with http.post(f"{API}{BATCH}", data=gzip.compress(orjson.dumps(batch(3))), headers=headers) as r:
        assert r.status == 207, await r.text()
        assert [s["status"] for s in (await r.json())["successes"]] == [201, 201, 201]
    async with http.post(f"{API}{OTLP}", data=gzip.compress(otlp_json(2)), headers=headers) as r:
        assert r.status == 200, await r.text()


# ---------------------------------------------------------------------------------------------
# Rate limit per project, in Redis: X-RateLimit-* on every answer, 429 with Retry-After past it.

RATE = 50


async def _fresh_window() -> None:
    """The limit counts in fixed minutes: start early in one so the test never straddles two."""
    while time.time() % 60 > 50:
        await asyncio.sleep(0.2)


def _window(headers: aiohttp.typedefs.LooseHeaders) -> tuple[int, int, int]:
    return int(headers["X-RateLimit-Limit"]), int(headers["X-RateLimit-Remaining"]), int(headers["X-RateLimit-Reset"])


async def test_rate_limit_per_project(http: aiohttp.ClientSession, pg: Postgres, project: NewKey) -> None:
    other = await create_key(pg, f"test-{uuid.uuid4().hex[:12]}")
    async with edge_process({"AGENTTRACE_RATE_LIMIT_PER_MINUTE": str(RATE)}) as edge:
        await _fresh_window()
        remaining = []
        for _ in range(RATE // 10):
            async with http.post(f"{edge.url}{BATCH}", json=batch(10), headers=basic_auth(project)) as r:
                assert r.status == 207, await r.text()
                limit, left, reset = _window(r.headers)
                assert limit == RATE and 0 < reset <= 60
                remaining.append(left)
        assert remaining == [40, 30, 20, 10, 0]

        for path, body, content_type in (
            (BATCH, orjson.dumps(batch(1)), "application/json"),
            (OTLP, otlp_json(1), "application/json"),
        ):
            headers = {**basic_auth(project), "Content-Type": content_type}
            async with http.post(f"{edge.url}{path}", data=body, headers=headers) as r:
                assert r.status == 429, path
                if path == OTLP:
                    assert (await otlp_error(r))[0] == 8  # RESOURCE_EXHAUSTED
                else:
                    assert (await r.json())["error"] == "rate_limited"
                limit, left, reset = _window(r.headers)
                assert (limit, left) == (RATE, 0)
                assert int(r.headers["Retry-After"]) == reset and 0 < reset <= 60

        # Another project has its own budget, on both routes.
        async with http.post(f"{edge.url}{BATCH}", json=batch(5), headers=basic_auth(other)) as r:
            assert r.status == 207
            assert _window(r.headers)[:2] == (RATE, RATE - 5)
        headers = {**basic_auth(other), "Content-Type": "application/json"}
        async with http.post(f"{edge.url}{OTLP}", data=otlp_json(3), headers=headers) as r:
            assert r.status == 200
            limit, left, _ = _window(r.headers)
            assert limit == RATE and left < RATE - 5  # each span is at least one event
    # The shared API has no limit configured and sends no such headers.
    async with http.post(f"{API}{BATCH}", json=batch(1), headers=basic_auth(project)) as r:
        assert r.status == 207
        assert "X-RateLimit-Limit" not in r.headers


# ---------------------------------------------------------------------------------------------
# In-flight bytes: requests whose bodies would take the edge past its bound get 503 at once.

BODY_LIMIT = 1024 * 1024
INFLIGHT = 2 * BODY_LIMIT


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def test_inflight_bytes_are_bounded(project: NewKey) -> None:
    env = {
        "AGENTTRACE_MAX_BODY_BYTES": str(BODY_LIMIT),
        "AGENTTRACE_MAX_INFLIGHT_BYTES": str(INFLIGHT),
        "AGENTTRACE_MEMORY_PER_BODY_BYTE": "0",  # count body bytes only, so the sizes below tell
    }
    async with edge_process(env) as edge:
        body = orjson.dumps(batch(2, pad=900 * 1024))  # two fit in the bound, a third does not
        auth = basic_auth(project)["Authorization"]
        head = (
            f"POST {BATCH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        conns = [await asyncio.open_connection("127.0.0.1", edge.port) for _ in range(6)]
        try:
            # Every request announces its size and sends half of its body, so all are in flight.
            for _, writer in conns:
                writer.write(head + body[: len(body) // 2])
                await writer.drain()
            reads = {asyncio.create_task(_read_response(reader)): i for i, (reader, _) in enumerate(conns)}
            done: set[asyncio.Task] = set()
            pending = set(reads)
            deadline = time.monotonic() + 10
            while len(done) < 4 and time.monotonic() < deadline:
                more, pending = await asyncio.wait(
                    pending, timeout=deadline - time.monotonic(), return_when=asyncio.FIRST_COMPLETED
                )
                done |= more
            refused = [t.result() for t in done]
            assert len(refused) == 4 and len(pending) == 2, f"{len(done)} answered before their bodies were sent"
            for status, headers, answer in refused:
                assert status == 503
                assert int(headers["retry-after"]) >= 1
                assert orjson.loads(answer)["error"] == "overloaded"
            # The two admitted requests complete once their bodies arrive.
            for task in pending:
                _, writer = conns[reads[task]]
                writer.write(body[len(body) // 2 :])
                await writer.drain()
            admitted = await asyncio.wait_for(asyncio.gather(*pending), 10)
            assert [status for status, _, _ in admitted] == [207, 207]
        finally:
            for _, writer in conns:
                writer.close()
        # Nothing is held any more: the next request is admitted.
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{edge.url}{BATCH}", data=body, headers={"Authorization": auth, "Content-Type": "application/json"}
            ) as r,
        ):
            assert r.status == 207
        metrics = await scrape_url(edge.url)
        assert sample(metrics, "http_requests_total", method="POST", path=BATCH, status="503") == 4


async def test_chunked_bodies_reserve_what_has_arrived(project: NewKey) -> None:
    """OpenTelemetry's Node exporter sends every body chunked. Reserving the most a body may be
    for each refused any two at once; each now holds what it has sent, within the same bound."""
    env = {
        "AGENTTRACE_MAX_BODY_BYTES": str(BODY_LIMIT),
        "AGENTTRACE_MAX_INFLIGHT_BYTES": str(INFLIGHT),
        "AGENTTRACE_MEMORY_PER_BODY_BYTE": "0",
    }
    async with edge_process(env) as edge:
        body = orjson.dumps(batch(2, pad=900 * 1024))  # under BODY_LIMIT; two whole ones fit the bound
        half = len(body) // 2
        auth = basic_auth(project)["Authorization"]
        head = (
            f"POST {BATCH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()

        def chunk(data: bytes) -> bytes:
            return f"{len(data):x}\r\n".encode() + data + b"\r\n"

        conns = [await asyncio.open_connection("127.0.0.1", edge.port) for _ in range(4)]
        try:
            # Three send half their body and wait: 1.5 bodies held, all admitted.
            for _, writer in conns[:3]:
                writer.write(head + chunk(body[:half]))
                await writer.drain()
            await asyncio.sleep(0.5)
            # A fourth's whole body would pass the bound: refused once its bytes arrive.
            reader, writer = conns[3]
            writer.write(head + chunk(body) + b"0\r\n\r\n")
            await writer.drain()
            status, headers, answer = await asyncio.wait_for(_read_response(reader), 10)
            assert status == 503 and orjson.loads(answer)["error"] == "overloaded" and int(headers["retry-after"]) >= 1
            for reader, writer in conns[:3]:
                writer.write(chunk(body[half:]) + b"0\r\n\r\n")
                await writer.drain()
                status, _, answer = await asyncio.wait_for(_read_response(reader), 10)
                assert status == 207, answer
        finally:
            for _, writer in conns:
                writer.close()


async def test_concurrent_maximal_batches_are_accepted_whole_or_refused(settings: Settings, project: NewKey) -> None:
    """With the default budget, 10,000-event batches sent at once (2.6 MB each; the in-flight
    budget counts what parsing one costs) are each either answered 207 with every event in the
    log, or refused 503 with Retry-After; retried, every one is kept, each event once."""
    bodies = [orjson.dumps(batch(10_000)) for _ in range(6)]
    async with edge_process({}) as edge, events_tail(settings) as consumer, aiohttp.ClientSession() as http:
        headers = {**basic_auth(project), "Content-Type": "application/json"}

        async def send(body: bytes) -> tuple[int, dict[str, str], dict]:
            # A file-like body: aiohttp warns that raw bytes this large would block its loop.
            async with http.post(f"{edge.url}{BATCH}", data=io.BytesIO(body), headers=headers) as r:
                return r.status, dict(r.headers), orjson.loads(await r.read())

        answers = await asyncio.gather(*(send(b) for b in bodies))
        accepted: set[str] = set()
        for body, (status, headers_, doc) in zip(bodies, answers, strict=True):
            # A refused batch is retried as a client would, after Retry-After: nothing stays
            # held, so each is admitted in the end. ("unavailable": a loop busy parsing can
            # delay the Kafka probe past its timeout on a loaded machine.)
            for _ in range(10):
                if status != 503:
                    break
                assert doc["error"] in ("overloaded", "unavailable") and int(headers_["Retry-After"]) >= 1
                await asyncio.sleep(int(headers_["Retry-After"]))
                status, headers_, doc = await send(body)
            assert status == 207, (status, doc)
            assert doc["errors"] == [] and len(doc["successes"]) == 10_000
            accepted |= {s["id"] for s in doc["successes"]}
        envelopes = await envelopes_of(consumer, project.project_id, len(accepted), timeout_s=60)
    assert {e.id for e in envelopes} == accepted and len(envelopes) == 6 * 10_000


async def scrape_url(base: str) -> dict:
    async with aiohttp.ClientSession() as http:
        return await scrape(http, base)


# ---------------------------------------------------------------------------------------------
# Request ids: honoured when valid, created otherwise, returned, and carried in the envelope.


@asynccontextmanager
async def events_tail(settings: Settings) -> AsyncIterator[AIOKafkaConsumer]:
    """A group-less consumer positioned at the current end of the events topic."""
    # Without a group, a subscription is every partition of the topic, assigned once the
    # metadata arrived; position() then pins each partition's "latest" before anything is sent.
    consumer = AIOKafkaConsumer(
        settings.topics.events,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest",
    )
    await consumer.start()
    try:

        async def assignment() -> set[TopicPartition]:
            return consumer.assignment()

        for tp in await eventually(assignment, bool, timeout_s=10, every_s=0.05):
            await consumer.position(tp)
        yield consumer
    finally:
        await consumer.stop()


async def envelopes_of(consumer: AIOKafkaConsumer, project_id: str, n: int, timeout_s: float = 15.0) -> list[Envelope]:
    found: list[Envelope] = []
    deadline = time.monotonic() + timeout_s
    while len(found) < n:
        assert time.monotonic() < deadline, f"{len(found)} of {n} envelopes of {project_id} within {timeout_s}s"
        for records in (await consumer.getmany(timeout_ms=500)).values():
            for rec in records:
                found.extend(env for env in decode_record(rec.value) if env.project_id == project_id)
    return found


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("edge-test-{uuid}", True), (None, False), ("has spaces in it", False), ("x" * 129, False)],
    ids=["valid", "absent", "invalid-chars", "too-long"],
)
async def test_request_id_is_returned_and_carried_in_the_envelope(
    http: aiohttp.ClientSession, settings: Settings, project: NewKey, sent: str | None, kept: bool
) -> None:
    headers = basic_auth(project)
    if sent is not None:
        sent = sent.format(uuid=uuid.uuid4().hex)
        headers["X-Request-ID"] = sent
    async with events_tail(settings) as consumer:
        async with http.post(f"{API}{BATCH}", json=batch(2), headers=headers) as r:
            assert r.status == 207
            request_id = r.headers["X-Request-ID"]
        envelopes = await envelopes_of(consumer, project.project_id, 2)
    if kept:
        assert request_id == sent
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id
    assert {e.request_id for e in envelopes} == {request_id}


async def test_otlp_request_id_is_carried_in_the_envelope(
    http: aiohttp.ClientSession, settings: Settings, project: NewKey
) -> None:
    sent = f"otlp-{uuid.uuid4().hex}"
    headers = {**basic_auth(project), "Content-Type": "application/json", "X-Request-ID": sent}
    async with events_tail(settings) as consumer:
        async with http.post(f"{API}{OTLP}", data=otlp_json(2), headers=headers) as r:
            assert r.status == 200
            assert r.headers["X-Request-ID"] == sent
        envelopes = await envelopes_of(consumer, project.project_id, 2)
    assert {e.request_id for e in envelopes} == {sent}
    assert {e.source for e in envelopes} == {"otlp"}


async def test_a_trace_larger_than_one_record_takes_several_in_order(
    http: aiohttp.ClientSession, settings: Settings, ch: ClickHouse, project: NewKey
) -> None:
    # Four spans of ~400 KB: each within max_event_bytes (1 000 000), together past what one
    # Kafka record of the trace may hold.
    doc = batch(5)
    for i, event in enumerate(doc["batch"][1:]):
        event["body"]["input"] = f"{i}" * 400_000
    trace_id = doc["batch"][0]["body"]["id"]
    async with events_tail(settings) as consumer:
        headers = {**basic_auth(project), "Content-Type": "application/json"}
        async with http.post(f"{API}{BATCH}", data=io.BytesIO(orjson.dumps(doc)), headers=headers) as r:
            assert r.status == 207, await r.text()
            assert len((await r.json())["successes"]) == 5
        records: list[tuple[int, list[Envelope]]] = []  # (bytes, events) of each record
        deadline = time.monotonic() + 15
        while sum(len(envs) for _, envs in records) < 5:
            assert time.monotonic() < deadline, records
            for got in (await consumer.getmany(timeout_ms=500)).values():
                for rec in got:
                    envs = decode_record(rec.value)
                    if envs[0].project_id == project.project_id:
                        records.append((len(rec.value), envs))
    assert len(records) >= 2
    assert all(size <= 1_000_000 for size, _ in records)
    # One key, so one partition, and the records keep the request's order.
    assert [e.id for _, envs in records for e in envs] == [e["id"] for e in doc["batch"]]
    stored = await eventually(
        lambda: ch.fetch(
            f"SELECT name, length(input) FROM agenttrace.observations FINAL "
            f"WHERE project_id = '{project.project_id}' AND trace_id = '{trace_id}' ORDER BY name"
        ),
        lambda r: len(r) == 4,
        timeout_s=30,
    )
    assert [name for name, _ in stored] == ["s0", "s1", "s2", "s3"]
    assert all(length > 400_000 for _, length in stored)  # the input, as JSON text


# ---------------------------------------------------------------------------------------------
# One event larger than Kafka takes: 413 for that event, the others kept; never a 503 that
# clients would retry forever.

HUGE = "x" * 1_100_000  # past max_event_bytes (1 000 000) and Kafka's 1 MiB records


async def test_events_larger_than_kafka_takes_get_413_each(http: aiohttp.ClientSession, project: NewKey) -> None:
    doc = batch(3)
    big = doc["batch"][1]
    big["body"]["input"] = HUGE
    async with http.post(
        f"{API}{BATCH}",
        data=io.BytesIO(orjson.dumps(doc)),
        headers={**basic_auth(project), "Content-Type": "application/json"},
    ) as r:
        assert r.status == 207, await r.text()
        answer = await r.json()
    assert [s["id"] for s in answer["successes"]] == [doc["batch"][0]["id"], doc["batch"][2]["id"]]
    assert [(e["id"], e["status"]) for e in answer["errors"]] == [(big["id"], 413)]


async def test_an_otlp_span_larger_than_kafka_takes_is_kept_with_its_prompt_cut(
    http: aiohttp.ClientSession, ch: ClickHouse, project: NewKey
) -> None:
    # A span is the client's one unit: refused, it would be lost whole and silently (exporters
    # ignore partial success). Its long values are cut instead, and metadata says so.
    spans = orjson.loads(otlp_json(2))
    attrs = [
        {"key": "gen_ai.prompt", "value": {"stringValue": HUGE}},
        {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "275000"}},
    ]
    first = spans["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    first["attributes"] = attrs
    async with http.post(
        f"{API}{OTLP}",
        data=io.BytesIO(orjson.dumps(spans)),
        headers={**basic_auth(project), "Content-Type": "application/json"},
    ) as r:
        assert r.status == 200, await r.text()
        assert "partialSuccess" not in await r.json()
    span_id = first["spanId"]  # hex in OTLP/JSON
    [row] = await eventually(
        lambda: rows(
            ch,
            f"SELECT provided_model_name, input_tokens, length(input) AS n, metadata FROM observations FINAL "
            f"WHERE project_id = '{project.project_id}' AND id = '{span_id}'",
        ),
        lambda found: len(found) == 1,
        timeout_s=30,
    )
    assert (row["provided_model_name"], row["input_tokens"]) == ("gpt-4o", 275_000)
    assert 400_000 < row["n"] < 510_000
    assert orjson.loads(row["metadata"])["agenttrace.truncated"] == {"gen_ai.prompt": len(HUGE)}


# ---------------------------------------------------------------------------------------------
# An OTLP export mapped a slice at a time: every span reaches Kafka and ClickHouse.


def _one_trace(trace: bytes, spans: int) -> bytes:
    """An OTLP export of one trace: a root span and its children."""
    body = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                scope_spans=[
                    ScopeSpans(
                        spans=[
                            Span(
                                trace_id=trace,
                                span_id=(i + 1).to_bytes(8, "big"),
                                parent_span_id=b"" if i == 0 else (1).to_bytes(8, "big"),
                                name=f"s{i}",
                                start_time_unix_nano=1_795_000_000_000_000_000 + i,
                                end_time_unix_nano=1_795_000_001_000_000_000 + i,
                            )
                            for i in range(spans)
                        ]
                    )
                ]
            )
        ]
    )
    return body.SerializeToString()


async def test_an_otlp_export_of_many_spans_is_appended_in_slices_and_stored_whole(
    settings: Settings, ch: ClickHouse, project: NewKey
) -> None:
    trace = uuid.uuid4().bytes
    # ~25 spans a slice (1.4 KB a span and 8 bytes a wire byte, otlp/mapping.py).
    async with edge_process({"AGENTTRACE_MAX_MAPPED_BYTES": str(40 * 1024)}) as edge, events_tail(settings) as tail:
        headers = {**basic_auth(project), "Content-Type": "application/x-protobuf"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{edge.url}{OTLP}", data=_one_trace(trace, 400), headers=headers) as r,
        ):
            assert r.status == 200, await r.text()
            assert await r.read() == b""  # no partial_success: every span taken
        records = 0
        found: list[Envelope] = []
        deadline = time.monotonic() + 15
        while len(found) < 401:
            assert time.monotonic() < deadline, f"{len(found)} of 401 envelopes"
            for got in (await tail.getmany(timeout_ms=500)).values():
                for rec in got:
                    mine = [e for e in decode_record(rec.value) if e.project_id == project.project_id]
                    records += bool(mine)
                    found.extend(mine)
    # One trace, so one record a slice: the slices were appended one after another, in order.
    assert records >= 10
    assert [e.id for e in found[1:]] == [f"{(i + 1):016x}-obs" for i in range(400)]
    stored = await eventually(
        lambda: ch.fetch(
            f"SELECT count() FROM agenttrace.observations FINAL WHERE project_id = '{project.project_id}' "
            f"AND trace_id = '{trace.hex()}'"
        ),
        lambda rows: rows[0][0] == 400,
        timeout_s=30,
    )
    assert stored[0][0] == 400


async def test_an_otlp_export_in_slices_is_refused_whole_by_the_rate_limit(settings: Settings, project: NewKey) -> None:
    """A request mapped in slices is counted once, before its first slice is appended: past the
    limit, none of it reaches Kafka (the client's retry then counts nothing twice)."""
    refused, admitted = uuid.uuid4().bytes, uuid.uuid4().bytes
    env = {"AGENTTRACE_MAX_MAPPED_BYTES": str(40 * 1024), "AGENTTRACE_RATE_LIMIT_PER_MINUTE": "300"}
    async with edge_process(env) as edge, events_tail(settings) as tail, aiohttp.ClientSession() as http:
        await _fresh_window()
        headers = {**basic_auth(project), "Content-Type": "application/x-protobuf"}
        async with http.post(f"{edge.url}{OTLP}", data=_one_trace(admitted, 250), headers=headers) as r:
            assert r.status == 200, await r.text()
            assert _window(r.headers)[:2] == (300, 50)  # counted by its spans, once
        # Its first slices alone would fit in what is left of the minute.
        async with http.post(f"{edge.url}{OTLP}", data=_one_trace(refused, 400), headers=headers) as r:
            assert r.status == 429, await r.text()
        found: list[Envelope] = []
        deadline = time.monotonic() + 15
        settled_at = None
        # Until the admitted trace is all there, and a second more for anything appended before it.
        while settled_at is None or time.monotonic() < settled_at:
            assert time.monotonic() < deadline, f"{len(found)} envelopes"
            for got in (await tail.getmany(timeout_ms=300)).values():
                found.extend(e for rec in got for e in decode_record(rec.value) if e.project_id == project.project_id)
            if settled_at is None and sum(e.type != "trace-create" for e in found) >= 250:
                settled_at = time.monotonic() + 1
    traces = {e.body.get("traceId") or e.body.get("id") for e in found}
    assert traces == {admitted.hex()}, traces


# ---------------------------------------------------------------------------------------------
# A Collector's batch: 8,192 spans with prompts, past max_body_bytes, cut into pieces and kept.


def as_otlp_json(body: bytes) -> bytes:
    """A protobuf export as OTLP/JSON, its ids in hex."""
    doc = json_format.MessageToDict(ExportTraceServiceRequest.FromString(body))
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for k in ("traceId", "spanId"):
                    span[k] = base64.b64decode(span[k]).hex()
    return orjson.dumps(doc)


def _collector_batch(traces: int, per_trace: int, prompt_bytes: int) -> tuple[bytes, list[bytes]]:
    """One export as an OpenTelemetry Collector's batch processor sends it: many traces under two
    resources (each with a scope of its own), every span carrying a prompt."""
    trace_ids = [uuid.uuid4().bytes for _ in range(traces)]

    def prompt() -> str:
        return os.urandom(prompt_bytes // 2).hex()

    resources = []
    for r in range(2):
        spans = []
        for t in trace_ids[r::2]:
            for i in range(per_trace):
                spans.append(
                    Span(
                        trace_id=t,
                        span_id=uuid.uuid4().bytes[:8],
                        name=f"call-{i}",
                        start_time_unix_nano=1_795_773_600_000_000_000 + i,
                        end_time_unix_nano=1_795_773_601_000_000_000 + i,
                        attributes=[
                            KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="gpt-4o-mini")),
                            KeyValue(
                                key="gen_ai.prompt", value=AnyValue(string_value=os.urandom(prompt_bytes // 2).hex())
                            ),
                        ],
                    )
                )
        resources.append(
            ResourceSpans(
                resource=Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=f"svc-{r}"))]),
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name=f"scope-{r}"), spans=spans)],
            )
        )
    return ExportTraceServiceRequest(resource_spans=resources).SerializeToString(), trace_ids


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
async def test_a_collector_batch_past_the_body_limit_is_kept_whole(
    http: aiohttp.ClientSession, ch: ClickHouse, project: NewKey, encoding: str
) -> None:
    body, trace_ids = _collector_batch(traces=2048, per_trace=4, prompt_bytes=1600)
    if encoding == "json":  # as OpenTelemetry's JavaScript OTLP/HTTP exporter sends it (hex ids)
        body = as_otlp_json(body)
    assert LIMIT * 2 < len(body) < OTLP_LIMIT
    kind = "application/x-protobuf" if encoding == "protobuf" else "application/json"
    headers = {**basic_auth(project), "Content-Type": kind, "Content-Encoding": "gzip"}
    async with http.post(f"{API}{OTLP}", data=io.BytesIO(gzip.compress(body, 1)), headers=headers) as r:
        assert r.status == 200, await r.text()
        if encoding == "json":
            assert await r.json() == {}
        else:
            answer = ExportTraceServiceResponse()
            answer.ParseFromString(await r.read())
            assert not answer.HasField("partial_success")
    counted = await eventually(
        lambda: ch.fetch(
            "SELECT count(), uniqExact(id), uniqExact(trace_id), sum(length(input) > 1600),"
            " uniqExact(visitParamExtractRaw(metadata, 'resourceAttributes'))"
            f" FROM observations FINAL WHERE project_id = '{project.project_id}'"
        ),
        lambda found: found[0][0] >= 8192,
        timeout_s=60,
    )
    # Every span once, each with its prompt and under its own resource.
    assert [tuple(r) for r in counted] == [(8192, 8192, 2048, 8192, 2)]
    named = await rows(ch, f"SELECT count() AS n FROM traces FINAL WHERE project_id = '{project.project_id}'")
    assert named == [{"n": 2048}]
    assert {t.hex() for t in trace_ids[:3]} <= {
        r["id"] for r in await rows(ch, f"SELECT id FROM traces FINAL WHERE project_id = '{project.project_id}'")
    }
