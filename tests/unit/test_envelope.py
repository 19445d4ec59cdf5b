from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.envelope import Envelope
from pipeline.errors import EnvelopeError
from pipeline.times import micros_to_iso, to_micros

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _envelope(**over) -> Envelope:
    fields = dict(
        id="e1",
        project_id="p1",
        type="generation-create",
        ts=1_700_000_000_123_456,
        received_at=1_700_000_001_000_000,
        body={"id": "g1", "traceId": "t1", "input": {"a": [1, 2]}},
        request_id="req-1",
        sdk_name="langfuse-python",
        sdk_version="2.60.0",
        source="batch",
    )
    fields.update(over)
    return Envelope(**fields)


def test_round_trip_keeps_every_field() -> None:
    env = _envelope()
    assert Envelope.decode(env.encode()) == env


def test_key_keeps_a_trace_in_one_partition() -> None:
    assert _envelope().key() == b"p1:t1"
    assert _envelope(type="trace-create", body={"id": "t1"}).key() == b"p1:t1"
    assert _envelope(type="score-create", body={"id": "s1"}).key() == b"p1:s1"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b'{"v": 2}',
        b'{"v": 1, "id": "x"}',
        b'{"v": 3, "id": "x"}',
        b'{"v":1,"id":"e","project_id":"p","type":"t","ts":1,"received_at":1,"body":[]}',
    ],
)
def test_invalid_envelopes_raise_envelope_error(raw: bytes) -> None:
    with pytest.raises(EnvelopeError):
        Envelope.decode(raw)


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_iso_timestamps_keep_microseconds(dt: datetime) -> None:
    us = to_micros(dt.isoformat().replace("+00:00", "Z"))
    assert EPOCH + timedelta(microseconds=us) == dt
    assert to_micros(micros_to_iso(us)) == us


@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_offsets_are_applied(naive: datetime, minutes: int) -> None:
    aware = naive.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    assert EPOCH + timedelta(microseconds=to_micros(aware.isoformat())) == aware


def test_nanosecond_fractions_truncate_to_microseconds() -> None:
    assert to_micros("2026-11-27T10:00:00.123456789Z") % 1_000_000 == 123456


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", True, [], {}])
def test_non_times_are_rejected(value) -> None:
    with pytest.raises(ValueError):
        to_micros(value)


def test_version_1_records_replay_with_their_times_as_micros() -> None:
    # Before version 2 the body kept the client's time text; the log still holds such records.
    v1 = {
        "v": 1,
        "id": "e",
        "project_id": "p",
        "type": "generation-create",
        "ts": 5,
        "received_at": 6,
        "body": {
            "id": "g",
            "traceId": "t",
            "startTime": "2026-11-27T10:00:00.5Z",
            "endTime": 1_795_773_601,
            "completionStartTime": "not a time",
            "input": "2026-11-27T10:00:00Z",
        },
    }
    env = Envelope.decode(orjson.dumps(v1))
    assert env.body["startTime"] == to_micros("2026-11-27T10:00:00.5Z")
    assert env.body["endTime"] == 1_795_773_601_000_000  # epoch seconds, read by magnitude as before
    assert env.body["completionStartTime"] == "not a time"  # left for the fold to dead-letter
    assert env.body["input"] == "2026-11-27T10:00:00Z"  # not a time field
    assert orjson.loads(env.encode())["v"] == 2
