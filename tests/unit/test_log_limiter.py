"""A repeated warning is written once per second per kind, with a count of what was held back."""

from __future__ import annotations

import io
import logging
import time
from datetime import UTC, datetime, timedelta, timezone

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from loguru import logger

from agenttrace.logs import RepeatLimiter, _ts, configure


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_line_passes_the_rest_of_the_second_are_counted() -> None:
    clock = Clock()
    limiter = RepeatLimiter(1.0, clock=clock)
    assert limiter.admit(("kafka", 30, "unable to connect")) == 0
    assert [limiter.admit(("kafka", 30, "unable to connect")) for _ in range(999)] == [None] * 999
    # Another kind is not held back by the first.
    assert limiter.admit(("kafka", 30, "metadata failed")) == 0
    clock.now += 1.0
    assert limiter.admit(("kafka", 30, "unable to connect")) == 999
    assert limiter.admit(("kafka", 30, "unable to connect")) is None
    clock.now += 5.0
    assert limiter.admit(("kafka", 30, "unable to connect")) == 1


def test_held_back_lines_are_summarised_when_their_kind_goes_quiet() -> None:
    clock = Clock()
    limiter = RepeatLimiter(1.0, clock=clock)
    limiter.admit(("k",), {"n": 0})
    for i in range(1, 50):
        limiter.admit(("k",), {"n": i})
    assert limiter.overdue() == []  # still within its second
    clock.now += 1.5
    assert limiter.overdue() == [({"n": 49}, 49)]
    clock.now += 1.5
    assert limiter.overdue() == []  # owed once
    assert limiter.admit(("k",)) == 0


def test_distinct_kinds_beyond_the_bound_do_not_grow_the_table() -> None:
    limiter = RepeatLimiter(1.0, max_keys=10, clock=Clock())
    for i in range(1000):
        assert limiter.admit((i,)) == 0
    assert len(limiter._kinds) <= 10


def test_a_flood_through_the_stdlib_becomes_one_line_a_second() -> None:
    out = io.StringIO()
    configure("INFO", component="test", stream=out)
    try:
        kafka = logging.getLogger("aiokafka.cluster")
        start = time.monotonic()
        for _ in range(10_000):
            kafka.warning("Unable connect to node with id %s: %s", 1, "Connect call failed")
        seconds = time.monotonic() - start
        for i in range(3):
            logger.info("batch written", n=i)  # info lines are never limited
    finally:
        configure("INFO", component="test", stream=io.StringIO())
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    warnings = [d for d in lines if d["level"] == "warn"]
    assert 1 <= len(warnings) <= seconds + 2, (seconds, warnings)  # one a second, a summary at most
    assert warnings[0]["msg"] == "Unable connect to node with id 1: Connect call failed"
    assert warnings[0]["logger_name"] == "aiokafka.cluster"
    assert len(warnings) + sum(d.get("repeated", 0) for d in warnings) <= 10_000
    assert [d["n"] for d in lines if d["msg"] == "batch written"] == [0, 1, 2]


def test_a_library_line_is_one_kind_whatever_its_arguments() -> None:
    """aiokafka names the node and the error in each line; during an outage they vary, and
    each variant was its own kind (2-3 lines a second per process). Its format string decides."""
    out = io.StringIO()
    configure("INFO", component="test", stream=out)
    try:
        kafka = logging.getLogger("aiokafka.conn")
        start = time.monotonic()
        for i in range(3_000):
            kafka.error("Unable connect to node with id %s: %s", i % 3, f"[Errno 111] attempt {i}")
        seconds = time.monotonic() - start
    finally:
        configure("INFO", component="test", stream=io.StringIO())
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert 1 <= len(lines) <= seconds + 2, (seconds, lines)
    assert lines[0]["msg"] == "Unable connect to node with id 0: [Errno 111] attempt 0"
    assert "log_template" not in lines[0]


def test_a_flood_that_goes_on_gets_one_line_a_second_summaries_included() -> None:
    """A summary and a fresh admission in the same second were two lines of one kind
    (bench/outage.py counted ~2 a second for aiokafka's reconnect line)."""
    clock = Clock()
    limiter = RepeatLimiter(1.0, clock=clock)
    written = 0
    for _ in range(10):  # 10 seconds, 100 lines a second, the sweep run as the sink runs it
        for _ in range(100):
            written += len(limiter.overdue())
            if limiter.admit(("k",), {"m": 1}) is not None:
                written += 1
            clock.now += 0.01
    assert written <= 11, written


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(
            st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
            st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_a_line_is_stamped_in_utc_to_the_millisecond(times: list[tuple[datetime, timezone]]) -> None:
    # One after another, as lines come: the second remembered must never leak into the next.
    for naive, zone in times:
        when = naive.replace(tzinfo=zone)
        want = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
        assert _ts(when) == want
        assert _ts(when + timedelta(seconds=1)) != want
