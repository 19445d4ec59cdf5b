"""Langfuse's public read API for traces and observations, scoped to the caller's project.

Rows come from sinks/clickhouse/reader.py and are shaped by ingest/shapes.py. Authentication
is the ingestion API's: the key decides the project, so another project's ids are simply not
found. A store failure or a read past its time limit answers 503 with Retry-After.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import wraps
from typing import Any

import orjson
from aiohttp import web
from loguru import logger

from health.http import error
from ingest import shapes
from ingest.encoding import ClientError
from ingest.filters import OBSERVATION_COLUMNS, TRACE_COLUMNS, conditions
from ingest.params import LEVELS, OBSERVATION_TYPES, Params, decode_cursor, encode_cursor
from sinks.clickhouse.client import ClickHouseError
from sinks.clickhouse.reader import Cursor, ObservationFilter, Page, Reader, TraceFilter
from sinks.postgres.client import PostgresError
from sinks.postgres.models import ModelTable
from sinks.postgres.prompts import PromptTable

TRACES_PATH = "/api/public/traces"
TRACE_PATH = "/api/public/traces/{traceId}"
OBSERVATIONS_PATH = "/api/public/observations"
OBSERVATION_PATH = "/api/public/observations/{observationId}"
OBSERVATIONS_V2_PATH = "/api/public/v2/observations"

TRACE_GROUPS = frozenset({"core", "io", "scores", "observations", "metrics"})
ORDER_FIELDS = {
    "id": "id",
    "timestamp": "timestamp",
    "name": "name",
    "userId": "user_id",
    "release": "release",
    "version": "version",
    "public": "public",
    "sessionId": "session_id",
}
V2_GROUPS = frozenset(
    {"core", "basic", "time", "io", "metadata", "model", "usage", "prompt", "metrics", "trace_context"}
)

Handler = Callable[[web.Request, str, Reader], Awaitable[Any]]


def read_handler(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Authenticates, hands the project and reader on, and answers the result as JSON."""

    @wraps(handler)
    async def handle(request: web.Request) -> web.Response:
        caller = await request.app["intake"].caller(request)
        try:
            doc = await handler(request, caller.project_id, request.app["reader"])
        except ClickHouseError as exc:
            logger.warning("read failed", request_id=request["request_id"], error=str(exc))
            return error(503, "unavailable", "the trace store is unavailable; retry later", {"Retry-After": "5"})
        if isinstance(doc, web.Response):
            return doc
        body = doc if isinstance(doc, bytes) else orjson.dumps(doc)
        return web.Response(body=body, content_type="application/json")

    return handle


@dataclass(frozen=True)
class Links:
    """What an observation's row names by key and the answer shows: its pricing model's per-unit
    prices (Langfuse's inputPrice, outputPrice and totalPrice, its model's current prices, as its
    join reads them) and its prompt version's id (promptId, which Langfuse's ingestion looks up
    by name and version; read here, so a prompt created after its generations still links)."""

    prices: dict[str, dict[str, float]]
    prompts: dict[tuple[str, int], str]

    def price(self, r: shapes.Row) -> dict[str, float] | None:
        return self.prices.get(_model_of(r))

    def prompt(self, r: shapes.Row) -> str | None:
        version = shapes.prompt_version(r["prompt_version"])
        return None if version is None else self.prompts.get((r["prompt_name"], version))


async def links(request: web.Request, project_id: str, rows: Iterable[shapes.Row], *, prompts: bool = True) -> Links:
    """The Links of these rows, in one Postgres query each (none when no row names a model or,
    with `prompts`, a prompt). When Postgres cannot answer, the observations answer without them rather than not
    at all."""
    rows = list(rows)
    model_ids = sorted({_model_of(r) for r in rows} - {""})
    versions = sorted({p for r in rows if (p := _prompt_of(r)) is not None}) if prompts else []
    pg = request.app["postgres"]
    prices: dict[str, dict[str, float]] = {}
    ids: dict[tuple[str, int], str] = {}
    try:
        if model_ids:
            prices = await ModelTable(pg).prices(project_id, model_ids)
        if versions:
            ids = await PromptTable(pg).ids(project_id, versions)
    except PostgresError as exc:
        logger.warning("model prices or prompt ids unavailable", request_id=request["request_id"], error=str(exc))
    return Links(prices, ids)


def _model_of(r: shapes.Row) -> str:
    return r.get("usage_pricing_model_id") or ""


def _prompt_of(r: shapes.Row) -> tuple[str, int] | None:
    version = shapes.prompt_version(r["prompt_version"])
    if version is None or version >= 2**31 or not r["prompt_name"]:  # no prompt has it (an int4)
        return None
    return (r["prompt_name"], version)


def not_found(what: str, ident: str) -> web.Response:
    return error(404, "not_found", f"{what} {ident!r} not found within authorized project")


def meta(page: int, limit: int, total: int) -> dict[str, int]:
    return {"page": page, "limit": limit, "totalItems": total, "totalPages": -(-total // limit)}


def trace_filter(p: Params, name_param: str = "name") -> TraceFilter:
    return TraceFilter(
        user_id=p.text("userId"),
        name=p.text(name_param),
        session_id=p.text("sessionId"),
        release=p.text("release"),
        version=p.text("version"),
        tags=p.items("tags"),
        environments=p.items("environment"),
        from_us=p.time("fromTimestamp"),
        to_us=p.time("toTimestamp"),
        conditions=conditions(p, TRACE_COLUMNS),
    )


@read_handler
async def list_traces(request: web.Request, project_id: str, reader: Reader) -> Any:
    p = Params(request)
    page, limit = p.page()
    f = trace_filter(p)
    fields = p.groups("fields", TRACE_GROUPS, TRACE_GROUPS)
    order = p.text("orderBy") or "timestamp.desc"
    field, _, direction = order.partition(".")
    if field not in ORDER_FIELDS or direction not in ("asc", "desc"):
        raise ClientError(f"invalid orderBy: {order!r}; use <field>.asc or <field>.desc")
    ordered = (ORDER_FIELDS[field], direction == "desc")

    async def body() -> bytes:
        listing = await reader.traces(project_id, f, ordered, Page(limit, (page - 1) * limit))
        observations, scores = await reader.trace_summaries(project_id, [r["id"] for r in listing.rows])
        by_trace: dict[str, list[dict[str, Any]]] = {}
        for o in observations:
            by_trace.setdefault(o["trace_id"], []).append(o)
        score_ids: dict[str, list[str]] = {}
        for sc in scores:
            score_ids.setdefault(sc["trace_id"], []).append(sc["id"])
        data = []
        for r in listing.rows:
            own = by_trace.get(r["id"], [])
            doc = shapes.trace_details(r, project_id, own, fields)
            doc["observations"] = [o["id"] for o in own] if "observations" in fields else []
            doc["scores"] = score_ids.get(r["id"], []) if "scores" in fields else []
            data.append(doc)
        return orjson.dumps({"data": data, "meta": meta(page, limit, listing.total)})

    # The answer itself is shared, not only its rows: 50 readers of a project's first page
    # spent ~12 ms of the api's CPU each building the same 50 traces' JSON.
    return await reader.shared(("traces", project_id, f, ordered, page, limit, fields), body)


@read_handler
async def get_trace(request: web.Request, project_id: str, reader: Reader) -> Any:
    fields = Params(request).groups("fields", TRACE_GROUPS, TRACE_GROUPS)
    trace_id = request.match_info["traceId"]
    trace, observations, scores = await reader.trace(project_id, trace_id)
    if trace is None:
        return not_found("trace", trace_id)
    doc = shapes.trace_details(trace, project_id, observations, fields)
    if "observations" in fields:
        linked = await links(request, project_id, observations)
        doc["observations"] = [
            shapes.observation(o, project_id, linked.price(o), linked.prompt(o)) for o in observations
        ]
    else:
        doc["observations"] = []
    v1 = [s for s in scores if (s["data_type"] or "NUMERIC") in shapes.V1_SCORE_TYPES]
    doc["scores"] = [shapes.score(s, project_id) for s in v1] if "scores" in fields else []
    return doc


def observation_filter(p: Params) -> ObservationFilter:
    return ObservationFilter(
        trace_id=p.text("traceId"),
        type=p.choice("type", OBSERVATION_TYPES),
        name=p.text("name"),
        user_id=p.text("userId"),
        session_id=p.text("sessionId"),
        parent_observation_id=p.text("parentObservationId"),
        root=p.flag("isRootObservation"),
        level=p.choice("level", LEVELS),
        version=p.text("version"),
        environments=p.items("environment"),
        from_us=p.time("fromStartTime"),
        to_us=p.time("toStartTime"),
        conditions=conditions(p, OBSERVATION_COLUMNS),
    )


@read_handler
async def list_observations(request: web.Request, project_id: str, reader: Reader) -> Any:
    p = Params(request)
    page, limit = p.page()
    listing = await reader.observations(project_id, observation_filter(p), Page(limit, (page - 1) * limit))
    linked = await links(request, project_id, listing.rows)
    data = [shapes.observation(r, project_id, linked.price(r), linked.prompt(r)) for r in listing.rows]
    return {"data": data, "meta": meta(page, limit, listing.total)}


@read_handler
async def get_observation(request: web.Request, project_id: str, reader: Reader) -> Any:
    observation_id = request.match_info["observationId"]
    row = await reader.observation(project_id, observation_id)
    if row is None:
        return not_found("observation", observation_id)
    linked = await links(request, project_id, [row])
    return shapes.observation(row, project_id, linked.price(row), linked.prompt(row))


@read_handler
async def list_observations_v2(request: web.Request, project_id: str, reader: Reader) -> Any:
    """Cursor paging: the cursor is the last row's (startTime, traceId, id), in Langfuse's keys."""
    p = Params(request)
    limit = p.integer("limit", 50, 1, 1000)
    fields = p.groups("fields", V2_GROUPS, frozenset({"core", "basic"})) | {"core"}
    if p.text("parseIoAsJson") == "true":
        raise ClientError("invalid parseIoAsJson: parsing io as JSON is not supported; leave it out")
    cursor = None
    if (doc := decode_cursor(p.text("cursor"))) is not None:
        try:
            start = Params.from_iso("cursor", str(doc["lastStartTimeTo"]))
            cursor = Cursor(start, str(doc["lastTraceId"]), str(doc["lastId"]))
        except KeyError:
            raise ClientError("invalid cursor: Invalid cursor format") from None
    rows = await reader.observations_after(project_id, observation_filter(p), cursor, limit + 1)
    page, more = rows[:limit], len(rows) > limit
    context = {}
    if fields & {"basic", "trace_context"}:
        context = await reader.trace_context(project_id, list({r["trace_id"] for r in page if r["trace_id"]}))
    linked = await links(request, project_id, page, prompts="prompt" in fields)
    data = [
        shapes.observation_v2(r, project_id, fields, context.get(r["trace_id"]), linked.price(r), linked.prompt(r))
        for r in page
    ]
    out_meta: dict[str, str] = {}
    if more:
        last = page[-1]
        out_meta["cursor"] = encode_cursor(
            {"lastStartTimeTo": shapes.iso(last["start_time"]), "lastTraceId": last["trace_id"], "lastId": last["id"]}
        )
    return {"data": data, "meta": out_meta}
