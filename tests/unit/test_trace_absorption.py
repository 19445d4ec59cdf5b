"""The OTLP edge drops a trace's events that cannot change its fold (absorb_trace_events): what
remains must fold into exactly the trace state all of them fold into."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from ingest.otlp import map_request
from ingest.otlp.mapping import absorb_trace_events
from pipeline.envelope import Envelope
from pipeline.fold import TRACE, EntityState, apply

TRACE_ID = bytes(range(1, 17))
T0 = 1_795_000_000_000_000_000

# Few values per field, so that bodies often share them; 1 and True are equal in Python, not
# in the fold.
BODY = st.fixed_dictionaries(
    {},
    optional={
        "userId": st.sampled_from(["u1", "u2", None]),
        "sessionId": st.sampled_from(["s1", "s2"]),
        "name": st.sampled_from(["run", "other"]),
        "timestamp": st.sampled_from([1_795_000_000_000_000, 1_795_000_001_000_000]),
        "release": st.sampled_from(["1", 1, True]),
        "metadata": st.dictionaries(st.sampled_from(["k1", "k2"]), st.sampled_from([1, True, "1", None]), max_size=2),
        "tags": st.lists(st.sampled_from(["a", "b"]), max_size=2, unique=True),
    },
)


@st.composite
def trace_events(draw) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 8))
    # Distinct times: of two events at one time that set one field to different values, the
    # fold keeps whichever comes last, with or without absorption.
    stamps = draw(st.lists(st.integers(1, 10**6), min_size=n, max_size=n, unique=True))
    events: list[dict[str, Any]] = []
    for i, ts in enumerate(stamps):
        if i and draw(st.booleans()):  # often a copy of an earlier body, as propagated fields are
            body = dict(events[draw(st.integers(0, i - 1))]["body"])
        else:
            body = {"id": "t1", **draw(BODY)}
        events.append({"id": f"e{i}", "type": "trace-create", "timestamp": ts, "body": body})
        if draw(st.booleans()):
            events.append({"id": f"o{i}", "type": "span-create", "timestamp": ts, "body": {"id": f"o{i}"}})
    return events


def fold(events: list[dict[str, Any]]) -> EntityState:
    state = EntityState("p", "t1")
    for e in events:
        if e["type"] == "trace-create":
            env = Envelope(id=e["id"], project_id="p", type=e["type"], ts=e["timestamp"], received_at=1, body=e["body"])
            apply(state, env, TRACE)
    return state


def summary(state: EntityState) -> tuple[Any, ...]:
    # As JSON: 1 == True, and the fold must not turn one into the other. Tags in any order: a
    # union's order is its arrival order, whatever is absorbed.
    values = {**state.values, "tags": sorted(state.values.get("tags", []))}
    return (orjson.dumps(values, option=orjson.OPT_SORT_KEYS), state.versions, state.first_ts, state.last_ts)


@settings(max_examples=500)
@given(trace_events())
def test_the_kept_events_fold_into_the_same_trace(events: list[dict[str, Any]]) -> None:
    kept = absorb_trace_events(list(events))
    assert summary(fold(kept)) == summary(fold(events))
    # Only trace events go, and the rest keep their order.
    assert [e for e in events if e["type"] != "trace-create"] == [e for e in kept if e["type"] != "trace-create"]
    assert [e["id"] for e in kept] == [e["id"] for e in events if e in kept]


def test_identical_bodies_at_one_time_keep_one_besides_the_earliest() -> None:
    events = [
        {"id": f"e{i}", "type": "trace-create", "timestamp": ts, "body": {"id": "t1", "userId": "u"}}
        for i, ts in enumerate([5, 5, 5, 3])
    ]
    assert [e["id"] for e in absorb_trace_events(events)] == ["e0", "e3"]


def test_a_null_metadata_key_is_a_value() -> None:
    # merge_map stores a key set to null: the later event must set it too.
    events = [
        {"id": "a", "type": "trace-create", "timestamp": 1, "body": {"id": "t1"}},
        {"id": "b", "type": "trace-create", "timestamp": 2, "body": {"id": "t1", "metadata": {"k": None}}},
        {"id": "c", "type": "trace-create", "timestamp": 3, "body": {"id": "t1", "metadata": {}}},
    ]
    assert len(absorb_trace_events(events)) == 3


def attr(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def test_an_sdk_trace_with_propagated_attributes_maps_to_two_trace_events() -> None:
    """A root and four children, each carrying the user and session (Langfuse's
    propagate_attributes): the root's trace event and the latest child's remain (a trace event
    is at its span's start: the root's is the earliest)."""
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    root = b"\x01" * 8
    propagated = [attr("user.id", "u1"), attr("session.id", "s1")]
    for i in range(4):
        spans.append(
            Span(
                trace_id=TRACE_ID,
                span_id=bytes([2 + i]) * 8,
                parent_span_id=root,
                name=f"child-{i}",
                start_time_unix_nano=T0 + i * 10**6,
                end_time_unix_nano=T0 + (i + 1) * 10**6,
                attributes=propagated,
            )
        )
    spans.append(
        Span(
            trace_id=TRACE_ID,
            span_id=root,
            name="agent",
            start_time_unix_nano=T0,
            end_time_unix_nano=T0 + 10**9,
            attributes=[*propagated, attr("langfuse.trace.tags", "x")],
        )
    )
    result = map_request(req)
    assert result.rejected == 0, result.errors
    trace_events = [e for e in result.events if e["type"] == "trace-create"]
    assert [e["id"] for e in trace_events] == [
        f"{TRACE_ID.hex()}-{'05' * 8}-trace",
        f"{TRACE_ID.hex()}-{'01' * 8}-trace",
    ]
    assert sum(e["type"] == "span-create" for e in result.events) == 5
    state = fold(result.events)
    assert (state.values["user_id"], state.values["session_id"], state.values["name"]) == ("u1", "s1", "agent")
    assert state.first_ts == T0 // 1000

    # A child whose session differs decides something: it stays.
    spans[2].attributes[1].value.string_value = "s2"
    assert sum(e["type"] == "trace-create" for e in map_request(req).events) == 3
