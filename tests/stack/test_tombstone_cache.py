"""The workers' tombstone cache against the real Postgres: a tombstone committed after a refresh
that began before it (a slow transaction: its deleted_at lies before that refresh) is still
found, and a refresh transfers only what the previous one could not see."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from sinks.postgres.client import Postgres
from sinks.postgres.tombstones import TombstoneCache, write_score_tombstones, write_tombstones
from tests.support import eventually

pytestmark = pytest.mark.stack

INSERT = (
    "INSERT INTO trace_tombstones (project_id, trace_id, expires_at) "
    "VALUES (%s, %s, now() + interval '1 hour') ON CONFLICT DO NOTHING"
)


class Reads:
    """The Postgres client as the cache sees it, keeping the rows of the last read."""

    def __init__(self, pg: Postgres) -> None:
        self._pg = pg
        self.last: list[tuple[Any, ...]] = []

    async def fetch(self, sql: str, params: Any = None, *, operation: str = "select") -> list[tuple[Any, ...]]:
        self.last = await self._pg.fetch(sql, params, operation=operation)
        return self.last

    def traces(self, project: str, kind: str = "t") -> list[str]:
        return sorted(t for row in self.last if row[2] == kind and row[3] == project for t in row[4])


async def test_a_late_committed_tombstone_is_found_and_nothing_is_read_twice(pg: Postgres) -> None:
    project = f"test-{uuid.uuid4().hex[:12]}"
    reads = Reads(pg)
    cache = TombstoneCache(reads)  # type: ignore[arg-type]
    await cache.refresh(force=True)
    await write_tombstones(pg, project, ["early"], 3600)
    async with pg.transaction() as slow:
        await slow.execute(INSERT, (project, "slow"))
        await cache.refresh(force=True)
        assert reads.traces(project) == ["early"]  # "slow" is not committed yet
        assert cache.deleted(project, "early") and not cache.deleted(project, "slow")
    await cache.refresh(force=True)
    assert cache.deleted(project, "slow")
    await write_tombstones(pg, project, ["late"], 3600)
    await cache.refresh(force=True)
    assert "late" in reads.traces(project) and cache.deleted(project, "late")

    async def read_again() -> list[str]:
        await cache.refresh(force=True)
        return reads.traces(project)

    # All three lie within the read's time window, yet are not transferred again (at once,
    # unless another session's transaction was open across a read: it holds the xmin back).
    await eventually(read_again, lambda traces: traces == [], timeout_s=10)


async def test_score_tombstones_are_their_own_and_news_of_them_is_kept(pg: Postgres) -> None:
    project = f"test-{uuid.uuid4().hex[:12]}"
    await write_score_tombstones(pg, project, ["known-at-start"], 3600)
    reads = Reads(pg)
    cache = TombstoneCache(reads)  # type: ignore[arg-type]
    await cache.refresh(force=True)
    assert cache.score_deleted(project, "known-at-start") and not cache.deleted(project, "known-at-start")
    assert (project, "known-at-start") not in cache.learned_scores()  # nothing was folded before the first read
    # One this process folded itself is not news; one another process wrote is.
    cache.add_scores([(project, "folded-here")])
    await write_score_tombstones(pg, project, ["folded-here", "from-elsewhere"], 3600)
    await cache.refresh(force=True)
    assert reads.traces(project, "s") == ["folded-here", "from-elsewhere"]
    assert [k for k in cache.learned_scores() if k[0] == project] == [(project, "from-elsewhere")]
    assert cache.score_deleted(project, "from-elsewhere") and not cache.deleted(project, "from-elsewhere")
