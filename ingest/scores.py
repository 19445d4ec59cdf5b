"""POST /api/public/scores: Langfuse's score API, the way its SDKs call it.

The current Python SDK (3.x and later) sends scores here, not through the batch API: a JSON
list of score objects, answered 202 `{"message": "Accepted"}` when every score was kept, or
207 `{"accepted", "rejected", "errors": [{"message"}]}` otherwise (valid scores are kept, as
in the batch API). Older clients send one object and expect 200 `{"id": ...}`, or 400.

Each score becomes a `score-create` event, validated by the same table as in a batch; the
event time is the time of receipt, so sending a score again with its id updates it.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from aiohttp import web

from ingest.encoding import DecodeError
from ingest.intake import Intake
from ingest.score_configs import refused_scores
from pipeline.events import InvalidEvent, normalize

# At most this many rejection messages are returned; the counts are always complete.
_MAX_ERRORS = 100


async def create_scores(request: web.Request) -> web.Response:
    intake: Intake = request.app["intake"]
    caller = await intake.caller(request)
    doc = await intake.json(request)
    single = isinstance(doc, dict)
    if not single and not isinstance(doc, list):
        raise DecodeError("the body must be a score object or a list of score objects")
    scores: list[Any] = [doc] if single else doc
    accepted: list[tuple[str, str, int, dict[str, Any]]] = []
    errors: list[dict[str, str]] = []
    rejected = 0
    for index, score in enumerate(scores):
        event = {"id": str(uuid.uuid4()), "type": "score-create", "timestamp": None, "body": score}
        try:
            if not isinstance(score, dict):
                raise InvalidEvent("a score must be an object")
            accepted.append(normalize(event))
        except InvalidEvent as exc:
            rejected += 1
            if len(errors) < _MAX_ERRORS:
                errors.append({"message": f"score {index}: {exc}" if not single else str(exc)})
    if single and rejected:
        raise DecodeError(errors[0]["message"])
    for _, refusal in await refused_scores(request, caller.project_id, accepted):
        if single:
            raise refusal
        rejected += 1
        if len(errors) < _MAX_ERRORS:
            errors.append({"message": refusal.message})
    headers: dict[str, str] = {}
    request["log"] = {"events": 0, "rejected": rejected}
    if accepted:
        headers = await intake.check_rate(caller, len(accepted))
        published = await intake.publish(caller, accepted, "batch")
        request["log"].update(published.log_fields())
    request["log_msg"] = "scores ingested"
    if single:
        status, answer = 200, {"id": accepted[0][3]["id"]}
    elif rejected:
        status, answer = 207, {"accepted": len(accepted), "rejected": rejected, "errors": errors}
    else:
        status, answer = 202, {"message": "Accepted"}
    return web.Response(status=status, body=orjson.dumps(answer), content_type="application/json", headers=headers)
