"""GenAI content sent as OTLP log records (ingest/otlp/logs.py) lands on its span, whichever of the
two exports comes first: recorded from opentelemetry-instrumentation-openai-v2 and posted as
OTLP/JSON, and sent by the OpenTelemetry SDK's own OTLP exporters (HTTP and gRPC)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from opentelemetry._logs import LogRecord as ApiLogRecord
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sinks.clickhouse.client import ClickHouse
from sinks.postgres.keys import NewKey
from tests.support import API, GRPC, basic_auth, eventually, rows

try:
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
except ImportError:  # SDKs before 1.39
    from opentelemetry.sdk._logs.export import InMemoryLogExporter as InMemoryLogRecordExporter

pytestmark = pytest.mark.stack

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "otlp"
TIMEOUT_S = 60.0


async def post(http: aiohttp.ClientSession, key: NewKey, path: str, fixture: str) -> Any:
    headers = {**basic_auth(key), "Content-Type": "application/json"}
    async with http.post(f"{API}{path}", data=(FIXTURES / fixture).read_bytes(), headers=headers) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def generations(ch: ClickHouse, key: NewKey, count: int) -> dict[str, dict[str, Any]]:
    """The project's observations once `count` of them have both an input and a model."""
    found = await eventually(
        lambda: rows(
            ch,
            "SELECT id, type, trace_id, provided_model_name, input, output, input_tokens FROM observations FINAL "
            f"WHERE project_id = '{key.project_id}'",
        ),
        lambda r: sum(1 for o in r if o["input"] and o["provided_model_name"]) == count,
        timeout_s=TIMEOUT_S,
    )
    return {o["id"]: o for o in found}


async def test_openai_v2_content_logs_before_their_spans(
    ch: ClickHouse, http: aiohttp.ClientSession, project: NewKey
) -> None:
    # The SDK's log processor exports every second by default, its span processor every five: the
    # content usually arrives first, for spans no stage has seen.
    assert await post(http, project, "/v1/logs", "openai_v2.logs.json") == {}
    await asyncio.sleep(1.0)
    assert await post(http, project, "/api/public/otel/v1/traces", "openai_v2.json") == {}
    by_id = await generations(ch, project, 2)
    call = by_id["e8a69f6e036d1e3e"]  # the second call: the tool's answer, then the reply
    assert (call["type"], call["provided_model_name"], call["input_tokens"]) == (
        "GENERATION",
        "gpt-4o-mini-2024-07-18",
        61,
    )
    assert call["trace_id"] == "e429df562723b611df4b25f4e1b29ed2"
    assert orjson.loads(call["input"])[-1] == {"role": "tool", "content": {"sky": "cloudy"}, "id": "call-1"}
    assert orjson.loads(call["output"])["message"] == {"role": "assistant", "content": "Cloudy in Lima."}
    # What users read: the public API's observation, and its trace: each call is a root span
    # (no span around it), whose input and output are its trace's, as a root's own attributes are.
    async with http.get(f"{API}/api/public/observations/e8a69f6e036d1e3e", headers=basic_auth(project)) as r:
        assert r.status == 200, await r.text()
        observation = await r.json()
    assert observation["traceId"] == "e429df562723b611df4b25f4e1b29ed2"
    assert observation["output"]["message"]["content"] == "Cloudy in Lima."
    trace = await eventually(
        lambda: _trace(http, project, "e429df562723b611df4b25f4e1b29ed2"),
        lambda t: t is not None and t.get("output") is not None,
        timeout_s=TIMEOUT_S,
    )
    assert trace["input"][0] == {"role": "system", "content": "Answer briefly."}
    assert trace["output"]["message"]["content"] == "Cloudy in Lima."


async def _trace(http: aiohttp.ClientSession, key: NewKey, trace_id: str) -> dict[str, Any] | None:
    async with http.get(f"{API}/api/public/traces/{trace_id}", headers=basic_auth(key)) as r:
        return await r.json() if r.status == 200 else None


def _sdk_call(messages: list[tuple[str, str]]) -> tuple[str, str, list[Any], list[Any]]:
    """A chat call made with the SDK: its trace and span ids, its span and its message records
    (the role's record per message, then the choice), none exported yet."""
    spans = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-logs-test"}))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    records = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=provider.resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(records))
    logger = logger_provider.get_logger("test")
    with provider.get_tracer("test").start_as_current_span("chat gpt-4o-mini") as span:
        span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"})
        span.set_attributes({"gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3})
        for role, content in messages:
            logger.emit(ApiLogRecord(event_name=f"gen_ai.{role}.message", body={"content": content}))
        logger.emit(
            ApiLogRecord(
                event_name="gen_ai.choice",
                body={"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Lima."}},
            )
        )
        context = span.get_span_context()
    finished = list(records.get_finished_logs())
    assert len(finished) == len(messages) + 1
    return f"{context.trace_id:032x}", f"{context.span_id:016x}", list(spans.get_finished_spans()), finished


def _export_spans(key: NewKey, spans: list[Any]) -> None:
    exporter = OTLPSpanExporter(endpoint=f"{API}/v1/traces", headers=basic_auth(key))
    assert exporter.export(spans) is SpanExportResult.SUCCESS


def _sdk_span(key: NewKey) -> tuple[str, str, list[Any]]:
    """A chat call's span, exported over OTLP/HTTP, and its message records, left to export (the
    order the other test does not take)."""
    trace_id, span_id, spans, records = _sdk_call([("user", "Capital of Peru?")])
    _export_spans(key, spans)
    return trace_id, span_id, records


def _sdk_logs(key: NewKey, finished: list[Any], over_grpc: bool) -> None:
    auth = basic_auth(key)
    if over_grpc:
        metadata = {"authorization": auth["Authorization"]}
        exporter: Any = GrpcLogExporter(endpoint=GRPC, insecure=True, headers=metadata)
    else:
        exporter = OTLPLogExporter(endpoint=f"{API}/v1/logs", headers=auth)
    assert exporter.export(finished) is LogRecordExportResult.SUCCESS
    exporter.shutdown()


@pytest.mark.parametrize("logs_over_grpc", [False, True], ids=["http", "grpc"])
async def test_sdk_exporters_spans_then_content(
    ch: ClickHouse, http: aiohttp.ClientSession, project: NewKey, logs_over_grpc: bool
) -> None:
    """The span stored before its content arrives (a program that flushes its spans first): the
    content still lands on the span, and on its trace, the span being the root."""
    trace_id, span_id, finished = await asyncio.to_thread(_sdk_span, project)
    await eventually(
        lambda: rows(ch, f"SELECT id FROM observations WHERE project_id = '{project.project_id}'"),
        lambda r: len(r) == 1,
        timeout_s=TIMEOUT_S,
    )
    await asyncio.to_thread(_sdk_logs, project, finished, logs_over_grpc)
    call = (await generations(ch, project, 1))[span_id]
    assert (call["type"], call["trace_id"], call["input_tokens"]) == ("GENERATION", trace_id, 12)
    assert orjson.loads(call["input"]) == [{"role": "user", "content": "Capital of Peru?"}]
    assert orjson.loads(call["output"])["message"]["content"] == "Lima."
    trace = await eventually(
        lambda: _trace(http, project, trace_id),
        lambda t: t is not None and t.get("output") is not None,
        timeout_s=TIMEOUT_S,
    )
    assert trace["input"] == [{"role": "user", "content": "Capital of Peru?"}]
    assert trace["output"]["message"]["content"] == "Lima."


PARTED = [
    ("system", "Answer briefly."),
    ("user", "Capital of Peru?"),
    ("assistant", "Lima."),
    ("user", "And of Chile?"),
]


async def test_a_calls_messages_in_two_log_exports_are_its_whole_input(
    ch: ClickHouse, http: aiohttp.ClientSession, project: NewKey
) -> None:
    """The later part first, in a batch of its own, then the span, then the earlier part: the
    stage joins each part into what the store holds, in the messages' order."""
    trace_id, span_id, spans, records = await asyncio.to_thread(_sdk_call, PARTED)
    query = f"SELECT id, input, provided_model_name FROM observations FINAL WHERE project_id = '{project.project_id}'"
    await asyncio.to_thread(_sdk_logs, project, records[2:], False)
    await eventually(lambda: rows(ch, query), lambda r: len(r) == 1 and r[0]["input"], timeout_s=TIMEOUT_S)
    await asyncio.to_thread(_export_spans, project, spans)
    await eventually(
        lambda: rows(ch, query), lambda r: len(r) == 1 and r[0]["provided_model_name"], timeout_s=TIMEOUT_S
    )
    await asyncio.to_thread(_sdk_logs, project, records[:2], True)
    whole = [{"role": role, "content": content} for role, content in PARTED]
    found = await eventually(
        lambda: rows(ch, query),
        lambda r: len(r) == 1 and len(orjson.loads(r[0]["input"] or "[]")) == len(whole),
        timeout_s=TIMEOUT_S,
    )
    assert orjson.loads(found[0]["input"]) == whole
    async with http.get(f"{API}/api/public/observations/{span_id}", headers=basic_auth(project)) as r:
        assert r.status == 200, await r.text()
        observation = await r.json()
    assert observation["input"] == whole
    assert observation["output"]["message"]["content"] == "Lima."
    # The call is the root span: its trace shows the whole input too.
    trace = await eventually(
        lambda: _trace(http, project, trace_id),
        lambda t: t is not None and t.get("input") is not None and len(t["input"]) == len(whole),
        timeout_s=TIMEOUT_S,
    )
    assert trace["input"] == whole


async def test_other_log_records_are_answered_as_rejected(http: aiohttp.ClientSession, project: NewKey) -> None:
    body = {
        "resourceLogs": [
            {
                "scopeLogs": [
                    {
                        "logRecords": [
                            {"body": {"stringValue": "GET /health 200"}, "severityText": "INFO"},
                            {"eventName": "gen_ai.user.message", "body": {"kvlistValue": {"values": []}}},
                        ]
                    }
                ]
            }
        ]
    }
    headers = {**basic_auth(project), "Content-Type": "application/json"}
    async with http.post(f"{API}/v1/logs", data=orjson.dumps(body), headers=headers) as r:
        assert r.status == 200, await r.text()
        answer = await r.json()
    partial = answer["partialSuccess"]
    assert partial["rejectedLogRecords"] == "2"
    assert (
        "not GenAI content events" in partial["errorMessage"]
        and "no valid trace and span id" in partial["errorMessage"]
    )
    async with http.post(
        f"{API}/v1/logs", data=b"\x0a\x05\x12", headers={**headers, "Content-Type": "application/x-protobuf"}
    ) as r:
        assert r.status == 400
    async with http.post(f"{API}/v1/logs", data=b"{}", headers={"Content-Type": "application/json"}) as r:
        assert r.status == 401


async def test_a_protobuf_log_export_past_the_body_limit_is_kept(
    ch: ClickHouse, http: aiohttp.ClientSession, project: NewKey
) -> None:
    """The SDK's log processor exports up to 512 records a request: with long prompts, past the
    5 MiB a body is parsed whole at. Protobuf is read lazily, so it is taken as long as a
    trace export (a 413 is not retried: the content would be lost); JSON still is not."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    prompt = "x" * 200_000
    trace_id = bytes.fromhex("5b8efff798038103d269b633813fc60c")
    spans = [(i + 1).to_bytes(8, "big") for i in range(40)]
    for span in spans:
        record = records.add(event_name="gen_ai.user.message", trace_id=trace_id, span_id=span)
        record.time_unix_nano = 1_796_000_000_000_000_000
        record.body.kvlist_value.values.append(KeyValue(key="content", value=AnyValue(string_value=prompt)))
    body = request.SerializeToString()
    assert 5 * 1024 * 1024 < len(body) < 32 * 1024 * 1024
    headers = {**basic_auth(project), "Content-Type": "application/x-protobuf"}
    async with http.post(f"{API}/v1/logs", data=io.BytesIO(body), headers=headers) as r:
        assert r.status == 200, await r.text()
    stored = await eventually(
        lambda: rows(
            ch,
            f"SELECT id, length(input) AS n FROM observations FINAL WHERE project_id = '{project.project_id}'",
        ),
        lambda found: len(found) == len(spans),
        timeout_s=TIMEOUT_S,
    )
    assert {o["id"] for o in stored} == {s.hex() for s in spans}
    assert all(o["n"] > len(prompt) for o in stored)
    json_body = orjson.dumps(
        {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": prompt}}] * 30}]}]}
    )
    async with http.post(
        f"{API}/v1/logs", data=io.BytesIO(json_body), headers={**headers, "Content-Type": "application/json"}
    ) as r:
        assert r.status == 413
