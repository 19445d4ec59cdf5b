"""`agenttrace migrate --rebuild-granules` on the stack's ClickHouse: a table made with 8192-row
granules (as before migration 0001 set 1024) is copied into a finer one under its name, and
rows a writer inserts during the copy are not lost."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.schema import (
    GRANULARITY,
    OLD_SUFFIX,
    coarse_granules,
    dialect_for,
    migrations,
    rebuild_granules,
)

T0 = 1_795_773_600_000_000  # 2026-11-27T10:00:00Z, µs (18.16's time columns)


@pytest.fixture
async def coarse_db(ch: ClickHouse) -> AsyncIterator[str]:
    """A database whose projections were made with 8192-row granules."""
    db = f"agenttrace_granules_{uuid.uuid4().hex[:10]}"
    await ch.execute(f"CREATE DATABASE {db}")
    try:
        for m in migrations():
            for statement in m.statements(dialect_for(ch.version), db):
                await ch.execute(statement.replace(f"index_granularity = {GRANULARITY}", "index_granularity = 8192"))
        yield db
    finally:
        await ch.execute(f"DROP DATABASE IF EXISTS {db}")


async def _insert(ch: ClickHouse, db: str, rows: list[tuple[str, int, str]]) -> None:
    """(id, event_ts, name) observations of project p, trace t, in one insert (one part)."""
    listed = ", ".join(f"('{i}', {ts}, '{name}')" for i, ts, name in rows)
    await ch.execute(
        f"INSERT INTO {db}.observations (project_id, id, trace_id, name, start_time, event_ts) "
        f"SELECT 'p', r.1, 't', r.3, {T0}, toUInt64(r.2) FROM (SELECT arrayJoin([{listed}]) AS r)"
    )


async def test_rebuild_keeps_every_row_including_a_writers_during_the_copy(ch: ClickHouse, coarse_db: str) -> None:
    db = coarse_db
    assert await coarse_granules(ch.fetch, db) == {"traces": 8192, "observations": 8192, "scores": 8192}
    await _insert(ch, db, [("o1", 1, "first"), ("o2", 1, "first")])
    await _insert(ch, db, [("o3", 1, "first")])

    async def writer_meanwhile() -> None:
        # After the copy, before the swap: a new entity and a newer version of a copied one.
        await _insert(ch, db, [("o4", 1, "late"), ("o1", 2, "updated")])

    counts = await rebuild_granules(ch.execute, ch.fetch, db, "observations", before_swap=writer_meanwhile)
    assert counts == {"rows_before": 5, "rows_after": 5}
    assert await coarse_granules(ch.fetch, db) == {"traces": 8192, "scores": 8192}
    newest = await ch.fetch(
        f"SELECT id, name FROM {db}.observations ORDER BY id, event_ts DESC LIMIT 1 BY id", operation="test"
    )
    assert newest == [("o1", "updated"), ("o2", "first"), ("o3", "first"), ("o4", "late")]
    # The original is kept under another name until the operator drops it; a second rebuild
    # of the same table refuses rather than overwrite it.
    kept = await ch.fetch(f"SELECT count() FROM {db}.observations{OLD_SUFFIX}")
    assert kept == [(5,)]
    with pytest.raises(RuntimeError, match="exists from an earlier rebuild"):
        await rebuild_granules(ch.execute, ch.fetch, db, "observations")
