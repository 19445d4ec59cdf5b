"""GET /api/public/traces/{traceId}: one merged trace, its observations and scores.

The answer follows Langfuse's public API (camelCase, ISO 8601 times with microseconds); the rows
come from sinks/clickhouse/reader.py. Authentication is the ingestion API's: the key decides
the project.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from loguru import logger

from health.http import error
from pipeline.times import micros_to_iso
from sinks.clickhouse.client import ClickHouseError
from sinks.clickhouse.reader import Reader

PATH = "/api/public/traces/{traceId}"


async def get_trace(request: web.Request) -> web.Response:
    caller = await request.app["intake"].caller(request)
    reader: Reader = request.app["reader"]
    trace_id = request.match_info["traceId"]
    try:
        trace, observations, scores = await reader.trace(caller.project_id, trace_id)
    except ClickHouseError as exc:
        logger.warning("trace read failed", request_id=request["request_id"], error=str(exc))
        return error(503, "unavailable", "the trace store is unavailable; retry later", {"Retry-After": "5"})
    if trace is None:
        return error(404, "not_found", f"trace {trace_id!r} not found")
    doc = _trace(trace, caller.project_id)
    doc["observations"] = [_observation(o) for o in observations]
    doc["scores"] = [_score(s) for s in scores]
    doc["latency"], doc["totalCost"] = _latency(observations), sum(o["total_cost"] or 0.0 for o in observations)
    return web.Response(body=orjson.dumps(doc), content_type="application/json")


def _trace(r: dict[str, Any], project_id: str) -> dict[str, Any]:
    return {
        "id": r["id"],
        "projectId": project_id,
        "name": r["name"] or None,
        "timestamp": _iso(r["timestamp"]),
        "userId": r["user_id"] or None,
        "sessionId": r["session_id"] or None,
        "release": r["release"] or None,
        "version": r["version"] or None,
        "environment": r["environment"] or "default",
        "tags": list(r["tags"]),
        "public": bool(r["public"]),
        "metadata": _json(r["metadata"], {}),
        "input": _json(r["input"]),
        "output": _json(r["output"]),
    }


def _observation(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "traceId": r["trace_id"] or None,
        "type": r["type"],
        "parentObservationId": r["parent_observation_id"] or None,
        "name": r["name"] or None,
        "startTime": _iso(r["start_time"]),
        "endTime": _iso(r["end_time"]),
        "completionStartTime": _iso(r["completion_start_time"]),
        "level": r["level"],
        "statusMessage": r["status_message"] or None,
        "version": r["version"] or None,
        "model": r["provided_model_name"] or None,
        "modelParameters": _json(r["model_parameters"], {}),
        "usageDetails": _json(r["usage_details"], {}),
        "costDetails": _json(r["cost_details"], {}),
        "input": _json(r["input"]),
        "output": _json(r["output"]),
        "metadata": _json(r["metadata"], {}),
        "promptName": r["prompt_name"] or None,
        "promptVersion": int(r["prompt_version"]) if r["prompt_version"].isdigit() else r["prompt_version"] or None,
        "environment": r["environment"] or "default",
    }


def _score(r: dict[str, Any]) -> dict[str, Any]:
    categorical = r["data_type"] == "CATEGORICAL"
    return {
        "id": r["id"],
        "traceId": r["trace_id"] or None,
        "observationId": r["observation_id"] or None,
        "name": r["name"],
        "value": None if categorical else r["value"],
        "stringValue": r["string_value"] or None,
        "dataType": r["data_type"],
        "source": r["source"],
        "comment": r["comment"] or None,
        "timestamp": _iso(r["timestamp"]),
    }


def _latency(observations: list[dict[str, Any]]) -> float | None:
    """Langfuse's trace latency: seconds from the first start to the last end."""
    ends = [o["end_time"] for o in observations if o["end_time"] is not None]
    if not ends:
        return None
    return max(0, max(ends) - min(o["start_time"] for o in observations)) / 1e6


def _iso(us: int | None) -> str | None:
    return None if us is None else micros_to_iso(us)


def _json(text: str | None, empty: Any = None) -> Any:
    """Input, output and the maps are stored as JSON text; a value that is not JSON stays text."""
    if text is None or text == "":
        return empty
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
