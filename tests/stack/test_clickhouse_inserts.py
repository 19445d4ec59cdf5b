"""Inserts through the client's own Native encoder (sinks/clickhouse/native.py), read back
from the real server: every type the tables use, the values at their edges, and what
happens to a value a column cannot hold."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sinks.clickhouse import native
from sinks.clickhouse.client import ClickHouse, ClickHouseError

pytestmark = pytest.mark.stack

COLUMNS = {
    "s": "String",
    "u8": "UInt8",
    "u16": "UInt16",
    "u32": "UInt32",
    "u64": "UInt64",
    "i8": "Int8",
    "i16": "Int16",
    "i32": "Int32",
    "i64": "Int64",
    "f32": "Float32",
    "f64": "Float64",
    "ns": "Nullable(String)",
    "nu64": "Nullable(UInt64)",
    "nf64": "Nullable(Float64)",
    "tags": "Array(String)",
}
NAMES = tuple(COLUMNS)


@pytest.fixture
async def table(ch: ClickHouse) -> AsyncIterator[str]:
    name = f"native_{uuid.uuid4().hex[:12]}"
    columns = ", ".join(f"{c} {t}" for c, t in COLUMNS.items())
    await ch.execute(f"CREATE TABLE {name} ({columns}) ENGINE = Memory")
    yield name
    await ch.execute(f"DROP TABLE IF EXISTS {name}")


async def stored(ch: ClickHouse, table: str, columns: tuple[str, ...] = NAMES) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await ch.fetch(f"SELECT {', '.join(columns)} FROM {table} ORDER BY i64")]


def as_given(rows: list[tuple[Any, ...]], by_column: bool) -> Any:
    """The rows as tuples, or as the Columns the writer builds."""
    return native.Columns([list(c) for c in zip(*rows, strict=True)], len(rows)) if by_column and rows else rows


@pytest.mark.parametrize("by_column", [False, True], ids=["rows", "columns"])
async def test_every_type_reads_back_as_written(ch: ClickHouse, table: str, by_column: bool) -> None:
    assert all(native.encoder(t) is not None for t in COLUMNS.values())  # not asynch's fallback
    long = "p" * 20_000 + "é"  # a length past the varint table; non-ASCII bytes
    written = [
        ("", 0, 0, 0, 0, -128, -32768, -(2**31), -(2**63), 0.0, -1.5, None, None, None, []),
        (long, 255, 65535, 2**32 - 1, 2**64 - 1, 127, 32767, 2**31 - 1, 2**63 - 1, 0.5, 1e300, "", 0, 0.0, [""]),
        ("日本語 \x00\n\t\"'\\", 1, 2, 3, 4, 5, 6, 7, 8, 9.0, 10.25, "x" * 200, 2**64 - 1, 3.5, ["a", "bé", "c" * 300]),
    ]
    assert await ch.insert(table, NAMES, as_given(written, by_column)) == 3
    assert await stored(ch, table) == sorted(written, key=lambda r: r[8])


@pytest.mark.parametrize("value", ["", "default", "日本語 \x00", "q" * 20_000], ids=["empty", "ascii", "utf8", "long"])
async def test_a_column_of_one_value_throughout(ch: ClickHouse, table: str, value: str) -> None:
    # Encoded once and repeated; the long value takes the encoder's general path.
    written = [(value, value, n) for n in range(3)]
    await ch.insert(table, ("s", "ns", "i64"), written)
    assert await stored(ch, table, ("s", "ns", "i64")) == written
    # The same bytes as the general path gives them (a last value that differs takes that one).
    assert native._strings([value] * 3) == native._strings([value] * 3 + ["x"])[:-2]


@pytest.mark.parametrize("nulls", ["none", "all", "some"])
async def test_nullable_columns_of_no_some_or_every_null(ch: ClickHouse, table: str, nulls: str) -> None:
    def value(n: int, v: Any) -> Any:
        return None if nulls == "all" or (nulls == "some" and n % 2) else v

    written = [(value(n, f"t{n}"), value(n, n * 7), value(n, n / 4), n) for n in range(4)]
    await ch.insert(table, ("ns", "nu64", "nf64", "i64"), written)
    assert await stored(ch, table, ("ns", "nu64", "nf64", "i64")) == written


async def test_a_column_list_in_another_order_and_no_rows(ch: ClickHouse, table: str) -> None:
    some = ("tags", "i64", "s")
    assert await ch.insert(table, some, []) == 0
    await ch.insert(table, some, [(["t"], 2, "two"), ([], 1, "one")])
    assert await stored(ch, table, ("s", "i64", "tags", "u64", "ns")) == [
        ("one", 1, [], 0, None),
        ("two", 2, ["t"], 0, None),
    ]


async def test_a_value_its_column_cannot_hold_is_refused_and_the_client_goes_on(ch: ClickHouse, table: str) -> None:
    for bad in ((-1, "u64"), (2**64, "u64"), (256, "u8"), ("text", "i64")):
        value, column = bad
        with pytest.raises(ClickHouseError) as refused:
            await ch.insert(table, (column,), [(value,)])
        assert refused.value.permanent, bad
    await ch.insert(table, ("s", "i64"), [("after", 1)])
    assert await stored(ch, table, ("s",)) == [("after",)]


async def test_columns_of_different_lengths_are_refused(ch: ClickHouse, table: str) -> None:
    with pytest.raises(ClickHouseError) as refused:
        await ch.insert(table, ("s", "i64"), native.Columns([["a", "b"], [1]], 2))
    assert refused.value.permanent
    assert await stored(ch, table, ("s",)) == []


@pytest.mark.parametrize("by_column", [False, True], ids=["rows", "columns"])
async def test_types_it_does_not_encode_go_through_asynch(ch: ClickHouse, by_column: bool) -> None:
    assert native.encoder("Date") is None and native.encoder("Nullable(FixedString(3))") is None
    name = f"native_{uuid.uuid4().hex[:12]}"
    await ch.execute(f"CREATE TABLE {name} (d Date, f Nullable(FixedString(3)), s String) ENGINE = Memory")
    written = [(datetime.date(2026, 12, 4), "abc", "x"), (datetime.date(1999, 1, 2), None, "y")]
    try:
        await ch.insert(name, ("d", "f", "s"), as_given(written, by_column))
        assert [tuple(r) for r in await ch.fetch(f"SELECT d, f, s FROM {name} ORDER BY s")] == written
    finally:
        await ch.execute(f"DROP TABLE IF EXISTS {name}")


async def test_a_read_runs_with_its_own_settings(ch: ClickHouse) -> None:
    # A setting's value is the query's own (`max_result_rows` refuses past it); others keep theirs.
    sql = "SELECT number FROM system.numbers LIMIT 10"
    assert len(await ch.fetch(sql)) == 10
    with pytest.raises(ClickHouseError):
        await ch.fetch(sql, settings={"max_result_rows": 5, "result_overflow_mode": "throw"})
    assert len(await ch.fetch(sql)) == 10
