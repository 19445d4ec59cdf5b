"""OTLP/HTTP request decoding: content codings, protobuf and OTLP/JSON bodies, responses."""

from __future__ import annotations

import gzip
import os
import tracemalloc
import zlib

import cramjam
import lz4.frame
import orjson
import pytest
import zstandard
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ingest.encoding import ClientError
from ingest.otlp import (
    BodyTooLarge,
    DecodeError,
    UnsupportedEncoding,
    UnsupportedMediaType,
    decompress,
    encode_response,
    map_request,
    parse_request,
    response_content_type,
    wire,
)

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN = bytes.fromhex("eee19b7ec3c1b174")
CHILD = bytes.fromhex("eee19b7ec3c1b175")
LIMIT = 1 << 20


def _request() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    scope.spans.append(
        Span(
            trace_id=TRACE,
            span_id=SPAN,
            name="root",
            start_time_unix_nano=1,
            end_time_unix_nano=2,
            attributes=[KeyValue(key="k", value=AnyValue(string_value="v"))],
        )
    )
    return req


def _json_span(**fields: object) -> bytes:
    span = {
        "traceId": TRACE.hex(),
        "spanId": SPAN.hex(),
        "name": "s",
        "startTimeUnixNano": "1700000000000000001",
        "endTimeUnixNano": 1700000000000000002,
    }
    span.update(fields)
    return orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})


# --- content codings ---------------------------------------------------------------------

PAYLOAD = b"otlp " * 5000


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def _snappy_block(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(data))


def _snappy_framed(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress(data))


def _flipped(data: bytes, at: int) -> bytes:
    """`data` with one bit of its byte `at` flipped."""
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


# What OpenTelemetry Collectors' exporters send, each coding by its own library's encoder.
ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "zlib": zlib.compress,
    "zstd": zstandard.ZstdCompressor().compress,
    "lz4": lz4.frame.compress,
    "snappy": _snappy_block,
    "x-snappy-framed": _snappy_framed,
}


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_each_coding_round_trips(coding: str) -> None:
    assert decompress(ENCODERS[coding](PAYLOAD), coding, LIMIT) == PAYLOAD


@pytest.mark.parametrize("header", [None, "", "identity", " Identity "])
def test_identity_passes_the_body_through(header: str | None) -> None:
    assert decompress(PAYLOAD, header, LIMIT) == PAYLOAD


def test_raw_deflate_is_accepted_as_some_clients_send_it() -> None:
    assert decompress(_raw_deflate(PAYLOAD), "deflate", LIMIT) == PAYLOAD


def test_coding_names_are_case_insensitive_and_stack_in_order() -> None:
    layered = zstandard.ZstdCompressor().compress(gzip.compress(PAYLOAD))
    assert decompress(layered, "GZIP, zstd", LIMIT) == PAYLOAD
    assert decompress(gzip.compress(PAYLOAD), " Gzip ", LIMIT) == PAYLOAD


def test_snappy_is_the_block_format_or_the_framed_one_collectors_sent_before() -> None:
    # Collectors before 0.125 sent the framing format as `snappy`; their server tells the two
    # apart by the stream identifier, and so does ours.
    assert decompress(_snappy_framed(PAYLOAD), "snappy", LIMIT) == PAYLOAD
    assert decompress(_snappy_block(PAYLOAD), "snappy", LIMIT) == PAYLOAD
    with pytest.raises(DecodeError):
        decompress(_snappy_block(PAYLOAD), "x-snappy-framed", LIMIT)
    # Linked blocks, and frames one after another, as python-lz4 and others write them.
    linked = lz4.frame.compress(PAYLOAD * 40, block_linked=True, block_size=lz4.frame.BLOCKSIZE_MAX64KB)
    assert decompress(linked + lz4.frame.compress(b"z"), "lz4", 100 * LIMIT) == PAYLOAD * 40 + b"z"


def test_concatenated_gzip_members_and_zstd_frames_are_all_read() -> None:
    assert decompress(gzip.compress(b"a" * 10) + gzip.compress(b"b" * 5), "gzip", LIMIT) == (b"a" * 10 + b"b" * 5)
    z = zstandard.ZstdCompressor()
    assert decompress(z.compress(b"x" * 7) + z.compress(b"y"), "zstd", LIMIT) == b"x" * 7 + b"y"


@pytest.mark.parametrize("coding", ["gzip", "deflate", "zstd", "lz4", "snappy", "x-snappy-framed"])
def test_bomb_is_rejected_before_it_is_inflated(coding: str) -> None:
    bomb = ENCODERS[coding](bytes(64 << 20))  # 64 MiB of zeros, a few KiB compressed
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge) as info:
            decompress(bomb, coding, LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.status == 413
    assert peak < 8 * LIMIT  # bounded by the limit, not by the 64 MiB the bomb holds


def test_limit_is_inclusive_and_identity_bodies_are_limited_too() -> None:
    assert decompress(gzip.compress(b"z" * 100), "gzip", 100) == b"z" * 100
    with pytest.raises(BodyTooLarge):
        decompress(gzip.compress(b"z" * 101), "gzip", 100)
    with pytest.raises(BodyTooLarge):
        decompress(b"z" * 101, None, 100)


@pytest.mark.parametrize("coding", ["br", "compress", "gzip, br"])
def test_unknown_coding_is_415(coding: str) -> None:
    with pytest.raises(UnsupportedEncoding) as info:
        decompress(gzip.compress(b"x"), coding, LIMIT)
    assert info.value.status == 415
    assert repr(coding.split(",")[-1].strip()) in info.value.message


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("gzip", b"not gzip at all"),
        ("gzip", gzip.compress(PAYLOAD)[:40]),  # truncated
        ("gzip", gzip.compress(PAYLOAD) + b"trailing"),
        ("deflate", b"\x78\x9c garbage"),
        ("deflate", zlib.compress(PAYLOAD)[:-6]),
        ("zstd", b"not zstd"),
        ("zstd", zstandard.ZstdCompressor().compress(os.urandom(50_000))[:-100]),  # truncated
        ("lz4", b"not lz4"),
        ("lz4", lz4.frame.compress(os.urandom(50_000))[:-100]),  # truncated
        ("snappy", b"\x0anot snappy"),
        ("snappy", _snappy_block(os.urandom(50_000))[:-100]),  # truncated
        ("x-snappy-framed", _snappy_framed(os.urandom(50_000))[:-100]),
        ("x-snappy-framed", b"\xff\x06\x00\x00sNaPpY\x02\x01\x00\x00x"),  # reserved chunk
        ("x-snappy-framed", b"\xff\x06\x00\x00sNaPpY\x00\x08\x00\x00abcd\xff\xff\xff\x7f"),  # > 64 KiB
        ("x-snappy-framed", _flipped(_snappy_framed(PAYLOAD), 15)),  # a compressed chunk's checksum
        ("x-snappy-framed", _flipped(_snappy_framed(os.urandom(300)), 20)),  # an uncompressed chunk's data
        ("snappy", _flipped(_snappy_framed(PAYLOAD), 16)),
    ],
)
def test_corrupt_data_is_400(coding: str, body: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decompress(body, coding, LIMIT)
    assert info.value.status == 400


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=4096),
    coding=st.sampled_from(sorted(ENCODERS)),
    limit=st.integers(min_value=0, max_value=5000),
)
def test_decompress_returns_the_data_or_says_it_is_too_large(data: bytes, coding: str, limit: int) -> None:
    encoded = ENCODERS[coding](data)
    if len(data) <= limit:
        assert decompress(encoded, coding, limit) == data
    else:
        with pytest.raises(BodyTooLarge):
            decompress(encoded, coding, limit)


@settings(max_examples=60, deadline=None)
@given(garbage=st.binary(max_size=512), coding=st.sampled_from(sorted(ENCODERS)))
def test_decompress_raises_only_client_errors_on_garbage(garbage: bytes, coding: str) -> None:
    try:
        decompress(garbage, coding, LIMIT)
    except ClientError as exc:
        assert exc.status in (400, 413)


# --- request bodies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/x-protobuf", "application/protobuf", "Application/X-Protobuf; charset=binary"],
)
def test_protobuf_request_is_parsed(content_type: str) -> None:
    req = _request()
    read = parse_request(req.SerializeToString(), content_type)
    assert isinstance(read, wire.Request)  # read by wire, which tests/unit/test_otlp_wire.py holds to upb
    assert map_request(read).events == map_request(req).events != []


def test_malformed_protobuf_is_400() -> None:
    with pytest.raises(DecodeError) as info:
        parse_request(b"\x0a\xff\xff\xff\xff\x0f", "application/x-protobuf")
    assert info.value.status == 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "", None])
def test_other_content_types_are_415(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        parse_request(b"{}", content_type)  # type: ignore[arg-type]
    assert info.value.status == 415


def test_json_ids_are_hex_and_times_may_be_strings_or_numbers() -> None:
    body = _json_span(
        parentSpanId=CHILD.hex(),
        kind=2,
        status={"code": 2, "message": "boom"},
        links=[{"traceId": TRACE.hex(), "spanId": CHILD.hex()}],
    )
    span = parse_request(body, "application/json").resource_spans[0].scope_spans[0].spans[0]
    assert (span.trace_id, span.span_id, span.parent_span_id) == (TRACE, SPAN, CHILD)
    assert (span.links[0].trace_id, span.links[0].span_id) == (TRACE, CHILD)
    assert span.start_time_unix_nano == 1700000000000000001
    assert span.end_time_unix_nano == 1700000000000000002
    assert span.kind == Span.SPAN_KIND_SERVER
    assert span.status.code == Status.STATUS_CODE_ERROR


def test_json_enums_by_name_unknown_fields_and_uppercase_hex_are_accepted() -> None:
    body = _json_span(
        traceId=TRACE.hex().upper(),
        kind="SPAN_KIND_CLIENT",
        futureField={"x": 1},
        attributes=[{"key": "a", "value": {"intValue": "7"}, "extra": True}],
    )
    span = parse_request(body, "application/json").resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == TRACE and span.kind == Span.SPAN_KIND_CLIENT
    assert span.attributes[0].value.int_value == 7


def test_json_base64_ids_from_the_stock_protobuf_mapping_are_tolerated() -> None:
    req = _request()
    body = orjson.dumps(json_format.MessageToDict(req))  # base64 ids
    span = parse_request(body, "application/json").resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == TRACE and span.span_id == SPAN


def test_json_span_with_a_bad_id_is_rejected_alone() -> None:
    good = {
        "traceId": TRACE.hex(),
        "spanId": SPAN.hex(),
        "name": "ok",
        "startTimeUnixNano": "1",
        "endTimeUnixNano": "2",
    }
    bad = dict(good, spanId="not-an-id!", name="bad")
    body = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [good, bad]}]}]})
    result = map_request(parse_request(body, "application/json"))
    assert result.rejected == 1 and "invalid span id" in result.errors[0]
    assert [e["body"]["name"] for e in result.events if e["type"] == "span-create"] == ["ok"]


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'"x"',
        b'{"resourceSpans": 5}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 12}]}]}]}',
    ],
)
def test_malformed_json_is_400(body: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        parse_request(body, "application/json")
    assert info.value.status == 400


def test_empty_json_object_is_an_empty_request() -> None:
    assert parse_request(b"{}", "application/json") == ExportTraceServiceRequest()


@settings(max_examples=50, deadline=None)
@given(trace_id=st.binary(min_size=16, max_size=16), span_id=st.binary(min_size=8, max_size=8))
def test_json_and_protobuf_decode_to_the_same_ids(trace_id: bytes, span_id: bytes) -> None:
    body = _json_span(traceId=trace_id.hex(), spanId=span_id.hex())
    span = parse_request(body, "application/json").resource_spans[0].scope_spans[0].spans[0]
    assert (span.trace_id, span.span_id) == (trace_id, span_id)


# --- responses ---------------------------------------------------------------------------


def test_protobuf_response_has_partial_success_only_when_spans_were_rejected() -> None:
    ok = ExportTraceServiceResponse.FromString(encode_response(0, "", "application/x-protobuf"))
    assert not ok.HasField("partial_success")
    partial = ExportTraceServiceResponse.FromString(
        encode_response(3, "3 spans had invalid ids", "application/x-protobuf")
    )
    assert partial.partial_success.rejected_spans == 3
    assert partial.partial_success.error_message == "3 spans had invalid ids"


def test_json_response_is_otlp_json() -> None:
    assert orjson.loads(encode_response(0, "", "application/json")) == {}
    raw = encode_response(2, "bad ids", "application/json; charset=utf-8")
    parsed = json_format.Parse(raw, ExportTraceServiceResponse())
    assert parsed.partial_success.rejected_spans == 2
    assert parsed.partial_success.error_message == "bad ids"


def test_response_falls_back_to_protobuf_for_an_unusable_content_type() -> None:
    assert response_content_type("text/plain") == "application/x-protobuf"
    assert response_content_type("application/json") == "application/json"
    ExportTraceServiceResponse.FromString(encode_response(1, "x", None))


def test_client_errors_carry_their_http_status() -> None:
    statuses = {cls: cls("m").status for cls in (DecodeError, BodyTooLarge, UnsupportedEncoding, UnsupportedMediaType)}
    assert statuses == {DecodeError: 400, BodyTooLarge: 413, UnsupportedEncoding: 415, UnsupportedMediaType: 415}
    assert all(issubclass(cls, ClientError) for cls in statuses)
    assert DecodeError("why").message == "why"


# --- OTLP/JSON fast path against json_format ---------------------------------------------

_scalars = (
    st.builds(lambda s: AnyValue(string_value=s), st.text(max_size=10))
    | st.builds(lambda b: AnyValue(bool_value=b), st.booleans())
    | st.builds(lambda i: AnyValue(int_value=i), st.integers(-(2**63), 2**63 - 1))
    | st.builds(lambda d: AnyValue(double_value=d), st.floats(allow_nan=False))
    | st.builds(lambda d: AnyValue(double_value=d), st.sampled_from([float("inf"), -float("inf")]))
    | st.builds(lambda b: AnyValue(bytes_value=b), st.binary(max_size=6))
    | st.just(AnyValue())
)


def _array(values: list[AnyValue]) -> AnyValue:
    v = AnyValue()
    v.array_value.values.extend(values)
    return v


def _kvlist(pairs: dict[str, AnyValue]) -> AnyValue:
    v = AnyValue()
    v.kvlist_value.values.extend(KeyValue(key=k, value=x) for k, x in pairs.items())
    return v


_any_values = st.recursive(
    _scalars,
    lambda c: st.lists(c, max_size=3).map(_array) | st.dictionaries(st.text(max_size=4), c, max_size=3).map(_kvlist),
    max_leaves=6,
)
_kvs = st.lists(st.builds(KeyValue, key=st.text(max_size=8), value=_any_values), max_size=4)
_u64 = st.integers(0, 2**64 - 1)


@st.composite
def _requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = req.resource_spans.add()
        rs.resource.attributes.extend(draw(_kvs))
        rs.schema_url = draw(st.text(max_size=5))
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            ss.scope.name, ss.scope.version = draw(st.text(max_size=5)), draw(st.text(max_size=3))
            for _ in range(draw(st.integers(0, 3))):
                span = ss.spans.add(
                    trace_id=draw(st.binary(min_size=16, max_size=16)),
                    span_id=draw(st.binary(min_size=8, max_size=8)),
                    parent_span_id=draw(st.sampled_from([b"", b"\x01" * 8])),
                    name=draw(st.text(max_size=8)),
                    kind=draw(st.integers(0, 5)),
                    start_time_unix_nano=draw(_u64),
                    end_time_unix_nano=draw(_u64),
                    flags=draw(st.integers(0, 2**32 - 1)),
                    trace_state=draw(st.text(max_size=4)),
                    dropped_attributes_count=draw(st.integers(0, 3)),
                )
                span.attributes.extend(draw(_kvs))
                span.status.code = draw(st.integers(0, 2))
                span.status.message = draw(st.text(max_size=5))
                if draw(st.booleans()):
                    span.events.add(name="exception", time_unix_nano=draw(_u64)).attributes.extend(draw(_kvs))
                    span.links.add(
                        trace_id=draw(st.binary(min_size=16, max_size=16)),
                        span_id=draw(st.binary(min_size=8, max_size=8)),
                    )
    return req


def _otlp_json(req: ExportTraceServiceRequest, **options: bool) -> dict:
    """What an OTLP/JSON exporter sends: the protobuf JSON mapping with hex ids."""
    import base64

    doc = json_format.MessageToDict(req, **options)
    for rs in doc.get("resourceSpans", doc.get("resource_spans", [])):
        for ss in rs.get("scopeSpans", rs.get("scope_spans", [])):
            for span in ss.get("spans", []):
                for obj in [span, *span.get("links", [])]:
                    for key in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"):
                        if key in obj:
                            obj[key] = base64.b64decode(obj[key]).hex()
    return doc


@settings(max_examples=150, deadline=None)
@given(req=_requests(), enums_as_ints=st.booleans())
def test_otlp_json_parses_to_the_request_it_encodes(req: ExportTraceServiceRequest, enums_as_ints: bool) -> None:
    from ingest.otlp import json_request

    doc = _otlp_json(req, use_integers_for_enums=enums_as_ints)
    assert isinstance(json_request._REQUEST(doc), dict)  # the fast path knows the shape
    assert parse_request(orjson.dumps(doc), "application/json") == req


@settings(max_examples=50, deadline=None)
@given(req=_requests())
def test_snake_case_names_take_the_exact_path_to_the_same_request(
    req: ExportTraceServiceRequest,
) -> None:
    doc = _otlp_json(req, preserving_proto_field_name=True)
    assert parse_request(orjson.dumps(doc), "application/json") == req


def test_unknown_fields_and_nulls_are_ignored() -> None:
    body = _json_span(
        traceState=None,
        status=None,
        somethingNew=[1],
        attributes=[
            {"key": "a", "value": {"stringValue": "x"}},
            {"key": "b", "value": None},
            {"key": "c", "value": {"newValue": 1}},
        ],
    )
    span = parse_request(body, "application/json").resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == TRACE
    assert span.attributes[0].value.string_value == "x"
    assert [kv.key for kv in span.attributes] == ["a", "b", "c"]


@pytest.mark.parametrize(
    "attrs",
    [
        [{"key": "a", "value": {"intValue": "1.5"}}],
        [{"key": "a", "value": {"intValue": "99999999999999999999"}}],
        [{"key": "a", "value": {"stringValue": "x", "intValue": "1"}}],
        [{"key": "a", "value": {"boolValue": "yes"}}],
        [{"key": 5, "value": {"stringValue": "x"}}],
    ],
)
def test_malformed_attribute_values_are_400(attrs: list) -> None:
    with pytest.raises(DecodeError):
        parse_request(_json_span(attributes=attrs), "application/json")
