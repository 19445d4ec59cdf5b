"""ClickHouse server CPU per probe query, as the ClickHouse stage runs them per batch.

    .venv/bin/python bench/probe_cost.py [--project ID] [--queries 40]

Runs each query `--queries` times against the stack's ClickHouse and prints the wall time and
the server's CPU (from /proc of clickhouse-server, so nothing else should run meanwhile) per
query: `SELECT 1`, the load probe (`SELECT DISTINCT id ... AND id IN _ids`) of each table with
1, 200, 1,000 and 4,000 ids no row has, and the observations probes with 2,000 ids of which
half exist (the load probe, and the concurrent-writer probe run after an insert). By default
the project with the most observations.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agenttrace.settings import Settings
from sinks.clickhouse.client import IDS_TABLE, ClickHouse

TICK = os.sysconf("SC_CLK_TCK")


def server_cpu_s() -> float:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if b"clickhouse" in (proc / "cmdline").read_bytes() and b"server" in (proc / "cmdline").read_bytes():
                    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                    return (int(fields[11]) + int(fields[12])) / TICK
            except OSError:
                continue
    raise SystemExit("no clickhouse-server process found")


async def timed(ch: ClickHouse, name: str, sql: str, ids: list[str] | None, n: int) -> None:
    cpu, start = server_cpu_s(), time.perf_counter()
    for _ in range(n):
        await ch.fetch(sql, ids=ids)
    wall_ms = (time.perf_counter() - start) * 1000 / n
    print(f"{name:60s} wall {wall_ms:6.2f} ms   server CPU {(server_cpu_s() - cpu) * 1000 / n:6.2f} ms")


async def main(args: argparse.Namespace) -> None:
    ch = ClickHouse(Settings.from_env().clickhouse)
    await ch.start()
    project = args.project
    if project is None:
        rows = await ch.fetch("SELECT project_id FROM observations GROUP BY project_id ORDER BY count() DESC LIMIT 1")
        project = rows[0][0]
    ((rows, parts),) = await ch.fetch(
        "SELECT (SELECT count() FROM observations WHERE project_id = %(p)s), "
        "(SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'observations' AND active)",
        {"p": project},
    )
    print(f"project {project}: {rows} observation rows; {parts} active parts of observations")
    quoted = "'" + project.replace("\\", "\\\\").replace("'", "\\'") + "'"
    where = f"project_id = {quoted} AND id IN {IDS_TABLE}"
    await timed(ch, "SELECT 1", "SELECT 1", None, args.queries)
    for table in ("observations", "traces", "scores"):
        for n in (1, 200, 1000, 4000):
            absent = [f"absent-{i}" for i in range(n)]
            sql = f"SELECT DISTINCT id FROM {table} WHERE {where}"
            await timed(ch, f"load probe, {table}, {n} absent ids", sql, absent, args.queries)
    stored = [r[0] for r in await ch.fetch(f"SELECT id FROM observations WHERE project_id = {quoted} LIMIT 100000")]
    mixed = random.sample(stored, min(1000, len(stored))) + [f"absent-{i}" for i in range(1000)]
    sql = f"SELECT DISTINCT id FROM observations WHERE {where}"
    await timed(ch, "load probe, observations, 2000 ids, half stored", sql, mixed, args.queries)
    await timed(
        ch,
        "concurrent-writer probe, observations, 2000 ids, half stored",
        f"SELECT id FROM observations WHERE {where} GROUP BY id HAVING count() > 1",
        mixed,
        args.queries,
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--project", help="a project id (default: the one with the most observations)")
    p.add_argument("--queries", type=int, default=40)
    asyncio.run(main(p.parse_args()))
