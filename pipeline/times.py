"""The project's one time codec: event times are integer microseconds since the epoch (UTC).

The edge parses what clients send (ISO 8601 text, epoch numbers, OTLP nanoseconds) into µs
once; envelopes, the fold and the stores carry µs; text is made again only for people (the
read API, metadata). ClickHouse's DateTime64 columns take UTC datetimes, 18.16's UInt64 the µs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from mypy_extensions import i64  # a 64-bit int to mypyc, an int to the interpreter

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH: Final = datetime(1970, 1, 1)
_US: Final = timedelta(microseconds=1)

# What both ClickHouse dialects store (18.16's UInt64 has no room before 1970); the edge
# refuses times outside it, so nothing accepted is dead-lettered for its time later.
MIN_US: Final = 0  # 1970-01-01 .. 2100-01-01
MAX_US: Final = 4_102_444_800_000_000


def to_micros(value: Any) -> int | None:
    """ISO 8601 (with Z or offset, any fraction) or epoch numbers to µs; None if absent.

    Numbers are read by magnitude as seconds, milliseconds, microseconds or nanoseconds.
    Raises ValueError for a value that is present but not a time.
    """
    if isinstance(value, str):
        if not value:
            return None
        us = _utc_iso_micros(value)
        if us >= 0:
            return us
        # Python 3.11 parses "Z", offsets and any number of fraction digits (beyond 6 truncated).
        return micros_from_datetime(datetime.fromisoformat(value))
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("a boolean is not a timestamp")
    if isinstance(value, (int, float)):
        v = float(value)
        for scale in (1e6, 1e3, 1.0, 1e-3):
            if abs(v * scale) < 1e17:
                return round(v * scale)
        raise ValueError("timestamp out of range")
    raise ValueError("timestamp must be a string")


def _number(s: str, start: i64, stop: i64) -> i64:
    """The ASCII digits s[start:stop] as a number, -1 if any is not one."""
    value: i64 = 0
    i: i64 = start
    while i < stop:
        d: i64 = ord(s[i]) - 48
        if d < 0 or d > 9:
            return -1
        value = value * 10 + d
        i += 1
    return value


def _utc_iso_micros(s: str) -> i64:
    """µs of the form SDKs send, `YYYY-MM-DDTHH:MM:SS[.fraction][Z|+00:00]` (a space for the T
    too), read digit by digit; -1 for anything else, which fromisoformat then reads or refuses.
    Three times per generation at the edge: 0.45 µs each through a datetime, 0.13 this way.
    Returns what fromisoformat would (tests/unit/test_times.py), fraction truncated to µs."""
    n: i64 = len(s)
    if n < 19 or s[4] != "-" or s[7] != "-" or (s[10] != "T" and s[10] != " ") or s[13] != ":" or s[16] != ":":
        return -1
    end: i64 = n
    if s[n - 1] == "Z":
        end = n - 1
    elif (
        n >= 25 and s[n - 6] == "+" and _number(s, n - 5, n - 3) == 0 and s[n - 3] == ":" and _number(s, n - 2, n) == 0
    ):
        end = n - 6
    year, month, day = _number(s, 0, 4), _number(s, 5, 7), _number(s, 8, 10)
    hour, minute, second = _number(s, 11, 13), _number(s, 14, 16), _number(s, 17, 19)
    if year < 1 or month < 1 or month > 12 or day < 1 or hour < 0 or hour > 23:
        return -1
    if minute < 0 or minute > 59 or second < 0 or second > 59:
        return -1
    if day > 28:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        if month == 2:
            if day > (29 if leap else 28):
                return -1
        elif day > (30 if month == 4 or month == 6 or month == 9 or month == 11 else 31):
            return -1
    fraction: i64 = 0
    if end > 19:
        if s[19] != "." or end == 20:
            return -1
        digits: i64 = min(end, 26) - 20
        fraction = _number(s, 20, 20 + digits)
        if fraction < 0 or (end > 26 and _number(s, 26, end) < 0):
            return -1
        while digits < 6:
            fraction *= 10
            digits += 1
    # Days since 1970-01-01 of a proleptic Gregorian date (the inverse of civil-from-days).
    y: i64 = year - 1 if month <= 2 else year
    era: i64 = y // 400
    yoe: i64 = y - era * 400
    doy: i64 = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    days: i64 = era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468
    return ((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000 + fraction


def micros_from_datetime(dt: datetime) -> int:
    """Exact µs of a datetime, in integer arithmetic; a naive one is UTC."""
    d = dt - (_NAIVE_EPOCH if dt.tzinfo is None else EPOCH)
    # From the timedelta's parts: `d // timedelta(microseconds=1)` costs 0.36 µs, this 0.16,
    # three times per generation at the edge (bench/edge_cpu.py).
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def datetime_from_micros(us: int) -> datetime:
    return EPOCH + us * _US


def micros_to_iso(us: int) -> str:
    """ISO 8601 UTC with six fraction digits and a Z, as Langfuse answers."""
    return datetime_from_micros(us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def micros_of_column(value: Any) -> int:
    """µs from a time column of either ClickHouse dialect: a datetime (DateTime64) or a number."""
    if isinstance(value, datetime):
        return micros_from_datetime(value)
    return int(value)


def column_of_micros(us: int, subsecond_type: bool) -> Any:
    """A time column's value: a UTC datetime for DateTime64, the µs themselves for UInt64."""
    return datetime_from_micros(us) if subsecond_type else us
