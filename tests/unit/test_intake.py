"""Intake without servers: a fake publisher and rate limiter stand in for Kafka and Redis."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.admin import Admin
from ingest.config import EdgeConfig
from ingest.encoding import DecodeError
from ingest.intake import MAX_DEPTH, Caller, EventTooLarge, Intake
from ingest.limits import InflightBytes, Overloaded
from pipeline.envelope import Envelope, decode_record

CALLER = Caller(project_id="p1", request_id="req-1", sdk_name="test", sdk_version="0")


class FakePublisher:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []

    async def publish(self, records: list[tuple[bytes, bytes]]) -> None:
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


async def test_a_request_becomes_one_record_per_trace_each_within_the_event_limit() -> None:
    publisher = FakePublisher()
    sent = [
        (f"e{i}", "span-create", i + 1, {"id": f"s{i}", "traceId": f"t{i % 3}", "input": "x" * 300}) for i in range(30)
    ]
    await intake(publisher, max_event_bytes=2000).publish(CALLER, [tuple(e) for e in sent], "batch")  # type: ignore[misc]
    assert all(len(value) <= 2000 for _, value in publisher.records)
    assert {k for k, _ in publisher.records} == {b"p1:t0", b"p1:t1", b"p1:t2"}
    assert 6 <= len(publisher.records) < 30  # a trace's ten events (~3.6 KB) take two or three
    for trace in ("t0", "t1", "t2"):
        # Within a trace (one key, one partition), the records keep the events' order.
        mine = [env.id for k, v in publisher.records if k == f"p1:{trace}".encode() for env in decode_record(v)]
        assert mine == [e[0] for e in sent if e[3]["traceId"] == trace]
    assert sorted(e.id for e in publisher.envelopes()) == sorted(e[0] for e in sent)


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
