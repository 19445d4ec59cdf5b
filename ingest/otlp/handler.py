"""POST /v1/traces and /api/public/otel/v1/traces: OTLP/HTTP trace export; /v1/logs and
/api/public/otel/v1/logs: the GenAI content sent as log records (logs.py).

Answers as the OTLP specification says: 200 with an ExportTraceServiceResponse in the request's
encoding, `partial_success` when some spans were invalid, 415 for other content types, and
503 with Retry-After (retryable for exporters) when the event log is unavailable.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ingest.intake import Caller, Intake
from ingest.otlp.decode import JSON, PROTOBUF, encode_response, media_type, parse_request, response_content_type
from ingest.otlp.experiments import Linker
from ingest.otlp.export import Exported, export_pieces, export_spans
from ingest.otlp.logs import encode_logs_response, export_logs, parse_logs
from pipeline.envelope import OTLP_HTTP, OTLP_LOGS


async def export_traces(request: web.Request) -> web.Response:
    intake, caller, content_type, log = await _started(request)
    kind = media_type(content_type)
    data = await intake.body(request, json=kind is JSON, split=True)
    linker = Linker(request.app["postgres"])
    if len(data) > intake.config.max_body_bytes:
        done = await export_pieces(intake, caller, data, OTLP_HTTP, log, linker, kind)
    else:
        export = parse_request(data, content_type)
        del data  # parsed: export_spans lets the request go once mapped
        done = await export_spans(intake, caller, export, OTLP_HTTP, log, linker)
    request["log_msg"] = "otlp spans ingested"
    return _answer(encode_response(done.rejected, done.message, content_type), content_type, done)


async def export_log_records(request: web.Request) -> web.Response:
    intake, caller, content_type, log = await _started(request)
    kind = media_type(content_type)
    # Protobuf as long as a trace export may be: read lazily (its records point into the body,
    # at most logs.MAX_RECORDS of them) and mapped a slice at a time, it holds about the body
    # and a piece's worth more. JSON is parsed whole: within max_body_bytes (413 past it).
    data = await intake.body(request, json=kind is JSON, split=kind is PROTOBUF)
    parsed = parse_logs(data, content_type)
    del data
    done = await export_logs(intake, caller, parsed, OTLP_LOGS, log)
    request["log_msg"] = "otlp logs ingested"
    return _answer(encode_logs_response(done.rejected, done.message, content_type), content_type, done)


async def _started(request: web.Request) -> tuple[Intake, Caller, str, dict[str, Any]]:
    """The intake, the authenticated caller, the Content-Type and the request's log fields."""
    intake: Intake = request.app["intake"]
    caller = await intake.caller(request)
    log: dict[str, Any] = {}
    request["log"] = log
    return intake, caller, request.headers.get("Content-Type", ""), log


def _answer(body: bytes, content_type: str, done: Exported) -> web.Response:
    """200 with the Export*ServiceResponse, in the request's encoding."""
    return web.Response(
        status=200, body=body, content_type=response_content_type(content_type), headers=done.rate_headers
    )
