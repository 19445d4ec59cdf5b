"""/api/public/annotation-queues against the running api and Postgres: queues with the project's
score configs, their items through review, assignments, isolation between projects, and bad
input."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey, create_key
from tests.support import API, basic_auth

pytestmark = pytest.mark.stack

URL = f"{API}/api/public/annotation-queues"


async def call(http: aiohttp.ClientSession, key: NewKey, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with http.request(method, url, headers=basic_auth(key), **kwargs) as r:
        return r.status, await r.json()


async def test_a_queue_through_review(http: aiohttp.ClientSession, project: NewKey, pg: Postgres) -> None:
    status, config = await call(
        http, project, "POST", f"{API}/api/public/score-configs", json={"name": "quality", "dataType": "BOOLEAN"}
    )
    assert status == 200
    status, queue = await call(
        http, project, "POST", URL, json={"name": "review", "description": "weekly", "scoreConfigIds": [config["id"]]}
    )
    assert status == 200, queue
    assert (queue["name"], queue["description"], queue["scoreConfigIds"]) == ("review", "weekly", [config["id"]])
    status, body = await call(http, project, "POST", URL, json={"name": "review", "scoreConfigIds": []})
    assert status == 409, body
    status, other_queue = await call(http, project, "POST", URL, json={"name": "later", "scoreConfigIds": []})
    assert status == 200
    status, page = await call(http, project, "GET", URL)
    assert [q["name"] for q in page["data"]] == ["later", "review"] and page["meta"]["totalItems"] == 2
    assert (await call(http, project, "GET", f"{URL}/{queue['id']}"))[1] == queue

    items = f"{URL}/{queue['id']}/items"
    made = []
    for kind, object_id in (("TRACE", "t-1"), ("OBSERVATION", "o-1"), ("SESSION", "s-1")):
        status, item = await call(http, project, "POST", items, json={"objectType": kind, "objectId": object_id})
        assert status == 200, item
        assert (item["status"], item["completedAt"], item["queueId"]) == ("PENDING", None, queue["id"])
        made.append(item)
    status, done = await call(http, project, "PATCH", f"{items}/{made[0]['id']}", json={"status": "COMPLETED"})
    assert status == 200 and done["status"] == "COMPLETED" and done["completedAt"]
    status, pending = await call(http, project, "GET", items, params={"status": "PENDING"})
    assert [i["objectId"] for i in pending["data"]] == ["o-1", "s-1"] and pending["meta"]["totalItems"] == 2
    assert (await call(http, project, "GET", f"{items}/{made[0]['id']}"))[1] == done
    status, removed = await call(http, project, "DELETE", f"{items}/{made[1]['id']}")
    assert status == 200 and removed["success"] is True
    assert (await call(http, project, "GET", f"{items}/{made[1]['id']}"))[0] == 404
    assert (await call(http, project, "GET", items))[1]["meta"]["totalItems"] == 2
    # An item of one queue is not found under another.
    assert (await call(http, project, "GET", f"{URL}/{other_queue['id']}/items/{made[0]['id']}"))[0] == 404

    assignments = f"{URL}/{queue['id']}/assignments"
    status, assigned = await call(http, project, "POST", assignments, json={"userId": "ada"})
    assert status == 200 and assigned == {"userId": "ada", "queueId": queue["id"], "projectId": project.project_id}
    assert (await call(http, project, "POST", assignments, json={"userId": "ada"}))[0] == 200  # again: idempotent
    status, gone = await call(http, project, "DELETE", assignments, json={"userId": "ada"})
    assert status == 200 and gone == {"success": True}

    other = await create_key(pg, f"test-{uuid.uuid4().hex[:12]}")
    assert (await call(http, other, "GET", f"{URL}/{queue['id']}"))[0] == 404
    assert (await call(http, other, "GET", items))[0] == 404
    assert (await call(http, other, "POST", items, json={"objectType": "TRACE", "objectId": "t"}))[0] == 404
    assert (await call(http, other, "POST", assignments, json={"userId": "eve"}))[0] == 404
    assert (await call(http, other, "GET", URL))[1]["data"] == []
    # Another project's score config cannot be a queue's.
    status, body = await call(http, other, "POST", URL, json={"name": "x", "scoreConfigIds": [config["id"]]})
    assert status == 400 and "not found" in body["message"]


@pytest.mark.parametrize(
    ("path", "method", "doc", "status"),
    [
        ("", "POST", [], 400),
        ("", "POST", {"scoreConfigIds": []}, 400),
        ("", "POST", {"name": "", "scoreConfigIds": []}, 400),
        ("", "POST", {"name": "q"}, 400),
        ("", "POST", {"name": "q", "scoreConfigIds": [1]}, 400),
        ("", "POST", {"name": "q", "scoreConfigIds": ["nope"]}, 400),
        ("/{queue}/items", "POST", {"objectType": "PROMPT", "objectId": "x"}, 400),
        ("/{queue}/items", "POST", {"objectType": "TRACE"}, 400),
        ("/{queue}/items", "POST", {"objectType": "TRACE", "objectId": "x", "status": "DONE"}, 400),
        ("/{queue}/items/{item}", "PATCH", {"status": "DONE"}, 400),
        ("/{queue}/items/{item}", "PATCH", [], 400),
        ("/{queue}/assignments", "POST", {}, 400),
        ("/{queue}/assignments", "DELETE", {"userId": 5}, 400),
        ("/not-a-uuid/items", "POST", {"objectType": "TRACE", "objectId": "x"}, 404),
        (f"/{uuid.uuid4()}", "GET", None, 404),
        ("/{queue}/items/not-a-uuid", "PATCH", {"status": "COMPLETED"}, 404),
    ],
)
async def test_bad_requests_are_refused(
    http: aiohttp.ClientSession, project: NewKey, path: str, method: str, doc: Any, status: int
) -> None:
    _, queue = await call(http, project, "POST", URL, json={"name": f"q-{uuid.uuid4().hex[:6]}", "scoreConfigIds": []})
    _, item = await call(
        http, project, "POST", f"{URL}/{queue['id']}/items", json={"objectType": "TRACE", "objectId": "t"}
    )
    url = URL + path.format(queue=queue["id"], item=item["id"])
    got, body = await call(http, project, method, url, **({} if doc is None else {"json": doc}))
    assert got == status, body
    assert body["message"]
