"""Retention over a million rows: how long until a project's expired rows are gone.

    .venv/bin/python bench/retention.py      # 1,600,000 observations, 200,000 traces: 1,000,000 rows expire
    .venv/bin/python bench/retention.py --observations 200000 --traces 40000

Seeds one project with `observations` observations in `traces` traces (and a score per trace),
half of each older than the window (with the defaults 1,000,000 rows expire),
spread evenly over the last 60 days, straight into ClickHouse (INSERT ... SELECT FROM numbers()),
plus one other project as large that has no retention. Sets the first project's retention to
30 days and runs one retention pass in this process, with the worker's own code (RetentionJob,
as the worker's periodic job runs it), then polls until ClickHouse has no row of the project
older than the window left. Prints the pass's own time, the time until the rows were gone, and
checks that the newer half and the other project are untouched. The table as a whole (other
projects' rows included) sets the cost of a mutation on 18.16, so its size is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agenttrace.settings import Settings
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.schema import dialect_for
from sinks.postgres.client import Postgres
from sinks.postgres.keys import create_key
from sinks.postgres.retention import set_retention
from sinks.retention import RetentionConfig, RetentionJob

DAY_US = 86_400_000_000
SPAN_DAYS = 60
KEEP_DAYS = 30


def _time(expr: str, modern: bool) -> str:
    return f"fromUnixTimestamp64Micro(toInt64({expr}))" if modern else f"toUInt64({expr})"


async def seed(ch: ClickHouse, project: str, traces: int, observations: int, now_us: int) -> None:
    modern = dialect_for(ch.version).subsecond_type
    t0 = now_us - SPAN_DAYS * DAY_US
    span = SPAN_DAYS * DAY_US - 60_000_000  # the newest rows a minute old
    trace_ts = _time(f"{t0} + intDiv(number * {span}, {traces})", modern)
    await ch.execute(
        "INSERT INTO traces (project_id, id, timestamp, name, user_id, session_id, tags, environment, metadata,"
        " created_at, updated_at, event_ts, is_deleted) "
        f"SELECT '{project}', concat('t', toString(number)), {trace_ts}, 'agent-run', 'u', 's', [], 'default', '{{}}',"
        f" {trace_ts}, {trace_ts}, 1, 0 FROM numbers({traces})",
        operation="bench_seed",
    )
    per = max(1, observations // traces)
    trace_no = f"intDiv(number, {per})"
    start = _time(f"{t0} + intDiv({trace_no} * {span}, {traces}) + (number % {per}) * 1000", modern)
    await ch.execute(
        "INSERT INTO observations (project_id, id, trace_id, type, name, start_time, level, environment, metadata,"
        " provided_model_name, model_parameters, usage_details, cost_details, created_at, updated_at, event_ts,"
        " is_deleted) "
        f"SELECT '{project}', concat('o', toString(number)), concat('t', toString({trace_no})), 'GENERATION', 'llm',"
        f" {start}, 'DEFAULT', 'default', '{{}}', 'gpt-4o', '{{}}', '{{}}', '{{}}', {start}, {start}, 1, 0"
        f" FROM numbers({observations})",
        operation="bench_seed",
    )
    await ch.execute(
        "INSERT INTO scores (project_id, id, trace_id, name, timestamp, created_at, updated_at, event_ts, is_deleted)"
        f" SELECT '{project}', concat('s', toString(number)), concat('t', toString(number)), 'quality',"
        f" {trace_ts}, {trace_ts}, {trace_ts}, 1, 0 FROM numbers({traces})",
        operation="bench_seed",
    )


async def census(ch: ClickHouse, project: str, cutoff_us: int) -> dict[str, tuple[int, int]]:
    """(older than the cutoff, newer) per table, for the project."""
    modern = dialect_for(ch.version).subsecond_type
    cutoff = _time(str(cutoff_us), modern)
    out = {}
    for table, column in (("traces", "timestamp"), ("observations", "start_time"), ("scores", "timestamp")):
        ((old, new),) = await ch.fetch(
            f"SELECT countIf({column} < {cutoff}), countIf({column} >= {cutoff}) FROM {table}"
            f" WHERE project_id = '{project}'"
        )
        out[table] = (int(old), int(new))
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--observations", type=int, default=1_600_000)
    ap.add_argument("--traces", type=int, default=200_000)
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args()

    settings = Settings.from_env()
    pg, ch = Postgres(settings.postgres), ClickHouse(settings.clickhouse)
    await pg.start()
    await ch.start()
    try:
        now_us = time.time_ns() // 1000
        name = f"bench-retention-{uuid.uuid4().hex[:8]}"
        key = await create_key(pg, name)
        other = f"bench-retention-other-{uuid.uuid4().hex[:8]}"
        began = time.perf_counter()
        await seed(ch, key.project_id, args.traces, args.observations, now_us)
        await seed(ch, other, args.traces, args.observations, now_us)
        seeded_s = time.perf_counter() - began
        ((table_rows,),) = await ch.fetch("SELECT count() FROM observations")
        cutoff = now_us - KEEP_DAYS * DAY_US
        before = await census(ch, key.project_id, cutoff)
        other_before = await census(ch, other, cutoff)

        await set_retention(pg, name, KEEP_DAYS)
        job = RetentionJob(pg, ch, dialect_for(ch.version), RetentionConfig())
        began = time.perf_counter()
        removed = await job.run_once(now_us=now_us)
        pass_s = time.perf_counter() - began
        while True:
            after = await census(ch, key.project_id, cutoff)
            if all(old == 0 for old, _ in after.values()):
                break
            if time.perf_counter() - began > args.timeout:
                raise SystemExit(f"rows still there after {args.timeout}s: {after}")
            await asyncio.sleep(0.5)
        gone_s = time.perf_counter() - began
        other_after = await census(ch, other, cutoff)
        await set_retention(pg, name, None)
        for table in ("traces", "observations", "scores"):  # leave the shared tables as found
            await ch.execute(f"ALTER TABLE {table} DELETE WHERE project_id IN ('{key.project_id}', '{other}')")
    finally:
        await ch.close()
        await pg.close()

    expired = sum(old for old, _ in before.values())
    print(
        orjson.dumps(
            {
                "rows_seeded_per_project": sum(o + n for o, n in before.values()),
                "rows_expired": expired,
                "observations_table_rows": int(table_rows),
                "clickhouse": ".".join(map(str, ch.version)),
                "seed_s": round(seeded_s, 1),
                "retention_pass_s": round(pass_s, 2),
                "rows_gone_s": round(gone_s, 2),
                "rows_removed_reported": removed,
                "newer_rows_kept": all(after[t][1] == before[t][1] for t in before),
                "other_project_untouched": other_after == other_before,
            },
            option=orjson.OPT_INDENT_2,
        ).decode()
    )


if __name__ == "__main__":
    asyncio.run(main())
