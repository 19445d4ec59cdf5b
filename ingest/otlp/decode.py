"""OTLP/HTTP trace requests and responses in both encodings: binary protobuf and OTLP/JSON.

OTLP/JSON is the protobuf JSON mapping with two differences the stock parser does not know
(OTLP spec, "JSON Protobuf Encoding"): trace and span ids are hex strings rather than base64,
and enum values may be integers. `json_request` handles both, and reads the common shape
without `json_format`'s reflection. An id that is neither hex nor base64 becomes a one-byte
id, so the mapping rejects that span alone instead of the whole request.
"""

from __future__ import annotations

from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from ingest.encoding import DecodeError, UnsupportedMediaType
from ingest.otlp import wire
from ingest.otlp.json_request import build_request
from sinks.clickhouse.native import varint  # LEB128, as protobuf's varints are

__all__ = [
    "encode_partial",
    "encode_response",
    "encode_status",
    "json_object",
    "media_type",
    "parse_request",
    "response_content_type",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# google.rpc.Code for an HTTP status (the codes gRPC maps those statuses from), for `Status.code`.
_RPC_CODES = {400: 3, 401: 16, 403: 7, 404: 12, 405: 12, 409: 10, 413: 8, 415: 3, 429: 8, 503: 14}
_RPC_UNKNOWN = 2

_MEDIA_TYPES = {
    "application/x-protobuf": PROTOBUF,
    "application/protobuf": PROTOBUF,
    "application/json": JSON,
}


def media_type(content_type: str | None) -> str:
    """`PROTOBUF` or `JSON` for a Content-Type header (parameters ignored); else 415."""
    essence = (content_type or "").split(";", 1)[0].strip().lower()
    found = _MEDIA_TYPES.get(essence)
    if found is None:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {essence or '(none)'!r}; use application/x-protobuf or application/json"
        )
    return found


def response_content_type(request_content_type: str | None) -> str:
    """The Content-Type of the answer: the request's encoding, protobuf when it was unusable."""
    try:
        return media_type(request_content_type)
    except UnsupportedMediaType:
        return PROTOBUF


def parse_request(body: bytes, content_type: str) -> wire.Request | ExportTraceServiceRequest:
    """Decode an (already decompressed) export request; DecodeError (400) when malformed.

    Protobuf is read by `wire` (what upb would parse, read without upb's per-field cost),
    OTLP/JSON into upb's messages; the mapping takes either.
    """
    kind = media_type(content_type)
    if kind is PROTOBUF:
        try:
            return wire.parse(bytes(body))
        except wire.WireError as exc:
            raise DecodeError(f"malformed protobuf: {exc}") from None
    doc = json_object(body)
    try:
        return build_request(doc)
    except (json_format.ParseError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise DecodeError(f"malformed OTLP/JSON: {exc}") from None


def json_object(body: bytes) -> dict[str, Any]:
    """An OTLP/JSON body's top object; DecodeError (400) for anything else."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DecodeError("malformed OTLP/JSON: the body must be an object")
    return doc


def encode_response(partial_rejected: int, message: str, content_type: str | None) -> bytes:
    """An `ExportTraceServiceResponse` in the request's encoding.

    `partial_success` is set only when spans were rejected, as the spec asks.
    """
    return encode_partial(ExportTraceServiceResponse(), "rejected_spans", partial_rejected, message, content_type)


def encode_partial(response: Any, counter: str, rejected: int, message: str, content_type: str | None) -> bytes:
    """An empty Export*ServiceResponse, with `partial_success` (its `counter` field) when items
    were rejected, in the request's encoding."""
    if response_content_type(content_type) is JSON:
        if rejected <= 0:
            return b"{}"
        # int64 fields are decimal strings in the protobuf JSON mapping, whose names are camelCase.
        name = counter.split("_")[0] + "".join(part.title() for part in counter.split("_")[1:])
        return orjson.dumps({"partialSuccess": {name: str(rejected), "errorMessage": message}})
    if rejected > 0:
        setattr(response.partial_success, counter, rejected)
        response.partial_success.error_message = message
    return bytes(response.SerializeToString())


def encode_status(http_status: int, message: str, content_type: str | None) -> bytes:
    """A `google.rpc.Status` in the request's encoding: what OTLP/HTTP puts in the body of every
    4xx and 5xx answer. Exporters (the Collector's among them) parse it for the message to log;
    a body of another shape leaves them with the bare status code."""
    code = _RPC_CODES.get(http_status, _RPC_UNKNOWN)
    if response_content_type(content_type) is JSON:
        return orjson.dumps({"code": code, "message": message})
    text = message.encode()
    return b"\x08" + varint(code) + b"\x12" + varint(len(text)) + text
