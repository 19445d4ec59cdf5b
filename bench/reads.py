"""Read API latency under concurrent readers, over a project big enough to matter.

    .venv/bin/python bench/reads.py                                  # api on 127.0.0.1:8080
    .venv/bin/python bench/reads.py --api http://127.0.0.1:18080 --traces 20000 --per-trace 25

Seeds one project with `traces` traces of `per-trace` observations each, plus `others`
projects of the same size, straight into ClickHouse (INSERT ... SELECT FROM numbers(), so
seeding costs seconds, not the pipeline's minutes), spread over 30 days. Then, per endpoint,
`concurrency` readers loop for `seconds`: the first page of traces, one trace by id, and
metrics/daily. Prints one JSON object with p50/p99 (ms) and requests/s per endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agenttrace.settings import Settings
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.schema import dialect_for
from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey, create_key

T0 = 1_793_000_000_000_000  # 2026-10-26, µs
SPREAD_US = 30 * 86_400_000_000
USAGE = '{"input":10,"output":5,"total":15}'


def _time(expr: str, modern: bool) -> str:
    """A µs expression as the dialect's time column value."""
    return f"fromUnixTimestamp64Micro(toInt64({expr}))" if modern else f"toUInt64({expr})"


async def seed(ch: ClickHouse, project: str, traces: int, per_trace: int) -> None:
    modern = dialect_for(ch.version).subsecond_type
    ts = _time(f"{T0} + intDiv(number * {SPREAD_US}, {traces})", modern)
    await ch.execute(
        "INSERT INTO traces (project_id, id, timestamp, name, user_id, session_id, tags, environment, metadata,"
        " created_at, updated_at, event_ts, is_deleted) "
        f"SELECT '{project}', concat('t', toString(number)), {ts}, 'agent-run', concat('u', toString(number % 50)),"
        f" concat('s', toString(number % 1000)), ['bench'], 'default', '{{}}', {ts}, {ts}, 1, 0"
        f" FROM numbers({traces})",
        operation="bench_seed",
    )
    trace_no = f"intDiv(number, {per_trace})"
    start = _time(f"{T0} + intDiv({trace_no} * {SPREAD_US}, {traces}) + (number % {per_trace}) * 1000", modern)
    end = _time(f"{T0} + intDiv({trace_no} * {SPREAD_US}, {traces}) + (number % {per_trace}) * 1000 + 500", modern)
    await ch.execute(
        "INSERT INTO observations (project_id, id, trace_id, type, name, start_time, end_time, level, environment,"
        " metadata, provided_model_name, model_parameters, usage_details, input_tokens, output_tokens, total_tokens,"
        " cost_details, total_cost, created_at, updated_at, event_ts, is_deleted) "
        f"SELECT '{project}', concat('o', toString(number)), concat('t', toString({trace_no})), 'GENERATION', 'llm',"
        f" {start}, {end}, 'DEFAULT', 'default', '{{}}', 'gpt-4o', '{{}}', '{USAGE}',"
        f" 10, 5, 15, '{{\"total\":0.001}}', 0.001, {start}, {start}, 1, 0 FROM numbers({traces * per_trace})",
        operation="bench_seed",
    )


async def readers(
    http: aiohttp.ClientSession, url: Any, headers: dict[str, str], concurrency: int, seconds: float
) -> dict[str, float]:
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


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--api", default="http://127.0.0.1:8080")
    ap.add_argument("--traces", type=int, default=20_000)
    ap.add_argument("--per-trace", type=int, default=25)
    ap.add_argument("--others", type=int, default=3, help="other projects of the same size")
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0)
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
            await seed(ch, key.project_id, args.traces, args.per_trace)
            for _ in range(args.others):
                await seed(ch, f"bench-other-{uuid.uuid4().hex[:8]}", args.traces, args.per_trace)
            seeded_s = time.perf_counter() - began
        finally:
            await ch.close()
            await pg.close()
        public, secret = key.public_key, key.secret_key
        print(f"project {key.project_id}; measure again with --key {public}:{secret}", file=sys.stderr)

    token = base64.b64encode(f"{public}:{secret}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    base = f"{args.api}/api/public"
    endpoints = {
        "traces_first_page": lambda: f"{base}/traces?limit=50",
        "one_trace": lambda: f"{base}/traces/t{random.randrange(args.traces)}",
        "metrics_daily": lambda: f"{base}/metrics/daily?limit=30",
    }
    figures: dict[str, Any] = {
        "project_observations": args.traces * args.per_trace,
        "projects": 1 + args.others,
        "concurrency": args.concurrency,
        "seed_s": round(seeded_s, 1),
    }
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http:
        for name, url in endpoints.items():
            figures[name] = await readers(http, url, headers, args.concurrency, args.seconds)
    print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    asyncio.run(main())
