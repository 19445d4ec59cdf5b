"""DELETE /api/public/traces/{traceId}, DELETE /api/public/traces and
DELETE /api/public/scores/{scoreId}: Langfuse's trace and score deletion.

A deletion is an event in the log (`trace-delete`, pipeline/tombstones.py) that every stage
folds. Before appending it, the edge writes the traces' tombstones in Postgres
(sinks/postgres/tombstones.py), so that no stage, however far behind the other, can fold a
later event of a deleted trace back in, and drops the media only those traces named
(ingest/media.py). The answer (200, Langfuse's message) comes after Kafka
acknowledged; an unknown id is answered the same (idempotent), and ids are scoped to the
caller's project, so another project's trace of the same id is never touched.

A score's deletion goes the same way (`score-delete`, its tombstone in score_tombstones),
answered 202 as Langfuse answers it. Its event is keyed as the score's own events were (by
its trace, which the edge reads from ClickHouse), so that the stage folds it after them; a
score not stored yet is keyed by its id, and its tombstone holds its events back.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from aiohttp import web
from loguru import logger

from health.http import error
from ingest.encoding import DecodeError
from ingest.intake import Intake
from ingest.metrics import SCORES_DELETED, TRACES_DELETED
from pipeline.errors import StoreError
from pipeline.tombstones import SCORE_DELETE, TRACE_DELETE
from sinks.postgres.client import PostgresError
from sinks.postgres.media import MediaTable
from sinks.postgres.tombstones import write_score_tombstones, write_tombstones

# Langfuse's bulk deletion takes at most this many ids per request.
MAX_IDS = 1000
MAX_ID_CHARS = 256


async def delete_trace(request: web.Request) -> web.Response:
    trace_id = request.match_info["traceId"]
    if not _valid(trace_id):
        raise DecodeError(f"traceId must be a non-empty string of at most {MAX_ID_CHARS} characters, without NUL")
    return await _delete(request, [trace_id], "Trace deleted successfully")


async def delete_traces(request: web.Request) -> web.Response:
    intake: Intake = request.app["intake"]
    await intake.caller(request)  # 401 before the body is read
    doc = await intake.json(request)
    ids = doc.get("traceIds") if isinstance(doc, dict) else None
    if not isinstance(ids, list) or not ids:
        raise DecodeError("the body must be an object with traceIds, a non-empty list of trace ids")
    if len(ids) > MAX_IDS:
        raise DecodeError(f"at most {MAX_IDS} traceIds per request; got {len(ids)}")
    if not all(_valid(i) for i in ids):
        raise DecodeError(f"every traceId must be a non-empty string of at most {MAX_ID_CHARS} characters, without NUL")
    return await _delete(request, list(dict.fromkeys(ids)), "Traces deleted successfully")


async def _delete(request: web.Request, trace_ids: list[str], message: str) -> web.Response:
    intake: Intake = request.app["intake"]
    caller = await intake.caller(request)
    # Tombstones first: a stage that meets a later event of these traces skips it even before
    # it has folded the deletion itself. A publish that fails after this answers 503 and the
    # client retries; the tombstones already hold back anything newer meanwhile.
    try:
        await write_tombstones(request.app["postgres"], caller.project_id, trace_ids, request.app["tombstone_keep_s"])
    except PostgresError as exc:
        if exc.permanent:  # the ids themselves (e.g. text Postgres cannot encode)
            raise DecodeError(f"the trace ids were refused: {exc}") from None
        logger.warning("tombstones not written", request_id=caller.request_id, error=str(exc))
        return error(503, "unavailable", "the key store is unavailable; retry later", {"Retry-After": "5"})
    # The media only these traces named go with them (in Postgres alone: no stage holds them).
    try:
        media_gone = await MediaTable(request.app["postgres"]).forget_traces(caller.project_id, trace_ids)
    except PostgresError as exc:
        logger.warning("media not deleted", request_id=caller.request_id, error=str(exc))
        return error(503, "unavailable", "the media store is unavailable; retry later", {"Retry-After": "5"})
    events: list[tuple[str, str, int, dict[str, Any]]] = [
        (str(uuid.uuid4()), TRACE_DELETE, 0, {"traceId": trace_id}) for trace_id in trace_ids
    ]
    await intake.publish(caller, events, "batch")
    TRACES_DELETED.inc(len(trace_ids))
    for trace_id in trace_ids:
        logger.info("trace deleted", project_id=caller.project_id, trace_id=trace_id, request_id=caller.request_id)
    request["log"] = {"deleted": len(trace_ids), "media_deleted": media_gone}
    request["log_msg"] = "traces deleted"
    return _answer(message)


async def delete_score(request: web.Request) -> web.Response:
    score_id = request.match_info["scoreId"]
    if not _valid(score_id):
        raise DecodeError(f"scoreId must be a non-empty string of at most {MAX_ID_CHARS} characters, without NUL")
    intake: Intake = request.app["intake"]
    caller = await intake.caller(request)
    try:
        keep_s = request.app["tombstone_keep_s"]
        await write_score_tombstones(request.app["postgres"], caller.project_id, [score_id], keep_s)
    except PostgresError as exc:
        if exc.permanent:
            raise DecodeError(f"the score id was refused: {exc}") from None
        logger.warning("score tombstone not written", request_id=caller.request_id, error=str(exc))
        return error(503, "unavailable", "the key store is unavailable; retry later", {"Retry-After": "5"})
    body: dict[str, Any] = {"id": score_id}
    try:
        stored = await request.app["reader"].score(caller.project_id, score_id)
    except StoreError as exc:  # keyed by its id then: the tombstone still holds it back
        logger.warning("score's trace not read", request_id=caller.request_id, error=str(exc))
        stored = None
    if stored and stored.get("trace_id"):
        body["traceId"] = stored["trace_id"]
    await intake.publish(caller, [(str(uuid.uuid4()), SCORE_DELETE, 0, body)], "batch")
    SCORES_DELETED.inc()
    logger.info("score deleted", project_id=caller.project_id, score_id=score_id, request_id=caller.request_id)
    request["log"] = {"deleted": 1, "found": stored is not None}
    request["log_msg"] = "score deleted"
    return _answer("Score deletion queued successfully", 202)


def _valid(trace_id: object) -> bool:
    # Postgres text cannot hold NUL (the tombstone's key).
    return isinstance(trace_id, str) and 0 < len(trace_id) <= MAX_ID_CHARS and "\x00" not in trace_id


def _answer(message: str, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"message": message}), content_type="application/json")
