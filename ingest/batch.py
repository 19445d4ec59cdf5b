"""POST /api/public/ingestion: Langfuse's batch ingestion API.

Answers 207 with a status per event: the valid events of a batch are kept even when others are
invalid. Only an unusable envelope (not JSON, no `batch` list) fails the whole request (400).
The answer is sent after Kafka acknowledged every accepted event.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web

from ingest.encoding import DecodeError
from ingest.intake import Caller, Intake, handing_over
from ingest.score_configs import refused_scores
from pipeline.events import InvalidEvent, normalize


async def ingest_batch(request: web.Request) -> web.Response:
    intake: Intake = request.app["intake"]
    caller = await intake.caller(request)
    doc = await intake.json(request)
    if not isinstance(doc, dict) or not isinstance(doc.get("batch"), list):
        raise DecodeError('the body must be an object with a "batch" list of events')
    caller = _sdk_from_metadata(request, caller, doc.get("metadata"))
    events = doc["batch"]
    del doc  # what is kept of it from here on is in `accepted`
    accepted: list[tuple[str, str, int, dict[str, Any]]] = []
    successes: list[str] = []  # the accepted events' ids; their answers are built at the end
    errors: list[dict[str, Any]] = []
    for position, event in enumerate(events):
        events[position] = None  # freed once normalized, not at the answer
        try:
            normalized = normalize(event)
        except InvalidEvent as exc:
            event_id = event.get("id") if isinstance(event, dict) and isinstance(event.get("id"), str) else None
            errors.append({"id": event_id, "status": 400, "message": "Invalid request data", "error": str(exc)})
            continue
        accepted.append(normalized)
        successes.append(normalized[0])
    for i, refusal in await refused_scores(request, caller.project_id, accepted):
        event_id = successes.pop(i)
        errors.append({"id": event_id, "status": refusal.status, "message": refusal.message, "error": refusal.message})
    headers: dict[str, str] = {}
    request["log"] = {"events": 0, "rejected": len(errors)}
    if accepted:
        headers = await intake.check_rate(caller, len(accepted))
        published = await intake.publish(caller, handing_over(accepted), "batch", partial=True)
        request["log"].update(published.log_fields())
        for position, status, reason in reversed(published.refused):
            event_id = successes.pop(position)
            message = "Event too large" if status == 413 else "Invalid request data"
            errors.append({"id": event_id, "status": status, "message": message, "error": reason})
        request["log"]["rejected"] = len(errors)
    request["log_msg"] = "batch ingested"
    return web.Response(
        status=207,
        body=orjson.dumps({"successes": [{"id": i, "status": 201} for i in successes], "errors": errors}),
        content_type="application/json",
        headers=headers,
    )


def _sdk_from_metadata(request: web.Request, caller: Caller, metadata: Any) -> Caller:
    """Langfuse SDKs also name themselves in the batch metadata; headers win when both exist."""
    if isinstance(metadata, dict) and metadata.get("sdk_name") and not request.headers.get("x-langfuse-sdk-name"):
        return replace(
            caller, sdk_name=str(metadata["sdk_name"])[:100], sdk_version=str(metadata.get("sdk_version") or "")[:50]
        )
    return caller
