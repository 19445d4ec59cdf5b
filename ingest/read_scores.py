"""Langfuse's score reads: the v1 and v2 page-based lists and single scores, the v3 cursor list."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ingest import shapes
from ingest.encoding import ClientError
from ingest.params import SCORE_SOURCES, SCORE_TYPES, Params, decode_cursor, encode_cursor, finite
from ingest.read import meta, not_found, read_handler
from sinks.clickhouse.reader import Page, Reader, ScoreFilter

SCORES_PATH = "/api/public/scores"
SCORE_PATH = "/api/public/scores/{scoreId}"
SCORES_V2_PATH = "/api/public/v2/scores"
SCORE_V2_PATH = "/api/public/v2/scores/{scoreId}"
SCORES_V3_PATH = "/api/public/v3/scores"
V1_TYPES = frozenset(shapes.V1_SCORE_TYPES)
V3_GROUPS = frozenset({"details", "subject", "annotation"})


def score_filter(p: Params, types: frozenset[str], v3: bool = False) -> ScoreFilter:
    if p.text("filter") is not None:
        raise ClientError("invalid filter: the structured filter is not supported for scores; use the query parameters")
    data_types = p.choices("dataType", SCORE_TYPES)
    values: tuple[float, ...] = ()
    string_values: tuple[str, ...] = ()
    compare: list[tuple[str, float]] = []
    if v3:
        values, string_values = _v3_values(p, data_types)
        for name, op in (("valueMin", ">="), ("valueMax", "<=")):
            bound = p.number(name)
            if bound is not None:
                if data_types != ("NUMERIC",):
                    raise ClientError(f"invalid {name}: needs dataType=NUMERIC")
                compare.append((op, bound))
        runs = p.items("experimentId")
        if runs and (p.text("traceId") or p.text("sessionId") or p.text("observationId")):
            raise ClientError("invalid experimentId: not with traceId, sessionId or observationId")
    else:
        runs = p.items("datasetRunId")
        value = p.number("value")
        operator = p.text("operator")
        if (value is None) != (operator is None):
            raise ClientError("invalid operator/value: give both, or neither")
        if operator is not None and value is not None:
            if operator not in _OPERATORS:
                raise ClientError(f"invalid operator: {operator!r} is not one of {', '.join(sorted(_OPERATORS))}")
            compare.append((_OPERATORS[operator], value))
    return ScoreFilter(
        trace_id=p.text("traceId"),
        observation_ids=p.items("observationId"),
        session_id=p.text("sessionId"),
        name=p.text("name"),
        source=p.choice("source", SCORE_SOURCES),
        data_types=_types(data_types, types),
        config_id=p.text("configId"),
        user_id=p.text("userId"),
        score_ids=p.items("id" if v3 else "scoreIds"),
        environments=p.items("environment"),
        from_us=p.time("fromTimestamp"),
        to_us=p.time("toTimestamp"),
        dataset_run_ids=runs,
        trace_tags=() if v3 else p.items("traceTags"),
        value_compare=tuple(compare),
        values=values,
        string_values=string_values,
        # Scores come from the API and SDKs here: none belongs to an annotation queue or author.
        nothing=bool(p.items("queueId") or (v3 and p.items("authorUserId"))),
    )


# Langfuse's v1/v2 `operator` (with `value`), as SQL comparisons.
_OPERATORS = {"<": "<", ">": ">", "<=": "<=", ">=": ">=", "!=": "!=", "=": "=", "<>": "!="}


def _v3_values(p: Params, data_types: tuple[str, ...]) -> tuple[tuple[float, ...], tuple[str, ...]]:
    """v3's `value`: exact values of one data type (numbers, true/false, or categories)."""
    raw = p.items("value")
    if not raw:
        return (), ()
    if len(data_types) != 1 or data_types[0] not in ("NUMERIC", "BOOLEAN", "CATEGORICAL"):
        raise ClientError("invalid value: needs one dataType of NUMERIC, BOOLEAN or CATEGORICAL")
    if data_types[0] == "CATEGORICAL":
        return (), raw
    if data_types[0] == "BOOLEAN":
        if any(v.lower() not in ("true", "false") for v in raw):
            raise ClientError("invalid value: a BOOLEAN value is true or false")
        return tuple(1.0 if v.lower() == "true" else 0.0 for v in raw), ()
    return tuple(finite("value", v) for v in raw), ()


def _types(requested: tuple[str, ...], served: frozenset[str]) -> tuple[str, ...]:
    types = [t for t in (requested or sorted(served)) if t in served]
    if "NUMERIC" in types:
        types.append("")  # a score stored without a type is numeric
    # Only types this endpoint cannot show were asked for: a type no row has matches nothing.
    return tuple(types) or ("NONE",)


async def _list(request: web.Request, project_id: str, reader: Reader, types: frozenset[str], v2: bool) -> Any:
    p = Params(request)
    page, limit = p.page()
    listing = await reader.scores(project_id, score_filter(p, types), Page(limit, (page - 1) * limit))
    context = await reader.trace_context(project_id, list({r["trace_id"] for r in listing.rows if r["trace_id"]}))
    data = []
    for r in listing.rows:
        doc = shapes.score(r, project_id)
        ctx = context.get(r["trace_id"]) or {}
        # 2.60 requires a `trace` object on every v1 item, even for a score without a trace.
        trace: dict[str, Any] = {
            "userId": ctx.get("user_id") or None,
            "tags": list(ctx.get("tags") or ()),
            "environment": ctx.get("environment") or None,
        }
        if v2:
            trace["sessionId"] = ctx.get("session_id") or None
        doc["trace"] = trace
        data.append(doc)
    return {"data": data, "meta": meta(page, limit, listing.total)}


@read_handler
async def list_scores(request: web.Request, project_id: str, reader: Reader) -> Any:
    return await _list(request, project_id, reader, V1_TYPES, v2=False)


@read_handler
async def list_scores_v2(request: web.Request, project_id: str, reader: Reader) -> Any:
    return await _list(request, project_id, reader, SCORE_TYPES, v2=True)


async def _one(request: web.Request, project_id: str, reader: Reader, types: frozenset[str]) -> Any:
    score_id = request.match_info["scoreId"]
    row = await reader.score(project_id, score_id)
    if row is None or (row["data_type"] or "NUMERIC") not in types:
        return not_found("score", score_id)
    return shapes.score(row, project_id)


@read_handler
async def get_score(request: web.Request, project_id: str, reader: Reader) -> Any:
    return await _one(request, project_id, reader, V1_TYPES)


@read_handler
async def get_score_v2(request: web.Request, project_id: str, reader: Reader) -> Any:
    return await _one(request, project_id, reader, SCORE_TYPES)


@read_handler
async def list_scores_v3(request: web.Request, project_id: str, reader: Reader) -> Any:
    """Cursor paging over the time-ordered list; the cursor is an opaque offset."""
    p = Params(request)
    limit = p.integer("limit", 50, 1, 100)
    unknown = set(p.items("fields")) - V3_GROUPS
    if unknown:
        raise ClientError(f"invalid fields: unknown groups {', '.join(sorted(unknown))}")
    if p.text("userId") or p.items("traceTags"):
        raise ClientError("invalid userId/traceTags: not supported by the v3 scores endpoint")
    if p.text("observationId") and not p.text("traceId"):
        raise ClientError("invalid observationId: needs traceId")
    cursor = decode_cursor(p.text("cursor"))
    offset = cursor.get("offset") if cursor else 0
    if not isinstance(offset, int) or not 0 <= offset < 2**62:
        raise ClientError("invalid cursor: Invalid cursor format")
    listing = await reader.scores(project_id, score_filter(p, SCORE_TYPES, v3=True), Page(limit, offset))
    out_meta: dict[str, Any] = {"limit": limit}
    if offset + len(listing.rows) < listing.total:
        out_meta["cursor"] = encode_cursor({"offset": offset + len(listing.rows)})
    return {"data": [shapes.score_v3(r, project_id) for r in listing.rows], "meta": out_meta}
