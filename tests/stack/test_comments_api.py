"""/api/public/comments against the running api, Postgres and ClickHouse: comments on each kind
of object, which must exist in the key's project, read back one by one and by object, paged."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey, create_key
from tests.support import API, basic_auth, eventually

pytestmark = pytest.mark.stack

URL = f"{API}/api/public/comments"


async def call(http: aiohttp.ClientSession, key: NewKey, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with http.request(method, url, headers=basic_auth(key), **kwargs) as r:
        return r.status, await r.json()


async def test_comments_on_every_kind_of_object(http: aiohttp.ClientSession, project: NewKey, pg: Postgres) -> None:
    trace, generation, session = str(uuid.uuid4()), str(uuid.uuid4()), f"s-{uuid.uuid4().hex[:8]}"
    batch = [
        {
            "id": "e1",
            "type": "trace-create",
            "timestamp": "2026-12-06T10:00:00Z",
            "body": {"id": trace, "sessionId": session},
        },
        {
            "id": "e2",
            "type": "generation-create",
            "timestamp": "2026-12-06T10:00:01Z",
            "body": {"id": generation, "traceId": trace, "name": "g"},
        },
    ]
    async with http.post(f"{API}/api/public/ingestion", json={"batch": batch}, headers=basic_auth(project)) as r:
        assert r.status == 207
    status, prompt = await call(
        http, project, "POST", f"{API}/api/public/v2/prompts", json={"name": "p", "prompt": "x"}
    )
    assert status == 201
    targets = {"TRACE": trace, "OBSERVATION": generation, "SESSION": session, "PROMPT": prompt["id"]}

    async def comment(kind: str, object_id: str, content: str, **more: Any) -> tuple[int, Any]:
        doc = {"projectId": "ignored", "objectType": kind, "objectId": object_id, "content": content, **more}
        return await call(http, project, "POST", URL, json=doc)

    # The trace and its session exist once the stages have folded them.
    await eventually(lambda: comment("SESSION", session, "  first look  "), lambda r: r[0] == 200, timeout_s=30)
    await eventually(lambda: comment("TRACE", trace, "slow tool call"), lambda r: r[0] == 200, timeout_s=30)
    made = {}
    for kind in ("OBSERVATION", "PROMPT"):
        status, body = await comment(kind, targets[kind], f"about the {kind.lower()}", authorUserId="u-1")
        assert status == 200, body
        made[kind] = body["id"]

    status, one = await call(http, project, "GET", f"{URL}/{made['PROMPT']}")
    assert status == 200
    assert {k: one[k] for k in ("projectId", "objectType", "objectId", "content", "authorUserId")} == {
        "projectId": project.project_id,
        "objectType": "PROMPT",
        "objectId": prompt["id"],
        "content": "about the prompt",
        "authorUserId": "u-1",
    }
    status, page = await call(http, project, "GET", URL, params={"limit": "3"})
    assert status == 200 and page["meta"] == {"page": 1, "limit": 3, "totalItems": 4, "totalPages": 2}
    assert [c["content"] for c in page["data"]] == ["first look", "slow tool call", "about the observation"]
    status, page = await call(http, project, "GET", URL, params={"objectType": "TRACE", "objectId": trace})
    assert [c["content"] for c in page["data"]] == ["slow tool call"]
    status, page = await call(http, project, "GET", URL, params={"authorUserId": "u-1"})
    assert sorted(c["objectType"] for c in page["data"]) == ["OBSERVATION", "PROMPT"]

    other = await create_key(pg, f"test-{uuid.uuid4().hex[:12]}")
    assert (await call(http, other, "GET", f"{URL}/{made['PROMPT']}"))[0] == 404
    assert (await call(http, other, "GET", URL))[1]["data"] == []
    for kind, object_id in targets.items():  # another project's objects cannot be commented on
        doc = {"projectId": project.project_id, "objectType": kind, "objectId": object_id, "content": "x"}
        assert (await call(http, other, "POST", URL, json=doc))[0] == 404, kind


@pytest.mark.parametrize(
    ("doc", "status"),
    [
        ([], 400),
        ({"objectType": "TRACE", "objectId": "t", "content": "x"}, 400),
        ({"projectId": "p", "objectType": "DATASET", "objectId": "t", "content": "x"}, 400),
        ({"projectId": "p", "objectType": "TRACE", "objectId": "", "content": "x"}, 400),
        ({"projectId": "p", "objectType": "TRACE", "objectId": "t", "content": "   "}, 400),
        ({"projectId": "p", "objectType": "TRACE", "objectId": "t", "content": "x" * 5001}, 400),
        ({"projectId": "p", "objectType": "TRACE", "objectId": "t", "content": 5}, 400),
        ({"projectId": "p", "objectType": "TRACE", "objectId": "t", "content": "x", "authorUserId": 3}, 400),
        ({"projectId": "p", "objectType": "TRACE", "objectId": str(uuid.uuid4()), "content": "x"}, 404),
        ({"projectId": "p", "objectType": "PROMPT", "objectId": "not-a-uuid", "content": "x"}, 404),
        ({"projectId": "p", "objectType": "SESSION", "objectId": "never", "content": "x"}, 404),
    ],
)
async def test_bad_comments_are_refused(http: aiohttp.ClientSession, project: NewKey, doc: Any, status: int) -> None:
    got, body = await call(http, project, "POST", URL, json=doc)
    assert got == status, body
    assert body["message"]


async def test_bad_reads_are_refused(http: aiohttp.ClientSession, project: NewKey) -> None:
    assert (await call(http, project, "GET", URL, params={"objectId": "t"}))[0] == 400
    assert (await call(http, project, "GET", URL, params={"objectType": "NOPE"}))[0] == 400
    assert (await call(http, project, "GET", URL, params={"limit": "0"}))[0] == 400
    assert (await call(http, project, "GET", f"{URL}/{uuid.uuid4()}"))[0] == 404
    assert (await call(http, project, "GET", f"{URL}/x"))[0] == 404
