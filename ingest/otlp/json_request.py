"""OTLP/JSON export requests into protobuf messages, fast for the common shape.

`google.protobuf.json_format` is exact but walks the schema by reflection (about 100 µs per
span). The fast path here knows the one message tree of a trace export: it rewrites the JSON
object into constructor arguments (snake_case names, hex ids as bytes, int64 strings as ints)
and lets the C extension build the whole request in one call. Anything it does not recognise
(an unknown or snake_case key, an unexpected type) makes it give up, and the request goes
through `json_format`, whose answer, success or error, is then the authoritative one.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

# A one-byte id: kept through parsing, rejected by the mapping for that span alone.
BAD_ID = b"\x00"


class _GiveUp(Exception):
    """The fast path does not know this document; json_format decides."""


def build_request(doc: dict[str, Any]) -> ExportTraceServiceRequest:
    """The request for an OTLP/JSON document; ParseError/ValueError/TypeError when malformed."""
    try:
        return ExportTraceServiceRequest(**_REQUEST(doc))
    except (_GiveUp, TypeError, ValueError, RecursionError):
        pass
    _hex_ids_to_base64(doc)
    request = ExportTraceServiceRequest()
    json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    return request


# --- value converters: each returns a constructor argument or raises _GiveUp ---------------


def _str(v: Any) -> str:
    if type(v) is not str:
        raise _GiveUp
    return v


def _int(v: Any) -> int:
    if type(v) is int:
        return v
    if type(v) is str and v.isascii() and v.lstrip("-").isdigit():
        return int(v)
    raise _GiveUp


def _enum(v: Any) -> int | str:
    if type(v) is int or type(v) is str:
        return v  # a number or a value name; the constructor checks names
    raise _GiveUp


def _id(v: Any) -> bytes:
    if type(v) is not str:
        raise _GiveUp
    return id_bytes(v)


def id_bytes(v: str) -> bytes:
    """An OTLP/JSON id: hex, or base64 (the stock protobuf JSON mapping, which some clients
    send); BAD_ID when it is neither."""
    try:
        return bytes.fromhex(v)
    except ValueError:
        pass
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        return BAD_ID


_SPECIAL_DOUBLES = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _any(v: Any) -> dict[str, Any]:
    """AnyValue: exactly one of its fields (or none, an empty value)."""
    if type(v) is not dict or len(v) > 1:
        raise _GiveUp
    if not v:
        return {}
    ((key, x),) = v.items()
    if key == "stringValue":
        return {"string_value": _str(x)}
    if key == "intValue":
        return {"int_value": _int(x)}
    if key == "doubleValue":
        if type(x) is float or type(x) is int:
            return {"double_value": x}
        if x in _SPECIAL_DOUBLES:
            return {"double_value": _SPECIAL_DOUBLES[x]}
        raise _GiveUp
    if key == "boolValue":
        if type(x) is not bool:
            raise _GiveUp
        return {"bool_value": x}
    if key == "arrayValue":
        return {"array_value": {"values": [_any(e) for e in _values(x)]}}
    if key == "kvlistValue":
        return {"kvlist_value": {"values": [_key_value(e) for e in _values(x)]}}
    if key == "bytesValue":
        try:
            return {"bytes_value": base64.b64decode(_str(x), validate=True)}
        except (binascii.Error, ValueError):
            raise _GiveUp from None
    raise _GiveUp


def _values(v: Any) -> list[Any]:
    if type(v) is not dict or not v.keys() <= {"values"}:
        raise _GiveUp
    return _list(v.get("values") or [])


def _list(v: Any) -> list[Any]:
    if type(v) is not list:
        raise _GiveUp
    return v


_KV_KEYS = frozenset({"key", "value"})


def _key_value(v: Any) -> dict[str, Any]:
    if type(v) is not dict or not v.keys() <= _KV_KEYS:
        raise _GiveUp
    value = v.get("value")
    return {"key": _str(v.get("key", "")), "value": _any(value) if value is not None else {}}


def _attributes(v: Any) -> list[dict[str, Any]]:
    return [_key_value(kv) for kv in _list(v)]


Converter = Callable[[Any], Any]


def _message(fields: dict[str, tuple[str, Converter]]) -> Converter:
    """A converter for one message type: camelCase JSON names to (field name, converter)."""
    known = frozenset(fields)

    def convert(obj: Any) -> dict[str, Any]:
        if type(obj) is not dict or not obj.keys() <= known:
            raise _GiveUp
        out = {}
        for key, value in obj.items():
            if value is not None:  # JSON null means the default, as in json_format
                name, conv = fields[key]
                out[name] = conv(value)
        return out

    return convert


def _repeated(conv: Converter) -> Converter:
    return lambda v: [conv(e) for e in _list(v)]


_SCOPE = _message(
    {
        "name": ("name", _str),
        "version": ("version", _str),
        "attributes": ("attributes", _attributes),
        "droppedAttributesCount": ("dropped_attributes_count", _int),
    }
)
_RESOURCE = _message(
    {
        "attributes": ("attributes", _attributes),
        "droppedAttributesCount": ("dropped_attributes_count", _int),
    }
)
_EVENT = _message(
    {
        "timeUnixNano": ("time_unix_nano", _int),
        "name": ("name", _str),
        "attributes": ("attributes", _attributes),
        "droppedAttributesCount": ("dropped_attributes_count", _int),
    }
)
_LINK = _message(
    {
        "traceId": ("trace_id", _id),
        "spanId": ("span_id", _id),
        "traceState": ("trace_state", _str),
        "attributes": ("attributes", _attributes),
        "droppedAttributesCount": ("dropped_attributes_count", _int),
        "flags": ("flags", _int),
    }
)
_STATUS = _message({"message": ("message", _str), "code": ("code", _enum)})
_SPAN = _message(
    {
        "traceId": ("trace_id", _id),
        "spanId": ("span_id", _id),
        "traceState": ("trace_state", _str),
        "parentSpanId": ("parent_span_id", _id),
        "flags": ("flags", _int),
        "name": ("name", _str),
        "kind": ("kind", _enum),
        "startTimeUnixNano": ("start_time_unix_nano", _int),
        "endTimeUnixNano": ("end_time_unix_nano", _int),
        "attributes": ("attributes", _attributes),
        "droppedAttributesCount": ("dropped_attributes_count", _int),
        "events": ("events", _repeated(_EVENT)),
        "droppedEventsCount": ("dropped_events_count", _int),
        "links": ("links", _repeated(_LINK)),
        "droppedLinksCount": ("dropped_links_count", _int),
        "status": ("status", _STATUS),
    }
)
_SCOPE_SPANS = _message(
    {
        "scope": ("scope", _SCOPE),
        "spans": ("spans", _repeated(_SPAN)),
        "schemaUrl": ("schema_url", _str),
    }
)
_RESOURCE_SPANS = _message(
    {
        "resource": ("resource", _RESOURCE),
        "scopeSpans": ("scope_spans", _repeated(_SCOPE_SPANS)),
        "schemaUrl": ("schema_url", _str),
    }
)
_REQUEST = _message({"resourceSpans": ("resource_spans", _repeated(_RESOURCE_SPANS))})


# --- the exact path's id rewrite -----------------------------------------------------------


def _hex_ids_to_base64(doc: dict[str, Any]) -> None:
    """OTLP/JSON ids are hex; json_format expects base64. Rewritten in place."""
    for resource_spans in _objects(doc.get("resourceSpans") or doc.get("resource_spans")):
        scope_spans = resource_spans.get("scopeSpans") or resource_spans.get("scope_spans")
        for scope in _objects(scope_spans):
            for span in _objects(scope.get("spans")):
                _fix_ids(span, ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"))
                for link in _objects(span.get("links")):
                    _fix_ids(link, ("traceId", "spanId", "trace_id", "span_id"))


def _objects(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict)]


def _fix_ids(obj: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str) and value:
            obj[key] = base64.b64encode(_id(value)).decode()
