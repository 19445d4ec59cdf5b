"""The edge's reading of client times: the digit-by-digit path for the form SDKs send must agree
with datetime.fromisoformat, which reads (or refuses) everything else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.times import _utc_iso_micros, micros_from_datetime, to_micros

TIMES = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999))


def reference(text: str) -> int:
    return micros_from_datetime(datetime.fromisoformat(text))


@given(
    TIMES,
    st.sampled_from(["T", " "]),
    st.integers(0, 12),
    st.sampled_from(["Z", "+00:00", ""]),
    st.integers(0, 10**12 - 1),
)
def test_the_fast_path_reads_what_fromisoformat_reads(
    when: datetime, sep: str, fraction_digits: int, zone: str, fraction: int
) -> None:
    text = f"{when.year:04}-{when.month:02}-{when.day:02}{sep}{when.hour:02}:{when.minute:02}:{when.second:02}"
    if fraction_digits:
        text += "." + str(fraction).zfill(12)[:fraction_digits]
    text += zone
    assert to_micros(text) == reference(text)
    fast = _utc_iso_micros(text)
    assert fast == -1 or fast == reference(text)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-20T10:00:00.000001Z",
        "2024-02-29T23:59:59.999999Z",  # a leap day
        "2000-02-29T00:00:00Z",  # divisible by 400: a leap year
        "2026-04-30T12:00:00+00:00",
        "2026-11-20T10:00:00.1234567890123Z",  # truncated, as fromisoformat truncates
    ],
)
def test_sdk_times_take_the_fast_path(text: str) -> None:
    assert _utc_iso_micros(text) == reference(text) >= 0


@pytest.mark.parametrize(
    "text",
    [
        "2025-02-29T00:00:00Z",  # not a leap year
        "1900-02-29T00:00:00Z",  # divisible by 100, not 400
        "2026-04-31T00:00:00Z",
        "2026-11-20T24:00:00Z",
        "2026-11-20T10:60:00Z",
        "2026-11-20T10:00:60Z",
        "2026-13-01T00:00:00Z",
        "2026-00-10T00:00:00Z",
        "2026-11-20T10:00:00.Z",
        "2026-11-20T10:00:00,5Z",
        "2026-11-20T10:00:00+02:00",
        "2026-11-20T10:00:00.5-00:00",
        "2026-11-20X10:00:00Z",
        "2026-11-20T10:00:0٣Z",  # a digit, but not an ASCII one
        " 2026-11-20T10:00:00Z",
        "2026-11-20T10:00:00Z ",
        "20261120T100000Z",
    ],
)
def test_other_forms_are_left_to_fromisoformat(text: str) -> None:
    assert _utc_iso_micros(text) == -1
    try:
        expected: int | type[ValueError] = reference(text)
    except ValueError:
        expected = ValueError
    if expected is ValueError:
        with pytest.raises(ValueError):
            to_micros(text)
    else:
        assert to_micros(text) == expected


def test_an_offset_other_than_utc_is_converted() -> None:
    assert to_micros("2026-11-20T12:00:00+02:00") == to_micros("2026-11-20T10:00:00Z")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert to_micros("2026-11-20T10:00:00Z") == (datetime(2026, 11, 20, 10, tzinfo=UTC) - epoch) // timedelta(
        microseconds=1
    )
