"""The first path end to end: a Langfuse batch through the edge, Kafka and the worker into
ClickHouse, against the processes `make up` started."""

from __future__ import annotations

import re
import uuid

import aiohttp
import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.postgres.keys import NewKey
from tests.support import API, WORKER, WORKER_2, WORKER_POSTGRES, basic_auth, eventually, rows

pytestmark = pytest.mark.stack


def _batch(trace_id: str, gen_id: str) -> dict:
    return {
        "batch": [
            {
                "id": str(uuid.uuid4()),
                "type": "trace-create",
                "timestamp": "2026-11-27T10:00:00.000001Z",
                "body": {"id": trace_id, "name": "agent-run", "userId": "u-1", "sessionId": "s-1", "tags": ["prod"]},
            },
            {
                "id": str(uuid.uuid4()),
                "type": "span-create",
                "timestamp": "2026-11-27T10:00:00.100000Z",
                "body": {
                    "id": f"{gen_id}-span",
                    "traceId": trace_id,
                    "name": "plan",
                    "startTime": "2026-11-27T10:00:00.100001Z",
                    "endTime": "2026-11-27T10:00:00.300002Z",
                },
            },
            {
                "id": str(uuid.uuid4()),
                "type": "generation-create",
                "timestamp": "2026-11-27T10:00:00.200000Z",
                "body": {
                    "id": gen_id,
                    "traceId": trace_id,
                    "parentObservationId": f"{gen_id}-span",
                    "name": "llm",
                    "model": "gpt-4o",
                    "startTime": "2026-11-27T10:00:00.123456Z",
                    "input": [{"role": "user", "content": "hi"}],
                    "output": "hello",
                    "usage": {"input": 10, "output": 5},
                },
            },
        ]
    }


async def test_batch_reaches_clickhouse(http: aiohttp.ClientSession, ch: ClickHouse, project: NewKey) -> None:
    trace_id, gen_id = f"trace-{uuid.uuid4()}", f"gen-{uuid.uuid4()}"
    async with http.post(
        f"{API}/api/public/ingestion", json=_batch(trace_id, gen_id), headers=basic_auth(project)
    ) as r:
        assert r.status == 207
        doc = await r.json()
        assert r.headers["X-Request-ID"]
    assert [s["status"] for s in doc["successes"]] == [201, 201, 201]
    assert doc["errors"] == []

    pid = project.project_id
    observations = await eventually(
        lambda: rows(
            ch,
            f"SELECT id, type, trace_id, provided_model_name, input_tokens, output_tokens, total_tokens, "
            f"start_time, parent_observation_id FROM observations FINAL WHERE project_id = '{pid}' ORDER BY id",
        ),
        lambda found: len(found) == 2,
    )
    gen = next(o for o in observations if o["id"] == gen_id)
    assert gen["type"] == "GENERATION"
    assert gen["trace_id"] == trace_id
    assert gen["provided_model_name"] == "gpt-4o"
    assert (gen["input_tokens"], gen["output_tokens"], gen["total_tokens"]) == (10, 5, 15)
    assert gen["parent_observation_id"] == f"{gen_id}-span"
    # Microseconds survive on 18.16 (UInt64 µs) as on current servers (DateTime64(6)).
    start = gen["start_time"]
    micros = start if isinstance(start, int) else int(start.timestamp()) * 1_000_000 + start.microsecond
    assert micros % 1_000_000 == 123456

    traces = await eventually(
        lambda: rows(ch, f"SELECT id, name, user_id, session_id, tags FROM traces FINAL WHERE project_id = '{pid}'"),
        lambda found: len(found) == 1,
    )
    assert traces[0] == {"id": trace_id, "name": "agent-run", "user_id": "u-1", "session_id": "s-1", "tags": ["prod"]}


async def test_invalid_events_are_reported_and_the_rest_kept(
    http: aiohttp.ClientSession, ch: ClickHouse, project: NewKey
) -> None:
    trace_id = f"trace-{uuid.uuid4()}"
    batch = {
        "batch": [
            {"id": "ok", "type": "trace-create", "timestamp": "2026-11-27T10:00:00Z", "body": {"id": trace_id}},
            {"id": "bad-type", "type": "nonsense", "timestamp": "2026-11-27T10:00:00Z", "body": {}},
            {"id": "bad-time", "type": "span-create", "timestamp": "yesterday", "body": {"traceId": trace_id}},
            "not an object",
        ]
    }
    async with http.post(f"{API}/api/public/ingestion", json=batch, headers=basic_auth(project)) as r:
        assert r.status == 207
        doc = await r.json()
    assert doc["successes"] == [{"id": "ok", "status": 201}]
    assert [(e["id"], e["status"]) for e in doc["errors"]] == [("bad-type", 400), ("bad-time", 400), (None, 400)]
    await eventually(
        lambda: rows(ch, f"SELECT id FROM traces FINAL WHERE project_id = '{project.project_id}'"),
        lambda found: [t["id"] for t in found] == [trace_id],
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic bm90OmtleQ=="},
        {"Authorization": "Bearer sk-at-unknown"},
        {"Authorization": "Digest x"},
    ],
)
async def test_wrong_credentials_get_401(http: aiohttp.ClientSession, headers: dict[str, str]) -> None:
    async with http.post(f"{API}/api/public/ingestion", json={"batch": []}, headers=headers) as r:
        assert r.status == 401
        assert (await r.json())["error"] == "unauthorized"


async def test_bearer_secret_is_accepted(http: aiohttp.ClientSession, project: NewKey) -> None:
    headers = {"Authorization": f"Bearer {project.secret_key}"}
    async with http.post(f"{API}/api/public/ingestion", json={"batch": []}, headers=headers) as r:
        assert r.status == 207


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"batch": {}}', b"\xff\xfe"])
async def test_malformed_envelope_gets_400(http: aiohttp.ClientSession, project: NewKey, body: bytes) -> None:
    headers = {**basic_auth(project), "Content-Type": "application/json"}
    async with http.post(f"{API}/api/public/ingestion", data=body, headers=headers) as r:
        assert r.status == 400
        assert (await r.json())["message"]


@pytest.mark.parametrize("base", [API, WORKER, WORKER_2, WORKER_POSTGRES])
async def test_probes_and_metrics(http: aiohttp.ClientSession, base: str) -> None:
    for path in ("/livez", "/readyz"):
        async with http.get(base + path) as r:
            assert r.status == 200, path
    async with http.get(base + "/health") as r:
        doc = await r.json()
        assert doc["status"] == "healthy", doc
        # The monitoring guide's shape on every process, plus kafka.
        assert set(doc["checks"]) >= {"postgres", "clickhouse", "redis", "kafka"}
        assert all(set(c) >= {"status", "latency_ms"} for c in doc["checks"].values())
        assert re.fullmatch(r"\d+h\d+m\d+s", doc["uptime"]) and doc["version"]
    async with http.get(base + "/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    assert "http_requests_total" in text
    assert ("worker_queue_depth" in text) == (base != API)
