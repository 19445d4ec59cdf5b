"""/api/public/v2/prompts: Langfuse's prompt management, in its paths and shapes.

The SDKs' `get_prompt`/`getPrompt` read `GET /api/public/v2/prompts/{name}` (a folder's `/`
percent-encoded in the name), by `version` or `label` (`production` when neither), and
`create_prompt`/`update_prompt` write through POST and PATCH. Prompts live in Postgres
(sinks/postgres/prompts.py), scoped by the key's project; references to other prompts are
resolved unless `resolve=false`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from ingest.encoding import ClientError
from ingest.intake import Intake
from ingest.params import Params
from ingest.stored import NotFound, checked, iso, json_answer, stored
from sinks.postgres.prompts import (
    LATEST,
    PromptMeta,
    PromptTable,
    PromptVersion,
    check_labels,
    check_name,
    parse_new,
)

PATH = "/api/public/v2/prompts"
# `{name:.+}`: a name in a folder keeps its `/` when a client sends it unencoded.
ITEM_PATH = "/api/public/v2/prompts/{promptName:.+}"
VERSION_PATH = "/api/public/v2/prompts/{promptName:.+}/versions/{version}"
_MAX_VERSION = 2**31 - 1


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, list_prompts, allow_head=False)
    app.router.add_post(PATH, create_prompt)
    # The version path first: the item path's name would take "x/versions/2" whole.
    app.router.add_patch(VERSION_PATH, update_labels)
    app.router.add_get(ITEM_PATH, get_prompt, allow_head=False)
    app.router.add_delete(ITEM_PATH, delete_prompt)


async def create_prompt(request: web.Request) -> web.Response:
    intake: Intake = request.app["intake"]
    project_id, table = await _caller(request)
    doc = await intake.json(request)
    new = checked(parse_new, doc)
    created = await stored(table.create(project_id, new))
    request["log_msg"] = "prompt created"
    request["log"] = {"prompt": created.name, "version": created.version}
    return json_answer(prompt_json(created), 201)


async def get_prompt(request: web.Request) -> web.StreamResponse:
    project_id, table = await _caller(request)
    name = checked(check_name, request.match_info["promptName"])
    p = Params(request)
    version = _version_param(p)
    label = p.text("label")
    if version is not None and label is not None:
        raise ClientError("give either version or label, not both")
    found = await stored(table.get(project_id, name, version=version, label=label))
    # The text as read, its resolved copy and the answer's bytes.
    request.app["intake"].hold_answer(request, 3 * len(found.prompt_json))
    if p.flag("resolve") is not False:
        found = await stored(table.resolve(project_id, found))
    return await _sent(request, orjson.dumps(prompt_json(found)))


async def list_prompts(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    p = Params(request)
    page, limit = p.page()
    since, until = p.time("fromUpdatedAt"), p.time("toUpdatedAt")
    metas, total = await stored(
        table.names(
            project_id,
            name=p.text("name"),
            label=p.text("label"),
            tag=p.text("tag"),
            since=None if since is None else datetime.fromtimestamp(since / 1e6, UTC),
            until=None if until is None else datetime.fromtimestamp(until / 1e6, UTC),
            offset=(page - 1) * limit,
            limit=limit,
        )
    )
    meta = {"page": page, "limit": limit, "totalItems": total, "totalPages": math.ceil(total / limit)}
    return json_answer({"data": [meta_json(m) for m in metas], "meta": meta})


async def update_labels(request: web.Request) -> web.Response:
    intake: Intake = request.app["intake"]
    project_id, table = await _caller(request)
    name = checked(check_name, request.match_info["promptName"])
    version = _version(request.match_info["version"])
    doc = await intake.json(request)
    if not isinstance(doc, dict) or not isinstance(doc.get("newLabels"), list):
        raise ClientError("the body must be an object with newLabels, a list of labels")
    labels = checked(check_labels, doc["newLabels"], "newLabels")
    if LATEST in labels:
        raise ClientError("the latest label always names the newest version; it cannot be set")
    updated = await stored(table.set_labels(project_id, name, version, labels))
    request["log_msg"] = "prompt labels set"
    request["log"] = {"prompt": name, "version": version, "labels": labels}
    return json_answer(prompt_json(updated))


async def delete_prompt(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    name = checked(check_name, request.match_info["promptName"])
    p = Params(request)
    version, label = _version_param(p), p.text("label")
    if version is not None and label is not None:
        raise ClientError("give either version or label, not both")
    if not await stored(table.delete(project_id, name, version=version, label=label)):
        raise NotFound(f"Prompt not found: {name!r}")
    request["log_msg"] = "prompt deleted"
    request["log"] = {"prompt": name, "version": version, "label": label}
    return web.Response(status=204)


def prompt_json(v: PromptVersion) -> dict[str, Any]:
    return {
        "id": v.id,
        "name": v.name,
        "version": v.version,
        "type": v.type,
        # As stored: a large prompt is read and sent without becoming objects in between.
        "prompt": orjson.Fragment(v.prompt_json),
        "config": orjson.Fragment(v.config_json),
        "labels": v.labels,
        "tags": v.tags,
        "commitMessage": v.commit_message,
        "resolutionGraph": v.resolution_graph,
        "createdAt": iso(v.created_at),
        "updatedAt": iso(v.updated_at),
        "createdBy": "API",
    }


def meta_json(m: PromptMeta) -> dict[str, Any]:
    return {
        "name": m.name,
        "type": m.type,
        "versions": m.versions,
        "labels": m.labels,
        "tags": m.tags,
        "lastUpdatedAt": iso(m.last_updated_at),
        "lastConfig": orjson.Fragment(m.last_config_json),
    }


def _version_param(p: Params) -> int | None:
    raw = p.text("version")
    return None if raw is None else _version(raw)


def _version(raw: str) -> int:
    """A version as the path or the query gives it: ASCII digits, 1 to 2^31 - 1."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and 0 < int(raw) <= _MAX_VERSION):
        raise ClientError(f"invalid version: {raw!r} is not a positive integer")
    return int(raw)


async def _caller(request: web.Request) -> tuple[str, PromptTable]:
    intake: Intake = request.app["intake"]
    caller = await intake.caller(request)
    return caller.project_id, PromptTable(request.app["postgres"])


async def _sent(request: web.Request, body: bytes) -> web.StreamResponse:
    """The answer written before the handler returns, so that its bytes stay counted in
    flight (hold_answer) until the client has taken them: built and returned, 300 reads of
    1 MiB prompts at once left the api at ~200 MB (bench/hostile.py)."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body)
    await response.write_eof()
    return response
