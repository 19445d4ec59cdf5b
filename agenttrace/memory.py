"""The memory of a server process, set once by the shell: the C allocator (glibc keeps what
Python frees) and, in workers, when the cyclic garbage collector runs.

Measured with bench/hostile.py (bench/README.md, "hostile.py"): after a 10,000-event batch the
api's heap held ~20 MB that nothing used, in free chunks between live ones, which only
malloc_trim(0) gives back (~5 ms when there is something to give, ~0.1 ms when not). And once
a large block (a request body, orjson's parse buffers) is freed, glibc raises its mmap
threshold to that size, so the next ones land on the heap too; a fixed threshold keeps them
mapped and unmapped whole. Other C libraries (musl) are left alone.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import time
from collections.abc import Callable

from loguru import logger

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# Blocks from 256 KiB up are mapped on their own: request bodies, parse buffers, Kafka batches.
MMAP_THRESHOLD = 256 * 1024
# gRPC's and the executor's threads would each get an arena of their own (8 per core).
ARENA_MAX = 2
# How often a server gives free heap pages back: cheap enough to do every second.
TRIM_INTERVAL_S = 1.0


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _glibc()


def tune_malloc(*, fixed_mmap_threshold: bool = True) -> bool:
    """Bound glibc's arena count and, unless told not to, fix its mmap threshold; False when
    the C library is not glibc.

    Workers keep glibc's adaptive threshold: their batches allocate and free blocks of a few
    hundred KiB many times a second (Kafka fetches, insert buffers), and mapping each afresh
    cost the ClickHouse stage ~15% of its end-to-end rate (bench/e2e.py, 2026-12-01: 13.7k,
    16.1k, 12.5k events/s fixed against 16.9k, 16.3k adaptive). The periodic trim still
    returns their free heap."""
    if _LIBC is None:
        return False
    if fixed_mmap_threshold:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    _LIBC.mallopt(_M_ARENA_MAX, ARENA_MAX)
    return True


async def trim_every(interval_s: float) -> None:
    """Give the heap's free pages back to the OS every `interval_s`, for a process's lifetime."""
    if _LIBC is None:
        return
    while True:
        await asyncio.sleep(interval_s)
        try:
            _LIBC.malloc_trim(0)
        except Exception as exc:  # never worth ending a server for
            logger.warning("malloc_trim failed; no longer trimming", error=repr(exc))
            return


class BatchCollector:
    """A worker's cyclic garbage collection: a full one between batches every `interval_s`,
    and none while a batch is in flight (the worker turns automatic collection off).

    Automatic collections ran every 10^5 container allocations and walked every live young
    container, which in a worker is the batch in flight (decoded events, folded states): ~80
    ms each, 17% of a ClickHouse-stage worker's CPU at 10k events/s, to free ~6 objects a
    second (gc.callbacks in a running worker; bench/README.md, "Garbage collection"). A young
    collection after each batch still cost ~20 ms a batch (what the batch leaves in the cache
    is young then), so the workers rely on reference counting and collect cycles in full, far
    apart. `backstop` collects for a stage that no batch ends for (one retrying its store).
    """

    def __init__(self, interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._last = clock()

    def between_batches(self) -> None:
        if self._clock() - self._last >= self._interval_s:
            self.collect()

    def collect(self) -> None:
        gc.collect()
        self._last = self._clock()

    async def backstop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            if self._clock() - self._last >= 2 * self._interval_s:
                self.collect()
