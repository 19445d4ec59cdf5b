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
the stale answer; a caller past `stale_s` awaits it like any running computation.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
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
                    task = asyncio.ensure_future(self._compute(key, compute, background=True))
                    task.add_done_callback(_quiet)
                return entry.value
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        return await self._compute(key, compute)

    async def _compute(self, key: Hashable, compute: Callable[[], Awaitable[Any]], background: bool = False) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_quiet)
        self._running[key] = future
        try:
            if background and self._slots is not None:
                async with self._slots:
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
            del self._running[key]


def _quiet(f: asyncio.Future[Any]) -> None:
    """Mark a failure as seen: the caller that ran the computation re-raises it."""
    if not f.cancelled():
        f.exception()
