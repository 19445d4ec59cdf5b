"""/api/public/comments: Langfuse's comments on traces, observations, sessions and prompt
versions, in its paths and shapes (sinks/postgres/comments.py).

A comment is about an object that exists in the key's project, as Langfuse checks: a trace or an
observation ClickHouse holds (one just sent may take a moment to be there), a session the
Postgres stage has counted, a prompt version. Otherwise 404.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from health.http import error
from ingest.encoding import ClientError
from ingest.intake import Intake
from ingest.params import Params
from ingest.read import meta
from ingest.stored import NotFound, checked, iso, json_answer, stored
from sinks.clickhouse.client import ClickHouseError
from sinks.clickhouse.reader import Reader
from sinks.postgres.comments import Comment, CommentTable, object_type, parse_new

PATH = "/api/public/comments"
ITEM_PATH = "/api/public/comments/{commentId}"


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, list_comments, allow_head=False)
    app.router.add_post(PATH, create_comment)
    app.router.add_get(ITEM_PATH, get_comment, allow_head=False)


async def create_comment(request: web.Request) -> web.Response:
    intake: Intake = request.app["intake"]
    project_id, table = await _caller(request)
    new = checked(parse_new, await intake.json(request))
    try:
        found = await _exists(request, table, project_id, new.object_type, new.object_id)
    except ClickHouseError:
        return error(503, "unavailable", "the trace store is unavailable; retry later", {"Retry-After": "5"})
    if not found:
        raise NotFound(f"No {new.object_type.lower()} with id {new.object_id!r} in the project")
    created = await stored(table.create(project_id, new))
    request["log_msg"] = "comment created"
    request["log"] = {"comment_id": created.id, "object_type": created.object_type}
    return json_answer({"id": created.id})


async def get_comment(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    found = await stored(table.get(project_id, request.match_info["commentId"]))
    return json_answer(comment_json(found, project_id))


async def list_comments(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    p = Params(request)
    page, limit = p.page()
    kind, object_id = p.text("objectType"), p.text("objectId")
    if object_id is not None and kind is None:
        raise ClientError("objectType is required when objectId is provided")
    comments, total = await stored(
        table.page(
            project_id,
            object_type=None if kind is None else checked(object_type, kind),
            object_id=object_id,
            author_user_id=p.text("authorUserId"),
            limit=limit,
            offset=(page - 1) * limit,
        )
    )
    return json_answer({"data": [comment_json(c, project_id) for c in comments], "meta": meta(page, limit, total)})


def comment_json(c: Comment, project_id: str) -> dict[str, Any]:
    return {
        "id": c.id,
        "projectId": project_id,
        "createdAt": iso(c.created_at),
        "updatedAt": iso(c.updated_at),
        "objectType": c.object_type,
        "objectId": c.object_id,
        "content": c.content,
        "authorUserId": c.author_user_id,
    }


async def _exists(request: web.Request, table: CommentTable, project_id: str, kind: str, object_id: str) -> bool:
    reader: Reader = request.app["reader"]
    if kind == "TRACE":
        return bool(await reader.trace_context(project_id, [object_id]))
    if kind == "OBSERVATION":
        return await reader.observation(project_id, object_id) is not None
    return await stored(table.described(project_id, kind, object_id))


async def _caller(request: web.Request) -> tuple[str, CommentTable]:
    intake: Intake = request.app["intake"]
    caller = await intake.caller(request)
    return caller.project_id, CommentTable(request.app["postgres"])
