"""ingest/otlp/wire.py answers as upb does: the same requests, the same refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import DecodeError as ProtobufDecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from ingest.encoding import DecodeError
from ingest.otlp import map_request, parse_request
from ingest.otlp.attributes import any_value
from ingest.otlp.wire import WireError, parse
from tests.unit.test_otlp_decode import _requests

FIXTURES = Path(__file__).parent.parent / "fixtures" / "otlp"


def upb(data: bytes) -> ExportTraceServiceRequest | None:
    """upb's reading of `data`, or None where it refuses them."""
    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(data)
    except (ProtobufDecodeError, RuntimeError, ValueError):
        return None
    return req


def plain(req: Any) -> Any:
    """What the mapping reads of a request, from either reading, as plain data."""

    def attrs(kvs: Any) -> list[tuple[str, str]]:
        # repr: NaN equals itself, and 1 is not True.
        if type(kvs) is list:  # wire's: each key followed by its value
            return [(k, repr(v)) for k, v in zip(kvs[::2], kvs[1::2], strict=True)]
        return [(kv.key, repr(any_value(kv.value))) for kv in kvs]

    return [
        (
            attrs(rs.resource.attributes),
            [
                (
                    ss.scope.name,
                    ss.scope.version,
                    attrs(ss.scope.attributes),
                    [
                        (
                            s.trace_id,
                            s.span_id,
                            s.parent_span_id,
                            s.name,
                            s.start_time_unix_nano,
                            s.end_time_unix_nano,
                            attrs(s.attributes),
                            [(e.time_unix_nano, e.name, attrs(e.attributes)) for e in s.events],
                            [(link.trace_id, link.span_id, attrs(link.attributes)) for link in s.links],
                            (s.status.code, s.status.message),
                        )
                        for s in ss.spans
                    ],
                )
                for ss in rs.scope_spans
            ],
        )
        for rs in req.resource_spans
    ]


def same_as_upb(data: bytes) -> None:
    expected = upb(data)
    if expected is None:
        with pytest.raises(WireError):
            parse(data)
    else:
        assert plain(parse(data)) == plain(expected)


@settings(max_examples=200, deadline=None)
@given(req=_requests())
def test_generated_requests_read_as_upb_reads_them(req: ExportTraceServiceRequest) -> None:
    same_as_upb(req.SerializeToString())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=_requests(), data=st.data())
def test_mangled_requests_are_refused_or_read_as_upb_does(req: ExportTraceServiceRequest, data: st.DataObject) -> None:
    raw = bytearray(req.SerializeToString())
    for _ in range(data.draw(st.integers(1, 4))):
        if not raw:
            break
        at = data.draw(st.integers(0, len(raw) - 1))
        how = data.draw(st.sampled_from(["flip", "cut", "insert", "drop"]))
        if how == "flip":
            raw[at] = data.draw(st.integers(0, 255))
        elif how == "cut":
            del raw[at:]
        elif how == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        else:
            del raw[at]
    same_as_upb(bytes(raw))


def _wrap(field: int, payload: bytes) -> bytes:
    """`payload` as length-delimited field `field`."""
    size, n = bytearray(), len(payload)
    while True:
        size.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            break
    return bytes([field << 3 | 2]) + bytes(size) + payload


def _with_span_fields(extra: bytes) -> bytes:
    """A request of one span whose encoding ends with `extra` (raw fields of the Span)."""
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="s").SerializeToString() + extra
    return _wrap(1, _wrap(2, _wrap(2, span)))


def _attribute(value: bytes) -> bytes:
    """Span field 9: an attribute "k" whose AnyValue's encoding is `value`."""
    return _wrap(9, _wrap(1, b"k") + _wrap(2, value))


@pytest.mark.parametrize(
    "extra",
    [
        b"\xa8\x1f\x05",  # unknown varint field 500
        b"\xa9\x1f" + b"\x00" * 8,  # unknown fixed64
        b"\xad\x1f" + b"\x00" * 4,  # unknown fixed32
        b"\xaa\x1f\x02ab",  # unknown length-delimited
        b"\xab\x1f\x08\x01\xac\x1f",  # an unknown group holding a varint
        b"\x28\x07",  # name (5) sent as a varint: unknown, the name stays
        b"\x39" + (7).to_bytes(8, "little") + b"\x39" + (9).to_bytes(8, "little"),  # start twice: last wins
        _wrap(15, b"\x18\x02") + _wrap(15, _wrap(2, b"m")),  # status twice: merged (code, then message)
        _wrap(15, b"\x18" + b"\xff" * 9 + b"\x01"),  # a status code of -1
        _wrap(3, b"x"),  # trace_state
        _wrap(5, b"t"),  # name again: last wins
        _attribute(b"\x18" + b"\xff" * 9 + b"\x01"),  # int_value -1
        _attribute(b"\x18\xff\xff\xff\xff\x0f"),  # int_value 2**32 - 1
        _attribute(b"\x18" + b"\xff" * 9 + b"\x7f"),  # bits beyond 64 in the 10th byte
        _attribute(b"\x21" + b"\x00" * 6 + b"\xf8\x7f"),  # a double (NaN)
        _attribute(b"\x10\x02"),  # bool_value from a 2
        _attribute(_wrap(1, b"s") + _wrap(5, _wrap(1, b"")) + _wrap(5, _wrap(1, _wrap(1, b"x")))),  # array twice
        _attribute(_wrap(6, _wrap(1, _wrap(1, b"a"))) + _wrap(6, _wrap(1, _wrap(1, b"a") + _wrap(2, b"\x10\x01")))),
        _attribute(_wrap(1, b"s") + b"\x40\x03"),  # a string, then string_value_strindex: unset
        _attribute(_wrap(7, b"\x00\xab")),  # bytes: hex
        _attribute(_wrap(1, b"s") + b"\x1a\x00"),  # int_value as length-delimited: unknown, the string stays
        _wrap(9, _wrap(1, b"k") + _wrap(2, _wrap(1, b"a")) + _wrap(2, b"\x18\x05")),  # value twice: merged
        _wrap(9, _wrap(1, b"k") + _wrap(2, _wrap(1, b"a")) + _wrap(2, b"")),  # an empty second value
        _wrap(13, b"") + _wrap(13, b""),  # two empty links
        _wrap(11, b"\x09" + (5).to_bytes(8, "little") + _wrap(2, b"e")),  # an event
    ],
)
def test_wire_details_read_as_upb_reads_them(extra: bytes) -> None:
    data = _with_span_fields(extra)
    assert upb(data) is not None
    same_as_upb(data)


@pytest.mark.parametrize(
    "extra",
    [
        b"\x1a\x02\xff\xfe",  # bad UTF-8 in trace_state, which the mapping does not read
        b"\x2a\x01",  # truncated length
        b"\x39\x00\x00",  # truncated fixed64
        b"\xac\x1f",  # an end of group with no group
        b"\xab\x1f\x08\x01",  # an unterminated group
        b"\xab\x1f\xb4\x1f",  # a group ended by another field's end
        b"\x2e",  # wire type 6
        b"\x07",  # field number 0
        b"\x28" + b"\xff" * 10 + b"\x01",  # a varint of 11 bytes
        b"\x4a\x05\x0a\x03\xc3\x28a",  # bad UTF-8 in an attribute's key
    ],
)
def test_what_upb_refuses_is_refused(extra: bytes) -> None:
    data = _with_span_fields(extra)
    assert upb(data) is None
    with pytest.raises(WireError):
        parse(data)
    with pytest.raises(DecodeError) as info:
        parse_request(data, "application/x-protobuf")
    assert info.value.status == 400 and info.value.args[0].startswith("malformed protobuf: ")


def _nested(levels: int) -> bytes:
    value = _wrap(1, b"leaf")
    for _ in range(levels):
        value = _wrap(5, _wrap(1, value))  # an AnyValue holding an array of it
    return _with_span_fields(_attribute(value))


@pytest.mark.parametrize("levels", [1, 46, 47, 48, 49, 60, 5000])
def test_nesting_is_refused_where_upb_refuses_it(levels: int) -> None:
    same_as_upb(_nested(levels))


def test_schema_urls_and_entity_refs_are_checked_for_utf8() -> None:
    bad = b"\xc3\x28"
    resource_spans = [
        _wrap(3, bad),  # ResourceSpans.schema_url
        _wrap(2, _wrap(3, bad)),  # ScopeSpans.schema_url
        _wrap(1, _wrap(3, _wrap(2, bad))),  # Resource.entity_refs[0].type
        _wrap(2, _wrap(1, _wrap(2, bad))),  # InstrumentationScope.version
    ]
    for body in resource_spans:
        data = _wrap(1, body)
        assert upb(data) is None
        with pytest.raises(WireError):
            parse(data)


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_instrumentations_map_alike_from_protobuf_and_json(name: str) -> None:
    from_json = parse_request((FIXTURES / f"{name}.json").read_bytes(), "application/json")
    assert isinstance(from_json, ExportTraceServiceRequest)
    from_wire = parse_request(from_json.SerializeToString(), "application/x-protobuf")
    a, b = map_request(from_json), map_request(from_wire)
    assert repr(a.events) == repr(b.events) and (a.rejected, a.errors) == (b.rejected, b.errors)
