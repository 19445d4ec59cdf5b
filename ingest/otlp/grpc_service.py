"""opentelemetry.proto.collector.trace.v1.TraceService/Export: OTLP/gRPC trace export.

The same export as OTLP/HTTP (export.py), with the same key, limits and Kafka path: the
`authorization` metadata carries Basic or Bearer credentials as the HTTP header does; grpc core
undoes gzip or deflate; invalid spans give OK with `partial_success`. The message's bytes count
as in flight until Kafka has acknowledged its spans, so a stalled broker turns into UNAVAILABLE
rather than memory. Failures become status codes in grpc_server.py.
"""

from __future__ import annotations

import grpc

from ingest.encoding import BodyTooLarge
from ingest.grpc_server import Call, unary
from ingest.intake import Caller, Intake
from ingest.otlp.decode import PROTOBUF, encode_response, parse_request
from ingest.otlp.experiments import Link
from ingest.otlp.export import export_spans
from ingest.otlp.logs import encode_logs_response, export_logs, parse_logs
from pipeline.envelope import OTLP_GRPC, OTLP_LOGS_GRPC

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


class TraceService:
    def __init__(self, intake: Intake, link: Link | None = None) -> None:
        self._intake = intake
        self._link = link  # experiments.py: the dataset run items of SDK experiments

    async def export(self, raw: bytes, call: Call) -> bytes:
        intake = self._intake
        caller = await _caller(intake, raw, call)
        async with intake.reserve(len(raw)):
            # Parsed in the call, not kept here: export_spans lets the request go once it is mapped.
            done = await export_spans(intake, caller, parse_request(raw, PROTOBUF), OTLP_GRPC, call.log, self._link)
        call.log_msg = "otlp spans ingested"
        call.trailers += [(name.lower(), value) for name, value in done.rate_headers.items()]
        return encode_response(done.rejected, done.message, PROTOBUF)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(SERVICE, {"Export": unary(SERVICE, "Export", self.export)})


class LogsService:
    """LogsService/Export: the GenAI content of log records (logs.py), as /v1/logs takes it."""

    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    async def export(self, raw: bytes, call: Call) -> bytes:
        intake = self._intake
        caller = await _caller(intake, raw, call)
        async with intake.reserve(len(raw)):
            done = await export_logs(intake, caller, parse_logs(raw, PROTOBUF), OTLP_LOGS_GRPC, call.log)
        call.log_msg = "otlp logs ingested"
        call.trailers += [(name.lower(), value) for name, value in done.rate_headers.items()]
        return encode_logs_response(done.rejected, done.message, PROTOBUF)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            LOGS_SERVICE, {"Export": unary(LOGS_SERVICE, "Export", self.export)}
        )


async def _caller(intake: Intake, raw: bytes, call: Call) -> Caller:
    """The caller of an export, its message within the body limit (BodyTooLarge past it)."""
    caller = await intake.authenticate(
        call.metadata.get("authorization"), call.request_id, call.metadata.get("user-agent", "")
    )
    call.project_id = caller.project_id
    limit = intake.config.max_body_bytes
    if len(raw) > limit:
        raise BodyTooLarge(f"message of {len(raw)} bytes exceeds {limit} bytes")
    return caller
