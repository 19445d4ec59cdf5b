"""One OTLP trace export, whatever carried it: map the spans, count them against the project's
rate limit and append them to Kafka. OTLP/HTTP (handler.py) and OTLP/gRPC (grpc_service.py)
decode their request and translate failures each in their own terms; the rest is here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from ingest.encoding import DecodeError
from ingest.intake import Caller, Intake, handing_over
from ingest.otlp import json_split, split
from ingest.otlp.decode import PROTOBUF, parse_request
from ingest.otlp.experiments import ROOT, Link, experiment_item
from ingest.otlp.mapping import Slices, as_tuples
from ingest.otlp.wire import Request
from sinks.postgres.dataset_runs import ExperimentItem


@dataclass(frozen=True)
class Exported:
    """The answer's content: spans rejected (for `partial_success`) and why, and the
    X-RateLimit-* values when a limit is configured."""

    rejected: int
    message: str
    rate_headers: dict[str, str]


async def export_spans(
    intake: Intake,
    caller: Caller,
    export: Request | ExportTraceServiceRequest,
    source: str,
    log: dict[str, Any],
    link: Link | None = None,
    *,
    rate_counted: bool = False,
) -> Exported:
    """Append the request's valid spans; invalid ones are counted in `rejected`, not fatal.

    The spans are mapped and appended a slice at a time (config.max_mapped_bytes, estimated):
    a request of many small spans maps into ~27 times its length, which whole would take the
    api past its memory budget. A slice after the first that fails raises as a whole request
    would; the client's retry appends the earlier slices again, with the same event ids (they
    derive from the span ids), which every stage folds once.

    The rate limit counts a request once, before anything of it is appended: a request of one
    slice by its events, one of several by its spans (what is known before the rest is mapped).
    Counted slice by slice, a limit met on a later slice answered 429 after earlier slices were
    accepted, and the client's retry counted those again.

    With `rate_counted`, the spans were counted already (export_pieces counts a request's
    pieces once, up front).

    With `link`, the spans that root an SDK experiment's dataset items are handed to it once
    all are appended (experiments.py): the links name traces that are then in the log.

    Raises what Intake raises: RateLimited, PublishError (the client must retry), and what
    `link` raises. `log` collects the fields of the request's log line, also when it raises.
    """
    config = intake.config
    spans = _span_count(export)
    slices = Slices(export, config.max_mapped_bytes, config.max_event_bytes)
    del export  # what it was read into: the slices let it go once the last span is mapped
    counted = rate_counted
    log.update(events=0, rejected=0)
    headers: dict[str, str] = {}
    mapped_rejected, mapped_errors = 0, []
    refused, reasons = 0, set[str]()
    experiment_items: list[ExperimentItem] = []
    while not slices.done:
        mapped = slices.next()
        if link is not None:
            # One dict lookup an event: ~0.1 µs against the µs that mapping a span takes.
            roots = (e for e in mapped.events if ROOT in (e["body"].get("metadata") or ()))
            experiment_items += filter(None, map(experiment_item, roots))
        events = as_tuples(mapped.events)
        mapped_rejected, mapped_errors = mapped.rejected, mapped.errors
        del mapped  # its event dicts; the bodies live on in `events` until enveloped
        log["rejected"] = mapped_rejected + refused
        if not events:
            continue
        if not counted:
            headers = await intake.check_rate(caller, len(events) if slices.done else spans)
            counted = True
        published = await intake.publish(caller, handing_over(events), source, partial=True)
        log["events"] += published.events
        log["observations_count"] = log.get("observations_count", 0) + published.observations
        log["trace_id"] = log.get("trace_id") or published.trace_id
        refused += len(published.refused)
        reasons.update(reason for _, _, reason in published.refused)
        log["rejected"] = mapped_rejected + refused
    if experiment_items and link is not None:
        await link(caller.project_id, experiment_items)
        log["experiment_items"] = len(experiment_items)
    return Exported(mapped_rejected + refused, "; ".join([*mapped_errors, *sorted(reasons)]), headers)


# The log fields of a piece's export_spans that add up over a request's pieces.
_SUMMED = ("events", "rejected", "observations_count", "experiment_items")


def _span_count(export: Request | ExportTraceServiceRequest) -> int:
    return sum(len(scope.spans) for resource in export.resource_spans for scope in resource.scope_spans)


async def export_pieces(
    intake: Intake,
    caller: Caller,
    data: bytes,
    source: str,
    log: dict[str, Any],
    link: Link | None = None,
    kind: str = PROTOBUF,
) -> Exported:
    """An OTLP export (protobuf, or JSON with `kind`) longer than max_body_bytes, a piece of
    otlp_piece_bytes at a time (split.py, json_split.py): parsed and appended one after another,
    so that memory holds the body and one piece's parse.

    Every piece is parsed once before anything is appended: a malformed export is refused
    whole (400), as one parsed whole would be, and its spans are counted against the rate limit
    once. A failure while appending a later piece answers as for a whole request (503): the
    client's retry appends the earlier pieces again, with the same event ids, which every
    stage folds once.
    """
    size = intake.config.otlp_piece_bytes
    cut = split.pieces if kind is PROTOBUF else json_split.pieces
    try:
        spans = sum(_span_count(parse_request(piece, kind)) for piece in cut(data, size))
    except split.WireError as exc:  # the framing around the spans (parse_request judges the rest)
        raise DecodeError(f"malformed protobuf: {exc}") from None
    except json_split.JsonSplitError as exc:
        raise DecodeError(f"malformed OTLP/JSON: {exc}") from None
    headers = await intake.check_rate(caller, spans)
    rejected, messages = 0, []
    log.update(events=0, rejected=0, pieces=0)
    for piece in cut(data, size):
        part: dict[str, Any] = {}
        try:
            export = parse_request(piece, kind)
            done = await export_spans(intake, caller, export, source, part, link, rate_counted=True)
        finally:
            log["pieces"] += 1
            for key in _SUMMED:
                if key in part:
                    log[key] = log.get(key, 0) + part[key]
            log["trace_id"] = log.get("trace_id") or part.get("trace_id")
        rejected += done.rejected
        if done.message:
            messages.append(done.message)
    return Exported(rejected, "; ".join(messages), headers)
