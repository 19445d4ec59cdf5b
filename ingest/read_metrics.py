"""Langfuse's metrics API: `GET /api/public/metrics?query=<JSON>` (v1) and
`GET /api/public/v2/metrics?query=<JSON>` (v2: no traces view, no grouping by high-cardinality
fields, 100 rows unless asked otherwise).

The query object is checked here, field by field, against the view declarations
(sinks/clickhouse/metric_views.py): every name must be one of theirs, every value of the type
Langfuse's schema gives it; anything else is a 400 naming it. sinks/clickhouse/metrics.py then
builds the SQL from names it knows and values as parameters. Unknown keys of the object are
ignored, as Langfuse's schema strips them.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web

from ingest.encoding import ClientError
from ingest.params import Params
from ingest.read import read_handler
from pipeline.times import MAX_US
from sinks.clickhouse.metric_views import (
    AGGREGATIONS,
    GRANULARITIES,
    VIEWS,
    VIEWS_V2,
    Filter,
    Metric,
    MetricsQuery,
    View,
    auto_granularity,
)
from sinks.clickhouse.reader import Reader

PATH = "/api/public/metrics"
V2_PATH = "/api/public/v2/metrics"

MAX_ROWS = 1000  # Langfuse's bound on config.row_limit; v1 has no default, ours is the bound
V2_ROWS = 100
MAX_DIMENSIONS = 25  # more than any view has; the time limit bounds the grouping
MAX_METRICS = 50
MAX_FILTERS = 50
MAX_BINS = 100
DEFAULT_BINS = 10

# Filter type -> (operators, what our SQL makes of it); `key` only with stringObject.
_STRING_OPS = frozenset({"=", "contains", "does not contain", "starts with", "ends with"})
_NUMBER_OPS = frozenset({"=", ">", "<", ">=", "<="})
_FILTER_TYPES: dict[str, frozenset[str]] = {
    "datetime": frozenset({">", "<", ">=", "<="}),
    "string": _STRING_OPS,
    "number": _NUMBER_OPS,
    "stringOptions": frozenset({"any of", "none of"}),
    "categoryOptions": frozenset({"any of", "none of"}),
    "arrayOptions": frozenset({"any of", "none of", "all of"}),
    "stringObject": _STRING_OPS,
    "numberObject": _NUMBER_OPS,
    "booleanObject": frozenset({"=", "<>"}),
    "boolean": frozenset({"=", "<>"}),
    "null": frozenset({"is null", "is not null"}),
    "positionInTrace": frozenset({"="}),
}
# Which filter types a dimension of each kind takes (Langfuse's compatibility table).
_COMPATIBLE = {
    "string": frozenset({"string", "stringOptions", "null"}),
    "array": frozenset({"arrayOptions", "stringOptions", "null"}),
    "number": frozenset({"number", "null"}),
    "boolean": frozenset({"boolean", "null"}),
}


def parse(raw: str | None, *, v2: bool = False) -> MetricsQuery:
    """The `query` parameter as a checked MetricsQuery; ClientError naming what is wrong."""
    if raw is None:
        raise ClientError("invalid query: the query parameter is required (a JSON object)")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ClientError("invalid query: Invalid JSON in query parameter") from None
    if type(doc) is not dict:
        raise ClientError("invalid query: a JSON object is required")
    name = doc.get("view")
    views = VIEWS_V2 if v2 else frozenset(VIEWS)
    if type(name) is not str or name not in views:
        raise ClientError(f"invalid query: view {_show(name)} is not one of {', '.join(sorted(views))}")
    view = VIEWS[name]
    from_us, to_us = _time(doc, "fromTimestamp"), _time(doc, "toTimestamp")
    if from_us >= to_us:
        raise ClientError("invalid query: fromTimestamp must be before toTimestamp")
    from_us, to_us = _stored(from_us), _stored(to_us)
    dimensions = _dimensions(doc.get("dimensions"), view, name, v2)
    metrics = _metrics(doc.get("metrics", _MISSING), view, name, v2)
    config = _config(doc.get("config"))
    granularity = _granularity(doc.get("timeDimension"))
    if granularity == "auto":
        granularity = auto_granularity(from_us, to_us)
    query = MetricsQuery(
        view=name,
        dimensions=dimensions,
        metrics=metrics,
        filters=_filters(doc.get("filters"), view, name, v2),
        granularity=granularity,
        from_us=from_us,
        to_us=to_us,
        order=(),
        bins=config.get("bins", DEFAULT_BINS),
        limit=config.get("row_limit", V2_ROWS if v2 else MAX_ROWS),
    )
    return _with_order(query, doc.get("orderBy"))


_MISSING = object()


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= 60 else text[:57] + "..."


def _list(value: Any, what: str, most: int) -> list[Any]:
    if value is None:
        return []
    if type(value) is not list:
        raise ClientError(f"invalid query: {what} must be an array")
    if len(value) > most:
        raise ClientError(f"invalid query: at most {most} {what}")
    return value


def _field(item: Any, key: str, what: str) -> str:
    value = item.get(key) if type(item) is dict else None
    if type(value) is not str:
        raise ClientError(f"invalid query: each of {what} needs a string {key!r}")
    return value


def _time(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if type(value) is not str or "T" not in value:
        raise ClientError(f"invalid query: {key} is required, an ISO 8601 datetime with a timezone")
    return Params.from_iso(f"query {key}", value)


def _stored(us: int) -> int:
    """A time within what the store holds (1970..2100, pipeline/times.py): nothing lies beyond,
    and a current server's DateTime64 cannot hold every year ISO 8601 can."""
    return min(us, MAX_US)


def _known(field: str, names: Any, view: View, view_name: str, what: str, v2_names: frozenset[str], v2: bool) -> None:
    if field in view.unsupported:
        raise ClientError(f"invalid query: {what} {field!r} of view {view_name} is not supported by this server")
    if field not in names or (field in v2_names and not v2):
        known = ", ".join(n for n in names if v2 or n not in v2_names)
        raise ClientError(f"invalid query: Invalid {what} {_show(field)} for view {view_name}; must be one of {known}")


def _dimensions(value: Any, view: View, view_name: str, v2: bool) -> tuple[str, ...]:
    fields = []
    for item in _list(value, "dimensions", MAX_DIMENSIONS):
        field = _field(item, "field", "dimensions")
        _known(field, view.dimensions, view, view_name, "dimension", view.v2_dimensions, v2)
        if v2 and view.dimensions[field].high_cardinality:
            raise ClientError(
                f"invalid query: dimension {field!r} has too many values to group by in v2; filter on it instead"
            )
        fields.append(field)
    return tuple(dict.fromkeys(fields))


def _metrics(value: Any, view: View, view_name: str, v2: bool) -> tuple[Metric, ...]:
    if value is _MISSING:
        raise ClientError("invalid query: metrics is required (an array, e.g. [{measure: count, aggregation: count}])")
    if value is None:
        raise ClientError("invalid query: metrics must be an array")
    metrics = []
    for item in _list(value, "metrics", MAX_METRICS):
        measure = _field(item, "measure", "metrics")
        aggregation = _field(item, "aggregation", "metrics")
        _known(measure, view.measures, view, view_name, "metric", view.v2_measures, v2)
        if aggregation not in AGGREGATIONS:
            raise ClientError(
                f"invalid query: aggregation {_show(aggregation)} is not one of {', '.join(sorted(AGGREGATIONS))}"
            )
        if view.measures[measure].text and aggregation not in ("count", "uniq"):
            raise ClientError(
                f"invalid query: aggregation {aggregation!r} does not apply to {measure} (not a number);"
                " use count or uniq"
            )
        metrics.append(Metric(measure, aggregation))
    return tuple(dict.fromkeys(metrics))


def _granularity(value: Any) -> str | None:
    if value is None:
        return None
    granularity = value.get("granularity") if type(value) is dict else None
    if granularity != "auto" and granularity not in GRANULARITIES:
        raise ClientError(f"invalid query: timeDimension.granularity must be one of auto, {', '.join(GRANULARITIES)}")
    return str(granularity)


def _config(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise ClientError("invalid query: config must be an object")
    out = {}
    for key, most in (("bins", MAX_BINS), ("row_limit", MAX_ROWS)):
        n = value.get(key)
        if n is None:
            continue
        if type(n) not in (int, float) or not (math.isfinite(n) and n == int(n) and 1 <= n <= most):
            raise ClientError(f"invalid query: config.{key} must be an integer from 1 to {most}")
        out[key] = int(n)
    return out


def _with_order(q: MetricsQuery, value: Any) -> MetricsQuery:
    """orderBy: each field a requested dimension, `time_dimension`, or a metric's answer field
    (not a histogram's, as Langfuse's)."""
    if value is None:
        return q
    fields = set(q.dimensions) | {m.alias for m in q.metrics if m.aggregation != "histogram"}
    if q.granularity:
        fields.add("time_dimension")
    order = []
    for item in _list(value, "orderBy", MAX_DIMENSIONS + MAX_METRICS + 1):
        field = _field(item, "field", "orderBy")
        direction = item.get("direction")
        if field not in fields:
            raise ClientError(
                f"invalid query: Invalid orderBy field {_show(field)}; must be one of the dimension or metric fields"
                f" ({', '.join(sorted(fields)) or 'none asked for'})"
            )
        if direction not in ("asc", "desc"):
            raise ClientError("invalid query: orderBy direction must be asc or desc")
        order.append((field, str(direction)))
    return replace(q, order=tuple(order))


def _filters(value: Any, view: View, view_name: str, v2: bool) -> tuple[Filter, ...]:
    return tuple(_filter(item, view, view_name, v2) for item in _list(value, "filters", MAX_FILTERS))


def _filter(item: Any, view: View, view_name: str, v2: bool) -> Filter:
    column = _field(item, "column", "filters")
    kind, operator = _field(item, "type", "filters"), _field(item, "operator", "filters")
    if kind not in _FILTER_TYPES:
        raise ClientError(f"invalid query: filter type {_show(kind)} is not one of {', '.join(_FILTER_TYPES)}")
    if operator not in _FILTER_TYPES[kind]:
        ops = ", ".join(sorted(_FILTER_TYPES[kind]))
        raise ClientError(f"invalid query: operator {_show(operator)} does not apply to {kind} filters; use {ops}")
    value = item.get("value")
    if column == view.time:
        if kind != "datetime":
            raise ClientError(f"invalid query: a filter on {column} has type datetime")
        return Filter(column, "datetime", operator, _filter_time(column, value))
    if column == "metadata":
        key = item.get("key")
        if kind != "stringObject" or type(key) is not str:
            raise ClientError("invalid query: a metadata filter has type stringObject and a string key")
        return Filter(column, "metadata", operator, _typed(column, value, str, "a string"), key)
    if column not in view.dimensions and column.endswith("Name") and "name" in view.dimensions:
        column = "name"  # Langfuse takes traceName, scoreName... as the view's own name
    _known(column, view.dimensions, view, view_name, "filter column", view.v2_dimensions, v2)
    dimension_kind = view.dimensions[column].kind
    if kind not in _COMPATIBLE[dimension_kind]:
        expected = ", ".join(sorted(_COMPATIBLE[dimension_kind]))
        raise ClientError(f"invalid query: filter type {kind} does not apply to {column}; use {expected}")
    if kind == "null":
        return Filter(column, "null", operator, None)
    if kind == "string":
        return Filter(column, "string", operator, _typed(column, value, str, "a string"))
    if kind == "number":
        if type(value) not in (int, float) or not math.isfinite(value):
            raise ClientError(f"invalid query: the filter on {column} needs a finite number")
        return Filter(column, "number", operator, value)
    if kind == "boolean":
        return Filter(column, "boolean", operator, _typed(column, value, bool, "true or false"))
    values = value if type(value) is list and all(type(v) is str for v in value) else None
    if values is None or (not values and operator == "any of"):
        raise ClientError(f"invalid query: the filter on {column} needs a list of strings")
    if not values and kind == "stringOptions":
        raise ClientError(f"invalid query: the filter on {column} needs a non-empty list of strings")
    return Filter(column, "array" if dimension_kind == "array" else "options", operator, tuple(values))


def _typed(column: str, value: Any, kind: type, wants: str) -> Any:
    if type(value) is not kind:
        raise ClientError(f"invalid query: the filter on {column} needs {wants}")
    return value


def _filter_time(column: str, value: Any) -> int:
    if type(value) is not str:
        raise ClientError(f"invalid query: the filter on {column} needs an ISO 8601 datetime")
    return _stored(Params.from_iso(f"query filter {column}", value))


@read_handler
async def metrics(request: web.Request, project_id: str, reader: Reader) -> Any:
    query = parse(Params(request).text("query"))
    return {"data": await reader.metrics(project_id, query)}


@read_handler
async def metrics_v2(request: web.Request, project_id: str, reader: Reader) -> Any:
    query = parse(Params(request).text("query"), v2=True)
    return {"data": await reader.metrics(project_id, query)}
