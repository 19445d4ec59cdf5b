"""Read API latency under concurrent readers, over a project big enough to matter.

    .venv/bin/python bench/reads.py --api http://127.0.0.1:18400            # seeds, then measures
    .venv/bin/python bench/reads.py --api ... --key PK:SK --ingest-rate 2000  # again, with ingestion

Seeds one project with `traces` traces of `per-trace` observations each (default 200k x 5 = 1M
observations), plus `others` projects of `other-traces` traces each, straight into ClickHouse
(INSERT ... SELECT FROM numbers(), seconds rather than the pipeline's minutes), spread over 30
days, with OTLP-shaped ids (32 hex digits a trace, 16 an observation; `--short-ids` for the
't12'/'o60' ids of the figures before 2026-12-02, which compress and compare far cheaper).
Then, per endpoint, `concurrency` closed-loop readers ask for `seconds`, each request varied:
the first page of traces under one of a few filter combinations, the first page under one of
a few filters on what the traces' observations and scores add up to (`traces_summed_filter`),
one random trace by id, metrics/daily over 30 days under one of a few filters. With
`--ingest-rate`, Langfuse batches of 100 events go into the same project through the api
meanwhile, and the accepted rate is reported. Prints one JSON
object: p50/p99 (ms), requests/s and errors per endpoint, the api's CPU seconds per request
(/proc of the process listening on the api's port) and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import random
import statistics
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agenttrace.settings import Settings
from bench.load import batch_body
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.schema import dialect_for
from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey, create_key

T0 = 1_793_000_000_000_000  # 2026-10-26, µs
SPREAD_US = 30 * 86_400_000_000
USAGE = '{"input":10,"output":5,"total":15}'
USERS = 50


def _time(expr: str, modern: bool) -> str:
    """A µs expression as the dialect's time column value."""
    return f"fromUnixTimestamp64Micro(toInt64({expr}))" if modern else f"toUInt64({expr})"


def trace_id(n: int | str, hex_ids: bool) -> str:
    """The id of seeded trace `n` (or its SQL, for a SQL expression `n`)."""
    if isinstance(n, int):
        return hashlib.md5(f"t{n}".encode()).hexdigest() if hex_ids else f"t{n}"
    return f"lower(hex(MD5(concat('t', toString({n})))))" if hex_ids else f"concat('t', toString({n}))"


def observation_id(n: str, hex_ids: bool) -> str:
    if hex_ids:
        return f"substring(lower(hex(MD5(concat('o', toString({n}))))), 1, 16)"
    return f"concat('o', toString({n}))"


async def seed(
    ch: ClickHouse, project: str, traces: int, per_trace: int, projects: int = 1, hex_ids: bool = True
) -> None:
    """`projects` projects of `traces` x `per_trace` (named `project` or `project`-<n>). Ids as
    OTLP's (32 and 16 hex digits) or, with `hex_ids` false, short ('t12', 'o60')."""
    modern = dialect_for(ch.version).subsecond_type
    pid = f"'{project}'" if projects == 1 else f"concat('{project}-', toString(intDiv(number, {traces})))"
    tno = "number" if projects == 1 else f"(number % {traces})"
    ts = _time(f"{T0} + intDiv({tno} * {SPREAD_US}, {traces})", modern)
    await ch.execute(
        "INSERT INTO traces (project_id, id, timestamp, name, user_id, session_id, tags, environment, metadata,"
        " created_at, updated_at, event_ts, is_deleted) "
        f"SELECT {pid}, {trace_id(tno, hex_ids)}, {ts}, 'agent-run', concat('u', toString({tno} % {USERS})),"
        f" concat('s', toString({tno} % 1000)), ['bench'], 'default', '{{}}', {ts}, {ts}, 1, 0"
        f" FROM numbers({traces * projects})",
        operation="bench_seed",
    )
    obs = traces * per_trace
    pid = f"'{project}'" if projects == 1 else f"concat('{project}-', toString(intDiv(number, {obs})))"
    ono = "number" if projects == 1 else f"(number % {obs})"
    trace_no = f"intDiv({ono}, {per_trace})"
    at = f"{T0} + intDiv({trace_no} * {SPREAD_US}, {traces}) + ({ono} % {per_trace}) * 1000"
    start, end = _time(at, modern), _time(f"{at} + 500", modern)
    await ch.execute(
        "INSERT INTO observations (project_id, id, trace_id, type, name, start_time, end_time, level, environment,"
        " metadata, provided_model_name, model_parameters, usage_details, input_tokens, output_tokens, total_tokens,"
        " cost_details, total_cost, created_at, updated_at, event_ts, is_deleted) "
        f"SELECT {pid}, {observation_id(ono, hex_ids)}, {trace_id(trace_no, hex_ids)}, 'GENERATION', 'llm',"
        f" {start}, {end}, 'DEFAULT', 'default', '{{}}', 'gpt-4o', '{{}}', '{USAGE}',"
        f" 10, 5, 15, '{{\"total\":0.001}}', 0.001, {start}, {start}, 1, 0 FROM numbers({obs * projects})",
        operation="bench_seed",
    )
    members = await ch.fetch(
        "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'trace_members'"
    )
    if members[0][0]:  # what the writer adds beside each new observation
        await ch.execute(
            "INSERT INTO trace_members (project_id, trace_id, kind, id) "
            f"SELECT {pid}, {trace_id(trace_no, hex_ids)}, 'observation', {observation_id(ono, hex_ids)}"
            f" FROM numbers({obs * projects})",
            operation="bench_seed",
        )


def api_pid(url: str) -> int | None:
    """The pid of the process listening on the api's port (Linux /proc), for its CPU time."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}").removeprefix("socket:[").rstrip("]") in inodes:
                    return int(pid)
        except OSError:
            continue
    return None


def cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


async def readers(
    http: aiohttp.ClientSession, url: Callable[[], str], headers: dict[str, str], concurrency: int, seconds: float
) -> dict[str, Any]:
    """`concurrency` loops GETting url() for `seconds`; latency percentiles in ms."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            began = time.perf_counter()
            try:
                async with http.get(url(), headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
            except TimeoutError:  # counted, at the client's timeout
                errors += 1
            latencies.append((time.perf_counter() - began) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    q = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(q[49], 1),
        "p99_ms": round(q[98], 1),
    }


async def ingest(
    http: aiohttp.ClientSession, api: str, headers: dict[str, str], rate: float, stop: asyncio.Event
) -> dict[str, Any]:
    """Langfuse batches of 100 events at `rate` events/s (open loop, 8 senders) until `stop`."""
    run = uuid.uuid4().hex[:8]
    url = f"{api}/api/public/ingestion"
    h = {**headers, "Content-Type": "application/json"}
    sent = accepted = 0
    began = time.monotonic()
    n = 0

    async def sender(k: int) -> None:
        nonlocal sent, accepted, n
        interval = 100 / rate * 8
        next_at = time.monotonic() + k * interval / 8
        while not stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += interval
            n += 1
            async with http.post(url, data=batch_body(run, n, 100), headers=h) as r:
                await r.read()
                sent += 100
                accepted += 100 if r.status in (200, 207) else 0

    await asyncio.gather(*(sender(k) for k in range(8)))
    elapsed = time.monotonic() - began
    return {"offered_per_s": rate, "accepted_per_s": round(accepted / elapsed, 1), "sent": sent}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--api", default="http://127.0.0.1:8080")
    ap.add_argument("--traces", type=int, default=200_000)
    ap.add_argument("--per-trace", type=int, default=5)
    ap.add_argument("--others", type=int, default=1000, help="other projects")
    ap.add_argument("--other-traces", type=int, default=100, help="traces of each other project")
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--ingest-rate", type=float, default=0.0, help="events/s sent to the api meanwhile")
    ap.add_argument("--only", help="comma-separated endpoints to measure")
    ap.add_argument(
        "--cold", action="store_true", help="first ask every filter combination once (timed apart as `cold_ms`)"
    )
    ap.add_argument(
        "--short-ids", action="store_true", help="seed ids like 't12' (before 2026-12-02) instead of OTLP's hex ids"
    )
    ap.add_argument("--key", help="public:secret of a project seeded by an earlier run (same --traces): no seeding")
    args = ap.parse_args()

    seeded_s = 0.0
    if args.key:
        public, secret = args.key.split(":", 1)
    else:
        settings = Settings.from_env()
        pg, ch = Postgres(settings.postgres), ClickHouse(settings.clickhouse)
        await pg.start()
        await ch.start()
        try:
            key: NewKey = await create_key(pg, f"bench-reads-{uuid.uuid4().hex[:8]}")
            began = time.perf_counter()
            hex_ids = not args.short_ids
            await seed(ch, key.project_id, args.traces, args.per_trace, hex_ids=hex_ids)
            if args.others:
                other = f"bench-other-{uuid.uuid4().hex[:8]}"
                await seed(ch, other, args.other_traces, args.per_trace, args.others, hex_ids=hex_ids)
            seeded_s = time.perf_counter() - began
        finally:
            await ch.close()
            await pg.close()
        public, secret = key.public_key, key.secret_key
        print(f"project {key.project_id}; measure again with --key {public}:{secret}", file=sys.stderr)

    token = base64.b64encode(f"{public}:{secret}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    base = f"{args.api}/api/public"
    last_day = "2026-11-25T00:00:00Z"
    first_day = "2026-10-26T00:00:00Z"
    page_filters = [
        "",
        "&userId=u{u}",
        "&name=agent-run",
        "&tags=bench",
        "&environment=default",
        "&userId=u{u}&tags=bench",
    ]
    daily_filters = ["", "&traceName=agent-run", "&userId=u{u}", "&tags=bench"]
    # Filters on what a trace's observations and scores add up to (ingest/filters.py): each reads
    # the project's rows of that table, not the trace index alone.
    summed = [
        [{"type": "number", "column": "totalCost", "operator": ">=", "value": 0.004}],
        [{"type": "number", "column": "latency", "operator": ">", "value": 0.001}],
        [{"type": "number", "column": "totalTokens", "operator": ">", "value": 70}],
        [{"type": "stringOptions", "column": "level", "operator": "any of", "value": ["ERROR"]}],
        [{"type": "numberObject", "column": "scores_avg", "key": "quality", "operator": ">", "value": 0.5}],
        [{"type": "stringOptions", "column": "userId", "operator": "any of", "value": ["u{u}"]},
         {"type": "number", "column": "totalCost", "operator": ">", "value": 0}],
    ]  # fmt: skip
    # Quoted, but for the user's placeholder, which pick() and every() fill in.
    summed_filters = [
        "&filter=" + urllib.parse.quote(orjson.dumps(f).decode()).replace("u%7Bu%7D", "u{u}") for f in summed
    ]

    users = (1, 7, 13)

    def pick(options: list[str]) -> str:
        return random.choice(options).format(u=random.choice(users))

    def every(options: list[str]) -> list[str]:
        return list(dict.fromkeys(o.format(u=u) for o in options for u in users))

    endpoints = {
        "traces_first_page": lambda: f"{base}/traces?limit=50{pick(page_filters)}",
        "one_trace": lambda: f"{base}/traces/{trace_id(random.randrange(args.traces), not args.short_ids)}",
        "traces_summed_filter": lambda: f"{base}/traces?limit=50{pick(summed_filters)}",
        "metrics_daily": lambda: (
            f"{base}/metrics/daily?limit=30&fromTimestamp={first_day}&toTimestamp={last_day}{pick(daily_filters)}"
        ),
    }
    # Each distinct answer a cache could hold, for --cold: the first computation of each.
    distinct = {
        "traces_first_page": [f"{base}/traces?limit=50{f}" for f in every(page_filters)],
        "traces_summed_filter": [f"{base}/traces?limit=50{f}" for f in every(summed_filters)],
        "metrics_daily": [
            f"{base}/metrics/daily?limit=30&fromTimestamp={first_day}&toTimestamp={last_day}{f}"
            for f in every(daily_filters)
        ],
    }
    if args.only:
        endpoints = {k: v for k, v in endpoints.items() if k in args.only.split(",")}
    figures: dict[str, Any] = {
        "project_observations": args.traces * args.per_trace,
        "projects": 1 + args.others,
        "concurrency": args.concurrency,
        "ids": "short" if args.short_ids else "hex",
        "seed_s": round(seeded_s, 1),
    }
    pid = api_pid(args.api)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http:
        stop = asyncio.Event()
        ingesting = (
            asyncio.ensure_future(ingest(http, args.api, headers, args.ingest_rate, stop)) if args.ingest_rate else None
        )
        for name, url in endpoints.items():
            cold = []
            for u in distinct.get(name, []) if args.cold else []:
                began = time.perf_counter()
                try:
                    async with http.get(u, headers=headers) as r:
                        await r.read()
                except TimeoutError:  # recorded at the client's timeout
                    pass
                cold.append(round((time.perf_counter() - began) * 1000))
            load = os.getloadavg()[0]
            cpu = cpu_s(pid)
            figures[name] = await readers(http, url, headers, args.concurrency, args.seconds)
            used = cpu_s(pid) - cpu
            figures[name]["api_cpu_ms_per_request"] = round(1000 * used / max(1, figures[name]["requests"]), 2)
            figures[name]["api_cores"] = round(used / args.seconds, 2)
            figures[name]["load_average"] = round((load + os.getloadavg()[0]) / 2, 1)
            if cold:
                figures[name]["cold_ms"] = {"n": len(cold), "median": statistics.median(cold), "max": max(cold)}
        if ingesting is not None:
            stop.set()
            figures["ingestion"] = await ingesting
    print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    asyncio.run(main())
