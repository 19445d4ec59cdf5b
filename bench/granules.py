"""Point lookups on the observations table by index_granularity, on the stack's ClickHouse.

    .venv/bin/python bench/granules.py [--granules 8192,1024,256] [--rows 1000000] [--inserts 8]

For each granularity, creates `observations` from the project's own migration in a scratch
database (`bench_granules`, dropped afterwards), with only the granularity changed, and fills
it like a live table: one project of `rows` observations (5 per trace, LLM-sized input and
output) and as many rows again in 1,000 other projects, in `inserts` INSERTs per group, so
that several parts hold every project. Then times, `--queries` times each, the lookups that
the ClickHouse stage and the read API make by the sorting key: the writer's probe (ids only)
for 5 stored and 5 new ids and for a batch's 2,000 new ids, every column of 5 stored ids (the
writer's load, a read by id); and two reads of the whole project (a sum; a filter on a column
outside the key). Prints one JSON line per granularity: the active parts, and per query the
median wall time and the server's CPU per query (from /proc, so nothing else should run meanwhile).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agenttrace.settings import Settings
from bench.probe_cost import server_cpu_s
from sinks.clickhouse.client import IDS_TABLE, ClickHouse
from sinks.clickhouse.schema import dialect_for, migrations

DB = "bench_granules"
T0 = 1_793_000_000_000_000  # 2026-10-26, µs
SPREAD_US = 30 * 86_400_000_000
PER_TRACE = 5


def observations_ddl(modern: bool, granularity: int) -> list[str]:
    """The migrations' statements for `observations` in the scratch database, this granularity."""
    dialect = dialect_for((24, 8) if modern else (18, 16))
    out = []
    for m in migrations():
        for s in m.statements(dialect, DB):
            if f"{DB}.observations" in s.split("\n", 1)[0]:
                s = re.sub(r"SETTINGS index_granularity = \d+", "", s).rstrip()
                out.append(s + (f"\nSETTINGS index_granularity = {granularity}" if s.startswith("CREATE") else ""))
    return out


async def seed(ch: ClickHouse, modern: bool, rows: int, inserts: int) -> None:
    """The measured project `P` (`rows` observations) and 1,000 others of rows/1000 each."""
    for pid_expr, per_project in (("'P'", rows), ("concat('other-', toString(intDiv(number, {n})))", rows // 1000)):
        pid = pid_expr.format(n=per_project)
        ono = f"(number % {per_project})"
        trace_no = f"intDiv({ono}, {PER_TRACE})"
        traces = max(1, per_project // PER_TRACE)
        at = f"{T0} + intDiv({trace_no} * {SPREAD_US}, {traces}) + ({ono} % {PER_TRACE}) * 1000"
        ts = f"fromUnixTimestamp64Micro(toInt64({at}))" if modern else f"toUInt64({at})"
        # Half random, half repeated text: prompts compress, though not as well as a constant.
        noise = ", ".join(f"hex(cityHash64(number, {k}))" for k in range(12))
        prompt = f"concat({noise}, '{'lorem ipsum ' * 17}')"
        answer = f"concat(hex(cityHash64(number, 99)), '{'answer ' * 26}')"
        for part in range(inserts):
            await ch.execute(
                f"INSERT INTO {DB}.observations (project_id, id, trace_id, type, name, start_time, end_time, level,"
                " environment, metadata, provided_model_name, model_parameters, usage_details, input, output,"
                " cost_details, total_cost, created_at, updated_at, event_ts, is_deleted) "
                f"SELECT {pid}, concat('o', hex(cityHash64(number))), concat('t', hex(cityHash64({trace_no}, 7))),"
                f" 'GENERATION', 'llm', {ts}, {ts}, 'DEFAULT', 'default', '{{}}', 'gpt-4o', '{{}}', '{{}}',"
                f" {prompt}, {answer}, '{{}}', 0.001, {ts}, {ts}, 1, 0"
                f" FROM numbers({rows}) WHERE number % {inserts} = {part}",
                operation="bench_seed",
            )


async def timed(ch: ClickHouse, sql: str, queries: int, ids: list[str] | None = None) -> dict[str, float]:
    walls = []
    cpu_before = server_cpu_s()
    for _ in range(queries):
        began = time.perf_counter()
        await ch.fetch(sql, operation="bench", ids=ids)
        walls.append(time.perf_counter() - began)
    cpu = server_cpu_s() - cpu_before
    return {"wall_ms": round(statistics.median(walls) * 1000, 2), "server_cpu_ms": round(cpu / queries * 1000, 2)}


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--granules", default="8192,1024,256")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--inserts", type=int, default=8)
    p.add_argument("--queries", type=int, default=40)
    args = p.parse_args()
    ch = ClickHouse(Settings.from_env().clickhouse)
    await ch.start()
    modern = dialect_for(ch.version).subsecond_type
    rng = random.Random(1)
    try:
        for granularity in (int(g) for g in args.granules.split(",")):
            await ch.execute(f"DROP DATABASE IF EXISTS {DB}")
            await ch.execute(f"CREATE DATABASE {DB}")
            for statement in observations_ddl(modern, granularity):
                await ch.execute(statement)
            await seed(ch, modern, args.rows, args.inserts)
            parts = await ch.fetch(
                f"SELECT count() FROM system.parts WHERE database = '{DB}' AND table = 'observations' AND active"
            )
            trace = rng.randrange(args.rows // PER_TRACE)
            stored = [
                r[0]
                for r in await ch.fetch(
                    f"SELECT id FROM {DB}.observations WHERE project_id = 'P' "
                    f"AND trace_id = concat('t', hex(cityHash64({trace}, 7)))"
                )
            ]
            ids = ", ".join(f"'{i}'" for i in stored)
            new = ", ".join(f"'o{rng.getrandbits(64):016X}'" for _ in stored)  # inside the stored ids' range
            where = f"FROM {DB}.observations WHERE project_id = 'P' AND id IN"
            batch_ids = [f"o{rng.getrandbits(64):016X}" for _ in range(2000)]
            result = {
                "granularity": granularity,
                "active_parts": parts[0][0],
                "select_1": await timed(ch, "SELECT 1", args.queries),
                "probe_5_stored": await timed(ch, f"SELECT DISTINCT id {where} ({ids})", args.queries),
                "probe_5_new": await timed(ch, f"SELECT DISTINCT id {where} ({new})", args.queries),
                "all_columns_5_stored": await timed(ch, f"SELECT * {where} ({ids})", args.queries),
                # A batch's probe, its ids sent beside the query as the writer sends them: in a
                # large project nearly every id falls in a granule of its own, read whole.
                "probe_2000_new": await timed(
                    ch, f"SELECT DISTINCT id {where} {IDS_TABLE}", max(1, args.queries // 4), ids=batch_ids
                ),
                # What reads of a whole project pay for finer granules (more marks per column).
                "scan_project_sum": await timed(
                    ch, f"SELECT count(), sum(total_cost) FROM {DB}.observations WHERE project_id = 'P'", args.queries
                ),
                "scan_project_by_trace": await timed(
                    ch, f"SELECT id FROM {DB}.observations WHERE project_id = 'P' AND trace_id = 't'", args.queries
                ),
            }
            print(json.dumps(result), flush=True)
    finally:
        await ch.execute(f"DROP DATABASE IF EXISTS {DB}")
        await ch.close()


if __name__ == "__main__":
    asyncio.run(main())
