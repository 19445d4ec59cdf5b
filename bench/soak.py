"""A soak: steady load for minutes, then what was lost or duplicated, and each process's memory.

    .venv/bin/python bench/soak.py --url http://127.0.0.1:8080 --rate 2500 --seconds 600 \\
        --app api=8080 --app worker=8081 --app worker_2=8083 --app worker_postgres=8082

Sends Langfuse batches (a trace and --batch - 1 generations each, never retried) at --rate
events/s against a running api and its workers; every 10 s it prints the RSS of each
--app process (found by listening port). At the end it waits until ClickHouse holds every
accepted observation and Postgres has counted every accepted trace and generation, then
prints accepted, persisted, lost and duplicated per store and RSS per process (start, peak,
end). Every sample also reads ClickHouse's active parts of `observations` and `traces` and its
running merges (a stage that inserts too often for the merges shows as parts that keep
growing), and each worker's `worker_queue_depth` (a stage that falls behind); the result gives
their median and peak. Exit status 1 when anything was lost or duplicated.

Duplicated: in ClickHouse, rows left for one id once merged (`FINAL`) beyond the first; in
Postgres, traces counted into sessions and generations counted into usage_daily beyond those
accepted (the projection must count a redelivered event once).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agenttrace.settings import Settings
from bench.drain import depth_series
from bench.hostile import pid_of, rss_mb
from bench.load import batch_body, new_key
from sinks.clickhouse.client import ClickHouse
from sinks.postgres.client import Postgres

SAMPLE_S = 10.0
PARTS_QUERY = (
    "SELECT table, count() FROM system.parts WHERE database = currentDatabase() AND active "
    "AND table IN ('observations', 'traces') GROUP BY table"
)
MERGES_QUERY = "SELECT count() FROM system.merges WHERE database = currentDatabase()"


async def queue_depth(http: aiohttp.ClientSession, port: str) -> float | None:
    """The sum of a process's `worker_queue_depth` series; None for one without (the api)."""
    try:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
            text = await r.text()
    except (aiohttp.ClientError, TimeoutError):
        return None
    depths = depth_series(text)
    return sum(depths) if depths else None


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "peak": max(values)} if values else {}


async def main(args: argparse.Namespace) -> int:
    project_id, pk, sk = await new_key()
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{pk}:{sk}".encode()).decode(),
        "Content-Type": "application/json",
    }
    url = args.url + "/api/public/ingestion"
    tag = uuid.uuid4().hex[:8]
    ports = {name: port for name, _, port in (a.partition("=") for a in args.app)}
    pids = {name: pid_of(int(port)) for name, port in ports.items()}
    rss = {name: [rss_mb(pid)] for name, pid in pids.items()}
    parts: dict[str, list[float]] = {"observations": [], "traces": [], "merges": []}
    depths: dict[str, list[float]] = {}
    statuses: dict[int, int] = {}
    accepted_traces = accepted_generations = 0
    stop = asyncio.Event()

    async def send(http: aiohttp.ClientSession, n: int) -> None:
        nonlocal accepted_traces, accepted_generations
        try:
            async with http.post(url, data=batch_body(tag, n, args.batch), headers=headers) as r:
                doc = await r.read()
                statuses[r.status] = statuses.get(r.status, 0) + 1
                if r.status == 207:
                    ok = {s["id"] for s in orjson.loads(doc)["successes"]}
                    accepted_traces += f"{tag}-e{n}-0" in ok
                    accepted_generations += sum(f"{tag}-e{n}-{i}" in ok for i in range(1, args.batch))
        except (aiohttp.ClientError, TimeoutError):
            statuses[0] = statuses.get(0, 0) + 1

    async def sender(http: aiohttp.ClientSession) -> int:
        interval = args.batch / args.rate
        tasks: set[asyncio.Task[None]] = set()
        n, next_at = 0, time.monotonic()
        while not stop.is_set():
            if len(tasks) < 256:
                task = asyncio.create_task(send(http, n))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*tasks)
        return n

    async def sampler(http: aiohttp.ClientSession) -> None:
        began = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(SAMPLE_S)
            for name, pid in pids.items():
                rss[name].append(rss_mb(pid))
            now = ", ".join(f"{name} {values[-1]:.0f}" for name, values in rss.items())
            counts = dict(await ch.fetch(PARTS_QUERY))
            for table in ("observations", "traces"):
                parts[table].append(int(counts.get(table, 0)))
            parts["merges"].append(int((await ch.fetch(MERGES_QUERY))[0][0]))
            for name, port in ports.items():
                depth = await queue_depth(http, port)
                if depth is not None:
                    depths.setdefault(name, []).append(depth)
            queues = ", ".join(f"{name} {values[-1]:.0f}" for name, values in depths.items())
            print(
                f"{time.monotonic() - began:5.0f}s accepted {accepted_generations + accepted_traces} "
                f"statuses {statuses} RSS MB: {now}; parts {parts['observations'][-1]} observations, "
                f"{parts['traces'][-1]} traces, {parts['merges'][-1]} merging; queues {queues or '-'}; "
                f"load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )

    settings = Settings.from_env()
    ch = ClickHouse(settings.clickhouse)
    pg = Postgres(settings.postgres)
    await ch.start()
    await pg.start()
    try:
        started = time.monotonic()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
            tasks = asyncio.gather(sender(http), sampler(http))
            await asyncio.sleep(args.seconds)
            stop.set()
            sent, _ = await tasks
        sent_for = time.monotonic() - started
        print(f"sent {sent} requests in {sent_for:.0f}s: {statuses}; waiting for the stores", flush=True)
        deadline = time.monotonic() + args.drain_timeout_s
        while True:
            ch_obs, ch_obs_rows = (
                await ch.fetch(
                    f"SELECT uniqExact(id), count() FROM observations FINAL WHERE project_id = '{project_id}'"
                )
            )[0]
            ch_traces, ch_trace_rows = (
                await ch.fetch(f"SELECT uniqExact(id), count() FROM traces FINAL WHERE project_id = '{project_id}'")
            )[0]
            pg_traces = (
                await pg.fetch(
                    "SELECT coalesce(sum(trace_count), 0) FROM sessions WHERE project_id = %s", (project_id,)
                )
            )[0][0]
            pg_generations = (
                await pg.fetch(
                    "SELECT coalesce(sum(observations), 0) FROM usage_daily WHERE project_id = %s", (project_id,)
                )
            )[0][0]
            caught_up = (
                ch_obs >= accepted_generations
                and ch_traces >= accepted_traces
                and pg_traces >= accepted_traces
                and pg_generations >= accepted_generations
            )
            if caught_up or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
    finally:
        await ch.close()
        await pg.close()
    for name, pid in pids.items():
        rss[name].append(rss_mb(pid))
    result = {
        "project_id": project_id,
        "offered_events_per_s": args.rate,
        "seconds": round(sent_for),
        "statuses": statuses,
        "accepted": {"traces": accepted_traces, "generations": accepted_generations},
        "clickhouse": {
            "traces": ch_traces,
            "observations": ch_obs,
            "lost": (accepted_traces - ch_traces) + (accepted_generations - ch_obs),
            "duplicated": (ch_trace_rows - ch_traces) + (ch_obs_rows - ch_obs),
        },
        "postgres": {
            "traces_in_sessions": int(pg_traces),
            "generations_in_usage_daily": int(pg_generations),
            "lost": max(0, accepted_traces - pg_traces) + max(0, accepted_generations - pg_generations),
            "duplicated": max(0, pg_traces - accepted_traces) + max(0, pg_generations - accepted_generations),
        },
        "rss_mb": {name: {"start": round(v[0]), "peak": round(max(v)), "end": round(v[-1])} for name, v in rss.items()},
        "clickhouse_active_parts": {name: spread(v) for name, v in parts.items()},
        "queue_depth": {name: spread(v) for name, v in depths.items()},
        "load_average": os.getloadavg()[0],
    }
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
    bad = sum(result[s]["lost"] + result[s]["duplicated"] for s in ("clickhouse", "postgres"))
    return 1 if bad else 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--rate", type=float, default=2500, help="events/s offered")
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--batch", type=int, default=100, help="events per request")
    p.add_argument("--app", action="append", default=[], metavar="NAME=PORT", help="a process whose RSS is sampled")
    p.add_argument("--drain-timeout-s", type=float, default=600, help="how long to wait for the stores")
    raise SystemExit(asyncio.run(main(p.parse_args())))
