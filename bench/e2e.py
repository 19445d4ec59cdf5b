"""End to end: events/s from the edge into ClickHouse, and acceptance-to-queryable latency.

    .venv/bin/python bench/e2e.py --rate 20000 --seconds 30

Sends Langfuse batches at the target rate while a probe posts a one-trace batch every 200 ms
and polls ClickHouse until that trace is visible (the latency sample). At the end it waits until
every accepted observation is visible and reports the sustained rate: accepted events divided
by the time from the first send to the last row becoming visible.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agenttrace.settings import Settings
from bench.load import batch_body, new_key, otlp_body
from sinks.clickhouse.client import ClickHouse


async def main(args: argparse.Namespace) -> dict:
    project_id, pk, sk = await new_key()
    auth = "Basic " + base64.b64encode(f"{pk}:{sk}".encode()).decode()
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    url = args.url + "/api/public/ingestion"
    run = uuid.uuid4().hex[:8]
    n_bodies = int(args.rate * args.seconds / args.batch) + 1
    if args.otlp:
        # Every span of an OTLP body is an observation; its root span also makes a trace event.
        send_url = args.url + "/v1/traces"
        send_headers = {"Authorization": auth, "Content-Type": "application/x-protobuf"}
        bodies = [otlp_body(run, n, args.batch) for n in range(n_bodies)]
        per_body, ok = args.batch, 200
    else:
        send_url, send_headers = url, headers
        bodies = [batch_body(run, n, args.batch) for n in range(n_bodies)]
        per_body, ok = args.batch - 1, 207  # observations; the trace row is counted apart
    ch = ClickHouse(Settings.from_env().clickhouse)
    await ch.start()
    accepted = 0
    rejected = 0
    latencies: list[float] = []
    stop = asyncio.Event()

    async def sender(session: aiohttp.ClientSession, idx: range) -> None:
        nonlocal accepted, rejected
        interval = args.batch / args.rate * args.concurrency
        next_at = time.monotonic()
        for i in idx:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += interval
            async with session.post(send_url, data=bodies[i], headers=send_headers) as r:
                await r.read()
                if r.status == ok:
                    accepted += per_body
                else:
                    rejected += 1

    async def probe(session: aiohttp.ClientSession) -> None:
        n = 0
        while not stop.is_set():
            trace_id = f"{run}-probe-{n}"
            n += 1
            body = orjson.dumps(
                {
                    "batch": [
                        {
                            "id": trace_id,
                            "type": "trace-create",
                            "timestamp": "2026-11-27T10:00:00Z",
                            "body": {"id": trace_id},
                        }
                    ]
                }
            )
            async with session.post(url, data=body, headers=headers) as r:
                await r.read()
                t0 = time.monotonic()
                if r.status != 207:
                    continue
            sql = f"SELECT count() FROM traces WHERE project_id = '{project_id}' AND id = '{trace_id}'"
            while (await ch.fetch(sql))[0][0] == 0:
                await asyncio.sleep(0.01)
            latencies.append(time.monotonic() - t0)
            await asyncio.sleep(0.2)

    start = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency + 2)) as session:
        probe_task = asyncio.create_task(probe(session))
        await asyncio.gather(*(sender(session, range(k, n_bodies, args.concurrency)) for k in range(args.concurrency)))
        sent_for = time.monotonic() - start
        stop.set()
        await probe_task
    sql = f"SELECT count() FROM observations WHERE project_id = '{project_id}'"
    deadline = time.monotonic() + 300
    while (visible := (await ch.fetch(sql))[0][0]) < accepted and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    done = time.monotonic() - start
    await ch.close()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 2 else [float("nan")] * 99
    return {
        "project_id": project_id,
        "target_rate": args.rate,
        "accepted_observations": accepted,
        "rejected_requests": rejected,
        "visible_observations": visible,
        "send_seconds": round(sent_for, 1),
        "offered_events_per_s": round(accepted / sent_for),
        "sustained_events_per_s": round(accepted / done),
        "queryable_p50_ms": round(q[49] * 1000),
        "queryable_p99_ms": round(q[98] * 1000),
        "latency_samples": len(latencies),
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--rate", type=float, default=20000, help="target events/s")
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--otlp", action="store_true", help="OTLP/HTTP protobuf spans instead of Langfuse batches")
    print(orjson.dumps(asyncio.run(main(p.parse_args()))).decode())
