"""OTLP/protobuf exports longer than the api parses whole, cut into requests of whole spans.

An OpenTelemetry Collector's batch processor sends 8,192 spans a request by default; spans that
carry prompts make that 10-30 MB, past what the api may parse at once (a request parses into ~4
times its bytes, ~10 while mapped: ingest/config.py). Refused with 413, which exporters do not
retry, the Collector dropped every such batch. Here the body is cut at the wire level: each piece
is one or more ResourceSpans holding one ScopeSpans of consecutive spans, each message's other
fields (resource, scope, schema URLs, unknown fields) copied byte for byte and in their order, so
a piece parses (wire.parse) into what the whole request holds of those spans. Memory then holds
the body and one piece's parse, whatever the body's length.
"""

from __future__ import annotations

from collections.abc import Iterator

from ingest.otlp.wire import WireError, _length, _skip, _tag
from sinks.clickhouse.native import varint  # LEB128, as protobuf's varints are

_LEN = 2  # the length-delimited wire type
# Field numbers: ExportTraceServiceRequest.resource_spans, ResourceSpans.scope_spans,
# ScopeSpans.spans.
_RESOURCE_SPANS = 1
_SCOPE_SPANS = 2
_SPANS = 2
# Two messages' tags and lengths around a piece's spans (a length takes at most 5 bytes).
_FRAMING = 12


def pieces(data: bytes, target: int) -> Iterator[bytes]:
    """The request in `data` as requests of at most ~`target` bytes each (a span longer than
    that is a piece of its own), made one at a time. WireError when the request's framing (its
    messages down to the spans) is malformed; what is inside a span is for wire.parse to judge."""
    batch: list[bytes] = []
    size = 0
    pos, end = 0, len(data)
    while pos < end:
        field, wire, pos = _tag(data, pos, end)
        if field != _RESOURCE_SPANS or wire != _LEN:
            pos = _skip(data, pos, end, field, wire, 1)  # unknown to the request: parse skips it too
            continue
        start, pos = _length(data, pos, end)
        for part in _resource_parts(data, start, pos, target):
            if batch and size + len(part) > target:
                yield b"".join(batch)
                batch, size = [], 0
            batch.append(part)
            size += len(part)
    if batch:
        yield b"".join(batch)


def _resource_parts(data: bytes, pos: int, end: int, target: int) -> Iterator[bytes]:
    """One ResourceSpans (its fields in [pos, end)) as ResourceSpans fields of one ScopeSpans each."""
    others: list[bytes] = []  # every field but scope_spans, encoded as they came
    scopes: list[tuple[int, int]] = []
    while pos < end:
        at = pos
        field, wire, pos = _tag(data, pos, end)
        if field == _SCOPE_SPANS and wire == _LEN:
            scopes.append(_length(data, pos, end))
            pos = scopes[-1][1]
        else:
            pos = _skip(data, pos, end, field, wire, 2)
            others.append(data[at:pos])
    head = b"".join(others)
    if not scopes:
        yield _field(_RESOURCE_SPANS, head)
        return
    for start, stop in scopes:
        for scope_spans in _scope_parts(data, start, stop, target, len(head)):
            yield _field(_RESOURCE_SPANS, head + scope_spans)


def _scope_parts(data: bytes, pos: int, end: int, target: int, outer: int) -> Iterator[bytes]:
    """One ScopeSpans as ScopeSpans fields of consecutive spans, each (with the `outer` bytes of
    its ResourceSpans' other fields and both messages' framing) within `target` bytes, unless it
    is one span. Two passes, neither keeping anything per span (a ScopeSpans of tiny spans holds
    more of them than bytes): the fields other than spans first, as they go before every piece's
    spans wherever they were."""
    others: list[bytes] = []
    at = pos
    while at < end:
        start = at
        field, wire, at = _tag(data, at, end)
        if field == _SPANS and wire == _LEN:
            at = _length(data, at, end)[1]
        else:
            at = _skip(data, at, end, field, wire, 3)
            others.append(data[start:at])
    head = b"".join(others)
    base = outer + len(head) + _FRAMING
    group: list[bytes] = []
    size = base
    while pos < end:
        start = pos
        field, wire, pos = _tag(data, pos, end)
        if field != _SPANS or wire != _LEN:
            pos = _skip(data, pos, end, field, wire, 3)
            continue
        pos = _length(data, pos, end)[1]
        if group and size + pos - start > target:
            yield _field(_SCOPE_SPANS, head + b"".join(group))
            group, size = [], base
        group.append(data[start:pos])
        size += pos - start
    yield _field(_SCOPE_SPANS, head + b"".join(group))


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return bytes([number << 3 | _LEN]) + varint(len(payload)) + payload


__all__ = ["WireError", "pieces"]
