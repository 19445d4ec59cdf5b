"""The ClickHouse fold against the real server, with cold caches: what a restarted or newly
assigned worker sees. Entities it has not written are probed for, and only the stored ones
are read back; either way the row ends with every field of every event."""

from __future__ import annotations

import uuid

import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.schema import dialect_for
from sinks.clickhouse.writer import ClickHouseWriter
from sinks.postgres.keys import NewKey
from tests.support import envelope, rows

pytestmark = pytest.mark.stack


def writer(ch: ClickHouse) -> ClickHouseWriter:
    return ClickHouseWriter(ch, dialect_for(ch.version))  # a new one: nothing cached


async def test_a_create_after_its_update_merges_through_a_cold_cache(ch: ClickHouse, project: NewKey) -> None:
    pid, gen = project.project_id, f"gen-{uuid.uuid4()}"
    new = [
        envelope(
            pid,
            "generation-create",
            {"id": f"gen-{uuid.uuid4()}", "traceId": "t", "name": "other"},
            "2026-11-20T10:00:00Z",
        )
        for _ in range(50)
    ]  # probed for, and not found
    update = envelope(
        pid,
        "generation-update",
        {"id": gen, "traceId": "t", "output": "done", "usage": {"input": 5, "output": 2}},
        "2026-11-20T10:00:05Z",
    )
    create = envelope(
        pid,
        "generation-create",
        {"id": gen, "traceId": "t", "name": "llm", "model": "gpt-4o", "startTime": "2026-11-20T10:00:01Z"},
        "2026-11-20T10:00:01Z",
    )
    merged = [
        {
            "id": gen,
            "type": "GENERATION",
            "name": "llm",
            "provided_model_name": "gpt-4o",
            "output": '"done"',
            "total_tokens": 7,
        }
    ]
    sql = (
        f"SELECT id, type, name, provided_model_name, output, total_tokens FROM observations FINAL "
        f"WHERE project_id = '{pid}' AND id = '{gen}'"
    )
    assert await writer(ch).write([update, *new]) == []
    assert await writer(ch).write([create]) == []
    assert await rows(ch, sql) == merged
    assert await writer(ch).write([update, create]) == []  # a redelivery through another cold cache
    assert await rows(ch, sql) == merged
    count = await rows(ch, f"SELECT count() AS n FROM observations FINAL WHERE project_id = '{pid}'")
    assert count == [{"n": 51}]
