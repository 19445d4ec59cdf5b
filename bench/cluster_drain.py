"""Consumer throughput on the local cluster (`make cluster-up`): how fast 1 or 2 workers per stage
fold a backlog into ClickHouse and Postgres.

    .venv/bin/python bench/cluster_drain.py --workers 1
    .venv/bin/python bench/cluster_drain.py --workers 2

Stops every worker of the cluster, fills a backlog through an api with bench/load.py, starts
`--workers` workers per stage (together, until ready), and times each stage
from the moment all are ready to its last row: rows per second of the stage alone, not bounded
by what a load generator on the same cores can offer.
Leaves the cluster with 2 workers per stage, as `make cluster-up` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agenttrace.settings import Settings  # noqa: E402
from sinks.clickhouse.client import ClickHouse  # noqa: E402
from sinks.postgres.client import Postgres  # noqa: E402
from tests.cluster.conftest import cluster, cluster_env  # noqa: E402

LOAD = ("--concurrency", "16", "--bodies", "4000")
STAGES = {"clickhouse": ("worker_ch_1", "worker_ch_2"), "postgres": ("worker_pg_1", "worker_pg_2")}


async def clickhouse_rows(ch: ClickHouse, project: str) -> int:
    rows = await ch.fetch("SELECT count() FROM observations WHERE project_id = %(p)s", {"p": project})
    return int(rows[0][0])


async def postgres_rows(pg: Postgres, project: str) -> int:
    rows = await pg.fetch("SELECT coalesce(sum(observations), 0) FROM usage_daily WHERE project_id = %s", (project,))
    return int(rows[0][0])


async def watch(count, expected: int, timeout_s: float) -> list[tuple[float, int]]:  # type: ignore[no-untyped-def]
    """(time, rows) samples until every expected row is there (or the timeout)."""
    samples = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = await count()
        samples.append((time.monotonic(), n))
        if n >= expected:
            break
        await asyncio.sleep(0.25)
    return samples


def rate(samples: list[tuple[float, int]], since: float) -> dict:
    """Rows per second from `since` (every worker ready) to the last change."""
    start = [(t, n) for t, n in samples if t <= since][-1:] or samples[:1]
    t0, n0 = start[0]
    changed = [(t, n) for t, n in samples if n != n0 and t > t0]
    if not changed:
        return {"rows": samples[-1][1], "rows_per_s": None, "note": "drained before every worker was ready"}
    t1, n1 = changed[-1]
    return {
        "rows": n1,
        "rows_after_ready": n1 - n0,
        "seconds": round(t1 - t0, 1),
        "rows_per_s": round((n1 - n0) / (t1 - t0)),
    }


async def main(args: argparse.Namespace) -> dict:
    env = cluster_env()
    settings = Settings.from_env(env)
    for names in STAGES.values():
        for name in names:
            await cluster("stop", name)
    load = subprocess.run(  # noqa: ASYNC221 - nothing else runs meanwhile
        [sys.executable, str(ROOT / "bench" / "load.py"), "--url", args.url, "--seconds", str(args.seconds), *LOAD],
        env={**env, "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        text=True,
    )
    filled = orjson.loads(load.stdout.strip().splitlines()[-1])
    project = filled["project_id"]
    # Bodies are reused when the run sends more than it prepared; count distinct generations.
    expected = min(filled["events"], 4000 * 100) // 100 * 99
    ch = ClickHouse(settings.clickhouse)
    await ch.start()
    pg = Postgres(settings.postgres)
    await pg.start()
    try:
        watchers = asyncio.gather(
            watch(lambda: clickhouse_rows(ch, project), expected, 600),
            watch(lambda: postgres_rows(pg, project), expected, 600),
        )
        await cluster("start", *(name for stage in STAGES.values() for name in stage[: args.workers]))
        ready = time.monotonic()
        ch_samples, pg_samples = await watchers
        ch_figures, pg_figures = rate(ch_samples, ready), rate(pg_samples, ready)
    finally:
        await ch.close()
        await pg.close()
        await cluster("start", *(name for stage in STAGES.values() for name in stage))
    return {
        "workers_per_stage": args.workers,
        "backlog_events": filled["events"],
        "backlog_filled_events_per_s": filled["events_per_s"],
        "expected_generations": expected,
        "clickhouse": ch_figures,
        "postgres": pg_figures,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:29080")
    p.add_argument("--workers", type=int, choices=(1, 2), default=2)
    p.add_argument("--seconds", type=float, default=15, help="seconds of load that fill the backlog")
    print(orjson.dumps(asyncio.run(main(p.parse_args()))).decode())
