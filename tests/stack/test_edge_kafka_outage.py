"""Kafka stalled or unreachable: the edge answers 503 with Retry-After (OTLP/gRPC: UNAVAILABLE
with RetryInfo) within its publish timeout, never a success, and ingests again once Kafka is
back; an exporter that retries as told loses nothing.

Only the API started here loses Kafka: it is bootstrapped through the broker's FAULT listener
(ops/stack/kafka/server.properties.in), which advertises 127.0.0.1:19094, where this module
runs a TCP proxy it can stall or cut. The shared broker and everyone else's tests are untouched.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from google.rpc import error_details_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sinks.clickhouse.client import ClickHouse
from sinks.postgres.keys import NewKey
from tests.edge_process import edge_process
from tests.support import (
    TcpPath,
    basic_auth,
    eventually,
    grpc_auth,
    grpc_export,
    otlp_request,
    rows,
    sample,
    scrape,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow]

FAULT_LISTENER = ("127.0.0.1", 9094)
PROXY = ("127.0.0.1", 19094)  # the FAULT listener's advertised address
PUBLISH_TIMEOUT_S = 2.0


@pytest.fixture
async def kafka_path() -> AsyncIterator[TcpPath]:
    try:
        _, writer = await asyncio.open_connection(*FAULT_LISTENER)
        writer.close()
    except OSError:
        pytest.fail("Kafka has no FAULT listener on 9094: restart it (ops/stack.sh stop kafka && make up)")
    path = TcpPath(PROXY, FAULT_LISTENER)  # PROXY: the FAULT listener's advertised address
    await path.start()
    try:
        yield path
    finally:
        await path.stop()


def _batch() -> dict:
    return {
        "batch": [
            {
                "id": str(uuid.uuid4()),
                "type": "trace-create",
                "timestamp": "2026-11-27T10:00:00Z",
                "body": {"id": f"trace-{uuid.uuid4()}"},
            }
        ]
    }


async def _post(http: aiohttp.ClientSession, url: str, key: NewKey) -> tuple[int, dict[str, str], float]:
    start = time.monotonic()
    async with http.post(f"{url}/api/public/ingestion", json=_batch(), headers=basic_auth(key)) as r:
        await r.read()
        return r.status, dict(r.headers), time.monotonic() - start


@pytest.mark.parametrize("fault", ["stall", "cut"])
async def test_kafka_outage_gets_503_then_recovers(
    http: aiohttp.ClientSession, kafka_path: TcpPath, project: NewKey, fault: str
) -> None:
    env = {
        "AGENTTRACE_KAFKA_BOOTSTRAP": f"{PROXY[0]}:{PROXY[1]}",
        "AGENTTRACE_PUBLISH_TIMEOUT_S": str(PUBLISH_TIMEOUT_S),
    }
    async with edge_process(env) as edge:
        status, _, _ = await _post(http, edge.url, project)
        assert status == 207

        getattr(kafka_path, fault)()
        # Concurrent and sequential requests alike: 503 + Retry-After, within the timeout.
        answers = await asyncio.gather(*(_post(http, edge.url, project) for _ in range(4)))
        answers += [await _post(http, edge.url, project) for _ in range(2)]
        for status, headers, elapsed in answers:
            assert status == 503, (status, headers)
            assert int(headers["Retry-After"]) >= 1
            assert elapsed < PUBLISH_TIMEOUT_S * 2 + 1, elapsed  # metadata wait + ack wait at most
        async with http.get(f"{edge.url}/readyz") as r:
            assert r.status == 503
            assert "kafka" in (await r.json())["failing"]

        await kafka_path.restore()
        seen: list[int] = []

        async def ingest() -> int:
            status, _, _ = await _post(http, edge.url, project)
            seen.append(status)
            return status

        await eventually(ingest, lambda s: s == 207, timeout_s=30, every_s=0.5)
        assert set(seen) <= {207, 503}, seen
        metrics = await scrape(http, edge.url)
        assert sample(metrics, "http_requests_total", method="POST", path="/api/public/ingestion", status="503") >= 6


@pytest.mark.parametrize("fault", ["stall", "cut"])
async def test_once_kafka_is_known_down_the_edge_answers_503_at_once_and_recovers_alone(
    http: aiohttp.ClientSession, kafka_path: TcpPath, project: NewKey, fault: str
) -> None:
    # The default publish timeout (10 s): answers must not wait for it once Kafka is known down.
    env = {"AGENTTRACE_KAFKA_BOOTSTRAP": f"{PROXY[0]}:{PROXY[1]}", "AGENTTRACE_KAFKA_PROBE_INTERVAL_S": "0.5"}
    async with edge_process(env) as edge:
        status, _, _ = await _post(http, edge.url, project)
        assert status == 207

        cut_at = time.monotonic()
        getattr(kafka_path, fault)()
        # The background probe finds the outage; a request waiting meanwhile is answered then.
        first, _, first_s = await _post(http, edge.url, project)
        assert first == 503
        await eventually(
            lambda: _post(http, edge.url, project), lambda a: a[0] == 503 and a[2] < 0.2, timeout_s=8, every_s=0.1
        )
        detected_s = time.monotonic() - cut_at
        answers = await asyncio.gather(*(_post(http, edge.url, project) for _ in range(20)))
        slowest = max(elapsed for _, _, elapsed in answers)
        print(
            f"kafka {fault}: first request answered 503 in {first_s:.2f}s, fast 503s after {detected_s:.2f}s; "
            f"slowest of 20 answers then {slowest * 1000:.0f} ms"
        )
        assert {status for status, _, _ in answers} == {503}
        assert all(int(h["Retry-After"]) >= 1 for _, h, _ in answers)
        # Far below the 10 s publish timeout they would wait without the probe; 20 at once on a
        # loaded 2-core CI machine took 0.30 s once (1e41bd6's run), so not 0.2.
        assert slowest < 1.0, slowest
        assert first_s < 3 and detected_s < 5, (first_s, detected_s)
        # Not timed: readiness also pings ClickHouse and Postgres, which the test does not own.
        async with http.get(f"{edge.url}/readyz") as r:
            assert r.status == 503
            assert "kafka" in (await r.json())["failing"]

        await kafka_path.restore()
        await eventually(lambda: _post(http, edge.url, project), lambda a: a[0] == 207, timeout_s=30, every_s=0.2)
        async with http.get(f"{edge.url}/readyz") as r:
            assert r.status == 200


def _spans(n: int) -> list:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("agenttrace.tests.outage")
    with tracer.start_as_current_span("root"):
        for i in range(n - 1):
            with tracer.start_as_current_span(f"child-{i}"):
                pass
    return list(memory.get_finished_spans())


async def test_grpc_kafka_cut_gets_unavailable_and_the_exporter_loses_nothing(
    http: aiohttp.ClientSession, ch: ClickHouse, kafka_path: TcpPath, project: NewKey
) -> None:
    env = {
        "AGENTTRACE_KAFKA_BOOTSTRAP": f"{PROXY[0]}:{PROXY[1]}",
        "AGENTTRACE_PUBLISH_TIMEOUT_S": str(PUBLISH_TIMEOUT_S),
    }
    async with edge_process(env) as edge, grpc.aio.insecure_channel(edge.grpc) as channel:
        assert (await grpc_export(channel, otlp_request(2), grpc_auth(project))).code is grpc.StatusCode.OK

        kafka_path.cut()
        start = time.monotonic()
        refused = await asyncio.gather(*(grpc_export(channel, otlp_request(2), grpc_auth(project)) for _ in range(4)))
        for answer in refused:
            assert answer.code is grpc.StatusCode.UNAVAILABLE, answer
            info = error_details_pb2.RetryInfo.FromString(answer.trailers["google.rpc.retryinfo-bin"])
            assert info.retry_delay.seconds >= 1
            assert "grpc-status-details-bin" in answer.trailers
        assert time.monotonic() - start < PUBLISH_TIMEOUT_S * 2 + 1

        # The SDK's exporter, unchanged, exports during the outage: it is told UNAVAILABLE with
        # a delay, waits it out, and its retry after Kafka is back is acknowledged.
        spans = _spans(5)
        exporter = OTLPSpanExporter(
            endpoint=f"http://{edge.grpc}", headers=dict(grpc_auth(project)), timeout=40, insecure=True
        )
        try:
            exporting = asyncio.create_task(asyncio.to_thread(exporter.export, spans))
            await asyncio.sleep(PUBLISH_TIMEOUT_S + 1)  # the first attempt has failed by now
            assert not exporting.done()
            await kafka_path.restore()
            assert await asyncio.wait_for(exporting, 60) is SpanExportResult.SUCCESS
        finally:
            exporter.shutdown()

        # Nothing lost: the spans before the cut (2) and those exported during it (5) land.
        # Waits for those very spans: requests answered UNAVAILABLE may land too (at least once),
        # so a row count alone can be reached before the exporter's retry is folded.
        pid = project.project_id
        exported = {format(s.get_span_context().span_id, "016x") for s in spans}
        found = await eventually(
            lambda: rows(ch, f"SELECT id FROM observations FINAL WHERE project_id = '{pid}'"),
            lambda r: len(r) >= 7 and exported <= {row["id"] for row in r},
            timeout_s=60,
            every_s=0.5,
        )
        assert exported <= {r["id"] for r in found}
        metrics = await scrape(http, edge.url)
        labels = {
            "grpc_type": "unary",
            "grpc_service": "opentelemetry.proto.collector.trace.v1.TraceService",
            "grpc_method": "Export",
        }
        assert sample(metrics, "grpc_server_handled_total", **labels, grpc_code="Unavailable") >= 5
