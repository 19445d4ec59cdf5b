"""/api/public/annotation-queues: Langfuse's annotation queues, their items and assignments, in
its paths and shapes (sinks/postgres/annotation_queues.py).

A queue's score configs must be the project's; its name is unique in the project (409). Users
are not a directory here: an assignment names a user id as given (Langfuse checks membership).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ingest.encoding import ClientError
from ingest.intake import Intake
from ingest.params import Params
from ingest.read import meta
from ingest.stored import checked, iso, json_answer, stored
from sinks.postgres.annotation_queues import (
    Queue,
    QueueItem,
    QueueTable,
    parse_item,
    parse_queue,
    parse_user,
    status,
)

PATH = "/api/public/annotation-queues"
QUEUE_PATH = PATH + "/{queueId}"
ITEMS_PATH = QUEUE_PATH + "/items"
ITEM_PATH = ITEMS_PATH + "/{itemId}"
ASSIGNMENTS_PATH = QUEUE_PATH + "/assignments"


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, list_queues, allow_head=False)
    app.router.add_post(PATH, create_queue)
    app.router.add_get(QUEUE_PATH, get_queue, allow_head=False)
    app.router.add_get(ITEMS_PATH, list_items, allow_head=False)
    app.router.add_post(ITEMS_PATH, create_item)
    app.router.add_get(ITEM_PATH, get_item, allow_head=False)
    app.router.add_patch(ITEM_PATH, update_item)
    app.router.add_delete(ITEM_PATH, delete_item)
    app.router.add_post(ASSIGNMENTS_PATH, assign)
    app.router.add_delete(ASSIGNMENTS_PATH, unassign)


async def list_queues(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    page, limit = Params(request).page()
    queues, total = await stored(table.queues(project_id, limit, (page - 1) * limit))
    return json_answer({"data": [queue_json(q) for q in queues], "meta": meta(page, limit, total)})


async def create_queue(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    new = checked(parse_queue, await _body(request))
    created = await stored(table.create(project_id, new))
    request["log_msg"] = "annotation queue created"
    request["log"] = {"queue_id": created.id}
    return json_answer(queue_json(created))


async def get_queue(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    return json_answer(queue_json(await stored(table.get(project_id, request.match_info["queueId"]))))


async def list_items(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    p = Params(request)
    page, limit = p.page()
    given = p.text("status")
    state = None if given is None else checked(status, given)
    items, total = await stored(
        table.items(project_id, request.match_info["queueId"], state, limit, (page - 1) * limit)
    )
    return json_answer({"data": [item_json(i) for i in items], "meta": meta(page, limit, total)})


async def create_item(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    kind, object_id, state = checked(parse_item, await _body(request))
    item = await stored(table.add_item(project_id, request.match_info["queueId"], kind, object_id, state))
    request["log_msg"] = "annotation queue item created"
    request["log"] = {"queue_id": item.queue_id, "item_id": item.id}
    return json_answer(item_json(item))


async def get_item(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    found = await stored(table.item(project_id, request.match_info["queueId"], request.match_info["itemId"]))
    return json_answer(item_json(found))


async def update_item(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    doc = await _body(request)
    if not isinstance(doc, dict):
        raise ClientError("the body must be an object with status")
    given = doc.get("status")
    state = None if given is None else checked(status, given)
    queue_id, item_id = request.match_info["queueId"], request.match_info["itemId"]
    return json_answer(item_json(await stored(table.set_status(project_id, queue_id, item_id, state))))


async def delete_item(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    await stored(table.remove_item(project_id, request.match_info["queueId"], request.match_info["itemId"]))
    request["log_msg"] = "annotation queue item deleted"
    return json_answer({"success": True, "message": "Item removed from queue"})


async def assign(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    user_id = checked(parse_user, await _body(request))
    queue_id = request.match_info["queueId"]
    await stored(table.assign(project_id, queue_id, user_id))
    return json_answer({"userId": user_id, "queueId": queue_id, "projectId": project_id})


async def unassign(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    user_id = checked(parse_user, await _body(request))
    await stored(table.unassign(project_id, request.match_info["queueId"], user_id))
    return json_answer({"success": True})


def queue_json(q: Queue) -> dict[str, Any]:
    return {
        "id": q.id,
        "name": q.name,
        "description": q.description,
        "scoreConfigIds": q.score_config_ids,
        "createdAt": iso(q.created_at),
        "updatedAt": iso(q.updated_at),
    }


def item_json(i: QueueItem) -> dict[str, Any]:
    return {
        "id": i.id,
        "queueId": i.queue_id,
        "objectId": i.object_id,
        "objectType": i.object_type,
        "status": i.status,
        "completedAt": None if i.completed_at is None else iso(i.completed_at),
        "createdAt": iso(i.created_at),
        "updatedAt": iso(i.updated_at),
    }


async def _body(request: web.Request) -> Any:
    intake: Intake = request.app["intake"]
    return await intake.json(request)


async def _caller(request: web.Request) -> tuple[str, QueueTable]:
    intake: Intake = request.app["intake"]
    caller = await intake.caller(request)
    return caller.project_id, QueueTable(request.app["postgres"])
