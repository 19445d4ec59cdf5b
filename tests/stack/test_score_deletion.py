"""DELETE /api/public/scores/{scoreId}: a deleted score is gone from every read, its trace and
its neighbours stay, and nothing sent later under its id (a client's retry, a replay) brings
it back; the purge then removes its rows."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey, create_key
from sinks.purge import PurgeConfig, TombstonePurge
from tests.support import API, agenttrace, basic_auth, eventually

pytestmark = pytest.mark.stack

TIMEOUT_S = 30.0


def scored_trace(trace: str, *scores: str) -> dict[str, Any]:
    events: list[dict[str, Any]] = [
        {
            "id": str(uuid.uuid4()),
            "type": "trace-create",
            "timestamp": "2026-11-20T10:00:00Z",
            "body": {"id": trace, "name": "scored"},
        }
    ]
    for n, score in enumerate(scores):
        events.append(
            {
                "id": str(uuid.uuid4()),
                "type": "score-create",
                "timestamp": "2026-11-20T10:00:01Z",
                "body": {"id": score, "traceId": trace, "name": f"quality-{n}", "value": n},
            }
        )
    return {"batch": events}


async def ingest(http: aiohttp.ClientSession, key: NewKey, body: dict[str, Any]) -> None:
    async with http.post(f"{API}/api/public/ingestion", json=body, headers=basic_auth(key)) as r:
        assert r.status in (200, 207), await r.text()
        assert not (await r.json()).get("errors")


async def delete(http: aiohttp.ClientSession, key: NewKey, score: str) -> tuple[int, Any]:
    async with http.delete(f"{API}/api/public/scores/{score}", headers=basic_auth(key)) as r:
        return r.status, await r.json()


async def scores_of(http: aiohttp.ClientSession, key: NewKey, trace: str) -> dict[str, Any]:
    """The trace's scores as the list, the trace and each score's own read show them."""
    auth = basic_auth(key)
    async with http.get(f"{API}/api/public/scores", params={"traceId": trace}, headers=auth) as r:
        listed = sorted(s["id"] for s in (await r.json())["data"])
    async with http.get(f"{API}/api/public/v2/scores", params={"traceId": trace}, headers=auth) as r:
        listed_v2 = sorted(s["id"] for s in (await r.json())["data"])
    async with http.get(f"{API}/api/public/traces/{trace}", headers=auth) as r:
        doc = await r.json() if r.status == 200 else {}
    on_trace = sorted(s["id"] if isinstance(s, dict) else s for s in doc.get("scores", []))
    return {"listed": listed, "v2": listed_v2, "on_trace": on_trace, "trace": bool(doc)}


async def readable(http: aiohttp.ClientSession, key: NewKey, score: str) -> int:
    async with http.get(f"{API}/api/public/scores/{score}", headers=basic_auth(key)) as r:
        return r.status


async def test_a_deleted_score_is_gone_and_stays_gone(
    http: aiohttp.ClientSession, ch: ClickHouse, pg: Postgres, project: NewKey
) -> None:
    pid, trace = project.project_id, f"t-{uuid.uuid4()}"
    doomed, kept = f"sc-{uuid.uuid4()}", f"sc-{uuid.uuid4()}"
    # Another project holds a score of the same id: it must never be touched.
    other = await create_key(pg, f"test-{uuid.uuid4().hex[:12]}")
    await ingest(http, project, scored_trace(trace, doomed, kept))
    await ingest(http, other, scored_trace(trace, doomed))
    both = sorted([doomed, kept])
    await eventually(lambda: scores_of(http, project, trace), lambda s: s["listed"] == both, timeout_s=TIMEOUT_S)
    await eventually(lambda: scores_of(http, other, trace), lambda s: s["listed"] == [doomed], timeout_s=TIMEOUT_S)

    assert await delete(http, project, doomed) == (202, {"message": "Score deletion queued successfully"})

    after = await eventually(
        lambda: scores_of(http, project, trace), lambda s: s["listed"] == [kept], timeout_s=TIMEOUT_S
    )
    assert after == {"listed": [kept], "v2": [kept], "on_trace": [kept], "trace": True}
    assert await readable(http, project, doomed) == 404
    assert await readable(http, project, kept) == 200
    assert (await scores_of(http, other, trace))["listed"] == [doomed]
    # FINAL sees it too: every row it returns of the score says is_deleted.
    rows = await ch.fetch(f"SELECT is_deleted FROM scores FINAL WHERE project_id = '{pid}' AND id = '{doomed}'")
    assert rows and all(deleted == 1 for (deleted,) in rows), rows

    # A client's retry of the whole batch: the trace and the other score again, not the deleted one.
    await ingest(http, project, scored_trace(trace, doomed, kept))
    async with http.post(
        f"{API}/api/public/scores",
        json={"id": doomed, "traceId": trace, "name": "again", "value": 9},
        headers=basic_auth(project),
    ) as r:
        assert r.status == 200, await r.text()
    # A marker after them in the trace's partition: once it is readable, they were folded.
    marker = f"sc-{uuid.uuid4()}"
    await ingest(http, project, scored_trace(trace, marker))
    await eventually(lambda: scores_of(http, project, trace), lambda s: marker in s["listed"], timeout_s=TIMEOUT_S)
    assert doomed not in (await scores_of(http, project, trace))["listed"]
    # A replay of the log from before the deletion folds nothing of it back.
    code, _, err = await agenttrace("replay", "--stage", "clickhouse", "--from", "10m", timeout_s=120)
    assert code == 0, err
    assert await readable(http, project, doomed) == 404
    # Deleting again, or an id never stored, is answered alike.
    assert (await delete(http, project, doomed))[0] == 202
    assert (await delete(http, project, f"never-{uuid.uuid4()}"))[0] == 202
    ((expiry_ok,),) = await pg.fetch(
        "SELECT expires_at > now() + interval '13 days' FROM score_tombstones WHERE project_id = %s AND score_id = %s",
        (pid, doomed),
    )
    assert expiry_ok
    # The score's own trace id is not a trace's tombstone: the trace is still whole.
    assert not await pg.fetch("SELECT 1 FROM trace_tombstones WHERE project_id = %s", (pid,))


async def test_a_score_without_a_trace_and_one_not_stored_yet(http: aiohttp.ClientSession, project: NewKey) -> None:
    session_score = f"sc-{uuid.uuid4()}"
    auth = basic_auth(project)
    async with http.post(
        f"{API}/api/public/scores",
        json={"id": session_score, "sessionId": f"s-{uuid.uuid4()}", "name": "session-quality", "value": 1},
        headers=auth,
    ) as r:
        assert r.status == 200, await r.text()
    await eventually(lambda: readable(http, project, session_score), lambda s: s == 200, timeout_s=TIMEOUT_S)
    assert (await delete(http, project, session_score))[0] == 202
    await eventually(lambda: readable(http, project, session_score), lambda s: s == 404, timeout_s=TIMEOUT_S)

    # Deleted before it was ever sent (or while in flight): when it comes, it is not kept.
    early, trace = f"sc-{uuid.uuid4()}", f"t-{uuid.uuid4()}"
    assert (await delete(http, project, early))[0] == 202
    await ingest(http, project, scored_trace(trace, early, f"{early}-kept"))
    await eventually(
        lambda: scores_of(http, project, trace), lambda s: s["listed"] == [f"{early}-kept"], timeout_s=TIMEOUT_S
    )
    assert await readable(http, project, early) == 404


async def test_bad_input_and_other_callers(http: aiohttp.ClientSession, project: NewKey) -> None:
    async with http.delete(f"{API}/api/public/scores/x") as r:
        assert r.status == 401
    async with http.delete(f"{API}/api/public/scores/{'x' * 257}", headers=basic_auth(project)) as r:
        assert r.status == 400 and "scoreId" in (await r.json())["message"]
    async with http.delete(f"{API}/api/public/scores/a%00b", headers=basic_auth(project)) as r:
        assert r.status == 400


async def test_the_purge_removes_a_deleted_scores_rows(
    http: aiohttp.ClientSession, ch: ClickHouse, pg: Postgres, project: NewKey
) -> None:
    pid, trace = project.project_id, f"t-{uuid.uuid4()}"
    doomed, kept = f"sc-{uuid.uuid4()}", f"sc-{uuid.uuid4()}"
    await ingest(http, project, scored_trace(trace, doomed, kept))
    await eventually(
        lambda: scores_of(http, project, trace), lambda s: s["listed"] == sorted([doomed, kept]), timeout_s=TIMEOUT_S
    )
    assert (await delete(http, project, doomed))[0] == 202
    await eventually(lambda: readable(http, project, doomed), lambda s: s == 404, timeout_s=TIMEOUT_S)

    async def stored(score: str) -> int:
        ((n,),) = await ch.fetch(f"SELECT count() FROM scores WHERE project_id = '{pid}' AND id = '{score}'")
        return int(n)

    # The row is there to purge: with its deleted copy once the stage writes it, one row again
    # once a merge collapses them (CI once saw that before this count).
    assert await stored(doomed) >= 1
    purge = TombstonePurge(pg, ch, PurgeConfig(after_s=0))

    async def purged() -> list[tuple[Any, ...]]:
        await purge.run_once()
        return await pg.fetch(
            "SELECT purged_at IS NOT NULL FROM score_tombstones WHERE project_id = %s AND score_id = %s", (pid, doomed)
        )

    await eventually(purged, lambda r: r == [(True,)], timeout_s=TIMEOUT_S, every_s=1)
    await eventually(lambda: stored(doomed), lambda n: n == 0, timeout_s=TIMEOUT_S)
    assert await stored(kept) == 1
    assert (await scores_of(http, project, trace))["listed"] == [kept]
