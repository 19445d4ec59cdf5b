"""Timestamps in ClickHouse columns, as microseconds since the epoch in Python.

The legacy dialect (ClickHouse 18.16, no sub-second type) stores UInt64 µs; the modern one
DateTime64(6, 'UTC'), which the driver hands over as datetimes. Writers and readers both go
through these two functions, so neither needs to know which server it talks to.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)


def encode_time(us: int, subsecond_type: bool) -> Any:
    """µs for a column of the dialect: the number itself, or a UTC datetime for DateTime64."""
    if not subsecond_type:
        return us
    return _EPOCH + us * _US


def decode_time(value: Any) -> int:
    """µs from a column value of either dialect (a naive datetime is UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return (value - _EPOCH) // _US
    return int(value)
