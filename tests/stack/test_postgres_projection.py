"""The Postgres projection (sessions, users, usage_daily) against the running worker: what it
counts, and that redelivery and out-of-order updates never count anything twice."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from agenttrace.settings import Settings
from pipeline.times import to_micros
from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey
from sinks.postgres.writer import PostgresWriter
from tests.support import API, basic_auth, envelope, eventually, produce

pytestmark = pytest.mark.stack

TIMEOUT_S = 30.0


def utc(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC)


async def table(pg: Postgres, sql: str, project_id: str) -> list[dict[str, Any]]:
    """Rows of `sql` (columns named explicitly, `%s` the project id) as dicts."""
    cols = [c.strip() for c in sql.split("SELECT", 1)[1].split("FROM", 1)[0].split(",")]
    return [dict(zip(cols, r, strict=True)) for r in await pg.fetch(sql, (project_id,))]


async def usage(pg: Postgres, project_id: str) -> list[dict[str, Any]]:
    return await table(
        pg,
        "SELECT day, model, observations, events, input_tokens, output_tokens, total_tokens, cost "
        "FROM usage_daily WHERE project_id = %s ORDER BY day, model",
        project_id,
    )


async def sessions(pg: Postgres, project_id: str) -> list[dict[str, Any]]:
    return await table(
        pg,
        "SELECT session_id, trace_count, user_id, first_seen, last_seen FROM sessions"
        " WHERE project_id = %s ORDER BY session_id",
        project_id,
    )


async def users(pg: Postgres, project_id: str) -> list[dict[str, Any]]:
    return await table(
        pg,
        "SELECT user_id, trace_count, first_seen, last_seen FROM users WHERE project_id = %s ORDER BY user_id",
        project_id,
    )


def event(etype: str, ts: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": etype, "timestamp": ts, "body": body}


async def test_sessions_users_and_usage_from_a_batch(
    http: aiohttp.ClientSession, pg: Postgres, project: NewKey
) -> None:
    a, b, c = (f"trace-{uuid.uuid4()}" for _ in range(3))
    batch = [
        event("trace-create", "2026-11-20T10:00:00Z", {"id": a, "sessionId": "s-1", "userId": "u-1"}),
        event("trace-create", "2026-11-20T10:05:00Z", {"id": b, "sessionId": "s-1", "userId": "u-2"}),
        event("trace-create", "2026-11-20T11:00:00Z", {"id": c, "userId": "u-1"}),
        event(
            "generation-create",
            "2026-11-20T10:00:01Z",
            {
                "id": f"{a}-gen",
                "traceId": a,
                "model": "gpt-4o",
                "startTime": "2026-11-20T10:00:01Z",
                "usage": {"input": 10, "output": 5},
                "costDetails": {"total": 0.5},
            },
        ),
        event(
            "generation-create",
            "2026-11-20T10:05:01Z",
            {
                "id": f"{b}-gen",
                "traceId": b,
                "model": "gpt-4o",
                "startTime": "2026-11-20T10:05:01Z",
                "usageDetails": {"input": 3, "output": 2},
                "costDetails": {"total": 0.25},
            },
        ),
        event(
            "generation-create",
            "2026-11-20T11:00:01Z",
            {
                "id": f"{c}-gen",
                "traceId": c,
                "model": "claude-3",
                "startTime": "2026-11-21T00:00:01Z",
                "usage": {"input": 7},
                "costDetails": {"input": 0.001, "output": 0.002},
            },
        ),
        event(
            "span-create",
            "2026-11-20T10:06:00Z",
            {"id": f"{b}-span", "traceId": b, "startTime": "2026-11-20T10:06:00Z"},
        ),
    ]
    async with http.post(f"{API}/api/public/ingestion", json={"batch": batch}, headers=basic_auth(project)) as r:
        assert r.status == 207
        assert (await r.json())["errors"] == []
    pid = project.project_id

    ledger = await eventually(
        lambda: usage(pg, pid), lambda rows: len(rows) == 2 and rows[0]["observations"] == 2, timeout_s=TIMEOUT_S
    )
    assert ledger == [
        {
            "day": date(2026, 11, 20),
            "model": "gpt-4o",
            "observations": 2,
            "events": 2,
            "input_tokens": 13,
            "output_tokens": 7,
            "total_tokens": 20,
            "cost": Decimal("0.75"),
        },
        {
            "day": date(2026, 11, 21),
            "model": "claude-3",
            "observations": 1,
            "events": 1,
            "input_tokens": 7,
            "output_tokens": 0,
            "total_tokens": 7,
            "cost": Decimal("0.003"),
        },  # no total sent: the parts' sum
    ]
    # The span of trace b is its latest activity; the session's user is that of its latest trace.
    assert await eventually(lambda: sessions(pg, pid), lambda rows: bool(rows) and rows[0]["trace_count"] == 2) == [
        {
            "session_id": "s-1",
            "trace_count": 2,
            "user_id": "u-2",
            "first_seen": utc("2026-11-20T10:00:00Z"),
            "last_seen": utc("2026-11-20T10:06:00Z"),
        },
    ]
    assert await users(pg, pid) == [
        {
            "user_id": "u-1",
            "trace_count": 2,
            "first_seen": utc("2026-11-20T10:00:00Z"),
            "last_seen": utc("2026-11-20T11:00:01Z"),
        },
        {
            "user_id": "u-2",
            "trace_count": 1,
            "first_seen": utc("2026-11-20T10:05:00Z"),
            "last_seen": utc("2026-11-20T10:06:00Z"),
        },
    ]


async def test_redelivered_events_are_counted_once(settings: Settings, pg: Postgres, project: NewKey) -> None:
    pid, trace = project.project_id, f"trace-{uuid.uuid4()}"
    envelopes = [
        envelope(pid, "trace-create", {"id": trace, "sessionId": "s-r", "userId": "u-r"}, "2026-11-20T09:00:00Z"),
        envelope(
            pid,
            "generation-create",
            {
                "id": f"{trace}-gen",
                "traceId": trace,
                "model": "gpt-4o",
                "startTime": "2026-11-20T09:00:01Z",
                "usage": {"input": 100, "output": 50},
            },
            "2026-11-20T09:00:01Z",
        ),
        envelope(
            pid,
            "generation-update",
            {"id": f"{trace}-gen", "traceId": trace, "costDetails": {"total": 1.5}},
            "2026-11-20T09:00:02Z",
        ),
    ]
    await produce(settings, envelopes)
    await produce(settings, envelopes)  # a client's retry appended again: same event ids, new offsets
    await eventually(lambda: usage(pg, pid), lambda rows: len(rows) == 1, timeout_s=TIMEOUT_S)
    await produce(settings, envelopes)
    # A later event of the same trace shares its partition: once it is folded, so are the copies.
    await produce(
        settings,
        [
            envelope(
                pid,
                "generation-create",
                {
                    "id": f"{trace}-sentinel",
                    "traceId": trace,
                    "model": "sentinel",
                    "startTime": "2026-11-20T09:00:03Z",
                },
                "2026-11-20T09:00:03Z",
            )
        ],
    )
    ledger = await eventually(lambda: usage(pg, pid), lambda rows: len(rows) == 2, timeout_s=TIMEOUT_S)
    assert ledger[0] == {
        "day": date(2026, 11, 20),
        "model": "gpt-4o",
        "observations": 1,
        "events": 2,
        "input_tokens": 100,
        "output_tokens": 50,
        "total_tokens": 150,
        "cost": Decimal("1.5"),
    }
    assert [(s["session_id"], s["trace_count"]) for s in await sessions(pg, pid)] == [("s-r", 1)]
    assert [(u["user_id"], u["trace_count"]) for u in await users(pg, pid)] == [("u-r", 1)]
    # One row per trace holds what the projection remembers; none per event or span.
    assert (await pg.fetch("SELECT count(*) FROM trace_states WHERE project_id = %s", (pid,)))[0][0] == 1


async def test_update_before_create_and_corrections_replace_usage(
    settings: Settings, pg: Postgres, project: NewKey
) -> None:
    pid, trace = project.project_id, f"trace-{uuid.uuid4()}"
    gen = f"{trace}-gen"
    # The update happened later but arrives first, in its own batch.
    await produce(
        settings,
        [
            envelope(
                pid,
                "generation-update",
                {
                    "id": gen,
                    "traceId": trace,
                    "usage": {"input": 20, "output": 10},
                    "costDetails": {"total": 0.2},
                },
                "2026-11-22T08:00:05Z",
            )
        ],
    )
    await eventually(lambda: usage(pg, pid), lambda rows: [r["model"] for r in rows] == [""], timeout_s=TIMEOUT_S)
    await produce(
        settings,
        [
            envelope(
                pid,
                "generation-create",
                {
                    "id": gen,
                    "traceId": trace,
                    "model": "gpt-4o-mini",
                    "startTime": "2026-11-21T23:59:59Z",
                    "usage": {"input": 1, "output": 1},
                },
                "2026-11-22T08:00:00Z",
            )
        ],
    )
    # One bucket, the create's day and model, with the newer event's usage: moved, not added.
    expected = [
        {
            "day": date(2026, 11, 21),
            "model": "gpt-4o-mini",
            "observations": 1,
            "events": 2,
            "input_tokens": 20,
            "output_tokens": 10,
            "total_tokens": 30,
            "cost": Decimal("0.2"),
        }
    ]
    await eventually(lambda: usage(pg, pid), lambda rows: rows == expected, timeout_s=TIMEOUT_S)


async def test_a_trace_that_changes_session_moves_its_count(settings: Settings, pg: Postgres, project: NewKey) -> None:
    pid, trace = project.project_id, f"trace-{uuid.uuid4()}"
    await produce(settings, [envelope(pid, "trace-create", {"id": trace, "sessionId": "s-a"}, "2026-11-20T12:00:00Z")])
    await eventually(
        lambda: sessions(pg, pid),
        lambda rows: [(r["session_id"], r["trace_count"]) for r in rows] == [("s-a", 1)],
        timeout_s=TIMEOUT_S,
    )
    await produce(settings, [envelope(pid, "trace-create", {"id": trace, "sessionId": "s-b"}, "2026-11-20T12:00:01Z")])
    await eventually(
        lambda: sessions(pg, pid),
        lambda rows: [(r["session_id"], r["trace_count"]) for r in rows] == [("s-a", 0), ("s-b", 1)],
        timeout_s=TIMEOUT_S,
    )


async def test_concurrent_writers_on_the_same_traces_lose_nothing_and_count_nothing_twice(
    pg: Postgres, project: NewKey
) -> None:
    """What a rebalance overlap or a replay beside the live stage does: writers holding the same
    events at once, in other batches. The trace rows they share are locked before they are read."""
    pid = project.project_id
    events = []
    for t in range(20):
        trace = f"trace-{t}"
        events.append(
            envelope(
                pid,
                "trace-create",
                {"id": trace, "sessionId": f"s-{t % 3}", "userId": f"u-{t % 2}"},
                f"2026-11-20T10:00:{t:02d}Z",
            )
        )
        for g in range(5):
            events.append(
                envelope(
                    pid,
                    "generation-create",
                    {
                        "id": f"{trace}-g{g}",
                        "traceId": trace,
                        "model": "gpt-4o",
                        "startTime": "2026-11-20T10:00:00Z",
                        "usage": {"input": 10, "output": 1},
                    },
                    f"2026-11-20T10:00:{t:02d}.5Z",
                )
            )
            events.append(
                envelope(
                    pid,
                    "generation-update",
                    {
                        "id": f"{trace}-g{g}",
                        "traceId": trace,
                        "usage": {"input": 100},
                        "costDetails": {"total": 0.5},
                    },
                    f"2026-11-20T10:01:{t:02d}Z",
                )
            )
    writers = [PostgresWriter(pg) for _ in range(4)]
    rnd = random.Random(7)
    batches = []
    for _ in range(3):  # every event three times, in different batches
        shuffled = events[:]
        rnd.shuffle(shuffled)
        batches += [shuffled[i : i + 37] for i in range(0, len(shuffled), 37)]
    rnd.shuffle(batches)
    await asyncio.gather(*(writers[i % 4].write(batch) for i, batch in enumerate(batches)))

    assert await usage(pg, pid) == [
        {
            "day": date(2026, 11, 20),
            "model": "gpt-4o",
            "observations": 100,
            "events": 200,
            "input_tokens": 100 * 100,
            "output_tokens": 100,
            "total_tokens": 101 * 100,
            "cost": Decimal("50.0"),
        }
    ]
    assert [(s["session_id"], s["trace_count"]) for s in await sessions(pg, pid)] == [
        ("s-0", 7),
        ("s-1", 7),
        ("s-2", 6),
    ]
    assert [(u["user_id"], u["trace_count"]) for u in await users(pg, pid)] == [("u-0", 10), ("u-1", 10)]


async def test_states_past_the_horizon_are_pruned_and_events_received_before_it_skipped(
    pg: Postgres, project: NewKey
) -> None:
    pid = project.project_id
    writer = PostgresWriter(pg, horizon_s=3600)
    old, recent = f"trace-{uuid.uuid4()}", f"trace-{uuid.uuid4()}"
    await writer.write(
        [envelope(pid, "trace-create", {"id": t, "sessionId": "s"}, "2026-11-20T10:00:00Z") for t in (old, recent)]
    )
    await pg.execute(
        "UPDATE trace_states SET touched_at = now() - interval '2 hours' WHERE project_id = %s AND trace_id = %s",
        (pid, old),
    )
    deleted = 0
    for _ in range(1000):  # a full sweep, whatever the table's size here
        deleted += await writer.prune(pages=100_000)
        if not (await pg.fetch("SELECT 1 FROM trace_states WHERE project_id = %s AND trace_id = %s", (pid, old))):
            break
    assert deleted >= 1
    states = await pg.fetch("SELECT trace_id FROM trace_states WHERE project_id = %s", (pid,))
    assert [r[0] for r in states] == [recent]
    assert [(s["session_id"], s["trace_count"]) for s in await sessions(pg, pid)] == [("s", 2)]  # counts stay

    stale = envelope(pid, "trace-create", {"id": f"trace-{uuid.uuid4()}", "sessionId": "s"}, "2026-11-20T10:00:00Z")
    stale.received_at -= 2 * 3600 * 1_000_000
    await writer.write([stale])
    assert [(s["session_id"], s["trace_count"]) for s in await sessions(pg, pid)] == [("s", 2)]


async def test_a_trace_stored_by_another_writer_is_joined_not_inserted_again(pg: Postgres, project: NewKey) -> None:
    """A writer inserts the traces it has not written lately whole, guessing they are new; one
    that another writer (or this one before a restart) stored is only locked by that insert, and
    joined with what is stored: the guess counts nothing."""
    pid, trace = project.project_id, f"trace-{uuid.uuid4()}"

    def generation(n: int, ts: str) -> Any:
        body = {"id": f"{trace}-g{n}", "traceId": trace, "model": "gpt-4o", "startTime": ts, "usage": {"input": 10}}
        return envelope(pid, "generation-create", body, ts)

    first = [
        envelope(pid, "trace-create", {"id": trace, "sessionId": "s-1", "userId": "u-1"}, "2026-11-20T10:00:00Z"),
        generation(1, "2026-11-20T10:00:01Z"),
    ]
    await PostgresWriter(pg).write(first)
    second = PostgresWriter(pg)
    later = envelope(pid, "trace-create", {"id": trace, "sessionId": "s-2"}, "2026-11-20T10:00:05Z")
    await second.write([later, generation(2, "2026-11-20T10:00:06Z")])
    await PostgresWriter(pg).write(first)  # a redelivery to a third writer: nothing new
    await second.write(first)  # and to one that has written the trace: the lock-and-update path

    assert [(s["session_id"], s["trace_count"]) for s in await sessions(pg, pid)] == [("s-1", 0), ("s-2", 1)]
    assert [(u["user_id"], u["trace_count"]) for u in await users(pg, pid)] == [("u-1", 1)]
    (ledger,) = await usage(pg, pid)
    assert (ledger["observations"], ledger["events"], ledger["input_tokens"]) == (2, 2, 20)
    rows = await pg.fetch(
        "SELECT session_id, user_id, first_seen, last_seen, "
        "(SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(generations) AS k) "
        "FROM trace_states WHERE project_id = %s AND trace_id = %s",
        (pid, trace),
    )
    extent = [to_micros("2026-11-20T10:00:00Z"), to_micros("2026-11-20T10:00:06Z")]
    assert rows == [("s-2", "u-1", *extent, [f"{trace}-g1", f"{trace}-g2"])]


async def test_ids_of_any_text_arrive_unchanged_through_both_paths(pg: Postgres, project: NewKey) -> None:
    """The writer hands rows to Postgres as JSON documents: quotes, backslashes, escapes, control
    characters and text beyond the BMP must come out as they went in, when a trace is inserted
    whole and when a stored one is updated, in trace_states, sessions and users alike."""
    pid = project.project_id
    odd = "q'\"\\n\\u0041 \t\x01 ☃ 😀 ]}{["
    trace, session, user, model = f"t-{odd}-{uuid.uuid4()}", f"s-{odd}", f"u-{odd}", f"m-{odd}"
    gen = {"id": f"g-{odd}", "traceId": trace, "model": model, "startTime": "2026-11-20T10:00:01Z", "usage": {odd: 4}}
    first = [
        envelope(pid, "trace-create", {"id": trace, "sessionId": session, "userId": user}, "2026-11-20T10:00:00Z"),
        envelope(pid, "generation-create", gen, "2026-11-20T10:00:01Z"),
    ]
    writer = PostgresWriter(pg)
    await writer.write(first)  # new: inserted whole
    later = {**gen, "id": f"g2-{odd}"}
    await writer.write([envelope(pid, "generation-create", later, "2026-11-20T10:00:02Z")])  # stored: updated

    assert [(s["session_id"], s["user_id"], s["trace_count"]) for s in await sessions(pg, pid)] == [(session, user, 1)]
    assert [(u["user_id"], u["trace_count"]) for u in await users(pg, pid)] == [(user, 1)]
    rows = await pg.fetch(
        "SELECT trace_id, session_id, user_id, (SELECT array_agg(k) FROM jsonb_object_keys(generations) k), "
        "generations -> %s -> 'v' -> 'usage_details' ->> %s FROM trace_states WHERE project_id = %s",
        (f"g2-{odd}", odd, pid),
    )
    assert [(*r[:3], set(r[3]), r[4]) for r in rows] == [(trace, session, user, {f"g-{odd}", f"g2-{odd}"}, "4")]
    (ledger,) = await usage(pg, pid)
    assert (ledger["model"], ledger["observations"]) == (model, 2)
