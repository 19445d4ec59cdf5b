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


async def test_callers_of_a_stale_key_in_one_tick_start_one_refresh() -> None:
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        return calls

    memo = Memo(fresh_s=0.01, stale_s=60, refresh_slots=asyncio.Semaphore(2))
    assert await memo.get("k", compute) == 1
    await asyncio.sleep(0.02)
    assert await asyncio.gather(*(memo.get("k", compute) for _ in range(10))) == [1] * 10
    await _settled(memo)
    assert calls == 2 and await memo.get("k", compute) == 2


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
    await _settled(pages, counts)


async def _settled(*memos: Memo) -> None:
    """No refresh left running when the test's event loop closes."""
    while any(m._running for m in memos):
        await asyncio.sleep(0.01)


async def test_a_refresh_awaited_by_another_refresh_does_not_wait_for_its_slot() -> None:
    # The read API nests them: a page's answer (a background refresh holding a slot) reads the
    # page's rows from another Memo. If those rows were past stale with their own refresh
    # queued for a slot, each waited for the other, and with both slots so held every later
    # reader of those pages hung (bench/reads.py: 0.8 req/s, 60 s timeouts).
    slots = asyncio.Semaphore(1)
    outer, inner = Memo(0.01, 60, refresh_slots=slots), Memo(0.01, 0.1, refresh_slots=slots)
    go = asyncio.Event()
    version = 0

    async def rows() -> int:
        return version

    async def page() -> int:
        await go.wait()
        return await inner.get("rows", rows)

    go.set()
    assert await outer.get("page", page) == 0
    go.clear()
    version = 1
    await asyncio.sleep(0.02)
    assert await outer.get("page", page) == 0  # stale: its refresh takes the slot and waits
    assert await inner.get("rows", rows) == 0  # stale: its refresh queues for the slot
    await asyncio.sleep(0.15)  # the rows are past stale now: the page's refresh will await them
    go.set()
    for _ in range(100):  # the page's refresh ends, its answer new
        await asyncio.sleep(0.01)
        if await outer.get("page", page) == 1:
            break
    assert await outer.get("page", page) == 1
    await _settled(outer, inner)
    assert not slots.locked()  # every slot given back
