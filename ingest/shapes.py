"""Rows of sinks/clickhouse/reader.py in Langfuse's public JSON shapes (camelCase, ISO times).

Each shape emits the superset every SDK we support parses (/work/notes/read-api.md, §5): keys
that a pydantic model requires are present even when null, lists and maps are never null,
enums are upper case. Input, output and the maps are stored as JSON text.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import orjson

from pipeline.times import micros_to_iso

Row = dict[str, Any]
# Scores the v1 models (2.60's in particular) can parse; others would break a whole trace's parse.
V1_SCORE_TYPES = ("NUMERIC", "CATEGORICAL", "BOOLEAN")


def trace(r: Row, project_id: str) -> dict[str, Any]:
    return {
        "id": r["id"],
        "projectId": project_id,
        "name": r["name"] or None,
        "timestamp": iso(r["timestamp"]),
        "userId": r["user_id"] or None,
        "sessionId": r["session_id"] or None,
        "release": r["release"] or None,
        "version": r["version"] or None,
        "environment": r["environment"] or "default",
        "tags": list(r["tags"]),
        "public": bool(r["public"]),
        "bookmarked": False,
        "metadata": json_of(r["metadata"], {}),
        "input": io_of(r["input"]),
        "output": io_of(r["output"]),
        "createdAt": iso(r.get("created_at")),
        "updatedAt": iso(r.get("updated_at")),
    }


def trace_details(r: Row, project_id: str, observations: list[Row], fields: frozenset[str]) -> dict[str, Any]:
    """A trace with htmlPath and, unless the `metrics` group is left out, latency and cost."""
    doc = trace(r, project_id)
    doc["htmlPath"] = f"/project/{project_id}/traces/{r['id']}"
    if "io" not in fields:
        del doc["input"], doc["output"]
        doc["metadata"] = {}
    if "metrics" in fields:
        doc["latency"] = latency(observations)
        doc["totalCost"] = sum(o["total_cost"] or 0.0 for o in observations)
    else:
        doc["latency"] = doc["totalCost"] = -1
    return doc


def latency(observations: list[Row]) -> float:
    """Langfuse's trace latency in seconds: first start to last end (or start); 0 without data."""
    if not observations:
        return 0.0
    ends = [o["end_time"] for o in observations if o["end_time"] is not None]
    last = max(ends) if ends else max(o["start_time"] for o in observations)
    return max(0, last - min(o["start_time"] for o in observations)) / 1e6


def observation(
    r: Row, project_id: str, prices: Mapping[str, float] | None = None, prompt_id: str | None = None
) -> dict[str, Any]:
    """The v1 ObservationsView; `prices` are the per-unit prices of the model that priced it,
    `prompt_id` the id of the prompt version it names."""
    prices = prices or {}
    usage = _ints(json_of(r["usage_details"], {}))
    cost = _floats(json_of(r["cost_details"], {}))
    start, end, first = r["start_time"], r["end_time"], r["completion_start_time"]
    usage_in, usage_out = _in_and_out(usage)
    cost_in, cost_out = _in_and_out(cost)
    tokens = {"input": usage_in or 0, "output": usage_out or 0, "total": usage.get("total", 0)}
    return {
        "id": r["id"],
        "projectId": project_id,
        "traceId": r["trace_id"] or None,
        "type": r["type"],
        "parentObservationId": r["parent_observation_id"] or None,
        "name": r["name"] or None,
        "startTime": iso(start),
        "endTime": iso(end),
        "completionStartTime": iso(first),
        "level": r["level"] or "DEFAULT",
        "statusMessage": r["status_message"] or None,
        "version": r["version"] or None,
        "model": r["provided_model_name"] or None,
        # The model definition that priced it (/api/public/models/{id}), as Langfuse links it.
        "modelId": r.get("usage_pricing_model_id") or None,
        "modelParameters": _flat(json_of(r["model_parameters"])),
        "usage": {**tokens, "unit": "TOKENS"},
        "unit": "TOKENS",
        "promptTokens": tokens["input"],
        "completionTokens": tokens["output"],
        "totalTokens": tokens["total"],
        "usageDetails": usage,
        "costDetails": cost,
        "inputPrice": prices.get("input"),
        "outputPrice": prices.get("output"),
        "totalPrice": prices.get("total"),
        "calculatedInputCost": cost_in,
        "calculatedOutputCost": cost_out,
        "calculatedTotalCost": r["total_cost"],
        "latency": None if end is None else (end - start) / 1e6,
        "timeToFirstToken": None if first is None else (first - start) / 1e6,
        "input": io_of(r["input"]),
        "output": io_of(r["output"]),
        "metadata": json_of(r["metadata"], {}),
        "promptId": prompt_id,
        "promptName": r["prompt_name"] or None,
        "promptVersion": prompt_version(r["prompt_version"]),
        "environment": r["environment"] or "default",
        "createdAt": iso(r.get("created_at")),
        "updatedAt": iso(r.get("updated_at")),
    }


def _in_and_out(details: Mapping[str, Any]) -> tuple[Any, Any]:
    """Usage or cost details as the v1 API sums them, as Langfuse does: input is every type
    whose name says input (input_cached_tokens, cache_read_input_tokens beside input), output
    likewise; None when there is none."""
    total_in = total_out = None
    for name, value in details.items():
        if "input" in name:
            total_in = (total_in or 0) + value
        if "output" in name:
            total_out = (total_out or 0) + value
    return total_in, total_out


def observation_v2(
    r: Row,
    project_id: str,
    fields: frozenset[str],
    context: Row | None,
    prices: Mapping[str, float] | None = None,
    prompt_id: str | None = None,
) -> dict[str, Any]:
    """A v2 observation with the field groups asked for; io stays raw text, prices are strings."""
    v1 = observation(r, project_id, prices, prompt_id)
    doc = {k: v1[k] for k in ("id", "traceId", "startTime", "endTime", "projectId", "parentObservationId", "type")}
    doc["modelId"] = v1["modelId"]
    for key in ("inputPrice", "outputPrice", "totalPrice"):
        doc[key] = decimal_text(v1[key])
    ctx = context or {}
    if "basic" in fields:
        doc.update({k: v1[k] for k in ("name", "level", "statusMessage", "version", "environment")})
        doc.update(
            bookmarked=False,
            public=bool(ctx.get("public")),  # the trace's
            userId=ctx.get("user_id") or None,
            sessionId=ctx.get("session_id") or None,
            isRootObservation=doc["parentObservationId"] is None,
        )
    if "time" in fields:
        doc.update({k: v1[k] for k in ("completionStartTime", "createdAt", "updatedAt")})
    if "io" in fields:
        doc.update(input=_io_text(r["input"]), output=_io_text(r["output"]))
    if "metadata" in fields:
        metadata = v1["metadata"]
        doc["metadata"] = metadata if isinstance(metadata, dict) else {"value": metadata}
    if "model" in fields:
        doc.update(providedModelName=v1["model"], model=v1["model"], internalModelId=v1["modelId"])
        doc["modelParameters"] = json_of(r["model_parameters"])
    if "usage" in fields:
        doc.update(
            usageDetails=v1["usageDetails"],
            costDetails=v1["costDetails"],
            usagePricingTierName=r.get("usage_pricing_tier_name") or None,
        )
        doc["totalCost"] = r["total_cost"]
    if "prompt" in fields:
        doc.update(promptId=prompt_id, promptName=v1["promptName"], promptVersion=v1["promptVersion"])
    if "metrics" in fields:
        doc.update(latency=v1["latency"], timeToFirstToken=v1["timeToFirstToken"])
    if "trace_context" in fields:
        doc.update(
            traceName=ctx.get("name") or None, tags=list(ctx.get("tags") or ()), release=ctx.get("release") or None
        )
    return doc


def _io_text(stored: str | None) -> str | None:
    """An input or output as v2 answers it: the text Langfuse stores, which is a string value's
    own text (ours is stored as its JSON, quoted) and any other value's JSON."""
    if stored and stored[0] == '"':
        try:
            value = orjson.loads(stored)
        except orjson.JSONDecodeError:
            return stored
        if type(value) is str:
            return value
    return stored


def decimal_text(value: float | None) -> str | None:
    """A price as v2 spells it, a decimal string; positional, as a client's parser expects
    (1.5e-07 is 0.00000015), with the float's shortest digits."""
    return None if value is None else format(Decimal(repr(float(value))), "f")


def score(r: Row, project_id: str) -> dict[str, Any]:
    """A v2 score; a v1 score is the same for NUMERIC, CATEGORICAL and BOOLEAN."""
    data_type = r["data_type"] or "NUMERIC"
    doc: dict[str, Any] = {
        "id": r["id"],
        "projectId": project_id,
        "traceId": r["trace_id"] or None,
        "observationId": r["observation_id"] or None,
        "sessionId": r["session_id"] or None,
        "datasetRunId": r["dataset_run_id"] or None,
        "name": r["name"],
        "dataType": data_type,
        "source": r["source"] or "API",
        "comment": r["comment"] or None,
        "configId": r["config_id"] or None,
        "authorUserId": None,
        "queueId": None,
        "metadata": json_of(r["metadata"]),
        "environment": r["environment"] or "default",
        "timestamp": iso(r["timestamp"]),
        "createdAt": iso(r["created_at"]),
        "updatedAt": iso(r["updated_at"]),
    }
    if data_type != "TEXT":
        doc["value"] = float(r["value"] or 0.0)
    if data_type == "BOOLEAN":
        doc["stringValue"] = r["string_value"] or ("True" if r["value"] else "False")
    elif data_type != "NUMERIC":
        doc["stringValue"] = r["string_value"] or ""
    return doc


def score_v3(r: Row, project_id: str) -> dict[str, Any]:
    """A v3 score: `value` typed by dataType, the scored thing as `subject`."""
    doc = score(r, project_id)
    data_type = doc["dataType"]
    value: Any = doc.get("value")
    if data_type == "BOOLEAN":
        value = bool(value)
    elif data_type != "NUMERIC":
        value = doc.get("stringValue") or ""
    subject: dict[str, Any] | None = None
    if doc["observationId"]:
        subject = {"kind": "observation", "id": doc["observationId"], "traceId": doc["traceId"]}
    elif doc["traceId"]:
        subject = {"kind": "trace", "id": doc["traceId"]}
    elif doc["sessionId"]:
        subject = {"kind": "session", "id": doc["sessionId"]}
    elif doc["datasetRunId"]:
        subject = {"kind": "experiment", "id": doc["datasetRunId"]}
    keep = ("id", "projectId", "name", "source", "timestamp", "environment", "createdAt", "updatedAt", "dataType")
    out = {k: doc[k] for k in keep}
    metadata = doc["metadata"]
    out.update(value=value, comment=doc["comment"], configId=doc["configId"], authorUserId=None, queueId=None)
    out.update(metadata=metadata if isinstance(metadata, dict) else None, subject=subject)
    return out


def day(value: Any) -> str:
    """A day column of either dialect (a Date, or days since the epoch) as YYYY-MM-DD."""
    if isinstance(value, date):
        return value.isoformat()
    return (date(1970, 1, 1) + timedelta(days=int(value))).isoformat()


def iso(us: int | None) -> str | None:
    return None if us is None else micros_to_iso(us)


def io_of(text: str | None) -> Any:
    """An input or output as v1 answers it: its value, and a string holding a JSON object or
    array as that object or array. Langfuse stores a string as its text and reads every stored
    text back as JSON where it parses, so clients that send their messages as JSON text (Go's
    Eino) get the messages back; a string that is not such JSON stays a string."""
    value = json_of(text)
    if type(value) is str and value[:1] in ("{", "["):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        if type(parsed) is dict or type(parsed) is list:
            return parsed
    return value


def json_of(text: str | None, empty: Any = None) -> Any:
    """A stored JSON text as its value; a value that is not JSON stays text."""
    if text is None or text == "":
        return empty
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _ints(m: Any) -> dict[str, int]:
    # usageDetails is map<str, int> in 3.x and later: 1.5 fails there, so counts are rounded.
    if not isinstance(m, dict):
        return {}
    return {k: round(v) for k, v in m.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _floats(m: Any) -> dict[str, float]:
    if not isinstance(m, dict):
        return {}
    return {k: float(v) for k, v in m.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _flat(params: Any) -> Any:
    """2.60 types modelParameters as a flat map of scalars and string lists; nested values
    become JSON text there, or the whole observation fails to parse."""
    if not isinstance(params, dict):
        return None if params is None else {"value": params}
    flat: dict[str, Any] = {}
    for k, v in params.items():
        scalar = v is None or isinstance(v, str | int | float | bool)
        strings = isinstance(v, list) and all(isinstance(x, str) for x in v)
        flat[k] = v if scalar or strings else orjson.dumps(v).decode()
    return flat


def prompt_version(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None
