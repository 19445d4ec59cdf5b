"""Issue 13 on the cluster: the purge of a deleted trace and the retention job remove its rows
physically from every shard's local table on every replica, and leave other projects' rows.

The ClickHouse-stage worker worker_ch_1 is restarted with short job intervals for the test (the
tests/stack way of shortening them: the environment) and restarted with the defaults after.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.schema import BY_TRACE
from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey, create_key, project_name
from tests.cluster.conftest import API_URLS, CLUSTER, ROOT
from tests.support import basic_auth, eventually

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

API = API_URLS[0]
WORKER = "http://127.0.0.1:29081"  # worker_ch_1
SHARDS = (("ch_1", "ch_2"), ("ch_3", "ch_4"))
# The projections, and the index of observations by trace that a view fills on the same shard.
TABLES = (("traces", "id"), ("observations", "trace_id"), ("scores", "trace_id"), (BY_TRACE, "trace_id"))
FAST_JOBS = {
    "AGENTTRACE_PURGE_INTERVAL_S": "1",
    # Not 0: the purge's mutation removes only rows that exist when it runs, so it must come
    # after the ClickHouse stage folded the deletion (its is_deleted copies); the default is 300.
    "AGENTTRACE_PURGE_AFTER_S": "15",
    "AGENTTRACE_RETENTION_INTERVAL_S": "2",
}


def batch(trace: str, days_ago: int) -> dict[str, Any]:
    day = (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%d")
    return {
        "batch": [
            {
                "id": str(uuid.uuid4()),
                "type": "trace-create",
                "timestamp": f"{day}T10:00:00Z",
                "body": {"id": trace, "name": "erasure", "input": "secret"},
            },
            {
                "id": str(uuid.uuid4()),
                "type": "generation-create",
                "timestamp": f"{day}T10:00:01Z",
                "body": {"id": f"{trace}-gen", "traceId": trace, "model": "gpt-4o", "startTime": f"{day}T10:00:01Z"},
            },
            {
                "id": str(uuid.uuid4()),
                "type": "score-create",
                "timestamp": f"{day}T10:00:02Z",
                "body": {"id": f"{trace}-score", "traceId": trace, "name": "quality", "value": 1},
            },
        ]
    }


async def restart_worker(env: dict[str, str]) -> None:
    for command in (("stop", "worker_ch_1"), ("start", "worker_ch_1")):
        proc = await asyncio.create_subprocess_exec(
            str(CLUSTER),
            *command,
            env={k: v for k, v in os.environ.items() if k not in FAST_JOBS} | env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0, f"ops/cluster.sh {' '.join(command)} failed:\n{out.decode()}"


async def local_rows(ch: ClickHouse, project: str, trace: str) -> int:
    """Every stored row of the trace on this server, hidden (is_deleted) and unmerged included."""
    total = 0
    for table, column in TABLES:
        ((n,),) = await ch.fetch(
            f"SELECT count() FROM {table}_local WHERE project_id = %(p)s AND {column} = %(t)s",
            {"p": project, "t": trace},
        )
        total += int(n)
    return total


async def placement(servers: dict[str, ClickHouse], project: str, trace: str) -> list[list[int]]:
    """Rows of the trace on each server, by shard: [[ch_1, ch_2], [ch_3, ch_4]]."""
    return [[await local_rows(servers[name], project, trace) for name in shard] for shard in SHARDS]


def on_one_shard_both_replicas(rows: list[list[int]]) -> bool:
    """All four of the trace's rows (trace, generation, score, the generation's index row) on
    both replicas of one shard."""
    return sorted(min(shard) for shard in rows) == [0, 4] and all(a == b for a, b in rows)


async def test_purge_and_retention_remove_rows_from_every_replica_of_every_shard(
    cluster_pg: Postgres, cluster_ch: dict[str, ClickHouse], cluster_project: NewKey
) -> None:
    other = await create_key(cluster_pg, f"cluster-{uuid.uuid4().hex[:12]}")
    doomed, old, kept, other_old = (f"t-{uuid.uuid4()}" for _ in range(4))
    a, b = cluster_project.project_id, other.project_id
    # Project b holds a trace of the same id as a's deleted one, and one as old as a's expired one.
    stored = {(a, doomed): 2, (a, old): 40, (a, kept): 2, (b, doomed): 2, (b, other_old): 40}
    await restart_worker(FAST_JOBS)
    try:
        async with aiohttp.ClientSession() as http:
            for (project, trace), days in stored.items():
                key = cluster_project if project == a else other
                async with http.post(
                    f"{API}/api/public/ingestion", json=batch(trace, days), headers=basic_auth(key)
                ) as r:
                    assert r.status in (200, 207) and not (await r.json()).get("errors"), await r.text()
            for project, trace in stored:
                await eventually(
                    lambda p=project, t=trace: placement(cluster_ch, p, t),
                    on_one_shard_both_replicas,
                    timeout_s=60,
                    every_s=0.5,
                )

            async with http.delete(f"{API}/api/public/traces/{doomed}", headers=basic_auth(cluster_project)) as r:
                assert r.status == 200, await r.text()

            async def read_status() -> int:
                async with http.get(f"{API}/api/public/traces/{doomed}", headers=basic_auth(cluster_project)) as r:
                    return r.status

            # Folded (gone from reads) well before the purge may take it.
            await eventually(read_status, lambda status: status == 404, timeout_s=12, every_s=0.2)
            name = await project_name(cluster_pg, a)
            token = (ROOT / ".stack" / "cluster" / "admin-token").read_text().strip()
            async with http.put(
                f"{API}/api/admin/projects/{name}",
                json={"retentionDays": 30},
                headers={"Authorization": f"Bearer {token}"},
            ) as r:
                assert r.status == 200, await r.text()

            started = time.monotonic()
            for trace in (doomed, old):
                await eventually(
                    lambda t=trace: placement(cluster_ch, a, t), lambda rows: rows == [[0, 0], [0, 0]], timeout_s=90
                )
            print(f"cluster erasure: rows gone on every replica {time.monotonic() - started:.1f}s after the delete")
            for project, trace in ((a, kept), (b, doomed), (b, other_old)):
                assert on_one_shard_both_replicas(await placement(cluster_ch, project, trace)), (project, trace)

            # The purge's ON CLUSTER mutation ran once per shard (on one replica; the other
            # took it from the replication log), not once per server.
            for name, ch in cluster_ch.items():
                mutations = await ch.fetch(
                    "SELECT table, count() FROM system.mutations WHERE database = currentDatabase() "
                    "AND position(command, %(t)s) > 0 GROUP BY table ORDER BY table",
                    {"t": doomed},
                )
                assert [(str(t), int(n)) for t, n in mutations] == [
                    (f"{BY_TRACE}_local", 1),
                    ("observations_local", 1),
                    ("scores_local", 1),
                    ("traces_local", 1),
                ], name
            # Marked once every ON CLUSTER statement has returned from every server, which can be
            # after the rows are gone: the mark follows, it is not simultaneous.
            await eventually(
                lambda: cluster_pg.fetch(
                    "SELECT purged_at IS NOT NULL FROM trace_tombstones WHERE project_id = %s AND trace_id = %s",
                    (a, doomed),
                ),
                lambda purged: purged == [(True,)],
                timeout_s=60,
                every_s=0.5,
            )

            async def retention_report() -> dict:
                async with http.get(f"{WORKER}/health") as r:
                    return dict(orjson.loads(await r.read())["jobs"]["retention"])

            # Reported once the run's last statement returned, as with the purge's mark.
            await eventually(retention_report, lambda report: report["status"] == "ok", timeout_s=60, every_s=0.5)
    finally:
        await restart_worker({})
