"""The current Langfuse JS SDK (@langfuse/tracing + @langfuse/otel), unchanged, in an HTTP server
that OpenTelemetry's http instrumentation traces.

The server span is the root of the trace, yet the LangfuseSpanProcessor does not export it (by
default only Langfuse and GenAI spans go out): AgentTrace gets a trace whose spans all have a
parent it never sees. The first exported span carries `langfuse.internal.is_app_root`, which
names the trace; the trace must be readable like any other.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.postgres.keys import NewKey
from tests.sdk.conftest import sdk_runner
from tests.support import read_trace, rows

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

# gpt-4o at the default prices (USD per million tokens: 2.5 input, 10 output), 12 in and 3 out.
COST = 12 * 2.5e-6 + 3 * 10e-6


async def test_langfuse_js5_app_root_under_unexported_server_span(
    langfuse_js_v5: Path, ch: ClickHouse, project: NewKey
) -> None:
    node = Path(shutil.which("node") or "node")
    sent = await sdk_runner(node, "langfuse_js5_app_root.cjs", project, str(langfuse_js_v5))(uuid.uuid4().hex[:12])
    assert sent["sdk_version"].startswith("5."), sent
    assert sent["errors"] == [], "the exporter logged failures: the edge rejected something"
    assert sent["status"] == 200
    trace_id, server, root, gen = sent["trace_id"], sent["server_span_id"], sent["root_id"], sent["generation_id"]
    # The app did make the server span, from the http instrumentation; the SDK kept it to itself.
    by_span = {s["id"]: s for s in sent["ended"]}
    assert by_span[server]["scope"] == "@opentelemetry/instrumentation-http"
    assert {by_span[root]["scope"], by_span[gen]["scope"]} == {"langfuse-sdk"}
    # ... and marked the first span it exports, the handler's, as the root of the app.
    assert [s["id"] for s in sent["ended"] if s["app_root"]] == [root]

    def complete(doc: dict[str, Any]) -> bool:
        obs = {o["id"]: o for o in doc.get("observations", [])}
        return doc.get("name") is not None and set(obs) == {root, gen} and obs[gen]["calculatedTotalCost"] is not None

    doc = await read_trace(project, trace_id, complete)

    # Named after the app root: the handler's observation, not the server span nobody exported.
    assert doc["id"] == trace_id and doc["name"] == "chat-request"
    assert doc["environment"] == "sdk-test"
    assert doc["input"] == {"question": "what is 2+2?"} and doc["output"] == {"answer": "4"}
    obs = {o["id"]: o for o in doc["observations"]}
    agent, llm = obs[root], obs[gen]
    assert (agent["type"], agent["name"], agent["parentObservationId"]) == ("AGENT", "chat-request", server)
    assert (llm["type"], llm["name"], llm["parentObservationId"]) == ("GENERATION", "llm", root)
    assert llm["model"] == "gpt-4o" and llm["traceId"] == trace_id
    assert (llm["promptTokens"], llm["completionTokens"], llm["totalTokens"]) == (12, 3, 15)
    assert llm["calculatedTotalCost"] == pytest.approx(COST)
    assert doc["totalCost"] == pytest.approx(COST)

    # ClickHouse holds the two exported observations and nothing for the server span.
    pid = project.project_id
    stored = await rows(
        ch,
        f"SELECT id, trace_id, parent_observation_id FROM observations FINAL WHERE project_id = '{pid}' ORDER BY id",
    )
    assert {o["id"] for o in stored} == {root, gen}
    assert all(o["trace_id"] == trace_id for o in stored)
    assert await rows(ch, f"SELECT id FROM observations WHERE project_id = '{pid}' AND id = '{server}'") == []
    traces = await rows(ch, f"SELECT id, name FROM traces FINAL WHERE project_id = '{pid}'")
    assert traces == [{"id": trace_id, "name": "chat-request"}]
