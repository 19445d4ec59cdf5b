"""The read cache: one computation per key at a time, stale answers while one refreshes."""

from __future__ import annotations

import asyncio

import pytest

from sinks.clickhouse.memo import Memo


async def test_concurrent_callers_share_one_computation() -> None:
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return calls

    memo = Memo(fresh_s=60, stale_s=60)
    assert await asyncio.gather(*(memo.get("k", compute) for _ in range(20))) == [1] * 20
    assert await memo.get("k", compute) == 1 and calls == 1
    assert await memo.get("other", compute) == 2


async def test_stale_answers_while_one_refresh_runs() -> None:
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        return calls

    memo = Memo(fresh_s=0.01, stale_s=60)
    assert await memo.get("k", compute) == 1
    await asyncio.sleep(0.02)
    assert await memo.get("k", compute) == 1  # stale, refresh started
    await asyncio.sleep(0.01)
    assert await memo.get("k", compute) == 2 and calls == 2


async def test_failures_are_not_cached_and_no_cache_computes_each_time() -> None:
    async def fail() -> int:
        raise RuntimeError("down")

    memo = Memo(fresh_s=60, stale_s=60)
    with pytest.raises(RuntimeError):
        await memo.get("k", fail)

    async def ok() -> int:
        return 7

    assert await memo.get("k", ok) == 7
    off, calls = Memo(0, 0), []

    async def counted() -> int:
        calls.append(1)
        return len(calls)

    assert [await off.get("k", counted) for _ in range(3)] == [1, 2, 3]
