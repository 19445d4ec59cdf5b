"""OTLP/protobuf trace exports read straight from their bytes, for the mapping.

upb's Python messages cost more than the mapping that reads them: every field access looks the
field up by name and wraps what it finds (about 40% of decode + map per span,
bench/otlp_mapping.py). This reader, compiled with the mapping, walks the one message tree of a
trace export and keeps what the mapping reads, in objects with upb's field names; attribute
values arrive converted as `attributes.any_value` converts them, each key followed by its value in
one list (`Attributes`): no object per attribute, which a body of tiny attributes multiplies.

It answers as upb does: defaults for absent fields, the last value of a scalar field, repeated
sub-messages of a singular field merged, a oneof set by its last member, unknown fields (and
known ones with another wire type) skipped, and the same refusals as WireError: truncated or
malformed data, bad UTF-8 in any string field, messages nested deeper than upb's limit.
tests/unit/test_otlp_wire.py holds it to upb on generated and mangled requests.
"""

from __future__ import annotations

import struct
from typing import Any, Final

# upb's default limit of nested messages (the request itself counts).
MAX_DEPTH: Final = 100

_I64_LIMIT: Final = 1 << 63
_DOUBLE: Final = struct.Struct("<d")

# Wire types.
_VARINT: Final = 0
_I64: Final = 1
_LEN: Final = 2
_START_GROUP: Final = 3
_END_GROUP: Final = 4
_I32: Final = 5


# Repeated KeyValues: each key (str) followed by its value, converted as attributes.any_value does.
Attributes = list[Any]


class WireError(ValueError):
    """The bytes are not an export request upb would parse."""


class Status:
    def __init__(self) -> None:
        self.code = 0
        self.message = ""


class SpanEvent:
    def __init__(self) -> None:
        self.time_unix_nano = 0
        self.name = ""
        self.attributes: Attributes = []


class Link:
    def __init__(self) -> None:
        self.trace_id = b""
        self.span_id = b""
        self.attributes: Attributes = []


class Span:
    def __init__(self) -> None:
        self.trace_id = b""
        self.span_id = b""
        self.parent_span_id = b""
        self.name = ""
        self.start_time_unix_nano = 0
        self.end_time_unix_nano = 0
        # Shared empty ones until the span has its own (_span).
        self.attributes: Attributes = _NO_ATTRIBUTES
        self.events: list[SpanEvent] = _NO_EVENTS
        self.links: list[Link] = _NO_LINKS
        self.status = _NO_STATUS
        # Its length on the wire: what the export weighs it by before mapping it (mapping.py).
        self.size = 0


class Scope:
    def __init__(self) -> None:
        self.name = ""
        self.version = ""
        self.attributes: Attributes = []


class ScopeSpans:
    def __init__(self) -> None:
        self.scope = Scope()
        self.spans: list[Span] = []


class Resource:
    def __init__(self) -> None:
        self.attributes: Attributes = []


class ResourceSpans:
    def __init__(self) -> None:
        self.resource = Resource()
        self.scope_spans: list[ScopeSpans] = []


class Request:
    def __init__(self) -> None:
        self.resource_spans: list[ResourceSpans] = []


# What a span without attributes, events, links or a status holds: shared, and only read (the
# mapping reads, never writes). A list and a Status of its own were ~200 of the ~440 bytes a
# span of a few bytes parsed into, so a body of such spans ~9 times its length.
_NO_ATTRIBUTES: Final[Attributes] = []
_NO_EVENTS: Final[list[SpanEvent]] = []
_NO_LINKS: Final[list[Link]] = []
_NO_STATUS: Final = Status()


def parse(data: bytes) -> Request:
    """An ExportTraceServiceRequest's bytes as a Request; WireError when upb would refuse them."""
    request = Request()
    pos, end = 0, len(data)
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if field == 1 and wire == _LEN:
            start, pos = _length(data, pos, end)
            rs = ResourceSpans()
            _resource_spans(data, start, pos, rs, 2)
            request.resource_spans.append(rs)
        else:
            pos = _skip(data, pos, end, field, wire, 1)
    return request


# --- messages: each reads [pos, end) into its object, `depth` counting the message itself;
# only attribute values and groups nest without bound, and their readers check MAX_DEPTH ---


def _resource_spans(data: bytes, pos: int, end: int, rs: ResourceSpans, depth: int) -> None:
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if wire == _LEN and field <= 3:
            start, pos = _length(data, pos, end)
            if field == 1:
                _resource(data, start, pos, rs.resource, depth + 1)
            elif field == 2:
                ss = ScopeSpans()
                _scope_spans(data, start, pos, ss, depth + 1)
                rs.scope_spans.append(ss)
            else:
                _text(data, start, pos)  # schema_url
        else:
            pos = _skip(data, pos, end, field, wire, depth)


def _resource(data: bytes, pos: int, end: int, resource: Resource, depth: int) -> None:
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if field == 1 and wire == _LEN:
            start, pos = _length(data, pos, end)
            _attribute(data, start, pos, resource.attributes, depth + 1)
        elif field == 3 and wire == _LEN:
            start, pos = _length(data, pos, end)
            _entity_ref(data, start, pos, depth + 1)
        else:
            pos = _skip(data, pos, end, field, wire, depth)


def _entity_ref(data: bytes, pos: int, end: int, depth: int) -> None:
    """Nothing the mapping reads, but its strings are checked as upb checks them."""
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if 1 <= field <= 4 and wire == _LEN:
            start, pos = _length(data, pos, end)
            _text(data, start, pos)
        else:
            pos = _skip(data, pos, end, field, wire, depth)


def _scope_spans(data: bytes, pos: int, end: int, ss: ScopeSpans, depth: int) -> None:
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if wire == _LEN and field <= 3:
            start, pos = _length(data, pos, end)
            if field == 2:
                span = Span()
                _span(data, start, pos, span, depth + 1)
                span.size = pos - start
                ss.spans.append(span)
            elif field == 1:
                _scope(data, start, pos, ss.scope, depth + 1)
            else:
                _text(data, start, pos)  # schema_url
        else:
            pos = _skip(data, pos, end, field, wire, depth)


def _scope(data: bytes, pos: int, end: int, scope: Scope, depth: int) -> None:
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if wire == _LEN and field <= 3:
            start, pos = _length(data, pos, end)
            if field == 1:
                scope.name = _text(data, start, pos)
            elif field == 2:
                scope.version = _text(data, start, pos)
            else:
                _attribute(data, start, pos, scope.attributes, depth + 1)
        else:
            pos = _skip(data, pos, end, field, wire, depth)


def _span(data: bytes, pos: int, end: int, span: Span, depth: int) -> None:
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if wire == _LEN:
            start, pos = _length(data, pos, end)
            if field == 9:
                if span.attributes is _NO_ATTRIBUTES:
                    span.attributes = []
                _attribute(data, start, pos, span.attributes, depth + 1)
            elif field == 1:
                span.trace_id = data[start:pos]
            elif field == 2:
                span.span_id = data[start:pos]
            elif field == 4:
                span.parent_span_id = data[start:pos]
            elif field == 5:
                span.name = _text(data, start, pos)
            elif field == 11:
                event = SpanEvent()
                _event(data, start, pos, event, depth + 1)
                if span.events is _NO_EVENTS:
                    span.events = []
                span.events.append(event)
            elif field == 13:
                link = Link()
                _link(data, start, pos, link, depth + 1)
                if span.links is _NO_LINKS:
                    span.links = []
                span.links.append(link)
            elif field == 15:
                if span.status is _NO_STATUS:
                    span.status = Status()
                _status(data, start, pos, span.status, depth + 1)
            elif field == 3:
                _text(data, start, pos)  # trace_state
        elif wire == _I64 and (field == 7 or field == 8):
            if pos + 8 > end:
                raise WireError("truncated fixed64")
            if field == 7:
                span.start_time_unix_nano = int.from_bytes(data[pos : pos + 8], "little")
            else:
                span.end_time_unix_nano = int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
        else:
            pos = _skip(data, pos, end, field, wire, depth)


def _event(data: bytes, pos: int, end: int, event: SpanEvent, depth: int) -> None:
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if wire == _LEN and (field == 2 or field == 3):
            start, pos = _length(data, pos, end)
            if field == 2:
                event.name = _text(data, start, pos)
            else:
                _attribute(data, start, pos, event.attributes, depth + 1)
        elif field == 1 and wire == _I64:
            if pos + 8 > end:
                raise WireError("truncated fixed64")
            event.time_unix_nano = int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
        else:
            pos = _skip(data, pos, end, field, wire, depth)


def _link(data: bytes, pos: int, end: int, link: Link, depth: int) -> None:
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if wire == _LEN and field <= 4:
            start, pos = _length(data, pos, end)
            if field == 1:
                link.trace_id = data[start:pos]
            elif field == 2:
                link.span_id = data[start:pos]
            elif field == 3:
                _text(data, start, pos)  # trace_state
            else:
                _attribute(data, start, pos, link.attributes, depth + 1)
        else:
            pos = _skip(data, pos, end, field, wire, depth)


def _status(data: bytes, pos: int, end: int, status: Status, depth: int) -> None:
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if field == 2 and wire == _LEN:
            start, pos = _length(data, pos, end)
            status.message = _text(data, start, pos)
        elif field == 3 and wire == _VARINT:
            value, pos = _varint(data, pos, end)
            status.code = _int32(value)
        else:
            pos = _skip(data, pos, end, field, wire, depth)


def _key_value(data: bytes, pos: int, end: int, depth: int) -> tuple[str, Any]:
    if depth > MAX_DEPTH:
        raise WireError("messages nested too deep")
    key = ""
    value: Any = None
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if wire == _LEN and (field == 1 or field == 2):
            start, pos = _length(data, pos, end)
            if field == 1:
                key = _text(data, start, pos)
            else:
                value = _any_value(data, start, pos, value, depth + 1)
        else:
            pos = _skip(data, pos, end, field, wire, depth)
    return key, value


def _attribute(data: bytes, pos: int, end: int, attributes: Attributes, depth: int) -> None:
    key, value = _key_value(data, pos, end, depth)
    attributes.append(key)
    attributes.append(value)


def _any_value(data: bytes, pos: int, end: int, merged: Any, depth: int) -> Any:
    """The value an AnyValue holds, as attributes.any_value gives it (None when unset);
    `merged`: what an earlier occurrence of the same AnyValue field held."""
    if depth > MAX_DEPTH:
        raise WireError("messages nested too deep")
    value = merged
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if wire == _LEN and field != 2 and field != 3 and field != 4 and field != 8:
            start, pos = _length(data, pos, end)
            if field == 1:
                value = _text(data, start, pos)
            elif field == 5:
                # A second occurrence of the same member merges into the first (its list grows).
                items: list[Any] = value if type(value) is list else []
                _array(data, start, pos, items, depth + 1)
                value = items
            elif field == 6:
                entries: dict[str, Any] = value if type(value) is dict else {}
                _kvlist(data, start, pos, entries, depth + 1)
                value = entries
            elif field == 7:
                value = data[start:pos].hex()
        elif wire == _VARINT and (field == 2 or field == 3 or field == 8):
            number, pos = _varint(data, pos, end)
            if field == 2:
                value = number != 0
            elif field == 3:
                value = number - (1 << 64) if number >= _I64_LIMIT else number
            else:
                value = None  # string_value_strindex: a profiles' dictionary index, no text here
        elif field == 4 and wire == _I64:
            if pos + 8 > end:
                raise WireError("truncated double")
            value = _DOUBLE.unpack_from(data, pos)[0]
            pos += 8
        else:
            pos = _skip(data, pos, end, field, wire, depth)
    return value


def _array(data: bytes, pos: int, end: int, items: list[Any], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise WireError("messages nested too deep")
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if field == 1 and wire == _LEN:
            start, pos = _length(data, pos, end)
            items.append(_any_value(data, start, pos, None, depth + 1))
        else:
            pos = _skip(data, pos, end, field, wire, depth)


def _kvlist(data: bytes, pos: int, end: int, entries: dict[str, Any], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise WireError("messages nested too deep")
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if field == 1 and wire == _LEN:
            start, pos = _length(data, pos, end)
            key, value = _key_value(data, start, pos, depth + 1)
            entries[key] = value
        else:
            pos = _skip(data, pos, end, field, wire, depth)


# --- log exports: only the records a caller wants become objects -------------------------


class LogRecord:
    """A log record the caller asked for (by its event name), with the byte ranges of its body
    and of itself: their values are converted only when read (log_body, log_attributes)."""

    def __init__(self) -> None:
        self.time_unix_nano = 0
        self.observed_time_unix_nano = 0
        self.event_name = ""
        self.trace_id = b""
        self.span_id = b""
        # Each occurrence of the body field: later ones merge into earlier ones, as upb does.
        self.bodies: list[tuple[int, int]] = []
        self.start = 0
        self.end = 0


class LogsRequest:
    def __init__(self) -> None:
        self.records: list[LogRecord] = []
        self.limit = 0
        # Records read and left out: no event name the caller wants; wanted past the limit.
        self.skipped = 0
        self.over = 0


def parse_logs(data: bytes, wanted: frozenset[str], limit: int) -> LogsRequest:
    """An ExportLogsServiceRequest's first `limit` records whose event name (the `event_name`
    field, else the `event.name` attribute) is in `wanted`; the others are only counted, so a body
    of many tiny records costs no object each. WireError for what upb would refuse in the parts
    read."""
    request = LogsRequest()
    request.limit = limit
    pos, end = 0, len(data)
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if field == 1 and wire == _LEN:
            start, pos = _length(data, pos, end)
            _resource_logs(data, start, pos, request, wanted, 2)
        else:
            pos = _skip(data, pos, end, field, wire, 1)
    return request


def _resource_logs(data: bytes, pos: int, end: int, request: LogsRequest, wanted: frozenset[str], depth: int) -> None:
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if field == 2 and wire == _LEN:
            start, pos = _length(data, pos, end)
            _scope_logs(data, start, pos, request, wanted, depth + 1)
        else:
            pos = _skip(data, pos, end, field, wire, depth)


def _scope_logs(data: bytes, pos: int, end: int, request: LogsRequest, wanted: frozenset[str], depth: int) -> None:
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if field == 2 and wire == _LEN:
            start, pos = _length(data, pos, end)
            record = _log_record(data, start, pos, wanted, depth + 1)
            if record is None:
                request.skipped += 1
            elif len(request.records) >= request.limit:
                request.over += 1
            else:
                request.records.append(record)
        else:
            pos = _skip(data, pos, end, field, wire, depth)


def _log_record(data: bytes, pos: int, end: int, wanted: frozenset[str], depth: int) -> LogRecord | None:
    start = pos
    time_unix_nano = observed = 0
    event_name = ""
    trace_id = span_id = b""
    bodies: list[tuple[int, int]] = []
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if wire == _LEN and (field == 5 or field == 9 or field == 10 or field == 12):
            begin, pos = _length(data, pos, end)
            if field == 5:
                bodies.append((begin, pos))
            elif field == 9:
                trace_id = data[begin:pos]
            elif field == 10:
                span_id = data[begin:pos]
            else:
                event_name = _text(data, begin, pos)
        elif wire == _I64 and (field == 1 or field == 11):
            if pos + 8 > end:
                raise WireError("truncated fixed64")
            if field == 1:
                time_unix_nano = int.from_bytes(data[pos : pos + 8], "little")
            else:
                observed = int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
        else:
            pos = _skip(data, pos, end, field, wire, depth)
    if not event_name:
        named = _attribute_named(data, start, end, "event.name", depth)
        event_name = named if type(named) is str else ""
    if event_name not in wanted:
        return None
    record = LogRecord()
    record.time_unix_nano, record.observed_time_unix_nano, record.event_name = time_unix_nano, observed, event_name
    record.trace_id, record.span_id, record.bodies, record.start, record.end = trace_id, span_id, bodies, start, end
    return record


def _attribute_named(data: bytes, pos: int, end: int, name: str, depth: int) -> Any:
    """The value of a record's last attribute of this key, only that one converted; None if none."""
    value: Any = None
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if field == 6 and wire == _LEN:
            start, pos = _length(data, pos, end)
            if _key_of(data, start, pos) == name:
                value = _key_value(data, start, pos, depth + 1)[1]
        else:
            pos = _skip(data, pos, end, field, wire, depth)
    return value


def _key_of(data: bytes, pos: int, end: int) -> str:
    key = ""
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if field == 1 and wire == _LEN:
            start, pos = _length(data, pos, end)
            key = _text(data, start, pos)
        else:
            pos = _skip(data, pos, end, field, wire, 0)
    return key


def log_body(data: bytes, record: LogRecord) -> Any:
    """The record's body as attributes.any_value converts it (None when unset)."""
    value: Any = None
    for start, end in record.bodies:
        value = _any_value(data, start, end, value, 5)
    return value


def log_attributes(data: bytes, record: LogRecord) -> dict[str, Any]:
    """The record's attributes as a dict; a repeated key keeps its last value."""
    out: dict[str, Any] = {}
    pos, end = record.start, record.end
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if field == 6 and wire == _LEN:
            start, pos = _length(data, pos, end)
            key, value = _key_value(data, start, pos, 5)
            out[key] = value
        else:
            pos = _skip(data, pos, end, field, wire, 4)
    return out


# --- the wire format ------------------------------------------------------------------------


def _tag(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(field number, wire type, position after the tag)."""
    b = data[pos]
    if b < 0x80:
        tag, pos = b, pos + 1
    else:
        tag, pos = _varint(data, pos, end)
        if tag > 0xFFFF_FFFF:
            raise WireError("tag out of range")
    field = tag >> 3
    if field == 0:
        raise WireError("field number 0")
    return field, tag & 7, pos


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A varint's value (its low 64 bits, as upb keeps them) and the position after it."""
    result = 0
    shift = 0
    while pos < end:
        b = data[pos]
        pos += 1
        if shift < 63:
            result |= (b & 0x7F) << shift
        elif b & 1:
            result |= 1 << 63  # the 10th byte's lowest bit; the rest fall beyond 64 bits
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes")
    raise WireError("truncated varint")


def _length(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A length-delimited field: (its first byte, the position after it)."""
    size, pos = _varint(data, pos, end)
    if size > end - pos:
        raise WireError("truncated length-delimited field")
    return pos, pos + size


def _text(data: bytes, start: int, end: int) -> str:
    try:
        return data[start:end].decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("a string field had bad UTF-8") from None


def _int32(value: int) -> int:
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _skip(data: bytes, pos: int, end: int, field: int, wire: int, depth: int) -> int:
    """The position after an unknown field's value (or a known field's of another wire type)."""
    if wire == _VARINT:
        _, pos = _varint(data, pos, end)
        return pos
    if wire == _LEN:
        _, pos = _length(data, pos, end)
        return pos
    if wire == _I64:
        pos += 8
    elif wire == _I32:
        pos += 4
    elif wire == _START_GROUP:
        return _skip_group(data, pos, end, field, depth + 1)
    else:
        raise WireError(f"unexpected wire type {wire}")
    if pos > end:
        raise WireError("truncated fixed-width field")
    return pos


def _skip_group(data: bytes, pos: int, end: int, group: int, depth: int) -> int:
    if depth > MAX_DEPTH:
        raise WireError("messages nested too deep")
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if wire == _END_GROUP:
            if field != group:
                raise WireError("mismatched end of group")
            return pos
        pos = _skip(data, pos, end, field, wire, depth)
    raise WireError("unterminated group")
