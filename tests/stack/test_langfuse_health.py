"""Langfuse's probes, /api/public/health and /api/public/ready, as probes written for Langfuse
call them: no credentials, Langfuse's shape, and 503 with the reason when a condition fails."""

from __future__ import annotations

import time
import uuid

import aiohttp
import pytest

from sinks.postgres.keys import NewKey
from tests.edge_process import edge_process, free_port
from tests.support import API, TcpPath, basic_auth, eventually

pytestmark = pytest.mark.stack


async def probe(http: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    async with http.get(url) as r:
        return r.status, await r.json()


async def test_the_probes_answer_without_credentials_in_langfuse_s_shape(
    http: aiohttp.ClientSession, project: NewKey
) -> None:
    for path in ("/api/public/health", "/api/public/health?failIfDatabaseUnavailable=true", "/api/public/ready"):
        status, doc = await probe(http, f"{API}{path}")
        assert status == 200 and doc["status"] == "OK" and doc["version"], (path, doc)
    # A trace timestamped now: the pipeline's evidence of recent events, once it is stored.
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    batch = [{"id": str(uuid.uuid4()), "type": "trace-create", "timestamp": now, "body": {"id": str(uuid.uuid4())}}]
    async with http.post(f"{API}/api/public/ingestion", json={"batch": batch}, headers=basic_auth(project)) as r:
        assert r.status == 207
    recent = f"{API}/api/public/health?failIfNoRecentEvents=true"
    status, doc = await eventually(lambda: probe(http, recent), lambda r: r[0] == 200, timeout_s=30)
    assert doc["status"] == "OK"


async def test_the_health_probe_fails_when_asked_and_a_database_is_unreachable(http: aiohttp.ClientSession) -> None:
    # The api reaches ClickHouse through a path the test cuts once it is up. ClickHouse is
    # optional to the edge (it still accepts events): ready, but not "databases available".
    path = TcpPath(("127.0.0.1", free_port()), ("127.0.0.1", 9000))
    await path.start()
    env = {"AGENTTRACE_CLICKHOUSE_URL": f"clickhouse://default:@127.0.0.1:{path.listen[1]}/agenttrace"}
    try:
        async with edge_process(env) as edge:
            status, doc = await probe(http, f"{edge.url}/api/public/health?failIfDatabaseUnavailable=true")
            assert (status, doc["status"]) == (200, "OK")
            path.cut()
            status, doc = await probe(http, f"{edge.url}/api/public/health?failIfDatabaseUnavailable=true")
            assert (status, doc["status"], doc["failing"]) == (503, "Database not available", ["clickhouse"])
            status, doc = await probe(http, f"{edge.url}/api/public/health?failIfNoRecentEvents=true")
            assert status == 503 and "No trace or observation events" in doc["status"]
            for plain in ("/api/public/health", "/api/public/ready"):
                status, doc = await probe(http, f"{edge.url}{plain}")
                assert (status, doc["status"]) == (200, "OK"), plain
    finally:
        await path.stop()
