"""Operating the pipeline with the CLI: `agenttrace replay` leaves the projections as they are
(the sinks are idempotent), and a poison event reaches `dead_letters`, where `agenttrace dlq`
lists it and requeues it onto the events topic."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from agenttrace.settings import Settings
from pipeline.dead_letters import DeadLetter
from sinks.clickhouse.client import ClickHouse
from sinks.postgres.client import Postgres
from sinks.postgres.dead_letters import DeadLetterTable
from sinks.postgres.keys import NewKey
from tests.support import agenttrace, envelope, eventually, group_record, produce, rows

pytestmark = pytest.mark.stack

TIMEOUT_S = 30.0


async def clickhouse_view(ch: ClickHouse, pid: str) -> dict[str, list[dict[str, Any]]]:
    return {
        "traces": await rows(
            ch,
            f"SELECT id, name, user_id, session_id, tags, metadata, input, output, timestamp, "
            f"field_versions FROM traces FINAL WHERE project_id = '{pid}' ORDER BY id",
        ),
        "observations": await rows(
            ch,
            f"SELECT id, type, name, provided_model_name, start_time, end_time, input, output, "
            f"usage_details, total_tokens, field_versions FROM observations FINAL "
            f"WHERE project_id = '{pid}' ORDER BY id",
        ),
    }


async def postgres_view(pg: Postgres, pid: str) -> dict[str, list[tuple]]:
    queries = {
        "sessions": "SELECT session_id, trace_count, user_id, first_seen, last_seen FROM sessions"
        " WHERE project_id = %s ORDER BY 1",
        "users": "SELECT user_id, trace_count, first_seen, last_seen FROM users WHERE project_id = %s ORDER BY 1",
        "usage_daily": "SELECT day, model, observations, events, input_tokens, output_tokens, total_tokens, cost "
        "FROM usage_daily WHERE project_id = %s ORDER BY 1, 2",
    }
    return {name: await pg.fetch(sql, (pid,)) for name, sql in queries.items()}


async def test_replay_twice_leaves_the_projections_unchanged(
    settings: Settings, ch: ClickHouse, pg: Postgres, project: NewKey
) -> None:
    since = datetime.now(UTC).isoformat()
    pid, trace = project.project_id, f"trace-{uuid.uuid4()}"
    gen = f"{trace}-gen"
    await produce(
        settings,
        [
            envelope(
                pid,
                "generation-update",
                {"id": gen, "traceId": trace, "output": {"answer": 42}, "usage": {"input": 4, "output": 2}},
                "2026-11-20T10:00:02Z",
            ),
            envelope(
                pid,
                "trace-create",
                {
                    "id": trace,
                    "name": "replayed",
                    "sessionId": "s-1",
                    "userId": "u-1",
                    "tags": ["a"],
                    "metadata": {"k": "v"},
                },
                "2026-11-20T10:00:00Z",
            ),
            envelope(
                pid,
                "generation-create",
                {
                    "id": gen,
                    "traceId": trace,
                    "name": "llm",
                    "model": "gpt-4o",
                    "startTime": "2026-11-20T10:00:01Z",
                    "input": "hi",
                },
                "2026-11-20T10:00:01Z",
            ),
            envelope(pid, "trace-create", {"id": trace, "tags": ["b"], "output": "done"}, "2026-11-20T10:00:03Z"),
        ],
        grouped=2,  # the log holds both: records of one event (version 2) and of several (3)
    )
    before_ch = await eventually(
        lambda: clickhouse_view(ch, pid),
        lambda v: (
            len(v["traces"]) == 1
            and len(v["observations"]) == 1
            and v["observations"][0]["type"] == "GENERATION"
            and v["traces"][0]["tags"] == ["a", "b"]
            and v["observations"][0]["total_tokens"] == 6
        ),
        timeout_s=TIMEOUT_S,
    )
    before_pg = await eventually(
        lambda: postgres_view(pg, pid),
        # Every event folded: both of the generation's, and the trace's latest activity.
        lambda v: (
            [r[2:4] for r in v["usage_daily"]] == [(1, 2)]
            and [r[1] for r in v["sessions"]] == [1]
            and v["sessions"][0][4] == datetime(2026, 11, 20, 10, 0, 3, tzinfo=UTC)
        ),
        timeout_s=TIMEOUT_S,
    )
    for _ in range(2):
        for stage in ("postgres", "clickhouse"):
            code, out, err = await agenttrace("replay", "--stage", stage, "--from", since)
            assert code == 0, err
            assert f"replay {stage}:" in out
            assert "records" in err  # the progress bar
        assert await clickhouse_view(ch, pid) == before_ch
        assert await postgres_view(pg, pid) == before_pg


async def test_poison_event_is_dead_lettered_listed_and_requeued(
    settings: Settings, pg: Postgres, project: NewKey
) -> None:
    pid, trace = project.project_id, f"trace-{uuid.uuid4()}"
    poison = envelope(
        pid,
        "generation-create",
        {"id": f"{trace}-gen", "traceId": trace, "startTime": "not a time"},
        "2026-11-20T10:00:00Z",
    )
    await produce(settings, [poison])

    async def letters() -> list[tuple]:
        return await pg.fetch(
            "SELECT id, stage, event_id, reason, requeued_at FROM dead_letters WHERE project_id = %s ORDER BY id",
            (pid,),
        )

    # Both stages read the start time, judge it with the same converter, and dead-letter it once each.
    found = await eventually(letters, lambda r: len(r) == 2, timeout_s=TIMEOUT_S)
    assert sorted(r[1] for r in found) == ["clickhouse", "postgres"]
    assert all(r[2] == poison.id and "bad timestamp 'not a time'" in r[3] and r[4] is None for r in found)

    code, out, err = await agenttrace("dlq", "list", "--project", pid, "--json")
    assert code == 0, err
    listed = orjson.loads(out)
    assert [d["id"] for d in listed] == sorted((r[0] for r in found), reverse=True)
    assert listed[0]["payload"]["body"]["startTime"] == "not a time"
    assert listed[0]["eventId"] == poison.id and listed[0]["requeuedAt"] is None
    code, out, err = await agenttrace("dlq", "list", "--project", pid)
    assert code == 0 and poison.id in out and "bad timestamp" in out

    code, out, err = await agenttrace("dlq", "requeue", "--id", *(str(r[0]) for r in found))
    assert code == 0, err
    assert "requeued 2 dead letters as 1 events" in out  # one envelope, dead-lettered by two stages
    # The two letters requeued are marked (the stages may dead-letter the event anew meanwhile).
    marked = {r[0]: r for r in await letters()}
    assert all(marked[r[0]][4] is not None for r in found)
    # Back on the topic under its trace's key, read by both stages again, and still poison.
    again = await eventually(letters, lambda r: len(r) == 4, timeout_s=TIMEOUT_S)
    assert [r[4] is None for r in again] == [False, False, True, True]

    code, out, err = await agenttrace("dlq", "requeue", "--all", "--project", pid)
    assert code == 0, err
    assert "requeued 2 dead letters as 1 events" in out
    await eventually(letters, lambda r: len(r) == 6, timeout_s=TIMEOUT_S)


async def test_a_record_a_stage_could_not_read_is_requeued_as_its_events(
    settings: Settings, pg: Postgres, ch: ClickHouse, project: NewKey
) -> None:
    """A stage older than the edge (an upgrade's window) stores a record it cannot read as its
    text; once the stages read it, `dlq requeue` sends its events again, each alone."""
    pid, trace = project.project_id, f"trace-{uuid.uuid4()}"
    when = "2026-11-20T10:00:00Z"
    events = [
        envelope(pid, "trace-create", {"id": trace, "name": "late", "input": {"q": [1, "é"]}}, when),
        envelope(pid, "span-create", {"id": f"{trace}-s", "traceId": trace, "startTime": when, "output": "ok"}, when),
    ]
    await DeadLetterTable(pg).record(
        [DeadLetter("clickhouse", "undecodable record: unsupported", group_record(events), b"k", kind="undecodable")]
    )
    [(letter,)] = await pg.fetch("SELECT id FROM dead_letters WHERE payload->>'raw' LIKE %s", (f"%{trace}%",))
    code, out, err = await agenttrace("dlq", "requeue", "--id", str(letter))
    assert code == 0, err
    assert "requeued 1 dead letters as 2 events" in out
    traces = await eventually(
        lambda: rows(ch, f"SELECT name, input FROM traces FINAL WHERE project_id = '{pid}' AND id = '{trace}'"),
        lambda r: bool(r) and r[0]["name"] == "late",
        timeout_s=TIMEOUT_S,
    )
    assert orjson.loads(traces[0]["input"]) == {"q": [1, "é"]}
    spans = await eventually(
        lambda: rows(ch, f"SELECT output FROM observations FINAL WHERE project_id = '{pid}' AND id = '{trace}-s'"),
        bool,
        timeout_s=TIMEOUT_S,
    )
    assert spans == [{"output": '"ok"'}]


async def test_requeue_reports_unknown_ids(pg: Postgres) -> None:
    missing = int(time.time() * 1000)  # far past any id bigserial has handed out here
    code, out, _ = await agenttrace("dlq", "requeue", "--id", str(missing))
    assert code == 1
    assert f"skipped {missing}: no such dead letter" in out
