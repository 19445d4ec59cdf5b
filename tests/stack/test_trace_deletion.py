"""Issue 13: a deleted trace is gone from every read and every aggregate, and nothing the event
log can still hand out (a late event, a replay, a requeued dead letter) brings it back."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from agenttrace.settings import Settings
from pipeline.dead_letters import DeadLetter
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.schema import BY_TRACE
from sinks.postgres.client import Postgres
from sinks.postgres.dead_letters import DeadLetterTable
from sinks.postgres.keys import NewKey, create_key
from sinks.purge import PurgeConfig, TombstonePurge
from tests.support import API, agenttrace, basic_auth, envelope, eventually, produce

pytestmark = pytest.mark.stack

TIMEOUT_S = 30.0
# Where a trace leaves rows in ClickHouse: the projections and the index of observations by trace.
PROJECTIONS = (("traces", "id"), ("observations", "trace_id"), ("scores", "trace_id"))
TABLES_OF_A_TRACE = (*PROJECTIONS, (BY_TRACE, "trace_id"))


def batch(trace: str, *, session: str, user: str, tokens: int, day: str = "2026-11-20") -> dict[str, Any]:
    return {
        "batch": [
            {
                "id": str(uuid.uuid4()),
                "type": "trace-create",
                "timestamp": f"{day}T10:00:00Z",
                "body": {"id": trace, "name": "doomed", "sessionId": session, "userId": user, "input": "secret"},
            },
            {
                "id": str(uuid.uuid4()),
                "type": "generation-create",
                "timestamp": f"{day}T10:00:01Z",
                "body": {
                    "id": f"{trace}-gen",
                    "traceId": trace,
                    "model": "gpt-4o",
                    "startTime": f"{day}T10:00:01Z",
                    "usage": {"input": tokens, "output": 1},
                },
            },
            {
                "id": str(uuid.uuid4()),
                "type": "score-create",
                "timestamp": f"{day}T10:00:02Z",
                "body": {"id": f"{trace}-score", "traceId": trace, "name": "quality", "value": 1},
            },
        ]
    }


async def ingest(http: aiohttp.ClientSession, key: NewKey, body: dict[str, Any]) -> None:
    async with http.post(f"{API}/api/public/ingestion", json=body, headers=basic_auth(key)) as r:
        assert r.status in (200, 207), await r.text()
        assert not (await r.json()).get("errors")


async def delete(http: aiohttp.ClientSession, key: NewKey, *ids: str) -> tuple[int, Any]:
    if len(ids) == 1:
        async with http.delete(f"{API}/api/public/traces/{ids[0]}", headers=basic_auth(key)) as r:
            return r.status, await r.json()
    async with http.delete(f"{API}/api/public/traces", json={"traceIds": list(ids)}, headers=basic_auth(key)) as r:
        return r.status, await r.json()


async def visible(http: aiohttp.ClientSession, key: NewKey, trace: str) -> dict[str, Any]:
    """What the read API shows of a trace: the trace, its observations, its scores."""
    auth = basic_auth(key)
    async with http.get(f"{API}/api/public/traces/{trace}", headers=auth) as r:
        got_trace = r.status == 200
    async with http.get(f"{API}/api/public/observations", params={"traceId": trace}, headers=auth) as r:
        observations = [o["id"] for o in (await r.json())["data"]]
    async with http.get(f"{API}/api/public/scores", params={"traceId": trace}, headers=auth) as r:
        scores = [s["id"] for s in (await r.json())["data"]]
    async with http.get(f"{API}/api/public/traces", headers=auth) as r:
        listed = [t["id"] for t in (await r.json())["data"]]
    return {"trace": got_trace, "listed": trace in listed, "observations": observations, "scores": scores}


def gone(v: dict[str, Any]) -> bool:
    return not v["trace"] and not v["listed"] and not v["observations"] and not v["scores"]


def whole(v: dict[str, Any]) -> bool:
    return v["trace"] and v["listed"] and len(v["observations"]) == 1 and len(v["scores"]) == 1


async def final_rows(ch: ClickHouse, pid: str, trace: str) -> list[tuple[str, int]]:
    """The documented FINAL queries: (table, is_deleted) of every row they return."""
    out = []
    for table, column in PROJECTIONS:
        for (deleted,) in await ch.fetch(
            f"SELECT is_deleted FROM {table} FINAL WHERE project_id = '{pid}' AND {column} = '{trace}'"
        ):
            out.append((table, int(deleted)))
    return out


async def aggregates(pg: Postgres, pid: str) -> dict[str, Any]:
    return {
        "sessions": await pg.fetch(
            "SELECT session_id, trace_count FROM sessions WHERE project_id = %s ORDER BY 1", (pid,)
        ),
        "users": await pg.fetch("SELECT user_id, trace_count FROM users WHERE project_id = %s ORDER BY 1", (pid,)),
        "usage": await pg.fetch(
            "SELECT day, model, observations, events, input_tokens, output_tokens, total_tokens "
            "FROM usage_daily WHERE project_id = %s ORDER BY 1, 2",
            (pid,),
        ),
        "states": await pg.fetch("SELECT trace_id FROM trace_states WHERE project_id = %s ORDER BY 1", (pid,)),
    }


async def test_a_deleted_trace_is_gone_from_reads_and_aggregates_and_nowhere_else(
    http: aiohttp.ClientSession, ch: ClickHouse, pg: Postgres, project: NewKey
) -> None:
    pid = project.project_id
    doomed, kept = f"t-{uuid.uuid4()}", f"t-{uuid.uuid4()}"
    # Another project holds a trace of the same id: it must never be touched.
    other = await create_key(pg, f"test-{uuid.uuid4().hex[:12]}")
    await ingest(http, project, batch(doomed, session="s-shared", user="u-doomed", tokens=10))
    await ingest(http, project, batch(kept, session="s-shared", user="u-kept", tokens=7))
    await ingest(http, other, batch(doomed, session="s-shared", user="u-doomed", tokens=10))
    await eventually(lambda: visible(http, project, doomed), whole, timeout_s=TIMEOUT_S)
    await eventually(lambda: visible(http, other, doomed), whole, timeout_s=TIMEOUT_S)
    before = await eventually(
        lambda: aggregates(pg, pid), lambda a: len(a["states"]) == 2 and len(a["usage"]) == 1, timeout_s=TIMEOUT_S
    )
    assert before["sessions"] == [("s-shared", 2)]
    assert before["usage"][0][2:] == (2, 2, 17, 2, 19)
    other_before = await aggregates(pg, other.project_id)

    assert await delete(http, project, doomed) == (200, {"message": "Trace deleted successfully"})

    await eventually(lambda: visible(http, project, doomed), gone, timeout_s=5)
    # FINAL sees the deletion too: every row it returns of the trace says is_deleted.
    rows = await final_rows(ch, pid, doomed)
    assert rows and all(deleted == 1 for _, deleted in rows), rows
    # Exactly the deleted trace's contribution is subtracted.
    after = await eventually(lambda: aggregates(pg, pid), lambda a: len(a["states"]) == 1, timeout_s=TIMEOUT_S)
    assert after["states"] == [(kept,)]
    assert after["sessions"] == [("s-shared", 1)]
    assert after["users"] == [("u-kept", 1)]
    assert after["usage"][0][2:] == (1, 1, 7, 1, 8)
    # The other project's trace of the same id, and its aggregates, are untouched.
    assert whole(await visible(http, project, kept))
    assert whole(await visible(http, other, doomed))
    assert await aggregates(pg, other.project_id) == other_before
    # Kept past the topic's retention (twice 7 days); the generation's id is tombstoned too.
    tombstones = await pg.fetch(
        "SELECT trace_id, expires_at > now() + interval '13 days' FROM trace_tombstones WHERE project_id = %s "
        "ORDER BY 1",
        (pid,),
    )
    assert tombstones == [(doomed, True), (f"{doomed}-gen", True)]


async def test_late_events_replays_and_requeues_do_not_resurrect(
    settings: Settings, http: aiohttp.ClientSession, ch: ClickHouse, pg: Postgres, project: NewKey
) -> None:
    pid, trace = project.project_id, f"t-{uuid.uuid4()}"
    await ingest(http, project, batch(trace, session="s-1", user="u-1", tokens=3))
    await eventually(lambda: visible(http, project, trace), whole, timeout_s=TIMEOUT_S)
    await eventually(lambda: aggregates(pg, pid), lambda a: len(a["usage"]) == 1, timeout_s=TIMEOUT_S)
    assert await delete(http, project, trace) == (200, {"message": "Trace deleted successfully"})
    await eventually(lambda: visible(http, project, trace), gone, timeout_s=5)
    empty = {"sessions": [], "users": [], "usage": [], "states": []}
    await eventually(lambda: aggregates(pg, pid), lambda a: a == empty, timeout_s=TIMEOUT_S)

    # A client's retry of the whole batch, and a late span and score.
    await ingest(http, project, batch(trace, session="s-1", user="u-1", tokens=3))
    late = {
        "batch": [
            {
                "id": str(uuid.uuid4()),
                "type": "span-create",
                "timestamp": "2026-11-20T10:00:05Z",
                "body": {"id": f"{trace}-late", "traceId": trace, "name": "late"},
            },
            {
                "id": str(uuid.uuid4()),
                "type": "generation-update",
                "timestamp": "2026-11-20T10:00:06Z",
                "body": {"id": f"{trace}-gen", "output": "no trace id named"},
            },
        ]
    }
    await ingest(http, project, late)
    # A dead letter of the trace, requeued: appended to the log again under the trace's key.
    letter = envelope(pid, "span-create", {"id": f"{trace}-dlq", "traceId": trace}, "2026-11-20T10:00:07Z")
    await DeadLetterTable(pg).record([DeadLetter.of_envelope(letter, "an outage", "clickhouse")])
    code, out, err = await agenttrace("dlq", "requeue", "--all", "--project", pid)
    assert code == 0 and "requeued 1" in out, (out, err)
    # A marker after them all in the same partition: once it is folded, so are they.
    marker = f"{trace}-marker"
    await produce(
        settings,
        [envelope(pid, "trace-create", {"id": marker, "name": "marker"}, "2026-11-20T10:00:08Z")],
    )
    await eventually(lambda: visible(http, project, marker), lambda v: v["trace"], timeout_s=TIMEOUT_S)
    await eventually(lambda: aggregates(pg, pid), lambda a: [s[0] for s in a["states"]] == [marker])

    # From before the deletion: the last minutes of the log, not all of it (a shared topic holds
    # every earlier test's and benchmark's events).
    for stage in ("clickhouse", "postgres"):
        code, out, err = await agenttrace("replay", "--stage", stage, "--from", "10m", timeout_s=120)
        assert code == 0, err
    assert gone(await visible(http, project, trace))
    rows = await final_rows(ch, pid, trace)
    assert all(deleted == 1 for _, deleted in rows), rows
    after = await aggregates(pg, pid)
    assert after["states"] == [(marker,)] and after["usage"] == [] and after["sessions"] == []
    # The deletion, folded again by the replays, changed nothing either.
    assert await delete(http, project, trace) == (200, {"message": "Trace deleted successfully"})


async def test_bulk_deletion_and_bad_input(http: aiohttp.ClientSession, pg: Postgres, project: NewKey) -> None:
    traces = [f"t-{uuid.uuid4()}" for _ in range(3)]
    for trace in traces:
        await ingest(http, project, batch(trace, session="s", user="u", tokens=1))
    for trace in traces:
        await eventually(lambda t=trace: visible(http, project, t), whole, timeout_s=TIMEOUT_S)
    unknown = f"never-{uuid.uuid4()}"
    status, answer = await delete(http, project, *traces[:2], unknown)
    assert (status, answer) == (200, {"message": "Traces deleted successfully"})
    for trace in traces[:2]:
        await eventually(lambda t=trace: visible(http, project, t), gone, timeout_s=5)
    assert whole(await visible(http, project, traces[2]))
    assert await delete(http, project, unknown) == (200, {"message": "Trace deleted successfully"})

    auth = basic_auth(project)
    url = f"{API}/api/public/traces"
    for body in ({"traceIds": [f"x{i}" for i in range(1001)]}, {"traceIds": []}, {"traceIds": [1]}, [], {}):
        async with http.delete(url, json=body, headers=auth) as r:
            assert r.status == 400, (body, await r.text())
            assert "message" in await r.json()
    async with http.delete(url, json={"traceIds": ["x"]}) as r:
        assert r.status == 401
    async with http.delete(f"{url}/{traces[2]}") as r:
        assert r.status == 401
    assert whole(await visible(http, project, traces[2]))
    # 1,000 ids is the limit, not past it.
    async with http.delete(url, json={"traceIds": [f"x{i}" for i in range(1000)]}, headers=auth) as r:
        assert r.status == 200


async def test_the_purge_removes_every_row_of_a_deleted_trace(
    http: aiohttp.ClientSession, ch: ClickHouse, pg: Postgres, project: NewKey
) -> None:
    pid, doomed, kept = project.project_id, f"t-{uuid.uuid4()}", f"t-{uuid.uuid4()}"
    for trace in (doomed, kept):
        await ingest(http, project, batch(trace, session="s", user="u", tokens=1))
        await eventually(lambda t=trace: visible(http, project, t), whole, timeout_s=TIMEOUT_S)
    await delete(http, project, doomed)
    await eventually(lambda: visible(http, project, doomed), gone, timeout_s=5)

    async def stored(trace: str) -> int:
        total = 0
        for table, column in TABLES_OF_A_TRACE:
            ((n,),) = await ch.fetch(f"SELECT count() FROM {table} WHERE project_id = '{pid}' AND {column} = '{trace}'")
            total += n
        return total

    assert await stored(doomed) >= 4  # four rows and their deleted copies, until merges collapse them
    # A worker runs this every ten minutes for tombstones five minutes old; here at once. Another
    # worker's turn may hold the lock or purge it first: either way it ends purged.
    purge = TombstonePurge(pg, ch, PurgeConfig(after_s=0))

    async def purged() -> list[tuple[Any, ...]]:
        await purge.run_once()
        return await pg.fetch(
            "SELECT purged_at IS NOT NULL FROM trace_tombstones WHERE project_id = %s AND trace_id = %s",
            (pid, doomed),
        )

    await eventually(purged, lambda r: r == [(True,)], timeout_s=TIMEOUT_S, every_s=1)
    await eventually(lambda: stored(doomed), lambda n: n == 0, timeout_s=TIMEOUT_S)
    assert await stored(kept) == 4  # its trace, observation, score and the observation's index row
    assert whole(await visible(http, project, kept))


async def test_deleting_a_trace_spares_one_whose_hash_collides(http: aiohttp.ClientSession, project: NewKey) -> None:
    # Reads and the deletion's copy find a trace's rows by murmurHash2_32 of its id first
    # (ClickHouse migration 0003); these two ids share one.
    doomed, kept = "trace-228021", "trace-295823"
    await ingest(http, project, batch(doomed, session="s", user="u", tokens=1))
    await ingest(http, project, batch(kept, session="s", user="u", tokens=1))
    await eventually(lambda: visible(http, project, doomed), whole, timeout_s=TIMEOUT_S)
    assert (await eventually(lambda: visible(http, project, kept), whole, timeout_s=TIMEOUT_S))["observations"] == [
        f"{kept}-gen"
    ]
    assert await delete(http, project, doomed) == (200, {"message": "Trace deleted successfully"})
    await eventually(lambda: visible(http, project, doomed), gone, timeout_s=TIMEOUT_S)
    after = await visible(http, project, kept)
    assert whole(after) and after["observations"] == [f"{kept}-gen"] and after["scores"] == [f"{kept}-score"]
