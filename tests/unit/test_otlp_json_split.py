"""ingest/otlp/json_split.py: an OTLP/JSON export cut into pieces reads as the whole does, span for span."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from ingest.otlp.decode import JSON, parse_request
from ingest.otlp.json_split import JsonSplitError, pieces
from ingest.otlp.mapping import map_request
from tests.unit.test_otlp_decode import _requests
from tests.unit.test_otlp_split import flat

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "otlp"


def as_json(req: ExportTraceServiceRequest, indent: int | None) -> bytes:
    """The export as OTLP/JSON (hex ids), compact or pretty-printed."""
    doc = json_format.MessageToDict(req)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in span:
                        span[k] = base64.b64decode(span[k]).hex()
                for link in span.get("links", []):
                    for k in ("traceId", "spanId"):
                        link[k] = base64.b64decode(link[k]).hex()
    return json.dumps(doc, indent=indent, ensure_ascii=indent is None).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=_requests(), target=st.integers(1, 600), indent=st.sampled_from([None, 2]))
def test_pieces_hold_every_span_once_under_its_resource_and_scope(
    req: ExportTraceServiceRequest, target: int, indent: int | None
) -> None:
    data = as_json(req, indent)
    cut = list(pieces(data, target))
    assert flat([parse_request(p, JSON) for p in cut]) == flat([parse_request(data, JSON)])
    if sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans):
        # Only a piece of one span (or of none) passes the target.
        assert all(len(p) <= target or len(flat([parse_request(p, JSON)])) <= 1 for p in cut)


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.json") if ".logs." not in p.name))
def test_recorded_exports_map_alike_in_pieces(fixture: str) -> None:
    """Every observation of a recorded export, as the whole maps it (trace events may repeat per piece)."""
    data = (FIXTURES / fixture).read_bytes()
    whole = map_request(parse_request(data, JSON))

    def observations(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted((e for e in events if e["type"] != "trace-create"), key=lambda e: e["id"])

    cut = [map_request(parse_request(p, JSON)) for p in pieces(data, 1_500)]
    assert len(cut) > 1 or len(flat([parse_request(data, JSON)])) == 1
    assert observations([e for m in cut for e in m.events]) == observations(whole.events)


def test_members_around_the_spans_stay_and_a_repeated_member_keeps_its_last() -> None:
    span = '{"traceId":"%s","spanId":"%s","name":"s\\"q\\\\"}'
    spans = ",".join(span % ("01" * 16, f"{i:016x}") for i in range(6))
    data = (
        '{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"stringValue":"x"}}]},'
        '"resource":{"attributes":[{"key":"b","value":{"stringValue":"y"}}]},'
        '"scopeSpans":[{"spans":[{"traceId":"' + "02" * 16 + '","spanId":"' + "03" * 8 + '"}],'
        '"scope":{"name":"sc"},"spans":[' + spans + '],"schemaUrl":"u"}],'
        '"schemaUrl":"r"}],"other":1}'
    ).encode()
    cut = list(pieces(data, 200))
    assert len(cut) > 1
    assert flat([parse_request(p, JSON) for p in cut]) == flat([parse_request(data, JSON)])
    [(resource, scopes)] = [(rs.resource, rs.scope_spans) for rs in parse_request(cut[0], JSON).resource_spans]
    assert [kv.key for kv in resource.attributes] == ["b"] and scopes[0].scope.name == "sc"
    assert scopes[0].spans[0].name == 's"q\\'


@pytest.mark.parametrize(
    "data",
    [
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x"}',  # the document does not end
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x}]}]}]}',  # nor does a string
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{} {}]}]}]}',  # no comma between spans
        b'{"resourceSpans":[1]}',  # an element that is not an object
        b'{"resourceSpans":[]} x',  # content after the document
        b'["resourceSpans"]',  # not an object
        b"{resourceSpans:[]}",  # a name without quotes
    ],
)
def test_broken_framing_is_refused(data: bytes) -> None:
    with pytest.raises(JsonSplitError):
        list(pieces(data, 100))


def test_an_export_without_spans_has_no_pieces() -> None:
    assert list(pieces(b'{"resourceSpans":null}', 100)) == []
    assert list(pieces(b"{}", 100)) == []
