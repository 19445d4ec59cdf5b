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


async def test_background_refreshes_share_a_few_slots_and_requests_do_not_wait_for_them() -> None:
    running, most = 0, 0
    release = asyncio.Event()

    async def slow() -> str:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        return "new"

    async def fixed() -> str:
        return "old"

    slots = asyncio.Semaphore(1)
    pages, counts = Memo(0.01, 60, refresh_slots=slots), Memo(0.01, 60, refresh_slots=slots)
    for memo in (pages, counts):
        for k in range(3):
            assert await memo.get(k, fixed) == "old"
    await asyncio.sleep(0.02)
    # Six keys stale at once: every caller gets the old answer, one refresh runs at a time.
    for memo in (pages, counts):
        for k in range(3):
            assert await memo.get(k, slow) == "old"
    await asyncio.sleep(0.01)
    assert running == 1

    # A key nobody has computed yet is computed for its caller at once, beside the refreshes.
    async def quick() -> str:
        return "fresh"

    assert await asyncio.wait_for(pages.get("new key", quick), 1) == "fresh"
    release.set()

    async def answers() -> list[str]:  # refreshes started here answer "new" too
        return [await memo.get(k, slow) for memo in (pages, counts) for k in range(3)]

    for _ in range(100):
        await asyncio.sleep(0.01)
        if await answers() == ["new"] * 6:
            break
    assert await answers() == ["new"] * 6 and most == 1
