"""A steady load on the cluster's two apis that behaves like a careful SDK: a batch that was not
answered 2xx for every event is sent again, same event ids, to the other api, until it is.
What it records is what the fault tests check the stores against."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from dataclasses import dataclass, field

import aiohttp
import orjson

GENERATIONS_PER_TRACE = 4
INPUT_TOKENS, OUTPUT_TOKENS = 10, 5
SESSIONS = 10


@dataclass
class LoadFigures:
    offered_events: int = 0
    requests: int = 0
    failed_requests: int = 0  # refused, reset, timed out or answered 5xx; each retried
    accepted_events: set[str] = field(default_factory=set)
    traces: set[str] = field(default_factory=set)  # traces whose every event was accepted
    generations: set[str] = field(default_factory=set)
    unsettled_batches: int = 0  # gave up on (should stay 0)
    per_second: dict[int, int] = field(default_factory=dict)  # accepted events by second of the run


class SteadyLoad:
    def __init__(self, urls: tuple[str, ...], public_key: str, secret_key: str, traces_per_second: float) -> None:
        self._urls = urls
        auth = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()
        self._headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}
        self._interval = 1.0 / traces_per_second
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self.figures = LoadFigures()
        self._started = 0.0
        self._run = uuid.uuid4().hex[:8]

    async def __aenter__(self) -> SteadyLoad:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        self._started = time.monotonic()
        self._runner = asyncio.create_task(self._schedule())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        await self._session.close()

    async def stop(self) -> None:
        """Stop offering new traces and wait until every offered one is settled."""
        self._stop.set()
        if self._runner is not None:
            await self._runner
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def _schedule(self) -> None:
        n = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            task = asyncio.create_task(self._send_trace(n))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            n += 1
            next_at += self._interval
            delay = next_at - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                except TimeoutError:
                    pass

    def _batch(self, n: int) -> tuple[str, list[str], bytes]:
        trace = f"{self._run}-t{n}"
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        events = [
            {
                "id": f"{trace}-e0",
                "type": "trace-create",
                "timestamp": now,
                "body": {"id": trace, "name": "cluster-load", "sessionId": f"{self._run}-s{n % SESSIONS}"},
            }
        ]
        generations = []
        for g in range(GENERATIONS_PER_TRACE):
            gen = f"{trace}-g{g}"
            generations.append(gen)
            events.append(
                {
                    "id": f"{trace}-e{g + 1}",
                    "type": "generation-create",
                    "timestamp": now,
                    "body": {
                        "id": gen,
                        "traceId": trace,
                        "name": "llm",
                        "model": "gpt-4o-mini",
                        "startTime": now,
                        "usage": {"input": INPUT_TOKENS, "output": OUTPUT_TOKENS},
                    },
                }
            )
        return trace, generations, orjson.dumps({"batch": events})

    async def _send_trace(self, n: int) -> None:
        trace, generations, body = self._batch(n)
        expected = {f"{trace}-e{i}" for i in range(GENERATIONS_PER_TRACE + 1)}
        self.figures.offered_events += len(expected)
        accepted: set[str] = set()
        deadline = time.monotonic() + 180
        attempt = 0
        while time.monotonic() < deadline:
            url = self._urls[(n + attempt) % len(self._urls)] + "/api/public/ingestion"
            attempt += 1
            self.figures.requests += 1
            try:
                async with self._session.post(url, data=body, headers=self._headers) as resp:
                    doc = await resp.json() if resp.status in (200, 207) else None
            except (aiohttp.ClientError, TimeoutError):
                doc = None
            if doc is not None:
                accepted |= {s["id"] for s in doc.get("successes", []) if 200 <= s.get("status", 0) < 300}
            if accepted >= expected:
                break
            self.figures.failed_requests += 1
            await asyncio.sleep(min(0.2 * attempt, 2.0))
        self.figures.accepted_events |= accepted
        if accepted >= expected:
            self.figures.traces.add(trace)
            self.figures.generations.update(generations)
            second = int(time.monotonic() - self._started)
            self.figures.per_second[second] = self.figures.per_second.get(second, 0) + len(expected)
        else:
            self.figures.unsettled_batches += 1
