"""OTLP/JSON exports longer than the api parses whole, cut into requests of whole spans.

What split.py does for protobuf, for the JSON that OpenTelemetry's JavaScript OTLP/HTTP exporter
sends (Langfuse's JS SDK uses it): a batch of spans carrying prompts passes 5 MiB, and a 413 is
not retried, so the exporter dropped it. Parsed whole, a JSON body takes ~10 to ~30 times its
length in objects; here only its framing is walked (down to the spans, each skipped as a whole
value), and each piece is a document of ResourceSpans holding one ScopeSpans of consecutive
spans, the other members of both copied as they came. Where a member repeats, the last one
holds, as when the body is parsed whole. A piece parses (decode.parse_request) into what the
whole document holds of its spans; what is inside a span is for that parse to judge.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import orjson

_QUOTE: Final = 34
_BACKSLASH: Final = 92
_COMMA: Final = 44
_COLON: Final = 58
_OPEN_OBJECT: Final = 123
_CLOSE_OBJECT: Final = 125
_OPEN_ARRAY: Final = 91
_CLOSE_ARRAY: Final = 93
# Around a piece's spans: `{"resourceSpans":[{` ... `"scopeSpans":[{` ... `"spans":[` ... `]}]}]}`.
_FRAMING: Final = 48

_RESOURCE_SPANS: Final = ("resourceSpans", "resource_spans")
_SCOPE_SPANS: Final = ("scopeSpans", "scope_spans")
_SPANS: Final = ("spans",)


class JsonSplitError(ValueError):
    """The document's framing (its objects and arrays down to the spans) is not JSON."""


def pieces(data: bytes, target: int) -> Iterator[bytes]:
    """The export in `data` as OTLP/JSON documents of at most ~`target` bytes each (a span longer
    than that is a piece of its own), made one at a time; none for an export without spans.
    JsonSplitError when its framing is malformed."""
    end = len(data)
    pos = _space(data, 0, end)
    members, pos = _members(data, pos, end)
    if _space(data, pos, end) != end:
        raise JsonSplitError("content after the document")
    found = _last(members, _RESOURCE_SPANS)
    if found is None or data[found[0]] != _OPEN_ARRAY:
        return
    batch: list[bytes] = []
    size = 0
    for start, stop in _elements(data, found[0], found[1]):
        for part in _resource_parts(data, start, stop, target):
            if batch and size + len(part) > target:
                yield _document(batch)
                batch, size = [], 0
            batch.append(part)
            size += len(part) + 1
    if batch:
        yield _document(batch)


def _document(resource_spans: list[bytes]) -> bytes:
    return b'{"resourceSpans":[%b]}' % b",".join(resource_spans)


def _resource_parts(data: bytes, pos: int, end: int, target: int) -> Iterator[bytes]:
    """One ResourceSpans object as ResourceSpans objects of one ScopeSpans each."""
    if data[pos] != _OPEN_OBJECT:
        raise JsonSplitError("a resourceSpans element must be an object")
    members, _ = _members(data, pos, end)
    others = [data[key:stop] for name, key, _, stop in members if name not in _SCOPE_SPANS]
    scopes = _last(members, _SCOPE_SPANS)
    if scopes is None or data[scopes[0]] != _OPEN_ARRAY:
        yield b"{%b}" % b",".join(others)
        return
    head = b"".join(b"%b," % member for member in others)
    for start, stop in _elements(data, scopes[0], scopes[1]):
        for scope in _scope_parts(data, start, stop, target, len(head)):
            yield b'{%b"scopeSpans":[%b]}' % (head, scope)


def _scope_parts(data: bytes, pos: int, end: int, target: int, outer: int) -> Iterator[bytes]:
    """One ScopeSpans object as ScopeSpans objects of consecutive spans, each (with the `outer`
    bytes of its ResourceSpans' other members and the framing) within `target` bytes, unless it
    is one span."""
    if data[pos] != _OPEN_OBJECT:
        raise JsonSplitError("a scopeSpans element must be an object")
    members, _ = _members(data, pos, end)
    head = b"".join(b"%b," % data[key:stop] for name, key, _, stop in members if name not in _SPANS)
    spans = _last(members, _SPANS)
    if spans is None or data[spans[0]] != _OPEN_ARRAY:
        yield b"{%b}" % head[:-1]
        return
    base = outer + len(head) + _FRAMING
    group: list[bytes] = []
    size = base
    for start, stop in _elements(data, spans[0], spans[1]):
        if group and size + stop - start > target:
            yield b'{%b"spans":[%b]}' % (head, b",".join(group))
            group, size = [], base
        group.append(data[start:stop])
        size += stop - start + 1
    yield b'{%b"spans":[%b]}' % (head, b",".join(group))


def _last(members: list[tuple[str, int, int, int]], names: tuple[str, ...]) -> tuple[int, int] | None:
    """The value (start, end) of the last member of one of these names."""
    found = None
    for name, _, start, stop in members:
        if name in names:
            found = (start, stop)
    return found


# --- the framing: objects' members and arrays' elements, values skipped whole ----------------


def _members(data: bytes, pos: int, end: int) -> tuple[list[tuple[str, int, int, int]], int]:
    """The members of the object at `pos`: (name, start of its name, start and end of its value),
    and the position after the object."""
    if pos >= end or data[pos] != _OPEN_OBJECT:
        raise JsonSplitError("an object was expected")
    out: list[tuple[str, int, int, int]] = []
    pos = _space(data, pos + 1, end)
    if pos < end and data[pos] == _CLOSE_OBJECT:
        return out, pos + 1
    while True:
        if pos >= end or data[pos] != _QUOTE:
            raise JsonSplitError("a member's name was expected")
        key = pos
        pos = _string_end(data, pos + 1, end)
        try:
            name = orjson.loads(data[key:pos])
        except orjson.JSONDecodeError:
            raise JsonSplitError("a member's name is not a JSON string") from None
        pos = _space(data, pos, end)
        if pos >= end or data[pos] != _COLON:
            raise JsonSplitError("a colon was expected after a member's name")
        start = _space(data, pos + 1, end)
        stop = _value_end(data, start, end)
        out.append((name, key, start, stop))
        pos = _space(data, stop, end)
        if pos < end and data[pos] == _COMMA:
            pos = _space(data, pos + 1, end)
        elif pos < end and data[pos] == _CLOSE_OBJECT:
            return out, pos + 1
        else:
            raise JsonSplitError("a comma or the object's end was expected")


def _elements(data: bytes, pos: int, end: int) -> Iterator[tuple[int, int]]:
    """The (start, end) of each element of the array at `pos`, which ends at `end`."""
    pos = _space(data, pos + 1, end)
    if pos < end and data[pos] == _CLOSE_ARRAY:
        return
    while True:
        stop = _value_end(data, pos, end)
        yield pos, stop
        pos = _space(data, stop, end)
        if pos < end and data[pos] == _COMMA:
            pos = _space(data, pos + 1, end)
        elif pos < end and data[pos] == _CLOSE_ARRAY:
            return
        else:
            raise JsonSplitError("a comma or the array's end was expected")


def _value_end(data: bytes, pos: int, end: int) -> int:
    """The position after the value at `pos`: a string, a container (strings inside skipped by
    their quotes, brackets counted), or a number or literal (up to the next delimiter)."""
    if pos >= end:
        raise JsonSplitError("a value was expected")
    c = data[pos]
    if c == _QUOTE:
        return _string_end(data, pos + 1, end)
    if c == 123 or c == 91:  # { [
        depth = 0
        while pos < end:
            c = data[pos]
            if c == _QUOTE:
                pos = _string_end(data, pos + 1, end)
                continue
            if c == 123 or c == 91:  # { [
                depth += 1
            elif c == 125 or c == 93:  # } ]
                depth -= 1
                if depth == 0:
                    return pos + 1
            pos += 1
        raise JsonSplitError("an object or array does not end")
    start = pos
    while pos < end:
        c = data[pos]
        if c == 44 or c == 125 or c == 93 or c == 32 or c == 9 or c == 10 or c == 13:  # , } ] or space
            break
        pos += 1
    if pos == start:
        raise JsonSplitError("a value was expected")
    return pos


def _string_end(data: bytes, pos: int, end: int) -> int:
    """The position after the closing quote of the string whose content starts at `pos`: byte by
    byte for the first bytes (most strings are names and ids, and a call of find costs more), then
    by find."""
    stop = min(pos + 64, end)
    while pos < stop:
        c = data[pos]
        if c == _QUOTE:
            return pos + 1
        pos += 2 if c == _BACKSLASH else 1
    start = pos if pos <= end else end
    pos = start
    while True:
        quote = data.find(b'"', pos, end)
        if quote < 0:
            raise JsonSplitError("a string does not end")
        back = quote - 1
        while back >= start and data[back] == _BACKSLASH:
            back -= 1
        # An odd run of backslashes escapes the quote (a run that began before `start` was
        # stepped over whole by the loop above, two bytes at a time).
        if (quote - 1 - back) % 2 == 0:
            return quote + 1
        pos = quote + 1


def _space(data: bytes, pos: int, end: int) -> int:
    while pos < end:
        c = data[pos]
        if c != 32 and c != 9 and c != 10 and c != 13:
            return pos
        pos += 1
    return pos
