"""Issue 13: per-project retention removes what is older than the window, and only in its project."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from agenttrace.settings import Settings
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.schema import dialect_for
from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey, create_key, project_name
from sinks.retention import RetentionConfig, RetentionJob
from tests.stack.test_trace_deletion import TABLES_OF_A_TRACE, batch, ingest, visible, whole
from tests.support import API, admin_token, agenttrace, eventually

pytestmark = pytest.mark.stack


def days_ago(n: int) -> str:
    return (datetime.now(UTC) - timedelta(days=n)).strftime("%Y-%m-%d")


async def test_retention_removes_only_older_rows_of_its_project(
    settings: Settings, http: aiohttp.ClientSession, ch: ClickHouse, pg: Postgres, project: NewKey
) -> None:
    other = await create_key(pg, f"test-{uuid.uuid4().hex[:12]}")
    old, recent, elsewhere = (f"t-{uuid.uuid4()}" for _ in range(3))
    await ingest(http, project, batch(old, session="s", user="u", tokens=5, day=days_ago(40)))
    await ingest(http, project, batch(recent, session="s", user="u", tokens=7, day=days_ago(2)))
    await ingest(http, other, batch(elsewhere, session="s", user="u", tokens=9, day=days_ago(40)))
    for key, trace in ((project, old), (project, recent), (other, elsewhere)):
        await eventually(lambda k=key, t=trace: visible(http, k, t), whole, timeout_s=30)
    states = "SELECT trace_id FROM trace_states WHERE project_id = %s ORDER BY 1"
    await eventually(lambda: pg.fetch(states, (project.project_id,)), lambda r: len(r) == 2)
    usage = "SELECT sum(input_tokens) FROM usage_daily WHERE project_id = %s"
    await eventually(lambda: pg.fetch(usage, (project.project_id,)), lambda r: r == [(12,)])

    name = await project_name(pg, project.project_id)
    assert name
    admin = {"Authorization": f"Bearer {admin_token()}"}
    url = f"{API}/api/admin/projects/{name}"
    for bad in ({"retentionDays": 0}, {"retentionDays": "30"}, {}, {"retentionDays": 30, "x": 1}):
        async with http.put(url, json=bad, headers=admin) as r:
            assert r.status == 400, bad
    async with http.put(url, json={"retentionDays": 30}) as r:
        assert r.status == 401
    async with http.put(
        f"{API}/api/admin/projects/no-such-{uuid.uuid4().hex}", json={"retentionDays": 30}, headers=admin
    ) as r:
        assert r.status == 404
    async with http.put(url, json={"retentionDays": 30}, headers=admin) as r:
        assert r.status == 200
        assert await r.json() == {"name": name, "projectId": project.project_id, "retentionDays": 30}
    # The CLI sets the same; here to the same value.
    code, out, err = await agenttrace("projects", "retention", "--project", name, "--days", "30")
    assert code == 0 and "keeps traces 30 days" in out, err

    job = RetentionJob(pg, ch, dialect_for(ch.version), RetentionConfig())
    removed = None
    for _ in range(30):  # a worker's run may hold the lock for a moment
        removed = await job.run_once(now_us=time.time_ns() // 1000)
        if removed is not None:
            break
        await asyncio.sleep(0.5)
    assert removed is not None
    assert removed["traces"] >= 1 and removed["observations"] >= 1 and removed["scores"] >= 1
    assert removed["trace_states"] >= 1
    assert job.report()["status"] == "ok"

    async def raw(key: NewKey, trace: str) -> int:
        total = 0
        for table, column in TABLES_OF_A_TRACE:
            ((n,),) = await ch.fetch(
                f"SELECT count() FROM {table} WHERE project_id = '{key.project_id}' AND {column} = '{trace}'"
            )
            total += n
        return total

    await eventually(lambda: raw(project, old), lambda n: n == 0, timeout_s=30)
    assert whole(await visible(http, project, recent))
    assert whole(await visible(http, other, elsewhere))
    assert await pg.fetch(states, (project.project_id,)) == [(recent,)]
    assert len(await pg.fetch(states, (other.project_id,))) == 1
    # usage_daily keeps its aggregates.
    assert await pg.fetch(usage, (project.project_id,)) == [(12,)]
