"""/api/public/score-configs: Langfuse's score configs, in its paths and shapes; and the check
of every score that names one (configId), in the batch API and the scores API alike.

Configs live in Postgres (sinks/postgres/score_configs.py), scoped by the key's project. A score
naming a config is checked against it before it is accepted, in one query per request for all
the configs the request's scores name: not found answers 404 for that score, a value outside the
config 400 (in a batch: in its 207 list, the other events kept), as Langfuse refuses them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ingest.encoding import ClientError
from ingest.intake import Intake
from ingest.params import Params
from ingest.read import meta
from ingest.stored import checked, iso, json_answer, refusal, stored
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


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, list_configs, allow_head=False)
    app.router.add_post(PATH, create_config)
    app.router.add_get(ITEM_PATH, get_config, allow_head=False)
    app.router.add_patch(ITEM_PATH, update_config)


async def create_config(request: web.Request) -> web.Response:
    intake: Intake = request.app["intake"]
    project_id, table = await _caller(request)
    new = checked(parse_new, await intake.json(request))
    created = await stored(table.create(project_id, new))
    request["log_msg"] = "score config created"
    request["log"] = {"config_id": created.id}
    return json_answer(config_json(created, project_id))


async def get_config(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    found = await stored(table.get(project_id, request.match_info["configId"]))
    return json_answer(config_json(found, project_id))


async def list_configs(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    page, limit = Params(request).page(100)
    configs, total = await stored(table.page(project_id, limit, (page - 1) * limit))
    return json_answer({"data": [config_json(c, project_id) for c in configs], "meta": meta(page, limit, total)})


async def update_config(request: web.Request) -> web.Response:
    intake: Intake = request.app["intake"]
    project_id, table = await _caller(request)
    change = checked(parse_update, await intake.json(request))
    updated = await stored(table.update(project_id, request.match_info["configId"], change))
    request["log_msg"] = "score config updated"
    request["log"] = {"config_id": updated.id}
    return json_answer(config_json(updated, project_id))


async def refused_scores(
    request: web.Request, project_id: str, events: list[tuple[str, str, int, dict[str, Any]]]
) -> list[tuple[int, ClientError]]:
    """Check the normalized events' scores that name a config against it, and take out of
    `events` those that do not hold to it; where each was and why, last first. The others take
    the config's name and data type. One query for the lot; 503 when Postgres is unavailable
    (the scores cannot be judged, so none of them is accepted)."""
    named = [i for i, (_, etype, _, body) in enumerate(events) if etype == "score-create" and body.get("configId")]
    if not named:
        return []
    ids = sorted({str(events[i][3]["configId"]) for i in named})
    configs: dict[str, ScoreConfig] = await stored(ScoreConfigTable(request.app["postgres"]).by_ids(project_id, ids))
    refused: list[tuple[int, ClientError]] = []
    for i in reversed(named):
        body = events[i][3]
        try:
            check_score(configs.get(str(body["configId"])), body)
        except ScoreConfigError as exc:
            del events[i]
            refused.append((i, refusal(exc)))
    return refused


def config_json(c: ScoreConfig, project_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": c.id,
        "name": c.name,
        "createdAt": iso(c.created_at),
        "updatedAt": iso(c.updated_at),
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


async def _caller(request: web.Request) -> tuple[str, ScoreConfigTable]:
    intake: Intake = request.app["intake"]
    caller = await intake.caller(request)
    return caller.project_id, ScoreConfigTable(request.app["postgres"])
