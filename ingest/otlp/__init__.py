"""OTLP/HTTP trace ingestion: decode an export request, map its spans to ingestion events.

The HTTP handler calls, in order: `decompress` (Content-Encoding, bounded), `parse_request`
(protobuf or OTLP/JSON), `map_request` (events, rejected count, messages) and finally
`encode_response` for the partial-success answer. Errors are `ClientError`s with a status.
"""

from ingest.encoding import (
    BodyTooLarge,
    ClientError,
    DecodeError,
    UnsupportedEncoding,
    UnsupportedMediaType,
    decompress,
)
from ingest.otlp.decode import encode_response, media_type, parse_request, response_content_type
from ingest.otlp.mapping import MappingResult, map_request

__all__ = [
    "BodyTooLarge",
    "ClientError",
    "DecodeError",
    "MappingResult",
    "UnsupportedEncoding",
    "UnsupportedMediaType",
    "decompress",
    "encode_response",
    "map_request",
    "media_type",
    "parse_request",
    "response_content_type",
]
