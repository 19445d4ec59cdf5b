"""One OTLP trace export, whatever carried it: map the spans, count them against the project's
rate limit and append them to Kafka. OTLP/HTTP (handler.py) and OTLP/gRPC (grpc_service.py)
decode their request and translate failures each in their own terms; the rest is here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from ingest.intake import Caller, Intake, handing_over
from ingest.otlp.mapping import as_tuples, map_request
from ingest.otlp.wire import Request


@dataclass(frozen=True)
class Exported:
    """The answer's content: spans rejected (for `partial_success`) and why, and the
    X-RateLimit-* values when a limit is configured."""

    rejected: int
    message: str
    rate_headers: dict[str, str]


async def export_spans(
    intake: Intake, caller: Caller, export: Request | ExportTraceServiceRequest, source: str, log: dict[str, Any]
) -> Exported:
    """Append the request's valid spans; invalid ones are counted in `rejected`, not fatal.

    Raises what Intake raises: RateLimited, PublishError (nothing of the request was
    acknowledged, the client must retry). `log` collects the fields of the request's log line,
    also when it raises.
    """
    mapped = map_request(export)
    del export  # what it was read into (the caller keeps no reference): not held while Kafka answers
    events = as_tuples(mapped.events)
    rejected, errors = mapped.rejected, list(mapped.errors)
    del mapped  # its event dicts; the bodies live on in `events` until enveloped
    log.update(events=0, rejected=rejected)
    headers: dict[str, str] = {}
    if events:
        headers = await intake.check_rate(caller, len(events))
        published = await intake.publish(caller, handing_over(events), source, partial=True)
        log.update(published.log_fields())
        if published.refused:
            rejected += len(published.refused)
            errors.extend(sorted({reason for _, _, reason in published.refused}))
            log["rejected"] = rejected
    return Exported(rejected, "; ".join(errors), headers)
