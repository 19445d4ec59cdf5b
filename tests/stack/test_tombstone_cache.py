"""The workers' tombstone cache against the real Postgres: a tombstone committed after a refresh
that began before it (a slow transaction: its deleted_at lies before that refresh) is still
found, and a refresh transfers only what the previous one could not see."""

from __future__ import annotations

import uuid

import pytest

from sinks.postgres.client import Postgres
from sinks.postgres.tombstones import TombstoneCache, write_tombstones

pytestmark = pytest.mark.stack

INSERT = (
    "INSERT INTO trace_tombstones (project_id, trace_id, expires_at) "
    "VALUES (%s, %s, now() + interval '1 hour') ON CONFLICT DO NOTHING"
)


async def test_a_late_committed_tombstone_is_found_and_nothing_is_read_twice(pg: Postgres) -> None:
    project = f"test-{uuid.uuid4().hex[:12]}"
    cache = TombstoneCache(pg)
    await cache.refresh(force=True)
    await write_tombstones(pg, project, ["early"], 3600)
    async with pg.transaction() as slow:
        await slow.execute(INSERT, (project, "slow"))
        await cache.refresh(force=True)  # reads "early"; "slow" is not committed yet
        assert cache.deleted(project, "early") and not cache.deleted(project, "slow")
    await cache.refresh(force=True)
    assert cache.deleted(project, "slow")
    # Neither is transferred again (other tests' tombstones committed meanwhile may be).
    await write_tombstones(pg, project, ["late"], 3600)
    await cache.refresh(force=True)
    assert cache.deleted(project, "late")
    rows = await pg.fetch(
        "SELECT count(*) FROM trace_tombstones WHERE project_id = %s AND deleted_at > now() - interval '60 s'",
        (project,),
    )
    assert rows == [(3,)] and cache.rows_read < 3
