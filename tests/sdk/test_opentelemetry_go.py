"""The OpenTelemetry Go SDK's OTLP exporters, unchanged (clients/otel_go, pinned by its go.mod):
an agent span, a GenAI chat span and a failing tool span exported over OTLP/HTTP (protobuf,
gzip; and OTLP/JSON, gzip) to the Langfuse path and over OTLP/gRPC (gzip), read back from ClickHouse and through the
public trace API, the same for both transports."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.postgres.keys import NewKey
from tests.sdk.conftest import command_runner
from tests.support import GRPC, eventually, read_trace, rows

# The first run builds the client: Go fetches and compiles the SDK, gRPC and protobuf (~1 minute).
pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

INPUT = [{"role": "user", "parts": [{"type": "text", "content": "what is 2+2?"}]}]
OUTPUT = [{"role": "assistant", "parts": [{"type": "text", "content": "4"}], "finish_reason": "stop"}]
# gpt-4o-mini at the default prices (USD per million tokens: 0.15 input, 0.6 output), 12 in and 3 out.
COST = 12 * 0.15e-6 + 3 * 0.6e-6

TRANSPORTS = {
    "http-protobuf-gzip": ["-protocol", "http/protobuf"],
    "http-json-gzip": ["-protocol", "http/json"],
    "grpc-gzip": ["-protocol", "grpc", "-endpoint", f"http://{GRPC}"],
}


@pytest.mark.parametrize("flags", TRANSPORTS.values(), ids=TRANSPORTS.keys())
async def test_otel_go_genai_spans(otel_go: Path, ch: ClickHouse, project: NewKey, flags: list[str]) -> None:
    run_id = uuid.uuid4().hex[:12]
    sent = await command_runner([str(otel_go), *flags], project)(run_id)
    assert sent["sdk_version"].startswith("1."), sent
    assert sent["errors"] == [], "the exporter reported failures: the edge rejected something"
    ids = {k: sent[k] for k in ("trace_id", "agent_id", "chat_id", "tool_id")}
    assert re.fullmatch("[0-9a-f]{32}", ids["trace_id"]), ids
    assert all(re.fullmatch("[0-9a-f]{16}", ids[k]) for k in ("agent_id", "chat_id", "tool_id")), ids

    await assert_stored(ch, project, ids, run_id)
    await assert_read(project, ids, run_id)


async def assert_stored(ch: ClickHouse, project: NewKey, ids: dict[str, str], run_id: str) -> None:
    """The three spans field by field in observations, and their trace."""
    pid = project.project_id
    found = await eventually(
        lambda: rows(
            ch,
            f"SELECT id, type, name, trace_id, parent_observation_id, provided_model_name, input_tokens, "
            f"output_tokens, total_tokens, total_cost, model_parameters, input, output, level, status_message, "
            f"environment, metadata FROM observations FINAL WHERE project_id = '{pid}'",
        ),
        lambda r: len(r) == 3,
        timeout_s=60,
    )
    # Stored under the ids the SDK made, in its lower-case hex.
    by_id = {o["id"]: o for o in found}
    assert set(by_id) == {ids["agent_id"], ids["chat_id"], ids["tool_id"]}
    assert {o["trace_id"] for o in found} == {ids["trace_id"]}

    chat = by_id[ids["chat_id"]]
    assert (chat["type"], chat["name"], chat["parent_observation_id"]) == (
        "GENERATION",
        "chat gpt-4o-mini",
        ids["agent_id"],
    )
    assert chat["provided_model_name"] == "gpt-4o-mini"
    assert (chat["input_tokens"], chat["output_tokens"], chat["total_tokens"]) == (12, 3, 15)
    assert chat["total_cost"] == pytest.approx(COST)
    # Go's attribute.Int is an int64 intValue: the edge must keep it an integer.
    assert orjson.loads(chat["model_parameters"]) == {"temperature": 0.2, "max_tokens": 128}
    assert orjson.loads(chat["input"]) == INPUT
    assert orjson.loads(chat["output"]) == OUTPUT
    assert chat["environment"] == "sdk-test"
    metadata = orjson.loads(chat["metadata"])
    assert metadata["gen_ai.provider.name"] == "openai"
    assert metadata["gen_ai.response.finish_reasons"] == ["stop"]
    assert metadata["scope"] == {"name": "agenttrace.tests.sdk", "version": "1.0"}
    resource = metadata["resourceAttributes"]
    assert (resource["service.name"], resource["telemetry.sdk.language"]) == ("sdk-test-go", "go")

    agent = by_id[ids["agent_id"]]
    assert (agent["type"], agent["name"], agent["parent_observation_id"]) == ("AGENT", "invoke_agent planner", "")
    assert agent["level"] == "DEFAULT"

    tool = by_id[ids["tool_id"]]
    assert (tool["type"], tool["name"], tool["parent_observation_id"]) == ("TOOL", "calc", ids["agent_id"])
    assert orjson.loads(tool["input"]) == {"expr": "2+2"}
    assert (tool["level"], tool["status_message"]) == ("ERROR", "division by zero")
    # span.RecordError's exception event stays with the span, in its metadata.
    (event,) = orjson.loads(tool["metadata"])["spanEvents"]
    assert (event["name"], event["attributes"]["exception.message"]) == ("exception", "division by zero")

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
        "name": "go agent run",  # langfuse.trace.name over the root span's name
        "user_id": f"user-{run_id}",
        "session_id": f"session-{run_id}",
        "version": "1.4.2",  # the resource's service.version, as Langfuse reads it
        "environment": "sdk-test",
    }


async def assert_read(project: NewKey, ids: dict[str, str], run_id: str) -> None:
    """The same trace through GET /api/public/traces/{id}, as Langfuse's clients read it."""
    trace_id = ids["trace_id"]

    def complete(doc: dict[str, Any]) -> bool:
        costs = [o["calculatedTotalCost"] for o in doc.get("observations", [])]
        return len(costs) == 3 and any(c is not None for c in costs)

    doc = await read_trace(project, trace_id, complete)

    assert (doc["id"], doc["name"]) == (trace_id, "go agent run")
    assert (doc["userId"], doc["sessionId"]) == (f"user-{run_id}", f"session-{run_id}")
    assert (doc["version"], doc["release"], doc["environment"]) == ("1.4.2", None, "sdk-test")
    assert doc["totalCost"] == pytest.approx(COST)
    obs = {o["id"]: o for o in doc["observations"]}
    llm, tool = obs[ids["chat_id"]], obs[ids["tool_id"]]
    assert (llm["type"], llm["model"], llm["traceId"]) == ("GENERATION", "gpt-4o-mini", trace_id)
    assert (llm["promptTokens"], llm["completionTokens"], llm["totalTokens"]) == (12, 3, 15)
    assert llm["calculatedTotalCost"] == pytest.approx(COST)
    assert llm["modelId"] == "at-openai-gpt-4o-mini"  # the default price table's
    assert (tool["type"], tool["level"], tool["statusMessage"]) == ("TOOL", "ERROR", "division by zero")
    assert obs[ids["agent_id"]]["parentObservationId"] is None
