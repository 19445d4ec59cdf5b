"""Intake without servers: a fake publisher and rate limiter stand in for Kafka and Redis."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from ingest.admin import Admin
from ingest.config import EdgeConfig
from ingest.encoding import BodyTooLarge, DecodeError
from ingest.intake import JSON_VALUE_BYTES, MAX_DEPTH, Caller, EventTooLarge, Intake
from ingest.limits import Held, InflightBytes, Overloaded, RateLimited
from ingest.otlp.export import export_spans
from ingest.otlp.mapping import SPAN_WEIGHT, Slices, map_request
from ingest.otlp.wire import parse
from ingest.partitioner import partition_for
from ingest.shape import json_values
from pipeline.envelope import Envelope, decode_record

CALLER = Caller(project_id="p1", request_id="req-1", sdk_name="test", sdk_version="0")


class FakePublisher:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []

    async def partition_count(self) -> int:
        return 8

    async def publish(self, records: list[tuple[bytes, bytes]], partitions: int) -> None:
        self.records.extend(records)

    def envelopes(self) -> list[Envelope]:
        return [env for _, value in self.records for env in decode_record(value)]


class FakeLimiter:
    per_minute = 100

    async def consume(self, project_id: str, events: int) -> tuple[int, int] | None:
        return self.per_minute - events, 42


def intake(publisher: FakePublisher, limiter: Any = None, **config: Any) -> Intake:
    return Intake(EdgeConfig(**config), None, publisher, InflightBytes(1 << 20), limiter)  # type: ignore[arg-type]


def events(big: int | None = None) -> list[tuple[str, str, int, dict[str, Any]]]:
    out = [
        ("e1", "trace-create", 1, {"id": "t1"}),
        ("e2", "generation-create", 2, {"id": "g1", "traceId": "t1"}),
        ("e3", "span-create", 3, {"id": "s1", "traceId": "t1"}),
        ("e4", "score-create", 4, {"id": "sc1", "traceId": "t1"}),
    ]
    if big is not None:
        out[big][3]["input"] = "x" * 2000
    return out


async def test_publish_reports_what_it_appended() -> None:
    publisher = FakePublisher()
    accepted = await intake(publisher).publish(CALLER, events(), "batch")
    assert (accepted.events, accepted.observations, accepted.trace_id, accepted.refused) == (4, 2, "t1", ())
    assert accepted.log_fields() == {"events": 4, "observations_count": 2, "trace_id": "t1"}
    # One trace: one record, its events in the order given.
    assert [k for k, _ in publisher.records] == [b"p1:t1"]
    envelopes = publisher.envelopes()
    assert [e.id for e in envelopes] == ["e1", "e2", "e3", "e4"]
    assert {(e.project_id, e.request_id, e.sdk_name, e.source) for e in envelopes} == {("p1", "req-1", "test", "batch")}


async def test_a_request_becomes_one_record_per_partition_each_within_the_event_limit() -> None:
    publisher = FakePublisher()
    sent = [
        (f"e{i}", "span-create", i + 1, {"id": f"s{i}", "traceId": f"t{i % 3}", "input": "x" * 300}) for i in range(30)
    ]
    await intake(publisher, max_event_bytes=2000).publish(CALLER, [tuple(e) for e in sent], "batch")  # type: ignore[misc]
    assert all(len(value) <= 2000 for _, value in publisher.records)
    assert 6 <= len(publisher.records) < 30  # ten events (~3.6 KB) of a trace take two or three
    for trace in ("t0", "t1", "t2"):
        # Every event is in a record whose key goes to its trace's partition, and within that
        # partition the records keep the events' order.
        partition = partition_for(f"p1:{trace}".encode(), 8)
        mine = [
            env.id
            for k, v in publisher.records
            if partition_for(k, 8) == partition
            for env in decode_record(v)
            if env.body["traceId"] == trace
        ]
        assert mine == [e[0] for e in sent if e[3]["traceId"] == trace]
    for key, value in publisher.records:
        assert {partition_for(f"p1:{e.body['traceId']}".encode(), 8) for e in decode_record(value)} == {
            partition_for(key, 8)
        }
    assert sorted(e.id for e in publisher.envelopes()) == sorted(e[0] for e in sent)


async def test_traces_that_share_a_partition_share_a_record() -> None:
    publisher = FakePublisher()
    sent = [(f"e{i}", "span-create", i + 1, {"id": f"s{i}", "traceId": f"t{i % 40}"}) for i in range(200)]
    await intake(publisher).publish(CALLER, sent, "batch")
    partitions = [partition_for(k, 8) for k, _ in publisher.records]
    # 40 traces, 8 partitions: a record each, keyed by the first of its traces to arrive.
    assert sorted(partitions) == list(range(8))
    first = {}
    for _, _, _, body in sent:
        first.setdefault(partition_for(f"p1:{body['traceId']}".encode(), 8), f"p1:{body['traceId']}".encode())
    assert dict(zip(partitions, (k for k, _ in publisher.records), strict=True)) == first
    assert [e.id for e in publisher.envelopes() if e.body["traceId"] == "t7"] == [f"e{i}" for i in range(7, 200, 40)]


async def test_an_event_too_large_for_kafka_fails_the_request_before_anything_is_sent() -> None:
    publisher = FakePublisher()
    with pytest.raises(EventTooLarge) as exc:
        await intake(publisher, max_event_bytes=1000).publish(CALLER, events(big=2), "batch")
    assert exc.value.status == 413 and "e3" in exc.value.message
    assert publisher.records == []


async def test_partial_publish_leaves_out_events_too_large_for_kafka() -> None:
    publisher = FakePublisher()
    accepted = await intake(publisher, max_event_bytes=1000).publish(CALLER, events(big=1), "batch", partial=True)
    assert [(position, status) for position, status, _ in accepted.refused] == [(1, 413)]
    assert (accepted.events, accepted.observations) == (3, 1)
    assert [e.id for e in publisher.envelopes()] == ["e1", "e3", "e4"]


def _deep(depth: int) -> object:
    doc: object = 1
    for _ in range(depth):
        doc = [doc]
    return doc


async def test_a_body_nested_past_what_encodes_is_a_client_error_not_a_crash() -> None:
    publisher = FakePublisher()
    deep = [("e1", "trace-create", 1, {"id": "t1", "metadata": _deep(400)})]
    with pytest.raises(DecodeError) as exc:
        await intake(publisher).publish(CALLER, deep, "batch")
    assert exc.value.status == 400 and "nested too deeply" in exc.value.message
    shallow = ("e2", "trace-create", 1, {"id": "t2", "metadata": _deep(MAX_DEPTH - 1)})
    accepted = await intake(publisher).publish(CALLER, [*deep, shallow], "batch", partial=True)
    assert [(position, status) for position, status, _ in accepted.refused] == [(0, 400)]
    assert [e.id for e in publisher.envelopes()] == ["e2"]


async def test_rate_headers_only_when_a_limit_is_configured() -> None:
    limited = intake(FakePublisher(), FakeLimiter())
    assert await limited.check_rate(CALLER, 10) == {
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Remaining": "90",
        "X-RateLimit-Reset": "42",
    }

    class Unlimited:
        async def consume(self, project_id: str, events: int) -> None:
            return None

    assert await intake(FakePublisher(), Unlimited()).check_rate(CALLER, 10) == {}


async def test_inflight_bytes_admit_one_request_whatever_its_size_then_bound() -> None:
    inflight = InflightBytes(100)
    async with inflight.hold(150):  # alone, even past the bound: progress is always possible
        with pytest.raises(Overloaded):
            async with inflight.hold(1):
                pass
    async with inflight.hold(60), inflight.hold(40):
        assert inflight.used == 100
    assert inflight.used == 0


async def test_a_held_share_grows_within_the_bound_and_is_released_whole() -> None:
    inflight = InflightBytes(100)
    async with inflight.hold(30) as other:
        held = inflight.hold_for({})  # type: ignore[arg-type]  # a request is a mapping
        held.grow(50)  # the compressed body
        with pytest.raises(Overloaded):
            held.grow(50)  # its decompressed copy does not fit beside the other request
        other.release()
        held.grow(500)  # alone again: progress is always possible
        held.release()
    assert inflight.used == 0


# ---------------------------------------------------------------------------------------------
# What a request parses into, bounded: JSON bodies weighed by their values, OTLP spans mapped and
# appended a slice at a time.


def _values(doc: Any) -> int:
    """What json_values counts, from the document: one, plus each container's items but one."""
    if isinstance(doc, dict):
        return max(len(doc) - 1, 0) + sum(_values(v) - 1 for v in doc.values()) + 1
    if isinstance(doc, list):
        return max(len(doc) - 1, 0) + sum(_values(v) - 1 for v in doc) + 1
    return 1


_TEXT = st.text(alphabet=st.sampled_from('ab,"\\:{}[] \n\u00e9'), max_size=8)
_DOCS = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=30,
)


@given(_DOCS)
def test_json_values_counts_the_commas_outside_strings(doc: Any) -> None:
    data = orjson.dumps(doc)
    assert json_values(data) == _values(doc)
    assert json_values(orjson.dumps(doc, option=orjson.OPT_INDENT_2)) == _values(doc)


def test_json_bodies_are_weighed_by_their_values_when_those_decide() -> None:
    one = intake(FakePublisher())
    budget = InflightBytes(1 << 40)
    reserved = 1 + one.config.memory_per_body_byte

    # Commas in strings, as prose and CSV have them: the length decides, nothing more is held.
    prose = orjson.dumps({"batch": [{"id": str(i), "body": {"input": "a,b,c,d,e," * 50}} for i in range(100)]})
    held = Held(budget)
    held.grow(len(prose) * reserved)
    one._weigh_json(prose, held)
    assert held.n == len(prose) * reserved

    # Tiny values: each one weighs, and the request holds what they parse into.
    tiny = b"[" + b",".join([b"1"] * 100_000) + b"]"
    held = Held(budget)
    held.grow(len(tiny) * reserved)
    one._weigh_json(tiny, held)
    assert held.n == len(tiny) + 100_000 * JSON_VALUE_BYTES

    # More than one request may hold (a maximal body's share): 413, and nothing more held.
    bomb = b"[" + b",".join([b"1"] * 400_000) + b"]"
    held = Held(budget)
    held.grow(len(bomb) * reserved)
    with pytest.raises(BodyTooLarge, match="400000 JSON values"):
        one._weigh_json(bomb, held)
    assert held.n == len(bomb) * reserved


def _export(spans: int, *, invalid: tuple[int, ...] = (), padded: tuple[int, ...] = ()) -> bytes:
    """One trace: a root and its children; `invalid` spans without a trace id, `padded` ones
    with an attribute past what an event may take."""
    trace = bytes.fromhex("5b8efff798038103d269b633813fc60c")
    out = []
    for i in range(spans):
        span = Span(
            trace_id=b"" if i in invalid else trace,
            span_id=(i + 1).to_bytes(8, "big"),
            parent_span_id=b"" if i == 0 else (1).to_bytes(8, "big"),
            name=f"s{i}",
            start_time_unix_nano=1_795_000_000_000_000_000 + i,
            end_time_unix_nano=1_795_000_000_100_000_000 + i,
        )
        if i in padded:
            kv = span.attributes.add()
            kv.key, kv.value.string_value = "input.value", "x" * 1_100_000
        out.append(span)
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=out)])])
    return request.SerializeToString()


def test_slices_cross_resources_and_scopes_as_the_whole_mapping() -> None:
    """Slices stop anywhere (mid-scope, at a scope's or a resource's end) and resume there:
    each span keeps its own resource's and scope's metadata, read from protobuf or upb."""
    resources = []
    for r in range(3):
        scopes = []
        for s in range(2):
            trace = bytes([r + 1, s + 1]) * 8
            spans = [
                Span(
                    trace_id=trace,
                    span_id=bytes([r + 1, s + 1, i + 1]) + bytes(5),
                    name=f"r{r}s{s}i{i}",
                    start_time_unix_nano=1_795_000_000_000_000_000,
                    end_time_unix_nano=1_795_000_001_000_000_000,
                )
                for i in range(7)
            ]
            scope = ScopeSpans(spans=spans)
            scope.scope.name = f"scope-{r}-{s}"
            scopes.append(scope)
        resource = ResourceSpans(scope_spans=scopes)
        kv = resource.resource.attributes.add()
        kv.key, kv.value.string_value = "service.name", f"service-{r}"
        resources.append(resource)
    request = ExportTraceServiceRequest(resource_spans=resources)
    for read in (parse(request.SerializeToString()), request):
        whole = map_request(read).events
        assert len(whole) == 2 * 42
        for weight in (1, 3 * SPAN_WEIGHT, 7 * SPAN_WEIGHT, 8 * SPAN_WEIGHT):
            slices, events, sizes = Slices(read, weight), [], []
            while not slices.done:
                part = slices.next().events
                sizes.append(len(part))
                events.extend(part)
            assert events == whole, weight
            assert len(sizes) > 1
        scopes = {
            e["body"]["name"]: e["body"]["metadata"]["scope"]["name"]
            for e in whole
            if "scope" in e["body"].get("metadata", {})
        }
        assert scopes["r2s1i6"] == "scope-2-1" and scopes["r0s0i0"] == "scope-0-0"


async def test_an_otlp_export_is_mapped_and_appended_a_slice_at_a_time() -> None:
    data = _export(300, invalid=(7, 150), padded=(200,))
    whole, sliced = FakePublisher(), FakePublisher()
    log_whole: dict[str, Any] = {}
    log_sliced: dict[str, Any] = {}
    a = await export_spans(intake(whole, FakeLimiter()), CALLER, parse(data), "otlp", log_whole)
    # ~20 spans a slice: each slice is appended (one record, the trace's) before the next is mapped.
    b = await export_spans(
        intake(sliced, FakeLimiter(), max_mapped_bytes=20 * SPAN_WEIGHT), CALLER, parse(data), "otlp", log_sliced
    )
    assert len(whole.records) == 1 and len(sliced.records) >= 10
    assert [(e.id, e.type, e.body) for e in sliced.envelopes()] == [(e.id, e.type, e.body) for e in whole.envelopes()]
    assert len(whole.envelopes()) == 1 + 298  # the root's trace, and every valid span
    # Rejections are the request's, whichever slice met them: two spans without a trace id. The
    # one longer than an event may be is kept, its long value cut (mapping.trimmed_span).
    assert (a.rejected, a.message) == (b.rejected, b.message)
    assert a.rejected == 2
    [padded] = [e for e in whole.envelopes() if "agenttrace.truncated" in e.body.get("metadata", {})]
    assert list(padded.body["metadata"]["agenttrace.truncated"].values()) == [1_100_000]
    assert (
        log_whole
        == log_sliced
        == {
            "events": 299,
            "rejected": 2,
            "observations_count": 298,
            "trace_id": "5b8efff798038103d269b633813fc60c",
        }
    )


class CountingLimiter:
    """A minute's window as the Redis script keeps it: every call counts, past the limit raises."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute, self.used, self.calls = per_minute, 0, 0

    async def consume(self, project_id: str, events: int) -> tuple[int, int] | None:
        self.used, self.calls = self.used + events, self.calls + 1
        if self.used > self.per_minute:
            raise RateLimited(self.per_minute, 0, 42)
        return self.per_minute - self.used, 42


@pytest.mark.parametrize("slice_weight", [0, 20 * SPAN_WEIGHT])
async def test_an_otlp_export_is_counted_against_the_rate_limit_once_before_it_is_appended(slice_weight: int) -> None:
    """Whole or in slices, a request is counted once: refused, nothing of it is appended (so the
    client's retry counts nothing twice); admitted, later slices are not refused halfway."""
    data = _export(300, invalid=(7, 150))
    refused, limiter = FakePublisher(), CountingLimiter(250)
    with pytest.raises(RateLimited):
        await export_spans(intake(refused, limiter, max_mapped_bytes=slice_weight), CALLER, parse(data), "otlp", {})
    assert refused.records == [] and limiter.calls == 1

    admitted, limiter = FakePublisher(), CountingLimiter(300)
    done = await export_spans(intake(admitted, limiter, max_mapped_bytes=slice_weight), CALLER, parse(data), "otlp", {})
    assert len(admitted.envelopes()) == 1 + 298 and limiter.calls == 1
    # One slice: its events (the root's trace and the valid spans); several: the request's spans.
    assert limiter.used == (299 if slice_weight == 0 else 300)
    assert done.rate_headers["X-RateLimit-Remaining"] == str(300 - limiter.used)


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer s3cret", True),
        ("bearer s3cret", True),
        ("Bearer s3cret ", True),
        ("Bearer s3cre", False),
        ("Bearer s3cretx", False),
        ("Basic s3cret", False),
        ("s3cret", False),
        (None, False),
        ("Bearer ", False),
    ],
)
def test_admin_token_check(header: str | None, ok: bool) -> None:
    assert Admin(None, "s3cret").authorized(header) is ok  # type: ignore[arg-type]
    assert Admin(None, None).authorized(header) is False  # type: ignore[arg-type]
