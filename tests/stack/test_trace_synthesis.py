"""A trace exists as soon as anything names it: SDKs drop root spans, OTLP services export
only their children, batch clients skip trace-create. The real trace's fields win when it comes."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import orjson
import pytest

from sinks.postgres.keys import NewKey
from tests.support import API, basic_auth, eventually

pytestmark = pytest.mark.stack

TIMEOUT_S = 30.0


async def post(http: aiohttp.ClientSession, key: NewKey, path: str, body: bytes, content_type: str) -> int:
    headers = {**basic_auth(key), "Content-Type": content_type}
    async with http.post(f"{API}{path}", data=body, headers=headers) as r:
        return r.status


async def trace(http: aiohttp.ClientSession, key: NewKey, trace_id: str) -> tuple[int, Any]:
    async with http.get(f"{API}/api/public/traces/{trace_id}", headers=basic_auth(key)) as r:
        return r.status, await r.json()


def batch(*events: tuple[str, str, dict[str, Any]]) -> bytes:
    return orjson.dumps(
        {"batch": [{"id": str(uuid.uuid4()), "type": t, "timestamp": ts, "body": b} for t, ts, b in events]}
    )


async def test_a_generation_alone_makes_its_trace_and_a_late_trace_create_wins(
    http: aiohttp.ClientSession, project: NewKey
) -> None:
    trace_id, gen = str(uuid.uuid4()), str(uuid.uuid4())
    generation = {"id": gen, "traceId": trace_id, "name": "plan", "startTime": "2026-11-20T10:00:01Z"}
    body = batch(("generation-create", "2026-11-20T10:00:02Z", generation))
    assert await post(http, project, "/api/public/ingestion", body, "application/json") == 207
    _, doc = await eventually(
        lambda: trace(http, project, trace_id), lambda r: r[0] == 200 and r[1]["observations"], timeout_s=TIMEOUT_S
    )
    assert doc["name"] == "plan" and doc["timestamp"] == "2026-11-20T10:00:01.000000Z"
    assert [o["id"] for o in doc["observations"]] == [gen]

    real = {"id": trace_id, "name": "agent-run", "timestamp": "2026-11-20T10:00:00.5Z", "userId": "u"}
    assert await post(http, project, "/api/public/ingestion", batch(("trace-create", "2026-11-20T10:00:03Z", real)),
                      "application/json") == 207  # fmt: skip
    _, doc = await eventually(lambda: trace(http, project, trace_id), lambda r: r[1].get("name") == "agent-run",
                              timeout_s=TIMEOUT_S)  # fmt: skip
    assert doc["timestamp"] == "2026-11-20T10:00:00.500000Z" and doc["userId"] == "u"


async def test_a_child_only_otlp_export_makes_its_trace(http: aiohttp.ClientSession, project: NewKey) -> None:
    trace_id, parent = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    span = {
        "traceId": trace_id, "spanId": uuid.uuid4().hex[:16], "parentSpanId": parent, "name": "db.query",
        "startTimeUnixNano": "1795773600000000000", "endTimeUnixNano": "1795773601000000000",
    }  # fmt: skip
    export = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
    assert await post(http, project, "/v1/traces", export, "application/json") == 200
    _, doc = await eventually(
        lambda: trace(http, project, trace_id), lambda r: r[0] == 200 and r[1]["observations"], timeout_s=TIMEOUT_S
    )
    assert doc["timestamp"] == "2026-11-27T10:00:00.000000Z"
    assert doc["observations"][0]["parentObservationId"] == parent


async def test_an_app_root_span_names_its_trace(http: aiohttp.ClientSession, project: NewKey) -> None:
    # Langfuse's current SDKs drop the server span and mark the first span they export instead.
    trace_id = uuid.uuid4().hex
    span = {
        "traceId": trace_id, "spanId": uuid.uuid4().hex[:16], "parentSpanId": uuid.uuid4().hex[:16],
        "name": "handle-checkout", "startTimeUnixNano": "1795773600000000000",
        "endTimeUnixNano": "1795773601000000000",
        "attributes": [{"key": "langfuse.internal.is_app_root", "value": {"boolValue": True}}],
    }  # fmt: skip
    export = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
    assert await post(http, project, "/v1/traces", export, "application/json") == 200
    _, doc = await eventually(
        lambda: trace(http, project, trace_id), lambda r: r[0] == 200 and r[1]["observations"], timeout_s=TIMEOUT_S
    )
    assert doc["name"] == "handle-checkout"
    assert "langfuse.internal.is_app_root" not in doc["observations"][0]["metadata"]
