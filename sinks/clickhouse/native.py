"""Rows as a block of ClickHouse's Native format, column by column in C-level loops.

asynch writes an insert's block value by value (varint, encode, append, an await per column),
~10 µs of the worker's CPU per observation row, the largest single item of the ClickHouse
stage (bench/README.md "Inserts encoded a column at a time"); here each column is one `map`
or `array` over its values, ~3 µs a row. The server reads the same Native block as before.
Only the types our tables use are encoded; for any other the caller falls back to asynch.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate, repeat
from operator import is_
from typing import Any, Final

Encoder = Callable[[Sequence[Any]], bytes]


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Lengths below 16 KiB (every value but the odd long input or output) from a table.
_VARINTS: Final = [varint(n) for n in range(1 << 14)]
_varint_of: Final = _VARINTS.__getitem__


def _strings(values: Sequence[Any]) -> bytes:
    count = len(values)
    # A column of one value throughout (most rows leave version, level, status, prompt and
    # environment at their defaults): one value's bytes, repeated.
    first = values[0] if count else None
    if count > 1 and type(first) is str and values[-1] == first and values.count(first) == count:
        one = first.encode()
        if len(one) < len(_VARINTS):
            return (_varint_of(len(one)) + one) * count
    try:
        encoded = list(map(str.encode, values))
    except TypeError:  # a value that is not text: its text, as a String column holds it
        encoded = [(v if isinstance(v, str) else str(v)).encode() for v in values]
    parts: list[bytes] = [b""] * (2 * len(encoded))
    try:
        parts[0::2] = map(_varint_of, map(len, encoded))
    except IndexError:
        parts[0::2] = [varint(len(e)) for e in encoded]
    parts[1::2] = encoded
    return b"".join(parts)


def _numbers(code: str) -> Encoder:
    return lambda values: array(code, values).tobytes()


_SCALARS: Final[dict[str, tuple[Encoder, Any]]] = {
    "String": (_strings, ""),
    "UInt8": (bytes, 0),
    "UInt16": (_numbers("H"), 0),
    "UInt32": (_numbers("I"), 0),
    "UInt64": (_numbers("Q"), 0),
    "Int8": (_numbers("b"), 0),
    "Int16": (_numbers("h"), 0),
    "Int32": (_numbers("i"), 0),
    "Int64": (_numbers("q"), 0),
    "Float32": (_numbers("f"), 0.0),
    "Float64": (_numbers("d"), 0.0),
}
assert array("Q").itemsize == 8 and array("I").itemsize == 4 and array("H").itemsize == 2


def _nullable(inner: Encoder, default: Any) -> Encoder:
    def encode(values: Sequence[Any]) -> bytes:
        nulls = bytes(map(is_, values, repeat(None)))
        if 1 in nulls:
            values = [default if v is None else v for v in values]
        return nulls + inner(values)

    return encode


def _array(inner: Encoder) -> Encoder:
    def encode(values: Sequence[Any]) -> bytes:
        offsets = array("Q", accumulate(map(len, values), initial=0))[1:]  # each array's end
        return offsets.tobytes() + inner([x for v in values for x in v])

    return encode


def encoder(column_type: str) -> Encoder | None:
    """How to encode a column of this type; None for a type not handled here."""
    if column_type in _SCALARS:
        return _SCALARS[column_type][0]
    inner = column_type.partition("(")[2][:-1]  # of Nullable(T) or Array(T)
    if inner not in _SCALARS:
        return None
    if column_type.startswith("Nullable("):
        return _nullable(*_SCALARS[inner])
    if column_type.startswith("Array("):
        return _array(_SCALARS[inner][0])
    return None


_BLOCK_INFO: Final = varint(1) + b"\x00" + varint(2) + (-1).to_bytes(4, "little", signed=True) + varint(0)


class Columns:
    """Rows held column by column, as a writer builds them: `block` encodes each list as it
    is, with no tuple per row and no transposition. Iterates as rows (tuples), for asynch's
    own writer and for callers that read rows."""

    __slots__ = ("count", "values")

    def __init__(self, values: list[list[Any]], count: int) -> None:
        self.values = values  # one list per column, each `count` long
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return zip(*self.values, strict=True) if self.count else iter(())


def block(columns_with_types: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]] | Columns) -> bytes | None:
    """The Native block of `rows` (tuples in the order of `columns_with_types`, the header the
    server sent for the INSERT, or Columns in that order), block info first; None when a
    column's type is not handled.

    Raises ValueError (or TypeError, OverflowError) for a value its column cannot hold.
    """
    encoders = []
    for _, column_type in columns_with_types:
        encode = encoder(column_type)
        if encode is None:
            return None
        encoders.append(encode)
    count = len(rows)
    out = [_BLOCK_INFO, varint(len(columns_with_types)), varint(count)]
    columns: Sequence[Sequence[Any]]
    if isinstance(rows, Columns):
        columns = rows.values
        if any(len(values) != count for values in columns):
            raise ValueError("columns of different lengths")
    else:
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in columns_with_types]
    # strict: a row of more or fewer values than columns is refused (ValueError).
    for (name, column_type), encode, values in zip(columns_with_types, encoders, columns, strict=True):
        out += [_strings((name, column_type)), encode(values)]
    return b"".join(out)
