"""Per-project retention: a periodic job of the ClickHouse worker.

For every project with `retention_days`, rows older than the window go: traces and scores by
`timestamp`, observations by `start_time` (the partition keys), with one
`ALTER TABLE ... DELETE WHERE project_id = ... AND <time> < cutoff` mutation per table and
project (the observations' also on their index by trace), issued only when a count finds such
rows (a mutation rewrites parts, on 18.16 all of the table's). Whole partitions are not
dropped: they are monthly for all projects together (`PARTITION BY toYYYYMM(timestamp)`,
sinks/clickhouse/migrations/0001), so one could go only once every project in it has expired.
Postgres' trace_states of traces last seen before the cutoff are deleted too, and media named only
by links older than it (sinks/postgres/media.py); sessions, users
and usage_daily keep their aggregates. In a cluster the mutations go to the replicated local
tables, on one replica of each shard (schema.mutation_target). One worker at a time (a Postgres
advisory lock).
The last run is reported in the worker's /health.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from loguru import logger

from pipeline.errors import StoreError
from pipeline.periodic import Periodic
from pipeline.times import column_of_micros
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.schema import BY_TRACE, Dialect, mutation_target
from sinks.metrics import RETENTION_ROWS_DELETED
from sinks.postgres.client import Postgres
from sinks.postgres.media import forget_links
from sinks.postgres.retention import retention_policies

RETENTION_LOCK = 7263
TABLES = (("traces", "timestamp"), ("observations", "start_time"), ("scores", "timestamp"))
# Tables whose rows go with a projection's, by the same condition: the index of observations by
# trace (migration 0005) holds each observation's start_time for this.
COMPANIONS = {"observations": (BY_TRACE,)}


@dataclass(frozen=True)
class RetentionConfig:
    interval_s: float = 3600.0

    def validate(self) -> None:
        if self.interval_s <= 0:
            raise ValueError("retention interval must be positive")


class RetentionJob(Periodic):
    name = "retention"

    def __init__(self, pg: Postgres, ch: ClickHouse, dialect: Dialect, config: RetentionConfig) -> None:
        config.validate()
        super().__init__(config.interval_s)
        self._pg, self._ch, self._dialect, self._config = pg, ch, dialect, config
        self.last_run: dict[str, object] = {"status": "not run yet"}

    def report(self) -> dict[str, object]:
        return self.last_run

    async def turn(self) -> dict[str, int] | None:
        return await self.run_once()

    def failed(self, exc: StoreError) -> None:
        logger.warning("retention run failed", error=str(exc))
        self.last_run = {"status": "failed", "at": _now(), "error": str(exc)[:300]}

    async def run_once(self, *, now_us: int | None = None) -> dict[str, int] | None:
        """One run: rows removed by table, or None when another worker holds the lock."""
        now_us = time.time_ns() // 1000 if now_us is None else now_us
        removed = {table: 0 for table, _ in TABLES} | {"trace_states": 0, "media": 0}
        async with self._pg.transaction(operation="pg_retention") as tx:
            ((locked,),) = await tx.fetch("SELECT pg_try_advisory_xact_lock(%s)", (RETENTION_LOCK,))
            if not locked:
                return None
            for project, days in await retention_policies(self._pg):
                cutoff = now_us - days * 86_400_000_000
                for table, column in TABLES:
                    where = f"project_id = {_quote(project)} AND {column} < {self._time(cutoff)}"
                    ((n,),) = await self._ch.fetch(
                        f"SELECT count() FROM {table} WHERE {where}", operation=f"retention_count_{table}"
                    )
                    if n:
                        for target in (table, *COMPANIONS.get(table, ())):
                            await self._ch.execute_on_each_shard(
                                self._delete(target, where), operation=f"retention_{target}"
                            )
                        removed[table] += int(n)
                removed["trace_states"] += await tx.execute(
                    "DELETE FROM trace_states WHERE project_id = %s AND last_seen < %s",
                    (project, cutoff),
                    operation="pg_retention_trace_states",
                )
                # Media named only by links older than the window (their traces went above).
                removed["media"] += await forget_links(tx, project, "created_at < to_timestamp(%s / 1e6)", (cutoff,))
        for table, n in removed.items():
            RETENTION_ROWS_DELETED.labels(table).inc(n)
        self.last_run = {"status": "ok", "at": _now(), "rows_deleted": removed}
        logger.info("retention run", **{f"{t}_deleted": n for t, n in removed.items()})
        return removed

    def _delete(self, table: str, where: str) -> str:
        config = self._ch.config
        return retention_statement(table, where, config.database, config.cluster)

    def _time(self, us: int) -> str:
        if self._dialect.subsecond_type:
            text = column_of_micros(us, True).strftime("%Y-%m-%d %H:%M:%S.%f")
            return f"toDateTime64('{text}', 6, 'UTC')"
        return str(us)


def retention_statement(table: str, where: str, database: str, cluster: str = "") -> str:
    """The mutation removing a table's expired rows; in a cluster from each shard's replicated
    local table (schema.mutation_target). The count before it reads the Distributed table."""
    return f"ALTER TABLE {mutation_target(table, database, cluster)} DELETE WHERE {where}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"
