"""The observation journal on the cluster: updates without traceId and their creates, folded by
different processes onto different shards, read back whole (through the repair where the
writers missed each other's rows between replicas); old hours dropped from every replica,
with one of a shard's replicas down too."""

from __future__ import annotations

import time
import uuid
from typing import Any

import aiohttp
import pytest

from sinks.clickhouse.client import ClickHouse, ClickHouseError
from sinks.clickhouse.journal import HOUR_US, JournalExpiry
from sinks.clickhouse.schema import JOURNAL
from sinks.postgres.keys import NewKey
from tests.cluster.conftest import API_URLS, cluster
from tests.support import basic_auth, eventually

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120)]


def event(etype: str, body: dict[str, Any], ts: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": etype, "timestamp": ts, "body": body}


async def test_updates_without_a_trace_and_their_creates_read_back_whole(cluster_project: NewKey) -> None:
    # The updates are keyed by their own ids, the creates by the trace: they spread over
    # partitions, worker processes and shards, and reach Kafka within a millisecond.
    trace, gens = f"t-{uuid.uuid4()}", [f"gen-{uuid.uuid4()}" for _ in range(20)]
    usage = {"input": 5, "output": 2}
    updates = [
        event("generation-update", {"id": g, "output": "done", "usage": usage}, "2026-11-20T10:00:05Z") for g in gens
    ]
    creates = [
        event(
            "generation-create",
            {"id": g, "traceId": trace, "name": "llm", "model": "gpt-4o", "startTime": "2026-11-20T10:00:01Z"},
            "2026-11-20T10:00:01Z",
        )
        for g in gens
    ]
    auth = basic_auth(cluster_project)
    async with aiohttp.ClientSession() as http:
        body = {"batch": updates + creates}
        async with http.post(f"{API_URLS[0]}/api/public/ingestion", json=body, headers=auth) as r:
            assert r.status in (200, 207) and not (await r.json()).get("errors"), await r.text()

        async def read(g: str) -> dict[str, Any]:
            async with http.get(f"{API_URLS[1]}/api/public/observations/{g}", headers=auth) as r:
                return dict(await r.json()) if r.status == 200 else {}

        for g in gens:
            got = await eventually(
                lambda g=g: read(g),  # type: ignore[misc]
                lambda o: o.get("name") == "llm" and o.get("output") == "done",
                timeout_s=60,
                every_s=0.5,
            )
            assert (got["traceId"], got["model"], got["usageDetails"]["total"]) == (trace, "gpt-4o", 7)


async def journal(ch: ClickHouse, pid: str, now_us: int, hours_ago: int, prefix: str) -> tuple[set[str], set[str]]:
    """20 journal copies from `hours_ago` hours before `now_us` and 20 from it, through `ch`:
    their ids, (old, new)."""
    hour = now_us // HOUR_US
    old, new = {f"{prefix}-old-{i}" for i in range(20)}, {f"{prefix}-new-{i}" for i in range(20)}
    rows = [(pid, i, (hour - hours_ago) * HOUR_US) for i in old] + [(pid, i, now_us) for i in new]
    await ch.insert(JOURNAL, ("project_id", "id", "event_ts"), rows)
    return old, new


async def local_ids(cluster_ch: dict[str, ClickHouse], pid: str, names: tuple[str, ...]) -> dict[str, set[str]]:
    """The project's journal ids in each named server's local table."""
    found = {}
    for name in names:
        rows = await cluster_ch[name].fetch(f"SELECT id FROM {JOURNAL}_local WHERE project_id = %(p)s", {"p": pid})
        found[name] = {str(r[0]) for r in rows}
    return found


EVERY = ("ch_1", "ch_2", "ch_3", "ch_4")


async def test_old_journal_hours_are_dropped_from_every_replica(
    cluster_ch: dict[str, ClickHouse], cluster_project: NewKey
) -> None:
    pid, now = cluster_project.project_id, time.time_ns() // 1000
    hour = now // HOUR_US
    ch = cluster_ch["ch_1"]
    old, new = await journal(ch, pid, now, 4, "a")

    # Both shards hold some (sharded by id), each on both its replicas.
    before = await eventually(
        lambda: local_ids(cluster_ch, pid, EVERY),
        lambda f: f["ch_1"] | f["ch_3"] == old | new,
        timeout_s=30,
        every_s=0.5,
    )
    assert before["ch_1"] and before["ch_3"]
    assert hour - 4 in await JournalExpiry(ch, keep_hours=2).run_once(now_us=now)
    await eventually(
        lambda: local_ids(cluster_ch, pid, EVERY),
        lambda f: f["ch_1"] | f["ch_3"] == new and f["ch_1"] == f["ch_2"] and f["ch_3"] == f["ch_4"],
        timeout_s=30,
        every_s=0.5,
    )


@pytest.mark.timeout(240)
async def test_old_hours_are_dropped_while_a_replica_is_down_and_it_catches_up(
    cluster_ch: dict[str, ClickHouse], cluster_project: NewKey
) -> None:
    # The drop runs on one replica of each shard (execute_on_each_shard), not through the DDL
    # queue, which would wait for the stopped server: shard 1's goes to ch_2, and ch_1 takes it
    # from the shard's replication log when it is back.
    pid, now = cluster_project.project_id, time.time_ns() // 1000
    hour = now // HOUR_US
    ch = cluster_ch["ch_2"]
    old, new = await journal(ch, pid, now, 5, "b")
    await eventually(
        lambda: local_ids(cluster_ch, pid, EVERY),
        lambda f: f["ch_1"] | f["ch_3"] == old | new and f["ch_1"] == f["ch_2"] and f["ch_3"] == f["ch_4"],
        timeout_s=30,
        every_s=0.5,
    )
    await cluster("stop", "ch_1")
    try:
        expiry = JournalExpiry(ch, keep_hours=2)
        # A stopped leader hands its part to ch_2 within the ZooKeeper session's timeout.
        dropped = await eventually(
            lambda: _quietly(expiry.run_once(now_us=now)), lambda hours: hours is not None, timeout_s=40, every_s=2
        )
        assert hour - 5 in dropped
        await eventually(
            lambda: local_ids(cluster_ch, pid, ("ch_2", "ch_3", "ch_4")),
            lambda f: f["ch_2"] | f["ch_3"] == new and f["ch_3"] == f["ch_4"],
            timeout_s=30,
            every_s=0.5,
        )
    finally:
        await cluster("start", "ch_1")
    await eventually(
        lambda: _quietly(local_ids(cluster_ch, pid, ("ch_1", "ch_2"))),
        lambda f: f is not None and f["ch_1"] == f["ch_2"],
        timeout_s=60,
        every_s=1,
    )


async def _quietly(work: Any) -> Any:
    """The result of `work`, or None where ClickHouse failed (a server on its way back)."""
    try:
        return await work
    except ClickHouseError:
        return None
