"""Physical removal of deleted traces (and scores) from ClickHouse: a periodic job of the
ClickHouse worker.

Folding a deletion hides a trace at once (rows with is_deleted = 1, sinks/clickhouse/writer.py);
this job then removes every row of it, the hidden copies included, with one mutation per table
(`ALTER TABLE ... DELETE WHERE (project_id, id) IN (...)`), which 18.16 and current ClickHouse
both run. A mutation rewrites parts in the background (on 18.16 every part of the table, which
on a shared machine with 9.5M observations was felt at one per minute), so the job waits until
tombstones are `after_s` old, runs every `interval_s` (10 minutes) and takes up to
`max_traces` of them per turn: one mutation per table per turn, whatever the number of
deletions, and none when nothing is due. Lightweight `DELETE FROM` would be cheaper
but does not exist on 18.16. In a cluster the mutations go to the replicated local tables, on
one replica of each shard (schema.mutation_target): the Distributed tables hold no rows. One
worker at a time (a Postgres advisory lock): the others skip their turn. A trace's rows are gone within about
after_s + interval_s + the mutation's run. Deleted scores (score_tombstones) go the same way,
by a second mutation of `scores` in the same turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger

from pipeline.errors import StoreError
from pipeline.periodic import Periodic
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.schema import BY_TRACE, mutation_target
from sinks.metrics import CLICKHOUSE_PURGED_SCORES, CLICKHOUSE_PURGED_TRACES
from sinks.postgres.client import Postgres
from sinks.postgres.tombstones import expire_tombstones

# pg_advisory_xact_lock keys: 7261 is the migrations'.
PURGE_LOCK = 7262
# Keeps one mutation's text far below ClickHouse's max_query_size (256 KiB).
MAX_QUERY_CHARS = 200_000


@dataclass(frozen=True)
class PurgeConfig:
    interval_s: float = 600.0
    after_s: float = 300.0
    max_traces: int = 2_000

    def validate(self) -> None:
        if self.interval_s <= 0 or self.after_s < 0 or self.max_traces < 1:
            raise ValueError("purge interval must be positive, its delay not negative, max_traces at least 1")


class TombstonePurge(Periodic):
    name = "tombstone-purge"

    def __init__(self, pg: Postgres, ch: ClickHouse, config: PurgeConfig) -> None:
        config.validate()
        super().__init__(config.interval_s)
        self._pg = pg
        self._ch = ch
        self._config = config

    async def turn(self) -> int:
        return await self.run_once()

    def failed(self, exc: StoreError) -> None:
        logger.warning("purging deleted traces failed", error=str(exc))

    async def run_once(self) -> int:
        """One turn: the traces and scores purged (0 when another worker holds the lock)."""
        async with self._pg.transaction(operation="pg_purge") as tx:
            ((locked,),) = await tx.fetch("SELECT pg_try_advisory_xact_lock(%s)", (PURGE_LOCK,))
            if not locked:
                return 0
            config = self._ch.config
            traces = await self._purge(
                tx, "trace", lambda listed: purge_statements(listed, config.database, config.cluster)
            )
            if traces:
                CLICKHOUSE_PURGED_TRACES.inc(traces)
                logger.info("deleted traces purged from ClickHouse", traces=traces)
            target = mutation_target("scores", config.database, config.cluster)
            scores = await self._purge(
                tx,
                "score",
                lambda listed: [("scores_by_id", f"ALTER TABLE {target} DELETE WHERE (project_id, id) IN ({listed})")],
            )
            if scores:
                CLICKHOUSE_PURGED_SCORES.inc(scores)
                logger.info("deleted scores purged from ClickHouse", scores=scores)
        await expire_tombstones(self._pg)
        return traces + scores

    async def _purge(self, tx: Any, kind: str, statements: Callable[[str], list[tuple[str, str]]]) -> int:
        """Run the mutations `statements` makes of the due `kind` tombstones ("(project, id),
        ...") and mark those purged; how many."""
        table, column = f"{kind}_tombstones", f"{kind}_id"
        rows = await tx.fetch(
            f"SELECT project_id, {column} FROM {table} WHERE purged_at IS NULL "
            "AND deleted_at < now() - make_interval(secs => %s) ORDER BY deleted_at LIMIT %s",
            (self._config.after_s, self._config.max_traces),
            operation=f"pg_purge_select_{kind}",
        )
        keys, size = [], 0
        for project, id_ in rows:
            pair = f"({_quote(project)}, {_quote(id_)})"
            if size + len(pair) > MAX_QUERY_CHARS:
                break
            keys.append((project, id_, pair))
            size += len(pair) + 2
        if not keys:
            return 0
        for name, sql in statements(", ".join(pair for _, _, pair in keys)):
            await self._ch.execute_on_each_shard(sql, operation=f"purge_{name}")
        await tx.execute(
            f"UPDATE {table} SET purged_at = now() WHERE (project_id, {column}) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[]))",
            ([k[0] for k in keys], [k[1] for k in keys]),
            operation=f"pg_purge_mark_{kind}",
        )
        return len(keys)


def purge_statements(listed: str, database: str, cluster: str = "") -> list[tuple[str, str]]:
    """(table, mutation) removing the traces `listed` ("(project, trace), ...") from each
    projection and from the index of observations by trace; in a cluster from each shard's
    replicated local table (schema.mutation_target)."""
    statements = []
    tables = (("traces", "id"), ("observations", "trace_id"), ("scores", "trace_id"), (BY_TRACE, "trace_id"))
    for table, column in tables:
        target = mutation_target(table, database, cluster)
        statements.append((table, f"ALTER TABLE {target} DELETE WHERE (project_id, {column}) IN ({listed})"))
    return statements


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"
