"""Back-pressure at the edge: bytes in flight, and a per-project rate limit kept in Redis."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from aiohttp import web
from loguru import logger
from redis.exceptions import RedisError


class Overloaded(Exception):
    """Too much work in flight: answer 503 with Retry-After."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimited(Exception):
    def __init__(self, limit: int, remaining: int, reset_s: int) -> None:
        super().__init__(f"rate limit of {limit} events per minute exceeded")
        self.limit, self.remaining, self.reset_s = limit, remaining, reset_s


_HELD = "inflight_held"


def release_held(request: web.BaseRequest) -> None:
    held: Held | None = request.get(_HELD)
    if held is not None:
        held.release()


class InflightBytes:
    """Bounds the request bytes held at once, so memory stays flat however many clients push."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def hold_for(self, request: web.BaseRequest) -> Held:
        """The request's share, created on first use; `release_held` frees it after the answer."""
        held: Held | None = request.get(_HELD)
        if held is None:
            request[_HELD] = held = Held(self)
        return held

    @asynccontextmanager
    async def hold(self, n: int) -> AsyncIterator[Held]:
        """Hold `n` bytes for the block; Overloaded when they do not fit beside the others."""
        held = Held(self)
        held.grow(n)
        try:
            yield held
        finally:
            held.release()


class Held:
    """One request's share of the budget; it may grow (a body once decompressed) until released."""

    def __init__(self, budget: InflightBytes) -> None:
        self._budget = budget
        self.n = 0

    def grow(self, n: int) -> None:
        # Alone, a request may pass the bound: progress is always possible.
        if self._budget.used > self.n and self._budget.used + n > self._budget.limit:
            raise Overloaded("too many request bytes in flight")
        self._budget.used += n
        self.n += n

    def release(self) -> None:
        self._budget.used -= self.n
        self.n = 0


# Fixed one-minute windows: INCRBY then EXPIRE on first use, atomically.
_WINDOW = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], 60) end
return n
"""


class RateLimiter:
    """Events per project per minute, shared by every edge process through Redis.

    When Redis is unreachable the limit is not enforced: refusing data because a cache is down
    would turn a Redis outage into an ingestion outage.
    """

    def __init__(self, redis: aioredis.Redis | None, per_minute: int) -> None:
        self._redis = redis
        self.per_minute = per_minute
        self._script = redis.register_script(_WINDOW) if redis is not None and per_minute else None

    async def consume(self, project_id: str, events: int) -> tuple[int, int] | None:
        """Count `events`; return (remaining, reset seconds) or None when unlimited."""
        if self._script is None:
            return None
        now = time.time()
        window = int(now // 60)
        reset = max(1, math.ceil((window + 1) * 60 - now))
        try:
            used = int(await self._script(keys=[f"agenttrace:rate:{project_id}:{window}"], args=[max(events, 1)]))
        except (RedisError, OSError) as exc:
            logger.warning("rate limiter unavailable; not enforcing", error=repr(exc))
            return None
        if used > self.per_minute:
            raise RateLimited(self.per_minute, 0, reset)
        return self.per_minute - used, reset
