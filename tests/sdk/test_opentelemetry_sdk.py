"""The OpenTelemetry Python SDK's OTLP exporters, unchanged, with GenAI attributes: spans
exported over OTLP/HTTP to /v1/traces and over OTLP/gRPC to TraceService/Export, and read back
from ClickHouse field by field, the same for both transports."""

from __future__ import annotations

import asyncio
import logging
import uuid

import grpc
import orjson
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from sinks.clickhouse.client import ClickHouse
from sinks.postgres.keys import NewKey
from tests.support import API, GRPC, basic_auth, eventually, rows

pytestmark = pytest.mark.stack

INPUT = [{"role": "user", "parts": [{"type": "text", "content": "what is 2+2?"}]}]
OUTPUT = [{"role": "assistant", "parts": [{"type": "text", "content": "4"}], "finish_reason": "stop"}]


def http_exporter(project: NewKey, compression: Compression) -> SpanExporter:
    return OTLPSpanExporter(
        endpoint=f"{API}/v1/traces", headers=basic_auth(project), timeout=5, compression=compression
    )


def grpc_exporter(project: NewKey, compression: grpc.Compression, target: str = GRPC) -> SpanExporter:
    # gRPC metadata keys are lower-case; the exporter passes a dict's keys through as given.
    headers = {k.lower(): v for k, v in basic_auth(project).items()}
    return GrpcSpanExporter(endpoint=f"http://{target}", headers=headers, timeout=5, compression=compression)


def export(exporter: SpanExporter, run_id: str) -> dict[str, str]:
    """Record an agent span, a chat span and a failing tool span; flush; return their ids."""
    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": "sdk-test",
                "service.version": "1.4.2",
                "deployment.environment.name": "sdk-test",
            }
        )
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("agenttrace.tests.sdk", "1.0")
    try:
        with tracer.start_as_current_span(
            "invoke_agent planner",
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "planner",
                "gen_ai.conversation.id": f"session-{run_id}",
                "user.id": f"user-{run_id}",
            },
        ) as agent:
            with tracer.start_as_current_span(
                "chat gpt-4o",
                kind=SpanKind.CLIENT,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-08-06",
                    "gen_ai.request.temperature": 0.2,
                    "gen_ai.request.max_tokens": 128,
                    "gen_ai.usage.input_tokens": 12,
                    "gen_ai.usage.output_tokens": 3,
                    "gen_ai.input.messages": orjson.dumps(INPUT).decode(),
                    "gen_ai.output.messages": orjson.dumps(OUTPUT).decode(),
                    "gen_ai.response.finish_reasons": ["stop"],
                },
            ) as chat:
                pass
            with tracer.start_as_current_span(
                "execute_tool calc",
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "calc",
                    "gen_ai.tool.call.arguments": '{"expr": "2+2"}',
                },
            ) as tool:
                tool.set_status(Status(StatusCode.ERROR, "division by zero"))
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()
    return {
        "trace_id": format(agent.get_span_context().trace_id, "032x"),
        "agent_id": format(agent.get_span_context().span_id, "016x"),
        "chat_id": format(chat.get_span_context().span_id, "016x"),
        "tool_id": format(tool.get_span_context().span_id, "016x"),
    }


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip, Compression.Deflate])
async def test_otel_sdk_genai_spans(
    ch: ClickHouse, project: NewKey, compression: Compression, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = uuid.uuid4().hex[:12]
    with caplog.at_level(logging.WARNING, logger="opentelemetry"):
        ids = await asyncio.to_thread(export, http_exporter(project, compression), run_id)
    assert [r.getMessage() for r in caplog.records] == [], "the exporter logged a failed export"
    await assert_landed(ch, project, ids, run_id)


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip], ids=["plain", "gzip"])
async def test_otel_sdk_grpc_genai_spans(
    ch: ClickHouse, project: NewKey, compression: grpc.Compression, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = uuid.uuid4().hex[:12]
    with caplog.at_level(logging.WARNING, logger="opentelemetry"):
        ids = await asyncio.to_thread(export, grpc_exporter(project, compression), run_id)
    assert [r.getMessage() for r in caplog.records] == [], "the exporter logged a failed export"
    await assert_landed(ch, project, ids, run_id)


async def test_otel_sdk_grpc_wrong_key_is_unauthenticated_and_not_retried(
    project: NewKey, caplog: pytest.LogCaptureFixture
) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("agenttrace.tests.sdk").start_as_current_span("refused"):
        pass
    wrong = NewKey(project.project_id, project.public_key, f"sk-wrong-{uuid.uuid4().hex}")
    exporter = grpc_exporter(wrong, grpc.Compression.NoCompression)
    try:
        with caplog.at_level(logging.WARNING, logger="opentelemetry"):
            result = await asyncio.to_thread(exporter.export, memory.get_finished_spans())
    finally:
        exporter.shutdown()
    assert result is SpanExportResult.FAILURE
    messages = [r.getMessage() for r in caplog.records]
    assert any("StatusCode.UNAUTHENTICATED" in m for m in messages), messages
    assert not any("retrying" in m for m in messages), messages  # not retryable, per the spec


async def assert_landed(ch: ClickHouse, project: NewKey, ids: dict[str, str], run_id: str) -> None:
    """The three spans of export(), field by field, in observations and traces."""
    pid = project.project_id

    found = await eventually(
        lambda: rows(
            ch,
            f"SELECT id, type, name, trace_id, parent_observation_id, provided_model_name, input_tokens, "
            f"output_tokens, total_tokens, model_parameters, input, output, level, status_message, "
            f"environment, metadata FROM observations FINAL WHERE project_id = '{pid}'",
        ),
        lambda r: len(r) == 3,
        timeout_s=60,
    )
    by_id = {o["id"]: o for o in found}
    chat = by_id[ids["chat_id"]]
    assert (chat["type"], chat["name"]) == ("GENERATION", "chat gpt-4o")
    assert (chat["trace_id"], chat["parent_observation_id"]) == (ids["trace_id"], ids["agent_id"])
    assert chat["provided_model_name"] == "gpt-4o-2024-08-06"  # the response's model wins
    assert (chat["input_tokens"], chat["output_tokens"], chat["total_tokens"]) == (12, 3, 15)
    assert orjson.loads(chat["model_parameters"]) == {"temperature": 0.2, "max_tokens": 128}
    assert orjson.loads(chat["input"]) == INPUT
    assert orjson.loads(chat["output"]) == OUTPUT
    assert chat["environment"] == "sdk-test"
    metadata = orjson.loads(chat["metadata"])
    assert metadata["gen_ai.provider.name"] == "openai"
    assert metadata["gen_ai.response.finish_reasons"] == ["stop"]
    assert metadata["scope"] == {"name": "agenttrace.tests.sdk", "version": "1.0"}

    agent = by_id[ids["agent_id"]]
    assert (agent["type"], agent["name"], agent["parent_observation_id"]) == ("AGENT", "invoke_agent planner", "")
    tool = by_id[ids["tool_id"]]
    assert (tool["type"], tool["name"]) == ("TOOL", "calc")  # gen_ai.tool.name, as Langfuse names it
    assert orjson.loads(tool["input"]) == {"expr": "2+2"}
    assert (tool["level"], tool["status_message"]) == ("ERROR", "division by zero")

    traces = await eventually(
        lambda: rows(
            ch,
            f"SELECT id, name, user_id, session_id, version, environment FROM traces FINAL WHERE project_id = '{pid}'",
        ),
        lambda r: len(r) == 1,
        timeout_s=60,
    )
    assert traces[0] == {
        "id": ids["trace_id"],
        "name": "invoke_agent planner",
        "user_id": f"user-{run_id}",
        "session_id": f"session-{run_id}",
        "version": "1.4.2",  # the resource's service.version, as Langfuse reads it
        "environment": "sdk-test",
    }
