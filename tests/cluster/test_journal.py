"""The observation journal on the cluster: old hours dropped from every replica of every shard."""

from __future__ import annotations

import time

import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.journal import HOUR_US, JournalExpiry
from sinks.clickhouse.schema import JOURNAL
from sinks.postgres.keys import NewKey
from tests.support import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120)]


async def test_old_journal_hours_are_dropped_from_every_replica(
    cluster_ch: dict[str, ClickHouse], cluster_project: NewKey
) -> None:
    pid, now = cluster_project.project_id, time.time_ns() // 1000
    hour = now // HOUR_US
    ids = [f"old-{i}" for i in range(20)] + [f"new-{i}" for i in range(20)]
    ts = {i: (hour - 4) * HOUR_US if i.startswith("old") else now for i in ids}
    ch = cluster_ch["ch_1"]
    await ch.insert(JOURNAL, ("project_id", "id", "event_ts"), [(pid, i, ts[i]) for i in ids])

    async def local_ids() -> dict[str, set[str]]:
        found = {}
        for name, server in cluster_ch.items():
            rows = await server.fetch(f"SELECT id FROM {JOURNAL}_local WHERE project_id = %(p)s", {"p": pid})
            found[name] = {str(r[0]) for r in rows}
        return found

    # Both shards hold some (sharded by id), each on both its replicas.
    before = await eventually(local_ids, lambda f: f["ch_1"] | f["ch_3"] == set(ids), timeout_s=30, every_s=0.5)
    assert before["ch_1"] and before["ch_3"]
    assert hour - 4 in await JournalExpiry(ch, keep_hours=2).run_once(now_us=now)
    new = {i for i in ids if i.startswith("new")}
    await eventually(
        local_ids,
        lambda f: f["ch_1"] | f["ch_3"] == new and f["ch_1"] == f["ch_2"] and f["ch_3"] == f["ch_4"],
        timeout_s=30,
        every_s=0.5,
    )
