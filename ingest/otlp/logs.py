"""OTLP log exports: the prompts and completions GenAI instrumentations send as log records.

The OpenTelemetry GenAI instrumentations (opentelemetry-instrumentation-openai-v2 and the other
contrib ones, with content capture on) keep a call's messages off its span: each is a log record
in the span's context, `gen_ai.{system,user,assistant,tool}.message` and `gen_ai.choice` with the
message as the body, or, in the latest conventions, one `gen_ai.client.inference.operation.details`
record with `gen_ai.input.messages` and `gen_ai.output.messages` attributes. Without them a
generation read back here would have no input or output.

A request's records of one span become one `span-update` of that observation, its input and
output read as the same events on a span are (mapping.io_from_events). The update names no
trace: logs and spans travel in separate exports, often the logs first, and an update without
a trace goes the way that merges with a create folded anywhere, in either order (the journal,
sinks/clickhouse/writer.py `_reconcile`); the trace of the records' context (`contextTraceId`)
only places it in its trace's partition, with the trace's state. Its type yields to the span's.
Other log records are not stored: they count as rejected in the answer's `partial_success`,
with the reason.
"""

from __future__ import annotations

import base64
import binascii
import time
import zlib
from dataclasses import dataclass
from typing import Any, Final

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from ingest.encoding import DecodeError
from ingest.intake import Caller, Intake, handing_over
from ingest.otlp import wire
from ingest.otlp.attributes import MAX_DEPTH, TOO_DEEP
from ingest.otlp.conventions import CHOICE_EVENT, EVENT_IO, MESSAGE_EVENTS, OPERATION_DETAILS
from ingest.otlp.decode import PROTOBUF, encode_partial, json_object, media_type
from ingest.otlp.export import Exported
from ingest.otlp.json_request import id_bytes
from ingest.otlp.mapping import SPAN_WEIGHT, WEIGHT_PER_BYTE, io_from_events, system_message
from pipeline.envelope import CONTEXT_TRACE, INPUT_PART
from pipeline.times import MAX_US, MIN_US

# Semantic Kernel's record of a text completion's prompt (its body the prompt), read as the
# span event of the same content.
_PROMPT_EVENT: Final = "gen_ai.prompt"
_PROMPT_AS: Final = next(name for name, (field, _) in EVENT_IO.items() if field == "input")
# The records whose content is kept, on their span.
CONTENT_EVENTS: Final = frozenset({*MESSAGE_EVENTS, CHOICE_EVENT, OPERATION_DETAILS, *EVENT_IO, _PROMPT_EVENT})
# What makes a message record worth an update: with content capture off, the instrumentations
# still send each message's record, holding only its role, index or finish reason.
_CONTENT_KEYS: Final = frozenset({"content", "tool_calls", "parts", "text", "message"})
_ROLE_ONLY: Final = frozenset({"role"})
_INSTRUCTIONS: Final = "gen_ai.system_instructions"
# Content records read from one export, at most: the SDKs export 512 at a time, the Collector's
# batches are some thousands; past this a body of tiny records would cost the api ~0.5 KB each.
MAX_RECORDS: Final = 20_000


class Record:
    """A content record: its body and attributes are converted when read, from the protobuf bytes
    (`source` a wire.LogRecord, `data` the body they are in) or the OTLP/JSON object."""

    __slots__ = ("data", "name", "size", "source", "span_id", "time_ns", "trace_id")

    def __init__(
        self, name: str, trace_id: bytes, span_id: bytes, time_ns: int, size: int, source: Any, data: bytes = b""
    ) -> None:
        self.name, self.trace_id, self.span_id, self.time_ns = name, trace_id, span_id, time_ns
        self.size, self.source, self.data = size, source, data

    def body(self) -> Any:
        if type(self.source) is dict:
            return _any(self.source.get("body"), 0)
        return wire.log_body(self.data, self.source)

    def attributes(self) -> dict[str, Any]:
        if type(self.source) is dict:
            pairs = self.source.get("attributes")
            if type(pairs) is not list:
                return {}
            return {
                kv["key"]: _any(kv.get("value"), 0) for kv in pairs if type(kv) is dict and type(kv.get("key")) is str
            }
        return wire.log_attributes(self.data, self.source)


@dataclass
class Parsed:
    records: list[Record]
    skipped: int  # records of no content event
    over: int = 0  # content records past MAX_RECORDS, left out unread


def parse_logs(body: bytes, content_type: str) -> Parsed:
    """An (already decompressed) ExportLogsServiceRequest's content records, at most MAX_RECORDS;
    DecodeError (400) when malformed."""
    if media_type(content_type) is PROTOBUF:
        data = bytes(body)
        try:
            request = wire.parse_logs(data, CONTENT_EVENTS, MAX_RECORDS)
        except wire.WireError as exc:
            raise DecodeError(f"malformed protobuf: {exc}") from None
        records = [
            Record(
                r.event_name,
                r.trace_id,
                r.span_id,
                r.time_unix_nano or r.observed_time_unix_nano,
                r.end - r.start,
                r,
                data,
            )
            for r in request.records
        ]
        return Parsed(records, request.skipped, request.over)
    doc = json_object(body)
    parsed = Parsed([], 0)
    for resource in _objects(doc, "resourceLogs", "resource_logs"):
        for scope in _objects(resource, "scopeLogs", "scope_logs"):
            for item in _objects(scope, "logRecords", "log_records"):
                if not _wanted(item):
                    parsed.skipped += 1
                elif len(parsed.records) >= MAX_RECORDS:
                    parsed.over += 1
                else:
                    parsed.records.append(_json_record(item))
    return parsed


def _wanted(item: dict[str, Any]) -> bool:
    name = item.get("eventName") or item.get("event_name")
    if not name:
        pairs = item.get("attributes")
        for kv in pairs if type(pairs) is list else ():
            if type(kv) is dict and kv.get("key") == "event.name":
                name = _any(kv.get("value"), 0)
    if type(name) is str and name in CONTENT_EVENTS:
        item["eventName"] = name
        return True
    return False


def _json_record(item: dict[str, Any]) -> Record:
    time_ns = _nanos(item.get("timeUnixNano", item.get("time_unix_nano"))) or _nanos(
        item.get("observedTimeUnixNano", item.get("observed_time_unix_nano"))
    )
    trace_id = _id(item.get("traceId", item.get("trace_id")))
    span_id = _id(item.get("spanId", item.get("span_id")))
    return Record(item["eventName"], trace_id, span_id, time_ns, len(orjson.dumps(item)), item)


def _objects(parent: dict[str, Any], *keys: str) -> list[dict[str, Any]]:
    for key in keys:
        value = parent.get(key)
        if type(value) is list:
            return [v for v in value if type(v) is dict]
    return []


def _nanos(v: Any) -> int:
    if type(v) is int:
        return v if v > 0 else 0
    if type(v) is str and v.isascii() and v.isdigit():
        return int(v)
    return 0


def _id(v: Any) -> bytes:
    """OTLP/JSON ids are hex (base64 is read too); an id of no length otherwise, which `group`
    rejects as no span context."""
    return id_bytes(v) if type(v) is str else b""


def _any(v: Any, depth: int) -> Any:
    """An OTLP/JSON AnyValue as attributes.any_value converts the protobuf one."""
    if type(v) is not dict or not v:
        return None
    if depth >= MAX_DEPTH:
        return TOO_DEEP
    if "stringValue" in v:
        s = v["stringValue"]
        return s if type(s) is str else None
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "intValue" in v:
        n = v["intValue"]
        return n if type(n) is int else _nanos_signed(n)
    if "doubleValue" in v:
        d = v["doubleValue"]
        try:
            return float(d) if type(d) in (int, float, str) else None
        except ValueError:
            return None
    if "arrayValue" in v:
        array = v["arrayValue"]
        values = array.get("values") if type(array) is dict else None
        return [_any(x, depth + 1) for x in values] if type(values) is list else []
    if "kvlistValue" in v:
        kvlist = v["kvlistValue"]
        values = kvlist.get("values") if type(kvlist) is dict else None
        if type(values) is not list:
            return {}
        return {
            kv["key"]: _any(kv.get("value"), depth + 1)
            for kv in values
            if type(kv) is dict and type(kv.get("key")) is str
        }
    if "bytesValue" in v:
        raw = v["bytesValue"]
        try:
            return base64.b64decode(raw).hex() if type(raw) is str else None
        except (binascii.Error, ValueError):
            return None
    return None


def _nanos_signed(v: Any) -> int | None:
    if type(v) is str and v.isascii() and v.lstrip("-").isdigit():
        return int(v)
    return None


# --- mapping ----------------------------------------------------------------------------------


@dataclass
class Grouped:
    """A request's content records by span, in the order of each span's first record, and what
    was rejected before any was read."""

    spans: list[tuple[str, list[Record]]]
    rejected: int
    errors: list[str]

    def reasons(self, malformed: int) -> list[str]:
        """Why records were rejected, with the `malformed` ones that building the updates found."""
        return self.errors + ([f"{malformed} {_MALFORMED}"] if malformed else [])


def group(parsed: Parsed, max_event_bytes: int) -> Grouped:
    groups: dict[tuple[bytes, bytes], list[Record]] = {}
    no_context = 0
    for record in parsed.records:
        trace_id, span_id = record.trace_id, record.span_id
        if len(trace_id) != 16 or len(span_id) != 8 or not any(span_id) or not any(trace_id):
            no_context += 1
            continue
        records = groups.get((trace_id, span_id))
        if records is None:
            groups[(trace_id, span_id)] = [record]
        else:
            records.append(record)
    spans: list[tuple[str, list[Record]]] = []
    too_large = 0
    for (_, span_id), records in groups.items():
        # Its messages as JSON would be past the limit of an event too: refused unread.
        if sum(r.size for r in records) > max_event_bytes:
            too_large += len(records)
        else:
            spans.append((span_id.hex(), records))
    errors = []
    if parsed.skipped:
        errors.append(
            f"{parsed.skipped} log records are not GenAI content events "
            f"({', '.join(sorted(CONTENT_EVENTS))}): only those are kept, on their spans"
        )
    if no_context:
        errors.append(f"{no_context} GenAI content log records have no valid trace and span id to be kept on")
    if parsed.over:
        errors.append(f"{parsed.over} GenAI content log records past the first {MAX_RECORDS} of one export")
    if too_large:
        errors.append(f"{too_large} GenAI content log records of spans whose content exceeds {max_event_bytes} bytes")
    return Grouped(spans, parsed.skipped + no_context + parsed.over + too_large, errors)


def build(span_hex: str, records: list[Record], now_us: int) -> tuple[dict[str, Any] | None, int]:
    """The span's update (None when its records hold no content) and how many records were
    rejected instead: all of them when one's body or attributes turn out malformed."""
    try:
        return _update(span_hex, records, now_us), 0
    except wire.WireError:  # a body read only now (wire.parse_logs keeps its bytes)
        return None, len(records)


_MALFORMED: Final = "GenAI content log records of malformed protobuf in their body or attributes"


@dataclass
class Mapped:
    events: list[dict[str, Any]]
    rejected: int
    errors: list[str]


def map_logs(parsed: Parsed, now_us: int | None = None, max_event_bytes: int = 1_000_000) -> Mapped:
    """Every span's update at once (export_logs builds them a slice at a time)."""
    now_us = time.time_ns() // 1000 if now_us is None else now_us
    grouped = group(parsed, max_event_bytes)
    events, malformed = [], 0
    for span_hex, records in grouped.spans:
        event, bad = build(span_hex, records, now_us)
        malformed += bad
        if event is not None:
            events.append(event)
    return Mapped(events, grouped.rejected + malformed, grouped.reasons(malformed))


def _update(span_hex: str, records: list[Record], now_us: int) -> dict[str, Any] | None:
    """The span's update with what its records say of its input and output; None if nothing."""
    events: list[dict[str, Any]] = []
    system: Any = None
    latest = 0
    first_message = -1  # the earliest message record's time (ns)
    for record in records:
        name = record.name
        if name in MESSAGE_EVENTS or name == CHOICE_EVENT:
            fields = _message_of(record.body())
            if not _carries_content(fields):
                continue
            if name != CHOICE_EVENT and (first_message < 0 or record.time_ns < first_message):
                first_message = record.time_ns
        elif name == _PROMPT_EVENT:
            body = record.body()
            if body is None:
                continue
            name, fields = _PROMPT_AS, {EVENT_IO[_PROMPT_AS][1]: body}
        else:  # the operation's details, or a prompt or completion: their attributes, the body's over them
            fields = record.attributes()
            body = record.body()
            if type(body) is dict:
                fields.update(body)
            if name == OPERATION_DETAILS and _INSTRUCTIONS in fields:
                system = fields[_INSTRUCTIONS]
        events.append({"name": name, "attributes": fields})
        latest = max(latest, record.time_ns // 1000)
    if not events:
        return None
    update: dict[str, Any] = {"id": span_hex, CONTEXT_TRACE: records[0].trace_id.hex()}
    from_messages = io_from_events(events, update)
    if system is not None and "input" in update:
        system_message(system, update, {})
    if "input" not in update and "output" not in update:
        return None
    if from_messages and type(update.get("input")) is list:
        # A part of the input: the call's other message records may come in another export.
        messages = update["input"]
        check = zlib.crc32(orjson.dumps(messages))
        update[INPUT_PART] = [f"{max(first_message, 0):020d}-{check:08x}", len(messages)]
    ts = latest if MIN_US <= latest < MAX_US else now_us
    return {"id": f"{span_hex}-log-{ts}", "type": "span-update", "timestamp": ts, "body": update}


def _message_of(body: Any) -> dict[str, Any]:
    """A message record's body as the message's fields: the OpenTelemetry instrumentations send a
    map, Semantic Kernel (through Python's logging) the message's JSON as text."""
    if type(body) is dict:
        return body
    if body is None:
        return {}
    if type(body) is str and body[:1] == "{":
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        if type(parsed) is dict:
            return parsed
    return {"content": body}


def _carries_content(fields: dict[str, Any]) -> bool:
    message = fields.get("message")
    if type(message) is dict and not _CONTENT_KEYS.intersection(message):
        fields = {k: v for k, v in fields.items() if k != "message"}
    return bool(_CONTENT_KEYS.intersection(fields)) and set(fields) != _ROLE_ONLY


# --- export -----------------------------------------------------------------------------------


async def export_logs(intake: Intake, caller: Caller, parsed: Parsed, source: str, log: dict[str, Any]) -> Exported:
    """Append the spans' updates, built and appended a slice of max_mapped_bytes (estimated
    from their records' length) at a time; the rate limit counts them once, by span, before
    anything is appended. Raises what Intake raises."""
    config = intake.config
    grouped = group(parsed, config.max_event_bytes)
    del parsed
    log.update(events=0, rejected=grouped.rejected)
    headers: dict[str, str] = {}
    if grouped.spans:
        headers = await intake.check_rate(caller, len(grouped.spans))
    now_us = time.time_ns() // 1000
    malformed, refused, reasons = 0, 0, set[str]()
    piece: list[tuple[str, str, int, dict[str, Any]]] = []
    weight = 0
    spans = grouped.spans
    for i, (span_hex, records) in enumerate(spans):
        event, bad = build(span_hex, records, now_us)
        malformed += bad
        if event is not None:
            piece.append((event["id"], event["type"], event["timestamp"], event["body"]))
            weight += SPAN_WEIGHT + WEIGHT_PER_BYTE * sum(r.size for r in records)
        spans[i] = ("", [])  # its records, and the bytes they point into, are no longer needed here
        if piece and (weight >= config.max_mapped_bytes or i == len(spans) - 1):
            published = await intake.publish(caller, handing_over(piece), source, partial=True)
            piece, weight = [], 0
            log["events"] += published.events
            refused += len(published.refused)
            reasons.update(reason for _, _, reason in published.refused)
    rejected = grouped.rejected + malformed + refused
    log["rejected"] = rejected
    return Exported(rejected, "; ".join([*grouped.reasons(malformed), *sorted(reasons)]), headers)


def encode_logs_response(rejected: int, message: str, content_type: str | None) -> bytes:
    """An ExportLogsServiceResponse in the request's encoding, `partial_success` only when
    records were rejected."""
    return encode_partial(ExportLogsServiceResponse(), "rejected_log_records", rejected, message, content_type)
