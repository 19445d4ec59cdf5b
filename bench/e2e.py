"""End to end: events/s from the edge into ClickHouse, and acceptance-to-queryable latency.

    .venv/bin/python bench/e2e.py --rate 20000 --seconds 30

Sends Langfuse batches at the target rate while a probe posts a one-trace batch every 100 ms;
every 50 ms one query asks ClickHouse which of the probes in flight are visible (a latency
sample each, within 50 ms). At the end it waits until every accepted observation is visible and
reports the sustained rate: accepted events divided by the time from the first send to the last
row becoming visible; and the edge's latency as the sender saw it (`answered_p50_ms`, `_p99_ms`:
each body's request from sent to answered).

With `--updates` half the bodies are the updates that end the other half's generations (as
Langfuse's batch SDKs send a call's update when it returns), each sent `--update-after-s` after
its create: past what a ClickHouse-stage process caches at this rate, so it is folded cold.

With `--all-stages` it then waits for the Postgres stage too, until `usage_daily` counts every
observation of the run that ClickHouse holds with a model or as a generation (what that stage
counts), and reports the rate with every stage done: issue 16's "with the Postgres stage keeping
up" as a figure. Counts only: with `--updates` it does not wait for the updates' new usage.
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
from typing import Final

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agenttrace.settings import Settings
from bench.cpu_budget import PRELOADED
from bench.load import batch_body, new_key, otlp_body, update_body
from sinks.clickhouse.client import ClickHouse, ClickHouseError
from sinks.postgres.client import Postgres

# The bench's own reads are marked and logged, so that the server CPU they take is told apart
# from the pipeline's (own_server_cpu): ~1 s of it in a 20 s run at 15k spans/s (2026-12-07).
MARK: Final = "/* bench/e2e.py */ "
LOGGED: Final = {"log_queries": 1}
PROBE_EVERY_S = 0.1
# The latency's resolution: a probe is seen within this of becoming visible (plus the query).
POLL_EVERY_S = 0.05


async def main(args: argparse.Namespace) -> dict:
    project_id, pk, sk = args.key.split(":", 2) if args.key else await new_key()
    auth = "Basic " + base64.b64encode(f"{pk}:{sk}".encode()).decode()
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    url = args.url + "/api/public/ingestion"
    run = uuid.uuid4().hex[:8]
    n_bodies = int(args.rate * args.seconds / args.batch) + 1
    updates: set[int] = set()  # the indices of update bodies (--updates)
    if args.otlp and args.updates:
        raise SystemExit("--updates is for Langfuse batches")
    if args.otlp:
        # Every span of an OTLP body is an observation; its root span also makes a trace event.
        send_url = args.url + "/v1/traces"
        send_headers = {"Authorization": auth, "Content-Type": "application/x-protobuf"}
        bodies = [
            otlp_body(run, n, args.batch, args.spans_per_trace, args.prompt_bytes, args.propagated)
            for n in range(n_bodies)
        ]
        per_body, ok = args.batch, 200
    else:
        send_url, send_headers = url, headers
        per_body, ok = args.batch - 1, 207  # observations; the trace row is counted apart
        if args.updates:
            # Creates and updates alternate; each update follows its create by `lag` of each.
            creates, lag = n_bodies // 2, int(args.update_after_s * args.rate / (2 * args.batch))
            bodies = []
            for k in range(creates + lag):
                if k < creates:
                    bodies.append(batch_body(run, k, args.batch, uuids=args.uuids, prompt_bytes=args.prompt_bytes))
                if k >= lag:
                    updates.add(len(bodies))
                    bodies.append(update_body(run, k - lag, args.batch, uuids=args.uuids))
            n_bodies = len(bodies)
        else:
            sized = {"uuids": args.uuids, "prompt_bytes": args.prompt_bytes}
            bodies = [batch_body(run, n, args.batch, **sized) for n in range(n_bodies)]
    ch = ClickHouse(Settings.from_env().clickhouse)
    await ch.start()
    accepted = 0
    accepted_updates = 0
    rejected = 0
    latencies: list[float] = []
    answered: list[float] = []  # each body's request, sent to answered: the edge's latency
    stop = asyncio.Event()

    async def sender(session: aiohttp.ClientSession, idx: range) -> None:
        nonlocal accepted, accepted_updates, rejected
        interval = args.batch / args.rate * args.concurrency
        # Staggered: senders that all started at once sent their bodies in bursts of
        # `concurrency` requests, each burst queueing at the edge (answered p50 ~34 ms at 10k).
        next_at = time.monotonic() + idx.start * interval / args.concurrency
        for i in idx:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += interval
            t0 = time.monotonic()
            async with session.post(send_url, data=bodies[i], headers=send_headers) as r:
                await r.read()
                answered.append(time.monotonic() - t0)
                if r.status == ok and i in updates:
                    accepted_updates += per_body
                elif r.status == ok:
                    accepted += per_body
                else:
                    rejected += 1

    # Probe traces accepted and not yet seen, by id: when each was acknowledged.
    waiting: dict[str, float] = {}

    async def probe(session: aiohttp.ClientSession) -> None:
        n = 0
        while not stop.is_set():
            trace_id = f"{run}-probe-{n}"
            n += 1
            event = {
                "id": trace_id,
                "type": "trace-create",
                "timestamp": "2026-11-27T10:00:00Z",
                "body": {"id": trace_id},
            }
            async with session.post(url, data=orjson.dumps({"batch": [event]}), headers=headers) as r:
                await r.read()
                if r.status == 207:
                    waiting[trace_id] = time.monotonic()
            await asyncio.sleep(PROBE_EVERY_S)

    async def watch() -> None:
        """One query for every probe in flight: polling each probe on its own kept ClickHouse
        busy with ~60 lookups a second (~0.3 of a core here), taken from the pipeline measured."""
        give_up = float("inf")  # once sending has ended: probes never seen are not samples
        while (not stop.is_set() or waiting) and time.monotonic() < give_up:
            await asyncio.sleep(POLL_EVERY_S)
            if not waiting:
                continue
            sql = f"SELECT id FROM traces WHERE project_id = '{project_id}' AND id IN _ids"
            for (found,) in await read(ch, sql, ids=list(waiting)):
                if (t0 := waiting.pop(found, None)) is not None:
                    latencies.append(time.monotonic() - t0)
            if stop.is_set() and give_up == float("inf"):
                give_up = time.monotonic() + 60

    start, cpu_start, began = time.monotonic(), time.process_time(), time.time()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency + 2)) as session:
        probe_task, watch_task = asyncio.create_task(probe(session)), asyncio.create_task(watch())
        await asyncio.gather(*(sender(session, range(k, n_bodies, args.concurrency)) for k in range(args.concurrency)))
        sent_for = time.monotonic() - start
        stop.set()
        await probe_task
    # Rows preloaded in the project before the run (cpu_budget.py --preload) are not the run's.
    sql = f"SELECT count() FROM observations WHERE project_id = '{project_id}' AND name != '{PRELOADED}'"
    deadline = time.monotonic() + 300
    polls = 0
    if args.updates:
        # A generation's rows before and after its update: rows, and rows with the update's usage
        # (written only by folds of the update). Each scans the project, preload included (~0.1 s
        # of server CPU at 2M rows), so once a second; `wait_polls` says how many.
        sql = sql.replace("count()", "count(), countIf(output_tokens = 7)")
        while time.monotonic() < deadline:
            polls += 1
            visible, updated = (await read(ch, sql))[0]
            if visible >= accepted and updated >= accepted_updates:
                break
            await asyncio.sleep(1.0)
    else:
        while (visible := (await read(ch, sql))[0][0]) < accepted and time.monotonic() < deadline:
            await asyncio.sleep(POLL_EVERY_S)
    done = time.monotonic() - start
    all_stages = await postgres_caught_up(ch, project_id, deadline) - start if args.all_stages else None
    await watch_task
    # The generator's CPU while it sends and waits, not for building the bodies beforehand.
    cpu = time.process_time() - cpu_start
    server_cpu = await own_server_cpu(ch, began)
    await ch.close()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 2 else [float("nan")] * 99
    a = statistics.quantiles(answered, n=100) if len(answered) > 2 else [float("nan")] * 99
    return {
        "project_id": project_id,
        "target_rate": args.rate,
        "accepted_observations": accepted,
        "accepted_updates": accepted_updates,
        "rejected_requests": rejected,
        "visible_observations": visible,
        "send_seconds": round(sent_for, 1),
        "offered_events_per_s": round((accepted + accepted_updates) / sent_for),
        "sustained_events_per_s": round((accepted + accepted_updates) / done),
        "seconds_all_stages": None if all_stages is None else round(all_stages, 1),
        "sustained_all_stages_events_per_s": None
        if all_stages is None
        else round((accepted + accepted_updates) / all_stages),
        "queryable_p50_ms": round(q[49] * 1000),
        "queryable_p99_ms": round(q[98] * 1000),
        "latency_samples": len(latencies),
        "answered_p50_ms": round(a[49] * 1000, 1),
        "answered_p99_ms": round(a[98] * 1000, 1),
        "wait_polls": polls,
        "client_cpu_seconds": round(cpu, 3),
        "clickhouse_cpu_seconds": None if server_cpu is None else round(server_cpu, 3),
    }


async def read(ch: ClickHouse, sql: str, ids: list[str] | None = None) -> list[tuple]:
    return await ch.fetch(MARK + sql, ids=ids, settings=LOGGED, operation="bench")


async def own_server_cpu(ch: ClickHouse, since: float) -> float | None:
    """The server CPU seconds of this run's own reads (the probes and the counts), from
    system.query_log: what the load generator took of ClickHouse. None without a query log."""
    await asyncio.sleep(1.0)  # a read still being logged
    try:
        await ch.execute("SYSTEM FLUSH LOGS", operation="bench")
    except ClickHouseError:
        return None
    used = "ProfileEvents.Values[indexOf(ProfileEvents.Names, '{0}')]"  # 18.16; a Map since 21.x
    for form in (used, "ProfileEvents['{0}']"):
        cpu = f"{form.format('UserTimeMicroseconds')} + {form.format('SystemTimeMicroseconds')}"
        try:
            rows = await ch.fetch(
                f"SELECT sum({cpu}) FROM system.query_log WHERE type = 2 "
                f"AND event_time >= toDateTime({int(since)}) AND query LIKE '{MARK}%'",
                operation="bench",
            )
        except ClickHouseError:
            continue
        return int(rows[0][0] or 0) / 1e6
    return None


async def postgres_caught_up(ch: ClickHouse, project_id: str, deadline: float) -> float:
    """When the Postgres stage's ledger counted what ClickHouse holds of the project (a count
    read once, after ClickHouse has every row): the rollup counts each observation that is a
    generation or names a model, once (sinks/postgres/rollup.py)."""
    sql = (
        f"SELECT uniqExact(id) FROM observations WHERE project_id = '{project_id}' AND name != '{PRELOADED}' "
        "AND (type = 'GENERATION' OR provided_model_name != '')"
    )
    expected = (await read(ch, sql))[0][0]
    pg = Postgres(Settings.from_env().postgres)
    await pg.start()
    try:
        while time.monotonic() < deadline:
            rows = await pg.fetch(
                "SELECT coalesce(sum(observations), 0) FROM usage_daily WHERE project_id = %s", (project_id,)
            )
            if rows[0][0] >= expected:
                break
            await asyncio.sleep(POLL_EVERY_S)
        return time.monotonic()
    finally:
        await pg.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--rate", type=float, default=20000, help="target events/s")
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--otlp", action="store_true", help="OTLP/HTTP protobuf spans instead of Langfuse batches")
    p.add_argument("--spans-per-trace", type=int, default=0, help="--otlp: traces of this many spans (0: one a body)")
    p.add_argument("--propagated", action="store_true", help="--otlp: a user and a session on every span")
    p.add_argument("--uuids", action="store_true", help="generation ids spread over the key space, as the SDKs'")
    p.add_argument("--updates", action="store_true", help="half the bodies update the other half's generations")
    p.add_argument("--update-after-s", type=float, default=5.0, help="seconds from a create to its update")
    p.add_argument("--all-stages", action="store_true", help="then wait for the Postgres stage's ledger too")
    p.add_argument("--prompt-bytes", type=int, default=0, help="each call's messages this long (bench/load.py's chat)")
    p.add_argument("--key", default="", metavar="PROJECT:PUBLIC:SECRET", help="an existing project (else a new one)")
    print(orjson.dumps(asyncio.run(main(p.parse_args()))).decode())
