"""One contract for what is valid: what a stage would dead-letter is refused at the edge.

The Postgres stage keeps session and user ids and model names in primary keys and dead-letters
longer ones than MAX_KEY_CHARS; the batch API answers 400 for that event, and the OTLP route
rejects the span (partialSuccess), so no such event reaches Kafka.
"""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from pipeline.events import MAX_KEY_CHARS
from sinks.postgres.keys import NewKey
from tests.support import API, basic_auth

pytestmark = pytest.mark.stack

LONG = "x" * (MAX_KEY_CHARS + 1)
TS = "2026-11-27T10:00:00Z"


async def test_keys_past_the_stores_limit_get_400_per_event(http: aiohttp.ClientSession, project: NewKey) -> None:
    trace_id = f"trace-{uuid.uuid4()}"
    batch = {
        "batch": [
            {
                "id": "ok",
                "type": "trace-create",
                "timestamp": TS,
                "body": {"id": trace_id, "userId": "u" * MAX_KEY_CHARS},
            },
            {"id": "user", "type": "trace-create", "timestamp": TS, "body": {"id": trace_id, "userId": LONG}},
            {"id": "session", "type": "trace-create", "timestamp": TS, "body": {"id": trace_id, "sessionId": LONG}},
            {"id": "model", "type": "generation-create", "timestamp": TS, "body": {"traceId": trace_id, "model": LONG}},
        ]
    }
    async with http.post(f"{API}/api/public/ingestion", json=batch, headers=basic_auth(project)) as r:
        assert r.status == 207
        doc = await r.json()
    assert doc["successes"] == [{"id": "ok", "status": 201}]
    assert [(e["id"], e["status"]) for e in doc["errors"]] == [("user", 400), ("session", 400), ("model", 400)]
    assert all(f"at most {MAX_KEY_CHARS} characters" in e["error"] for e in doc["errors"]), doc["errors"]


async def test_an_otlp_span_with_a_model_past_the_limit_is_rejected(
    http: aiohttp.ClientSession, project: NewKey
) -> None:
    def span(span_id: str, model: str) -> dict[str, object]:
        return {
            "traceId": uuid.uuid4().hex,
            "spanId": span_id,
            "name": "llm",
            "startTimeUnixNano": "1764237600000000000",
            "endTimeUnixNano": "1764237601000000000",
            "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": model}}],
        }

    body = {
        "resourceSpans": [
            {"scopeSpans": [{"spans": [span("00000000000000a1", "gpt"), span("00000000000000a2", LONG)]}]}
        ]
    }
    headers = {**basic_auth(project), "Content-Type": "application/json"}
    async with http.post(f"{API}/v1/traces", json=body, headers=headers) as r:
        assert r.status == 200, await r.text()
        doc = await r.json()
    assert int(doc["partialSuccess"]["rejectedSpans"]) == 1
    assert f"at most {MAX_KEY_CHARS} characters" in doc["partialSuccess"]["errorMessage"]
