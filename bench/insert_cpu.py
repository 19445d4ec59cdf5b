"""CPU per row of the ClickHouse stage's observation inserts: asynch's block writer against
`sinks/clickhouse/native.py`, alternating, on the stack's ClickHouse.

    .venv/bin/python bench/insert_cpu.py [--rounds 9] [--batch 1000]

The rows are `bench/worker_cpu.py`'s folded generations (400-byte prompts, gpt-4o-mini usage),
inserted in batches of `--batch` into a scratch copy of `observations` (database
`bench_insert`, dropped afterwards) through `ClickHouse.insert` (native) and through asynch's
own `cursor.execute(sql, rows)` (asynch). Prints, per way, the median over the rounds of this
process's CPU and of clickhouse-server's (/proc, 10 ms ticks: nothing else should run) per row.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agenttrace.settings import Settings
from bench.probe_cost import server_cpu_s
from bench.worker_cpu import BOOK, fold, workloads
from pipeline.envelope import Envelope
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.schema import dialect_for
from sinks.clickhouse.writer import COLUMNS, OBSERVATION, ClickHouseWriter

DATABASE = "bench_insert"


def observation_rows(count: int) -> list[tuple]:
    envelopes = [Envelope.decode(r) for r in workloads()["create"]]
    states = [s for (table, _), s in fold(envelopes).items() if table == OBSERVATION]
    writer = ClickHouseWriter(object(), dialect_for((18, 16, 1)), prices=lambda: BOOK)  # type: ignore[arg-type]
    rows = list(writer._rows(OBSERVATION, states))
    return (rows * (count // len(rows) + 1))[:count]


async def main(args: argparse.Namespace) -> None:
    config = Settings.from_env().clickhouse
    admin = ClickHouse(config)
    await admin.start()
    await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    await admin.execute(f"CREATE DATABASE {DATABASE}")
    await admin.execute(f"CREATE TABLE {DATABASE}.obs AS {config.database}.observations")
    ch = ClickHouse(config, database=DATABASE)
    await ch.start()
    cols = COLUMNS[OBSERVATION]
    rows = observation_rows(args.rows)
    sql = f"INSERT INTO {DATABASE}.obs ({', '.join(cols)}) VALUES"

    async def native() -> None:
        for i in range(0, len(rows), args.batch):
            await ch.insert("obs", cols, rows[i : i + args.batch])

    async def through_asynch() -> None:
        for i in range(0, len(rows), args.batch):
            async with ch._connection() as conn, conn.cursor() as cur:
                await cur.execute(sql, rows[i : i + args.batch])

    ways = {"native": native, "asynch": through_asynch}
    client: dict[str, list[float]] = {w: [] for w in ways}
    server: dict[str, list[float]] = {w: [] for w in ways}
    try:
        for _ in range(args.rounds):
            for name, way in ways.items():
                gc.collect()
                await asyncio.sleep(0.5)  # the previous inserts' server work settles
                s0, c0 = server_cpu_s(), time.process_time()
                await way()
                c1 = time.process_time()
                await asyncio.sleep(0.3)
                s1 = server_cpu_s()
                client[name].append((c1 - c0) / len(rows) * 1e6)
                server[name].append((s1 - s0) / len(rows) * 1e6)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        await ch.close()
        await admin.close()
    print(f"{len(rows)} observation rows a round in batches of {args.batch}, {args.rounds} rounds; µs CPU per row")
    for name in ways:
        print(
            f"{name:7} client {statistics.median(client[name]):5.2f} ({min(client[name]):.2f}-{max(client[name]):.2f})"
            f"   clickhouse-server {statistics.median(server[name]):5.2f}"
            f" ({min(server[name]):.2f}-{max(server[name]):.2f})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=12_000)
    asyncio.run(main(parser.parse_args()))
