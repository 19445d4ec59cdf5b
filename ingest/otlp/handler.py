"""POST /v1/traces and /api/public/otel/v1/traces: OTLP/HTTP trace export.

Answers as the OTLP specification says: 200 with an ExportTraceServiceResponse in the request's
encoding, `partial_success` when some spans were invalid, 415 for other content types, and
503 with Retry-After (retryable for exporters) when the event log is unavailable.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ingest.intake import Intake
from ingest.otlp.decode import JSON, PROTOBUF, encode_response, media_type, parse_request, response_content_type
from ingest.otlp.experiments import Linker
from ingest.otlp.export import export_pieces, export_spans
from pipeline.envelope import OTLP_HTTP


async def export_traces(request: web.Request) -> web.Response:
    intake: Intake = request.app["intake"]
    caller = await intake.caller(request)
    content_type = request.headers.get("Content-Type", "")
    response_type = response_content_type(content_type)
    log: dict[str, Any] = {}
    request["log"] = log
    kind = media_type(content_type)
    data = await intake.body(request, json=kind is JSON, split=kind is PROTOBUF)
    linker = Linker(request.app["postgres"])
    if len(data) > intake.config.max_body_bytes:  # protobuf: JSON is refused past it
        done = await export_pieces(intake, caller, data, OTLP_HTTP, log, linker)
    else:
        export = parse_request(data, content_type)
        del data  # parsed: export_spans lets the request go once mapped
        done = await export_spans(intake, caller, export, OTLP_HTTP, log, linker)
    request["log_msg"] = "otlp spans ingested"
    return web.Response(
        status=200,
        body=encode_response(done.rejected, done.message, content_type),
        content_type=response_type,
        headers=done.rate_headers,
    )
