"""ingest/otlp/split.py: an export cut into pieces reads as the whole does, span for span."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from ingest.otlp.split import pieces
from ingest.otlp.wire import WireError, parse
from tests.unit.test_otlp_decode import _requests
from tests.unit.test_otlp_wire import _wrap, plain


def flat(reqs: list[Any]) -> list[tuple[Any, ...]]:
    """Each span with its resource's attributes and its scope: what the mapping reads of it."""
    out = []
    for req in reqs:
        for resource_attrs, scopes in plain(req):
            for name, version, scope_attrs, spans in scopes:
                out += [(resource_attrs, name, version, scope_attrs, span) for span in spans]
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=_requests(), target=st.integers(1, 400), extra=st.sampled_from([b"", b"\x18\x07", b"\x22\x01x"]))
def test_pieces_hold_every_span_once_under_its_resource_and_scope(
    req: ExportTraceServiceRequest, target: int, extra: bytes
) -> None:
    # `extra`: a field the request does not define (a varint, a string), which every reader skips.
    data = req.SerializeToString() + extra
    cut = list(pieces(data, target))
    assert flat([parse(p) for p in cut]) == flat([parse(data)])
    spans = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    if spans:
        # Only a piece of one span (or of none) passes the target.
        assert all(len(p) <= target or len(flat([parse(p)])) <= 1 for p in cut)


def test_fields_around_the_spans_are_copied_in_their_order() -> None:
    """A resource sent twice merges (as upb merges a singular message): each piece merges alike."""
    resource = _wrap(1, _wrap(1, b"\x0a\x01a\x12\x03\x0a\x01x")) + _wrap(1, _wrap(1, b"\x0a\x01b\x12\x03\x0a\x01y"))
    span = _wrap(2, b"\x0a\x10" + b"\x01" * 16 + b"\x12\x08" + b"\x02" * 8 + b"\x2a\x01s")
    scope = _wrap(2, _wrap(1, b"\x0a\x02sc") + span * 5 + b"\x1a\x03url")
    data = _wrap(1, resource[:] + scope)
    cut = list(pieces(data, 60))
    assert len(cut) > 1
    assert flat([parse(p) for p in cut]) == flat([parse(data)])
    assert plain(parse(cut[0]))[0][0] == [("a", "'x'"), ("b", "'y'")]


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\x05\x12\x10",  # a ResourceSpans longer than the request
        _wrap(1, b"\x12\x03\x12\x09"),  # a span longer than its ScopeSpans
        _wrap(1, b"\x0f"),  # an end-group tag where none began
    ],
)
def test_broken_framing_is_refused(data: bytes) -> None:
    with pytest.raises(WireError):
        list(pieces(data, 100))
