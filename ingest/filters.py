"""Langfuse's structured `filter` query parameter: a JSON array of conditions
`{"type", "column", "operator", "value"}`, checked here and handed to the reader as
`(column, operator, value)` triples over our columns (sinks/clickhouse/reader.py applies them).

Every column and operator this server can answer is taken; any other condition is refused with
400, naming it: a filter left out would answer rows the caller excluded (Langfuse's SDKs send
this parameter for `get_many(filter=...)` and their batch evaluations). A condition's `type`
is the client's hint; the column decides how its value is read.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from ingest.encoding import ClientError
from ingest.params import Params
from sinks.clickhouse.reader import Condition

MAX_CONDITIONS = 50
_TEXT_OPS = frozenset(
    {"=", "<>", "!=", "contains", "does not contain", "starts with", "ends with", "any of", "none of"}
)
_ORDER_OPS = frozenset({"=", ">", "<", ">=", "<="})
_KIND_OPS = {
    "string": _TEXT_OPS,
    "number": _ORDER_OPS,
    "datetime": frozenset({">", "<", ">=", "<="}),
    "array": frozenset({"any of", "none of", "all of"}),
    "boolean": frozenset({"=", "<>"}),
    # Langfuse's stringObject: a key of the column's object and the text of its value
    "object": frozenset({"=", "contains", "does not contain", "starts with", "ends with"}),
    # Its numberObject, categoryOptions and booleanObject on scores: the key is a score's name.
    "numberObject": _ORDER_OPS,
    "categoryOptions": frozenset({"any of", "none of"}),
    "booleanObject": frozenset({"=", "<>"}),
}
# The kinds of a condition on one key of a column; what its value is read as.
_KEYED = {"object": "string", "numberObject": "number", "categoryOptions": "list", "booleanObject": "boolean"}

# Langfuse's column -> (our column, its kind); `trace.` columns are the observation's trace's.
OBSERVATION_COLUMNS: dict[str, tuple[str, str]] = {
    "id": ("id", "string"),
    "type": ("type", "string"),
    "name": ("name", "string"),
    "traceId": ("trace_id", "string"),
    "parentObservationId": ("parent_observation_id", "string"),
    "startTime": ("start_time", "datetime"),
    "endTime": ("end_time", "datetime"),
    "environment": ("environment", "string"),
    "level": ("level", "string"),
    "statusMessage": ("status_message", "string"),
    "version": ("version", "string"),
    "model": ("provided_model_name", "string"),
    "providedModelName": ("provided_model_name", "string"),
    "promptName": ("prompt_name", "string"),
    "inputTokens": ("input_tokens", "number"),
    "outputTokens": ("output_tokens", "number"),
    "totalTokens": ("total_tokens", "number"),
    "tokens": ("total_tokens", "number"),
    "totalCost": ("total_cost", "number"),
    "isRootObservation": ("root", "boolean"),
    "userId": ("trace.user_id", "string"),
    "sessionId": ("trace.session_id", "string"),
    "traceName": ("trace.name", "string"),
    "traceTags": ("trace.tags", "array"),
    "tags": ("trace.tags", "array"),
    "metadata": ("metadata", "object"),
    "latency": ("latency", "number"),  # seconds from start to end
}
TRACE_COLUMNS: dict[str, tuple[str, str]] = {
    "id": ("id", "string"),
    "name": ("name", "string"),
    "timestamp": ("timestamp", "datetime"),
    "userId": ("user_id", "string"),
    "sessionId": ("session_id", "string"),
    "environment": ("environment", "string"),
    "release": ("release", "string"),
    "version": ("version", "string"),
    "tags": ("tags", "array"),
    "metadata": ("metadata", "object"),
    # Summed up from the trace's observations (Langfuse's aggregated metrics): seconds, USD,
    # tokens (input and output: every type naming them), the highest level and the number of
    # observations at each.
    "latency": ("observations.latency", "number"),
    "totalCost": ("observations.total_cost", "number"),
    "inputTokens": ("observations.input_tokens", "number"),
    "outputTokens": ("observations.output_tokens", "number"),
    "totalTokens": ("observations.total_tokens", "number"),
    "tokens": ("observations.total_tokens", "number"),
    "inputCost": ("observations.input_cost", "number"),
    "outputCost": ("observations.output_cost", "number"),
    "level": ("observations.level", "string"),
    "errorCount": ("observations.error_count", "number"),
    "warningCount": ("observations.warning_count", "number"),
    "defaultCount": ("observations.default_count", "number"),
    "debugCount": ("observations.debug_count", "number"),
    # The trace's scores of one name (the condition's key): the average of the numeric ones, the
    # values of the categorical ones, the boolean one.
    "scores_avg": ("scores.avg", "numberObject"),
    "scores": ("scores.avg", "numberObject"),
    "score_categories": ("scores.categories", "categoryOptions"),
    "score_booleans": ("scores.booleans", "booleanObject"),
}


def conditions(p: Params, columns: dict[str, tuple[str, str]]) -> tuple[Condition, ...]:
    """The request's `filter` as conditions over `columns`; () when there is none."""
    raw = p.text("filter")
    if raw is None:
        return ()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ClientError("invalid filter: not JSON; send a JSON array of conditions") from None
    if type(doc) is not list or len(doc) > MAX_CONDITIONS:
        raise ClientError(f"invalid filter: a JSON array of at most {MAX_CONDITIONS} conditions")
    return tuple(_condition(item, columns) for item in doc)


def _condition(item: Any, columns: dict[str, tuple[str, str]]) -> Condition:
    if type(item) is not dict or type(item.get("column")) is not str or type(item.get("operator")) is not str:
        raise ClientError("invalid filter: each condition is an object with a column, an operator and a value")
    name, op, value = item["column"], item["operator"], item.get("value")
    if name not in columns:
        known = ", ".join(sorted(columns))
        raise ClientError(f"invalid filter: column {name!r} is not supported here; filterable: {known}")
    column, kind = columns[name]
    if op not in _KIND_OPS[kind]:
        ops = ", ".join(sorted(_KIND_OPS[kind]))
        raise ClientError(f"invalid filter: operator {op!r} is not supported for {name}; use one of {ops}")
    if kind in _KEYED:
        key = item.get("key")
        if type(key) is not str or not key:
            raise ClientError(f"invalid filter: a {name} condition needs a key (the name of one of its keys)")
        return column, op, (key, _value(name, _KEYED[kind], op, value))
    return column, op, _value(name, kind, op, value)


def _value(name: str, kind: str, op: str, value: Any) -> Any:
    bad = ClientError(f"invalid filter: {op} on {name} needs {_WANTS[kind if op not in _LISTS else 'list']}")
    if kind == "array" or op in _LISTS:
        if type(value) is str:
            value = [value]
        if type(value) is not list or not all(type(v) is str for v in value):
            raise bad
        return tuple(value)
    if kind == "string":
        if type(value) is not str:
            raise bad
        return value
    if kind == "number":
        if type(value) not in (int, float) or not math.isfinite(value):
            raise bad
        return value
    if kind == "datetime":
        if type(value) is not str:
            raise bad
        return Params.from_iso(f"filter {name}", value)
    if type(value) is not bool:
        raise bad
    return value


_LISTS = frozenset({"any of", "none of", "all of"})
_WANTS = {
    "string": "a string",
    "number": "a finite number",
    "datetime": "an ISO 8601 datetime with a timezone",
    "boolean": "true or false",
    "list": "a list of strings",
}
