"""POST /v1/traces and /api/public/otel/v1/traces: OTLP/HTTP trace export.

Answers as the OTLP specification says: 200 with an ExportTraceServiceResponse in the request's
encoding, `partial_success` when some spans were invalid, 415 for other content types, and
503 with Retry-After (retryable for exporters) when the event log is unavailable.
"""

from __future__ import annotations

from aiohttp import web

from ingest.intake import Intake
from ingest.otlp.decode import encode_response, parse_request, response_content_type
from ingest.otlp.mapping import map_request


async def export_traces(request: web.Request) -> web.Response:
    intake: Intake = request.app["intake"]
    caller = await intake.caller(request)
    content_type = request.headers.get("Content-Type", "")
    response_type = response_content_type(content_type)
    export = parse_request(await intake.body(request), content_type)
    mapped = map_request(export)
    events = [(event["id"], event["type"], event["timestamp"], event["body"]) for event in mapped.events]
    headers: dict[str, str] = {}
    rejected, errors = mapped.rejected, list(mapped.errors)
    request["log"] = {"events": 0, "rejected": rejected}
    if events:
        headers = await intake.check_rate(caller, len(events))
        published = await intake.publish(caller, events, "otlp", partial=True)
        request["log"].update(published.log_fields())
        if published.refused:
            rejected += len(published.refused)
            errors.extend(sorted({reason for _, _, reason in published.refused}))
            request["log"]["rejected"] = rejected
    request["log_msg"] = "otlp spans ingested"
    message = "; ".join(errors)
    return web.Response(
        status=200,
        body=encode_response(rejected, message, content_type),
        content_type=response_type,
        headers=headers,
    )
