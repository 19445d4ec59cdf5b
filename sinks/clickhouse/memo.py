"""A small in-process cache of read results, shared by concurrent callers.

The read API's expensive answers (a project's trace count, daily metrics) change slowly next to
how often they are asked: 50 readers of one project's first page asked ClickHouse the same
count 50 times at once, and queued behind each other on a pool of a few connections. A `Memo`
runs one computation per key at a time (callers arriving meanwhile await the same one), keeps
the answer `fresh_s`, and then serves it while one background refresh runs, up to `stale_s`
after it was computed; past that, callers wait for a new one. Failures are not cached.

Staleness is bounded by `stale_s` (plus the query time): the pipeline already makes a write
visible to reads only seconds later, so a few seconds more do not change what a client sees.

Background refreshes of every Memo sharing `refresh_slots` run at most that many at a time:
under load each refresh (a count, daily metrics) can take seconds, and a few dozen keys going
stale together held every connection of the api's pool, so requests that were not cached
waited behind them (one first page took 20.5 s). A refresh waiting for a slot keeps serving
the stale answer. A caller past `stale_s` awaits it like any running computation, and a refresh
somebody awaits no longer waits for a slot: the read API nests Memos (a page's answer reads its
rows through another), so a refresh holding a slot could await one queued for a slot, and with
every slot held so, the readers of those pages hung for good.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class _Entry:
    value: Any
    at: float


class Memo:
    def __init__(
        self,
        fresh_s: float,
        stale_s: float,
        max_entries: int = 10_000,
        refresh_slots: asyncio.Semaphore | None = None,
    ) -> None:
        self.fresh_s = fresh_s
        self.stale_s = max(stale_s, fresh_s)
        self._max = max_entries
        self._slots = refresh_slots
        self._done: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._running: dict[Hashable, asyncio.Future[Any]] = {}
        # The background refreshes waiting for a slot: set, one goes ahead without.
        self._queued: dict[Hashable, asyncio.Event] = {}

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        if self.stale_s <= 0:
            return await compute()
        now = time.monotonic()
        entry = self._done.get(key)
        if entry is not None:
            age = now - entry.at
            if age < self.fresh_s:
                return entry.value
            if age < self.stale_s:
                if key not in self._running:
                    # Registered now, not when the task first runs: callers in between would
                    # start refreshes of their own, or await it without lifting its wait for a slot.
                    future = self._start(key)
                    wanted = None
                    if self._slots is not None:
                        wanted = self._queued[key] = asyncio.Event()
                    task = asyncio.ensure_future(self._compute(key, compute, future, wanted))
                    task.add_done_callback(_quiet)
                return entry.value
        running = self._running.get(key)
        if running is not None:
            queued = self._queued.get(key)
            if queued is not None:
                queued.set()
            return await asyncio.shield(running)
        return await self._compute(key, compute, self._start(key))

    def _start(self, key: Hashable) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_quiet)
        self._running[key] = future
        return future

    async def _compute(
        self,
        key: Hashable,
        compute: Callable[[], Awaitable[Any]],
        future: asyncio.Future[Any],
        wanted: asyncio.Event | None = None,
    ) -> Any:
        """Computes into `future`; a background refresh (`wanted` given) first takes a slot."""
        try:
            if wanted is not None and self._slots is not None:
                async with self._slot(key, wanted, self._slots):
                    value = await compute()
            else:
                value = await compute()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
            raise
        else:
            future.set_result(value)
            self._done[key] = _Entry(value, time.monotonic())
            self._done.move_to_end(key)
            while len(self._done) > self._max:
                self._done.popitem(last=False)
            return value
        finally:
            if self._running.get(key) is future:
                del self._running[key]

    @asynccontextmanager
    async def _slot(self, key: Hashable, wanted: asyncio.Event, slots: asyncio.Semaphore) -> AsyncIterator[None]:
        """One of `slots` for the refresh of `key`, or none once `wanted` is set (awaited)."""
        acquire = asyncio.ensure_future(slots.acquire())
        awaited = asyncio.ensure_future(wanted.wait())
        try:
            await asyncio.wait((acquire, awaited), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            acquire.cancel()  # Semaphore.acquire gives back a slot it got as it is cancelled
            if acquire.done() and not acquire.cancelled():
                slots.release()
            raise
        finally:
            if self._queued.get(key) is wanted:
                del self._queued[key]
            awaited.cancel()
        if not acquire.done():
            acquire.cancel()
            await asyncio.wait((acquire,))  # ends cancelled, or holding a slot it got first
        held = not acquire.cancelled()
        try:
            yield
        finally:
            if held:
                slots.release()


def _quiet(f: asyncio.Future[Any]) -> None:
    """Mark a failure as seen: the caller that ran the computation re-raises it."""
    if not f.cancelled():
        f.exception()
