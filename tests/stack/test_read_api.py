"""GET /api/public/traces/{traceId}: the merged trace in Langfuse's shape, read back from
ClickHouse, whatever order its events arrived in."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey, create_key
from tests.support import API, basic_auth, eventually

pytestmark = pytest.mark.stack

TIMEOUT_S = 30.0
SCORE_KEYS = (
    "id",
    "traceId",
    "observationId",
    "name",
    "value",
    "dataType",
    "source",
    "comment",
    "timestamp",
    "environment",
)


def event(etype: str, ts: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": etype, "timestamp": ts, "body": body}


async def ingest(http: aiohttp.ClientSession, key: NewKey, *events: dict[str, Any]) -> None:
    async with http.post(f"{API}/api/public/ingestion", json={"batch": list(events)}, headers=basic_auth(key)) as r:
        assert r.status == 207
        assert (await r.json())["errors"] == []


async def get_trace(http: aiohttp.ClientSession, key: NewKey, trace_id: str) -> tuple[int, Any]:
    async with http.get(f"{API}/api/public/traces/{trace_id}", headers=basic_auth(key)) as r:
        return r.status, await r.json()


async def test_trace_with_observations_and_scores(http: aiohttp.ClientSession, project: NewKey) -> None:
    trace, span, gen = (str(uuid.uuid4()) for _ in range(3))
    await ingest(
        http,
        project,
        event(
            "trace-create",
            "2026-11-20T10:00:00.000001Z",
            {
                "id": trace,
                "name": "agent-run",
                "userId": "u-1",
                "sessionId": "s-1",
                "release": "r1",
                "version": "v1",
                "tags": ["prod"],
                "public": True,
                "metadata": {"team": "search"},
                "input": {"question": "why?"},
                "output": "because",
                "timestamp": "2026-11-20T10:00:00.000001Z",
            },
        ),
        event(
            "span-create",
            "2026-11-20T10:00:00.1Z",
            {
                "id": span,
                "traceId": trace,
                "name": "plan",
                "startTime": "2026-11-20T10:00:00.100001Z",
                "endTime": "2026-11-20T10:00:01.500002Z",
                "level": "WARNING",
                "statusMessage": "slow",
            },
        ),
        event(
            "generation-create",
            "2026-11-20T10:00:00.2Z",
            {
                "id": gen,
                "traceId": trace,
                "parentObservationId": span,
                "name": "llm",
                "model": "gpt-4o",
                "modelParameters": {"temperature": 0.2},
                "startTime": "2026-11-20T10:00:00.123456Z",
                "completionStartTime": "2026-11-20T10:00:00.300000Z",
                "endTime": "2026-11-20T10:00:01Z",
                "input": [{"role": "user", "content": "hi"}],
                "output": {"role": "assistant", "content": "hello"},
                "usage": {"input": 10, "output": 5},
                "costDetails": {"total": 0.01},
                "promptName": "p",
                "promptVersion": 3,
            },
        ),
        event(
            "score-create",
            "2026-11-20T10:00:02Z",
            {
                "id": f"{trace}-score",
                "traceId": trace,
                "observationId": gen,
                "name": "quality",
                "value": 0.9,
                "comment": "good",
                "timestamp": "2026-11-20T10:00:02Z",
            },
        ),
    )
    _status, doc = await eventually(
        lambda: get_trace(http, project, trace),
        lambda r: r[0] == 200 and len(r[1]["observations"]) == 2 and len(r[1]["scores"]) == 1,
        timeout_s=TIMEOUT_S,
    )
    observations = {o["id"]: o for o in doc.pop("observations")}
    scores = doc.pop("scores")
    assert isinstance(doc.pop("createdAt"), str) and isinstance(doc.pop("updatedAt"), str)
    assert doc == {
        "id": trace,
        "projectId": project.project_id,
        "name": "agent-run",
        "timestamp": "2026-11-20T10:00:00.000001Z",
        "userId": "u-1",
        "sessionId": "s-1",
        "release": "r1",
        "version": "v1",
        "environment": "default",
        "tags": ["prod"],
        "public": True,
        "metadata": {"team": "search"},
        "input": {"question": "why?"},
        "output": "because",
        "latency": 1.400001,
        "totalCost": 0.01,
        "htmlPath": f"/project/{project.project_id}/traces/{trace}",
        "bookmarked": False,
    }
    expected_generation = {
        "id": gen,
        "traceId": trace,
        "type": "GENERATION",
        "parentObservationId": span,
        "name": "llm",
        "startTime": "2026-11-20T10:00:00.123456Z",
        "endTime": "2026-11-20T10:00:01.000000Z",
        "completionStartTime": "2026-11-20T10:00:00.300000Z",
        "level": "DEFAULT",
        "statusMessage": None,
        "version": None,
        "model": "gpt-4o",
        "modelParameters": {"temperature": 0.2},
        "usageDetails": {"input": 10, "output": 5, "total": 15},
        "costDetails": {"total": 0.01},
        "input": [{"role": "user", "content": "hi"}],
        "output": {"role": "assistant", "content": "hello"},
        "metadata": {},
        "promptName": "p",
        "promptVersion": 3,
        "environment": "default",
        # What the 3.x and later SDKs require besides: the deprecated usage object and the prices.
        "usage": {"input": 10, "output": 5, "total": 15, "unit": "TOKENS"},
        "calculatedTotalCost": 0.01,
        "latency": 0.876544,
        "timeToFirstToken": 0.176544,
    }
    assert {k: observations[gen][k] for k in expected_generation} == expected_generation
    assert observations[span]["type"] == "SPAN"
    assert observations[span]["parentObservationId"] is None
    assert (observations[span]["level"], observations[span]["statusMessage"]) == ("WARNING", "slow")
    assert [{k: s[k] for k in SCORE_KEYS} for s in scores] == [
        {
            "id": f"{trace}-score",
            "traceId": trace,
            "observationId": gen,
            "name": "quality",
            "value": 0.9,
            "dataType": "NUMERIC",
            "source": "API",
            "comment": "good",
            "timestamp": "2026-11-20T10:00:02.000000Z",
            "environment": "default",
        }
    ]


async def test_update_before_create_reads_merged(http: aiohttp.ClientSession, project: NewKey) -> None:
    trace, gen = str(uuid.uuid4()), str(uuid.uuid4())
    await ingest(http, project, event("trace-create", "2026-11-20T11:00:00Z", {"id": trace, "name": "ooo"}))
    # The update (later in event time) arrives first, and is written on its own.
    await ingest(
        http,
        project,
        event(
            "generation-update",
            "2026-11-20T11:00:05Z",
            {
                "id": gen,
                "traceId": trace,
                "endTime": "2026-11-20T11:00:04Z",
                "output": "late answer",
                "usage": {"input": 7, "output": 3},
                "metadata": {"phase": "end"},
            },
        ),
    )
    await eventually(
        lambda: get_trace(http, project, trace),
        lambda r: r[0] == 200 and [o["output"] for o in r[1]["observations"]] == ["late answer"],
        timeout_s=TIMEOUT_S,
    )
    await ingest(
        http,
        project,
        event(
            "generation-create",
            "2026-11-20T11:00:01Z",
            {
                "id": gen,
                "traceId": trace,
                "name": "llm",
                "model": "gpt-4o-mini",
                "startTime": "2026-11-20T11:00:01.000001Z",
                "input": "question",
                "output": "stale partial",
                "metadata": {"phase": "start", "attempt": 1},
            },
        ),
    )
    _, doc = await eventually(
        lambda: get_trace(http, project, trace),
        lambda r: r[0] == 200 and [o["name"] for o in r[1]["observations"]] == ["llm"],
        timeout_s=TIMEOUT_S,
    )
    [obs] = doc["observations"]
    assert {
        k: obs[k]
        for k in ("type", "name", "model", "startTime", "endTime", "input", "output", "usageDetails", "metadata")
    } == {
        "type": "GENERATION",
        "name": "llm",
        "model": "gpt-4o-mini",
        "startTime": "2026-11-20T11:00:01.000001Z",
        "endTime": "2026-11-20T11:00:04.000000Z",
        "input": "question",
        "output": "late answer",
        "usageDetails": {"input": 7, "output": 3, "total": 10},
        "metadata": {"phase": "end", "attempt": 1},
    }


async def test_missing_or_foreign_trace_is_404(http: aiohttp.ClientSession, project: NewKey, pg: Postgres) -> None:
    trace = str(uuid.uuid4())
    await ingest(http, project, event("trace-create", "2026-11-20T12:00:00Z", {"id": trace}))
    await eventually(lambda: get_trace(http, project, trace), lambda r: r[0] == 200, timeout_s=TIMEOUT_S)
    other = await create_key(pg, f"test-{uuid.uuid4().hex[:12]}")
    status, doc = await get_trace(http, other, trace)
    assert status == 404 and doc["error"] == "not_found"
    assert (await get_trace(http, project, str(uuid.uuid4())))[0] == 404


async def test_reading_needs_a_key(http: aiohttp.ClientSession) -> None:
    async with http.get(f"{API}/api/public/traces/{uuid.uuid4()}") as r:
        assert r.status == 401
