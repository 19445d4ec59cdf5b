"""/api/public/models: model price definitions in Langfuse's shapes, scoped by the key's project.

A project sees its own definitions and the shipped defaults (`isLangfuseManaged: true`, which
cannot be changed or deleted: a project overrides one by defining the same model itself).
Changes reach every worker within seconds (sinks/postgres/models.py, PriceRefresher).
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from aiohttp import web

from health.http import error
from ingest.encoding import ClientError
from ingest.intake import Intake
from ingest.stored import stored
from sinks.postgres.models import Model, ModelTable, parse_definition, tier_id

PATH = "/api/public/models"
ITEM_PATH = "/api/public/models/{id}"
_MAX_LIMIT = 100


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, list_models)
    app.router.add_post(PATH, create_model)
    app.router.add_get(ITEM_PATH, get_model)
    app.router.add_delete(ITEM_PATH, delete_model)


async def list_models(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    page, limit = _positive(request, "page", 1), _positive(request, "limit", 50)
    if limit > _MAX_LIMIT:
        raise ClientError(f"limit must be at most {_MAX_LIMIT}")
    models, total = await stored(table.visible(project_id, offset=(page - 1) * limit, limit=limit))
    meta = {"page": page, "limit": limit, "totalItems": total, "totalPages": math.ceil(total / limit)}
    return _json({"data": [model_json(m) for m in models], "meta": meta})


async def create_model(request: web.Request) -> web.Response:
    intake: Intake = request.app["intake"]
    project_id, table = await _caller(request)
    try:
        new = parse_definition(await intake.json(request))
    except ValueError as exc:
        raise ClientError(str(exc)) from None
    model = await stored(table.create(project_id, new))
    request["log_msg"] = "model created"
    request["log"] = {"model_id": model.id, "model_name": model.model_name}
    return _json(model_json(model))


async def get_model(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    model_id = request.match_info["id"]
    model = None if _names_none(model_id) else await stored(table.get(project_id, model_id))
    if model is None:
        return error(404, "not_found", "Model not found")
    return _json(model_json(model))


async def delete_model(request: web.Request) -> web.Response:
    project_id, table = await _caller(request)
    model_id = request.match_info["id"]
    if _names_none(model_id):
        return error(404, "not_found", "Model not found")
    if await stored(table.delete(project_id, model_id)):
        return _json({"message": "Model successfully deleted"})
    # Langfuse answers 404 for a shipped model too; the message says why it cannot go.
    return error(
        404,
        "not_found",
        "No model with this id found in the project. Models managed by AgentTrace cannot be deleted;"
        " define a model of the same modelName in the project to override one.",
    )


def model_json(m: Model) -> dict[str, Any]:
    prices = m.prices
    return {
        "id": m.id,
        "modelName": m.model_name,
        "matchPattern": m.match_pattern,
        "startDate": m.start_date.isoformat().replace("+00:00", "Z") if m.start_date else None,
        "unit": m.unit,
        "inputPrice": prices.get("input"),
        "outputPrice": prices.get("output"),
        "totalPrice": prices.get("total"),
        "tokenizerId": m.tokenizer_id,
        "tokenizerConfig": m.tokenizer_config,
        "isLangfuseManaged": m.project_id is None,
        "createdAt": m.created_at.isoformat().replace("+00:00", "Z"),
        "prices": {usage: {"price": price} for usage, price in prices.items()},
        "pricingTiers": [_tier(m.id, m.default_tier, None, [], prices)]
        + [_tier(m.id, t["name"], t["priority"], t["conditions"], t["prices"]) for t in m.tiers],
    }


def _tier(
    model_id: str, name: str, priority: int | None, conditions: list[dict[str, Any]], prices: dict[str, float]
) -> dict[str, Any]:
    """A tier in Langfuse's shape; priority None: the default tier."""
    return {
        "id": tier_id(model_id, priority),
        "name": name,
        "isDefault": priority is None,
        "priority": priority or 0,
        "conditions": conditions,
        "prices": dict(prices),
    }


async def _caller(request: web.Request) -> tuple[str, ModelTable]:
    intake: Intake = request.app["intake"]
    caller = await intake.caller(request)
    return caller.project_id, ModelTable(request.app["postgres"])


def _names_none(model_id: str) -> bool:
    # Postgres text cannot hold NUL, so no stored id has one: asking the store would fail.
    return "\x00" in model_id


def _positive(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or int(raw) < 1:
        raise ClientError(f"{name} must be a positive integer")
    return int(raw)


def _json(doc: Any) -> web.Response:
    return web.Response(body=orjson.dumps(doc), content_type="application/json")
