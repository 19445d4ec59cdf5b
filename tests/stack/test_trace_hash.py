"""Reads by trace on 18.16: exact for traces whose hashes collide (scores are found by migration
0003's trace hash, observations through 0005's index by trace), for rows written before the
hash existed (computed on read until their part merges) and before the index did (its
migration copies them)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from agenttrace.settings import Settings
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.reader import ObservationFilter, Page, Reader, ScoreFilter
from sinks.clickhouse.schema import dialect_for, migrations

pytestmark = pytest.mark.stack

T0 = 1_795_773_600_000_000  # 2026-11-27T10:00:00Z, µs (18.16's time columns)
A, B = "trace-228021", "trace-295823"  # murmurHash2_32 of both: 3890938781


@pytest.fixture
async def scratch(ch: ClickHouse, settings: Settings) -> AsyncIterator[tuple[ClickHouse, str]]:
    """A database migrated up to before 0003, and a client of it."""
    db = f"agenttrace_hash_{uuid.uuid4().hex[:10]}"
    await ch.execute(f"CREATE DATABASE {db}")
    client = ClickHouse(settings.clickhouse, database=db)
    try:
        for m in migrations():
            if m.version < 3:
                for statement in m.statements(dialect_for(ch.version), db):
                    await ch.execute(statement)
        await client.start()
        yield client, db
    finally:
        await client.close()
        await ch.execute(f"DROP DATABASE IF EXISTS {db}")


async def _rows(ch: ClickHouse, db: str, rows: list[tuple[str, str, int]]) -> None:
    """(id, trace_id, event_ts) of an observation and a score each, one insert per table."""
    listed = ", ".join(f"('{i}', '{t}', {v})" for i, t, v in rows)
    for table, time_column in (("observations", "start_time"), ("scores", "timestamp")):
        await ch.execute(
            f"INSERT INTO {db}.{table} (project_id, id, trace_id, name, {time_column}, event_ts) "
            f"SELECT 'p', r.1, r.2, toString(r.3), {T0}, toUInt64(r.3) FROM (SELECT arrayJoin([{listed}]) AS r)"
        )


async def test_reads_by_trace_are_exact_across_hash_collisions_and_old_parts(
    ch: ClickHouse, scratch: tuple[ClickHouse, str]
) -> None:
    client, db = scratch
    assert await ch.fetch(f"SELECT murmurHash2_32('{A}') = murmurHash2_32('{B}')") == [(1,)]
    await _rows(ch, db, [("a1", A, 1), ("b1", B, 1)])  # a part without trace_hash, not in 0005's index yet
    for m in migrations():
        if m.version >= 3:  # the hash, and the index by trace with its backfill of a1 and b1
            for statement in m.statements(dialect_for(ch.version), db):
                await ch.execute(statement)
    await _rows(ch, db, [("a2", A, 1), ("b1", B, 2)])  # a part with it, indexed by the view; b1 newer here
    reader = Reader(client)

    async def by_trace(trace: str) -> tuple[list[tuple[str, str]], list[str], list[str], list[str]]:
        _, observations, scores = await reader.trace("p", trace)
        listing = await reader.observations("p", ObservationFilter(trace_id=trace), Page(10))
        score_list = await reader.scores("p", ScoreFilter(trace_id=trace), Page(10))
        summaries, _ = await reader.trace_summaries("p", [trace])
        assert sorted(o["id"] for o in listing.rows) == sorted(o["id"] for o in summaries)
        return (
            [(o["id"], o["name"]) for o in observations],
            [s["id"] for s in scores],
            sorted(o["id"] for o in listing.rows),
            [s["id"] for s in score_list.rows],
        )

    expected = {
        A: ([("a1", "1"), ("a2", "1")], ["a1", "a2"], ["a1", "a2"], ["a2", "a1"]),
        B: ([("b1", "2")], ["b1"], ["b1"], ["b1"]),
    }
    for trace, seen in expected.items():
        assert await by_trace(trace) == seen
    # Once the parts merge, the hash is stored; the reads stay the same.
    for table in ("observations", "scores"):
        await ch.execute(f"OPTIMIZE TABLE {db}.{table} FINAL")
    for trace, seen in expected.items():
        assert await by_trace(trace) == seen
