"""The C allocator of a server process, set once by the shell: glibc keeps what Python frees.

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

from loguru import logger

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# Blocks from 256 KiB up are mapped on their own: request bodies, parse buffers, Kafka batches.
MMAP_THRESHOLD = 256 * 1024
# gRPC's and the executor's threads would each get an arena of their own (8 per core).
ARENA_MAX = 2
# How often a server gives free heap pages back: cheap enough to do every second.
TRIM_INTERVAL_S = 1.0
# How often a worker, whose young collections run between batches, collects everything: for
# cycles that reached an older generation, and for a stage stuck retrying (no batch ends).
FULL_COLLECTION_S = 30.0


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


def collect_between_batches() -> None:
    """A worker's young collection, run by its stages when a batch has been written.

    Automatic collections walk every live container of the young generation: in a worker that
    is the batch in flight (~10^5 decoded events and folded states), walked every 10^5
    allocations to free nothing, a third of a ClickHouse-stage process's CPU at 10k events/s
    (bench/README.md, "Garbage collection between batches"). Once a batch is written, only
    what it left behind (cached states) is young, so the same collection costs a fraction.
    """
    gc.collect(0)


async def collect_every(interval_s: float) -> None:
    """A full collection every `interval_s`, for a worker whose automatic collection is off."""
    while True:
        await asyncio.sleep(interval_s)
        gc.collect()
