"""The hot path's fast paths give exactly what the plain code they replaced gives.

Each reference below is that plain code, kept verbatim: the stage's output (values, types,
JSON text, poison messages) must not change with its CPU cost.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from pipeline.envelope import to_micros

_EPOCH_ORDINAL = datetime(1970, 1, 1).toordinal()


def reference_to_micros(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("a boolean is not a timestamp")
    if isinstance(value, (int, float)):
        v = float(value)
        for scale in (1e6, 1e3, 1.0, 1e-3):
            if abs(v * scale) < 1e17:
                return int(round(v * scale))
        raise ValueError("timestamp out of range")
    if not isinstance(value, str):
        raise ValueError("timestamp must be a string")
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    if dt.year >= 1970:
        return math.floor(dt.timestamp()) * 1_000_000 + dt.microsecond
    secs = (dt.toordinal() - _EPOCH_ORDINAL) * 86_400 + dt.hour * 3600 + dt.minute * 60 + dt.second
    offset = dt.utcoffset()
    return (secs - offset.days * 86_400 - offset.seconds) * 1_000_000 + dt.microsecond


def outcome(f, *args) -> tuple:
    """A result or the exception it raised, comparable (with types: True is not 1)."""
    try:
        return ("value", repr(f(*args)))
    except Exception as exc:  # noqa: BLE001 - the type and message are what is compared
        return ("raised", type(exc), str(exc))


@st.composite
def iso_times(draw) -> str:
    """Extended ISO 8601 as clients write it: any year, 0-9 fraction digits, Z, offsets or none."""
    dt = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
    text = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}{draw(st.sampled_from('T '))}"
    text += f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    digits = draw(st.integers(0, 9))
    if digits:
        text += f".{draw(st.integers(0, 10**digits - 1)):0{digits}d}"
    sign, hours, minutes = draw(st.sampled_from("+-")), draw(st.integers(0, 23)), draw(st.integers(0, 59))
    offset = st.sampled_from([f"{sign}{hours:02d}:{minutes:02d}", f"{sign}{hours:02d}{minutes:02d}",
                              f"{sign}{hours:02d}:{minutes:02d}:30", f"{sign}00:00:00.500000"])
    return text + draw(st.one_of(st.sampled_from(["Z", "+00:00", "-00:00", ""]), offset))


@given(iso_times())
@example("1969-12-31T23:59:59.999999Z")
@example("1970-01-01T00:00:00Z")
@example("1970-01-01T00:30:00+01:00")
@example("0001-01-01T00:00:00Z")
@example("2026-11-27T10:00:00.123456789Z")
@example("2499-12-31T23:59:59.999999Z")  # the last year of the fast path, at its least exact
@example("2499-12-31T23:59:59.999999")
@example("2500-01-01T00:00:00.999999Z")
@example("2600-01-01T00:00:00.999999Z")  # past 2**34 s the general path's float rounds up
@example("9999-12-31T23:59:59.999999+00:00")
def test_to_micros_of_iso_times_is_unchanged(text: str) -> None:
    assert outcome(to_micros, text) == outcome(reference_to_micros, text)


@given(st.one_of(st.text(max_size=40), st.none(), st.booleans(), st.integers(), st.floats(),
                 st.lists(st.integers(), max_size=1), st.dictionaries(st.text(max_size=1), st.integers(), max_size=1)))
@example("")
@example("2026-11-27T10:00:00.Z")
@example("2026-11-27T10:00:00+24:00")
@example("２０２６-11-27T10:00:00Z")
def test_to_micros_of_anything_else_is_unchanged(value: Any) -> None:
    assert outcome(to_micros, value) == outcome(reference_to_micros, value)
