"""Deletion latency: N traces deleted in requests of 1,000 ids, until no read shows them.

    .venv/bin/python bench/delete.py --url http://127.0.0.1:8080 --traces 10000

Ingests N traces (each with two generations, bench/load.py's batch_body) into a fresh project,
waits until ClickHouse shows them all, deletes them (`DELETE /api/public/traces`, 1,000 ids per
request, a few requests at a time), then polls what the read API reads (the newest row per id,
is_deleted = 0, as sinks/clickhouse/query.py does) until none is left. Reports the seconds from
the last answer to invisibility, and the API's own view at the end. With `--ingest-rate R`,
batches go into another project at R events/s from 3 s before the deletions until the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agenttrace.settings import Settings
from bench.load import batch_body, new_key
from sinks.clickhouse.client import ClickHouse

VISIBLE = (
    "SELECT count() FROM (SELECT id, is_deleted FROM {table} WHERE project_id = '{pid}' "
    "ORDER BY id, event_ts DESC LIMIT 1 BY id) WHERE is_deleted = 0"
)


async def visible(ch: ClickHouse, pid: str, table: str) -> int:
    ((n,),) = await ch.fetch(VISIBLE.format(table=table, pid=pid))
    return int(n)


async def main(args: argparse.Namespace) -> dict:
    project_id, pk, sk = await new_key()
    headers = {"Authorization": "Basic " + base64.b64encode(f"{pk}:{sk}".encode()).decode()}
    run = uuid.uuid4().hex[:8]
    ch = ClickHouse(Settings.from_env().clickhouse)
    await ch.start()
    sem = asyncio.Semaphore(args.concurrency)
    async with aiohttp.ClientSession() as http:

        async def send(n: int) -> None:
            async with (
                sem,
                http.post(
                    f"{args.url}/api/public/ingestion",
                    data=batch_body(run, n, 3),
                    headers={**headers, "Content-Type": "application/json"},
                ) as r,
            ):
                assert r.status in (200, 207), await r.text()

        await asyncio.gather(*(send(n) for n in range(args.traces)))
        while await visible(ch, project_id, "traces") < args.traces:
            await asyncio.sleep(0.5)
        ids = [f"{run}-t{n}" for n in range(args.traces)]
        chunks = [ids[i : i + 1000] for i in range(0, len(ids), 1000)]
        background = Ingestion(http, args.url, args.ingest_rate)
        if args.ingest_rate:
            await background.start()
            await asyncio.sleep(3)  # at its pace before the deletions begin
        started = time.monotonic()

        async def delete(chunk: list[str]) -> float:
            async with (
                sem,
                http.delete(f"{args.url}/api/public/traces", json={"traceIds": chunk}, headers=headers) as r,
            ):
                assert r.status == 200, await r.text()
            return time.monotonic()

        answered = max(await asyncio.gather(*(delete(c) for c in chunks)))
        while True:
            left = {t: await visible(ch, project_id, t) for t in ("traces", "observations")}
            if not any(left.values()):
                break
            await asyncio.sleep(0.05)
        gone = time.monotonic()
        ingested = await background.stop()
        async with http.get(f"{args.url}/api/public/traces", params={"limit": "1"}, headers=headers) as r:
            api_total = (await r.json())["meta"]["totalItems"]
    await ch.close()
    return {
        "traces": args.traces,
        "requests": len(chunks),
        "answers_s": round(answered - started, 2),
        "invisible_after_last_answer_s": round(gone - answered, 2),
        "api_total_items_after": api_total,
        **ingested,
    }


class Ingestion:
    """Batches of 100 events into another project at `rate` events/s, in the background: the
    usual load the deletions run beside."""

    def __init__(self, http: aiohttp.ClientSession, url: str, rate: float) -> None:
        self._http, self._url, self._rate = http, url, rate
        self._tasks: list[asyncio.Task[None]] = []
        self._accepted = self._refused = 0
        self._began = 0.0

    async def start(self) -> None:
        _, pk, sk = await new_key()
        headers = {
            "Authorization": "Basic " + base64.b64encode(f"{pk}:{sk}".encode()).decode(),
            "Content-Type": "application/json",
        }
        run = uuid.uuid4().hex[:8]
        interval = 16 * 100 / self._rate  # 16 senders, 100 events per request
        self._began = time.monotonic()

        async def sender(k: int) -> None:
            n = k
            next_at = time.monotonic()
            while True:
                async with self._http.post(
                    f"{self._url}/api/public/ingestion", data=batch_body(run, n, 100), headers=headers
                ) as r:
                    await r.read()
                    if r.status in (200, 207):
                        self._accepted += 100
                    else:
                        self._refused += 1
                n += 16
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        self._tasks = [asyncio.create_task(sender(k)) for k in range(16)]

    async def stop(self) -> dict[str, float]:
        if not self._tasks:
            return {}
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        seconds = time.monotonic() - self._began
        return {
            "ingest_target_events_per_s": self._rate,
            "ingest_accepted_events_per_s": round(self._accepted / seconds),
            "ingest_refused_requests": self._refused,
        }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--traces", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--ingest-rate", type=float, default=0, help="events/s into another project meanwhile")
    print(orjson.dumps(asyncio.run(main(p.parse_args()))).decode())
