"""/api/public/score-configs: Langfuse's score configs, in its paths and shapes; and the check
of every score that names one (configId), in the batch API and the scores API alike.

Configs live in Postgres (sinks/postgres/score_configs.py), scoped by the key's project. A score
naming a config is checked against it before it is accepted, in one query per request for all
the configs the request's scores name: not found answers 404 for that score, a value outside the
config 400 (in a batch: in its 207 list, the other events kept), as Langfuse refuses them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from ingest.auth import AuthUnavailable
from ingest.encoding import ClientError
from ingest.intake import Intake
from ingest.params import Params
from sinks.postgres.client import PostgresError
from sinks.postgres.score_configs import (
    ScoreConfig,
    ScoreConfigError,
    ScoreConfigTable,
    check_score,
    parse_new,
    parse_update,
)

PATH = "/api/public/score-configs"
ITEM_PATH = "/api/public/score-configs/{configId}"


class NotFound(ClientError):
    status = 404


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, list_configs, allow_head=False)
    app.router.add_post(PATH, create_config)
    app.router.add_get(ITEM_PATH, get_config, allow_head=False)
    app.router.add_patch(ITEM_PATH, update_config)


async def create_config(request: web.Request) -> web.Response:
    intake: Intake = request.app["intake"]
    project_id, table = await _caller(request)
    new = _checked(parse_new, await intake.json(request))
    created = await _stored(table.create(project_id, new))
    request["log_msg"] = "score config created"
    request["log"] = {"config_id": created.id}
    return _json(config_json(created, project_id))


async def get_config(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    found = await _stored(table.get(project_id, request.match_info["configId"]))
    return _json(config_json(found, project_id))


async def list_configs(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    page, limit = Params(request).page(100)
    configs, total = await _stored(table.page(project_id, limit, (page - 1) * limit))
    meta = {"page": page, "limit": limit, "totalItems": total, "totalPages": math.ceil(total / limit)}
    return _json({"data": [config_json(c, project_id) for c in configs], "meta": meta})


async def update_config(request: web.Request) -> web.Response:
    intake: Intake = request.app["intake"]
    project_id, table = await _caller(request)
    change = _checked(parse_update, await intake.json(request))
    updated = await _stored(table.update(project_id, request.match_info["configId"], change))
    request["log_msg"] = "score config updated"
    request["log"] = {"config_id": updated.id}
    return _json(config_json(updated, project_id))


async def refused_scores(
    request: web.Request, project_id: str, bodies: Sequence[dict[str, Any]]
) -> list[ClientError | None]:
    """For each score body that names a config: None when it holds to it (and has taken the
    config's name and data type), else why not. One query for the lot; 503 when Postgres is
    unavailable (the scores cannot be judged, so none of them is accepted)."""
    ids = sorted({str(b["configId"]) for b in bodies})
    configs: dict[str, ScoreConfig] = await _stored(ScoreConfigTable(request.app["postgres"]).by_ids(project_id, ids))
    out: list[ClientError | None] = []
    for body in bodies:
        try:
            check_score(configs.get(str(body["configId"])), body)
        except ScoreConfigError as exc:
            out.append(_refusal(exc))
        else:
            out.append(None)
    return out


def config_json(c: ScoreConfig, project_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": c.id,
        "name": c.name,
        "createdAt": _iso(c.created_at),
        "updatedAt": _iso(c.updated_at),
        "projectId": project_id,
        "dataType": c.data_type,
        "isArchived": c.is_archived,
        "description": c.description,
    }
    if c.data_type == "NUMERIC":
        doc.update(minValue=c.min_value, maxValue=c.max_value)
    else:
        doc["categories"] = c.categories
    return doc


def _checked(check: Any, *args: Any) -> Any:
    try:
        return check(*args)
    except ScoreConfigError as exc:
        raise _refusal(exc) from None


def _refusal(exc: ScoreConfigError) -> ClientError:
    return NotFound(str(exc)) if exc.status == 404 else ClientError(str(exc))


async def _stored(pending: Any) -> Any:
    """The store's answer; its refusals as the client's 400 or 404, its outage as 503."""
    try:
        return await pending
    except ScoreConfigError as exc:
        raise _refusal(exc) from None
    except PostgresError as exc:
        if exc.permanent:  # text Postgres cannot hold (e.g. a lone surrogate)
            raise ClientError(f"the score config was refused: {exc}") from None
        raise AuthUnavailable(str(exc)) from exc


async def _caller(request: web.Request) -> tuple[str, ScoreConfigTable]:
    intake: Intake = request.app["intake"]
    caller = await intake.caller(request)
    return caller.project_id, ScoreConfigTable(request.app["postgres"])


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc), content_type="application/json")
