"""Readiness of the stores' schemas: code newer than its schema does not call itself ready.

Without this, a process started before `agenttrace migrate` ran looked ready while every write
failed (retried, so nothing was lost, but nothing was written either and no probe said why).
"""

from __future__ import annotations

from sinks.clickhouse import schema as clickhouse_schema
from sinks.clickhouse.client import ClickHouse
from sinks.postgres import schema as postgres_schema
from sinks.postgres.client import Postgres


class SchemaBehind(Exception):
    """A store lacks migrations this code needs."""


class SchemaCheck:
    """A health probe: raises SchemaBehind naming the missing migrations. Once the schemas are
    current it stops asking, since a migrated schema does not go back."""

    def __init__(self, pg: Postgres, ch: ClickHouse | None = None) -> None:
        self._pg = pg
        # In a cluster each server keeps its own record of applied versions (the migrator's
        # server has them all, others may not), so only Postgres is asked there.
        self._ch = ch if ch is not None and not ch.config.cluster else None
        self._current = False

    async def __call__(self) -> None:
        if self._current:
            return
        missing = []
        if pg_pending := await postgres_schema.pending(self._pg):
            missing.append(f"postgres {pg_pending}")
        ch_pending = await clickhouse_schema.pending(self._ch.fetch, self._ch.config.database) if self._ch else []
        if ch_pending:
            missing.append(f"clickhouse {ch_pending}")
        if missing:
            raise SchemaBehind(f"migrations not applied: {'; '.join(missing)}; run `agenttrace migrate`")
        self._current = True
