"""Langfuse's sessions and daily metrics reads: sessions are the session ids of traces."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ingest import shapes
from ingest.params import Params
from ingest.read import meta, not_found, read_handler, trace_filter
from sinks.clickhouse.reader import Page, Reader

SESSIONS_PATH = "/api/public/sessions"
SESSION_PATH = "/api/public/sessions/{sessionId}"
DAILY_PATH = "/api/public/metrics/daily"


@read_handler
async def list_sessions(request: web.Request, project_id: str, reader: Reader) -> Any:
    p = Params(request)
    page, limit = p.page()
    # Langfuse does not split the sessions endpoint's environment on commas.
    listing = await reader.sessions(
        project_id,
        p.time("fromTimestamp"),
        p.time("toTimestamp"),
        p.items("environment", split=False),
        Page(limit, (page - 1) * limit),
    )
    data = [_session(r, project_id) for r in listing.rows]
    return {"data": data, "meta": meta(page, limit, listing.total)}


@read_handler
async def get_session(request: web.Request, project_id: str, reader: Reader) -> Any:
    session_id = request.match_info["sessionId"]
    traces = await reader.session_traces(project_id, session_id)
    if not traces:
        return not_found("session", session_id)
    first = traces[0]
    doc = _session(
        {"id": session_id, "created_at": first["timestamp"], "environment": first["environment"]}, project_id
    )
    doc["traces"] = [shapes.trace(t, project_id) for t in traces]
    return doc


def _session(r: dict[str, Any], project_id: str) -> dict[str, Any]:
    return {
        "id": r["id"],
        "createdAt": shapes.iso(r["created_at"]),
        "projectId": project_id,
        "environment": r["environment"] or "default",
    }


@read_handler
async def daily_metrics(request: web.Request, project_id: str, reader: Reader) -> Any:
    p = Params(request)
    page, limit = p.page()
    listing = await reader.daily(project_id, trace_filter(p, "traceName"), Page(limit, (page - 1) * limit))
    data = []
    for day in listing.rows:
        usage = [
            {
                "model": u["model"],
                "inputUsage": u["input"],
                "outputUsage": u["output"],
                "totalUsage": u["total"],
                "countTraces": u["traces"],
                "countObservations": u["observations"],
                "totalCost": u["cost"],
            }
            for u in day["usage"]
        ]
        data.append(
            {
                "date": shapes.day(day["day"]),
                "countTraces": day["traces"],
                "countObservations": sum(u["countObservations"] for u in usage),
                "totalCost": sum(u["totalCost"] for u in usage),
                "usage": usage,
            }
        )
    return {"data": data, "meta": meta(page, limit, listing.total)}
