"""The two ways the pipeline survives failures: retry with backoff, and halve to isolate.

`retry` is used by the stages, replays and the start-up of every client; `isolate` by the
stages and replays, to find the events a store refuses for good inside a batch.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pipeline.errors import StoreError

T = TypeVar("T")
Item = TypeVar("Item")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter; bounded by attempts or a deadline when given."""

    initial_s: float = 0.2
    max_s: float = 10.0
    attempts: int | None = None
    deadline_s: float | None = None


async def retry(
    attempt: Callable[[], Awaitable[T]],
    backoff: Backoff,
    *,
    on_error: Callable[[Exception, float], None] | None = None,
    stopping: asyncio.Event | None = None,
) -> T:
    """`attempt()` until it succeeds; the last error once attempts or the deadline run out.

    A permanent StoreError is raised at once. `on_error(exc, delay)` sees each failure before
    the wait. Once `stopping` is set, retries go on only until the delay has grown to its
    maximum, so a drain that cannot write ends instead of waiting forever.
    """
    delay = backoff.initial_s
    give_up = time.monotonic() + backoff.deadline_s if backoff.deadline_s is not None else None
    tries = 0
    while True:
        tries += 1
        try:
            return await attempt()
        except Exception as exc:
            if isinstance(exc, StoreError) and exc.permanent:
                raise
            if backoff.attempts is not None and tries >= backoff.attempts:
                raise
            if give_up is not None and time.monotonic() + delay > give_up:
                raise
            if stopping is not None and stopping.is_set() and delay >= backoff.max_s:
                raise
            if on_error is not None:
                on_error(exc, delay)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, backoff.max_s)


async def isolate(
    write: Callable[[list[Item]], Awaitable[list[tuple[Item, str]]]], items: Sequence[Item]
) -> list[tuple[Item, str]]:
    """`write(items)`; when the store refuses the data itself, halve until the culprits are
    alone, and return them with the store's reason beside what `write` returned.

    A transient failure anywhere propagates, and the caller retries the whole batch: halves
    already written are written again, which idempotent sinks make harmless.
    """
    batch = list(items)
    try:
        return await write(batch)
    except StoreError as exc:
        if not exc.permanent:
            raise
        if len(batch) <= 1:
            return [(item, str(exc)) for item in batch]
    mid = len(batch) // 2
    return await isolate(write, batch[:mid]) + await isolate(write, batch[mid:])
