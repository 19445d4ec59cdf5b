"""The observation journal's two periodic jobs in the ClickHouse worker (migration 0004): its
expiry, and the repair of observations whose concurrent writers missed each other.

A journal row matters only while a concurrent writer of the same observation may still be
between its read and its reconciliation (sinks/clickhouse/writer.py, _reconcile): seconds, or a
stall. Rows are partitioned by the hour their writer wrote them, and whole hours older than
`keep_hours` are dropped: DROP PARTITION removes parts at once, unlike a mutation, and 18.16
has no TTL. Idempotent (a dropped hour has no rows to find again), so every ClickHouse worker
runs it without a lock. It also bounds how long a deleted trace's copies outlive the purge.
"""

from __future__ import annotations

import time

from loguru import logger

from pipeline.errors import StoreError
from pipeline.periodic import Periodic
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.schema import JOURNAL, mutation_target
from sinks.clickhouse.writer import ClickHouseWriter

HOUR_US = 3_600_000_000
KEEP_HOURS = 2


class JournalExpiry(Periodic):
    name = "journal-expiry"

    def __init__(self, ch: ClickHouse, *, interval_s: float = 600.0, keep_hours: int = KEEP_HOURS) -> None:
        if interval_s <= 0 or keep_hours < 1:
            raise ValueError("journal expiry needs a positive interval and at least an hour kept")
        super().__init__(interval_s)
        self._ch = ch
        self._keep_hours = keep_hours

    async def turn(self) -> list[int]:
        return await self.run_once()

    def failed(self, exc: StoreError) -> None:
        logger.warning("expiring the observation journal failed", error=str(exc))

    async def run_once(self, *, now_us: int | None = None) -> list[int]:
        """Drop the hours older than those kept; return them."""
        now_us = time.time_ns() // 1000 if now_us is None else now_us
        before = (now_us // HOUR_US - self._keep_hours) * HOUR_US
        # The journal is small: reading its one column finds every hour on every shard.
        rows = await self._ch.fetch(
            f"SELECT DISTINCT intDiv(event_ts, {HOUR_US}) FROM {JOURNAL} WHERE event_ts < {before}",
            operation="journal_hours",
        )
        hours = sorted(int(h) for (h,) in rows)
        config = self._ch.config
        for hour in hours:
            await self._ch.execute_on_each_shard(
                f"ALTER TABLE {mutation_target(JOURNAL, config.database, config.cluster)} DROP PARTITION {hour}",
                operation="journal_drop_hour",
            )
        if hours:
            logger.info("observation journal expired", hours=len(hours))
        return hours


class JournalRepair(Periodic):
    """Every `interval_s`, ClickHouseWriter.repair over the copies journaled since the last turn
    and at least `settle_s` ago: by then every replica holds them, and the rows their writers
    raced with. The first turn looks `first_look_s` back, over a restart's gap. Every worker
    runs it (idempotent; two merges of the same rows are the same row)."""

    name = "journal-repair"

    def __init__(
        self,
        writer: ClickHouseWriter,
        *,
        interval_s: float = 5.0,
        settle_s: float = 10.0,
        first_look_s: float = 900.0,
    ) -> None:
        if interval_s <= 0 or settle_s < 0 or first_look_s < 0:
            raise ValueError("journal repair needs a positive interval and non-negative delays")
        super().__init__(interval_s)
        self._writer = writer
        self._settle_us = int(settle_s * 1e6)
        self._first_look_us = int(first_look_s * 1e6)
        self._since: int | None = None

    async def turn(self) -> int:
        return await self.run_once()

    def failed(self, exc: StoreError) -> None:
        logger.warning("repairing journaled observations failed", error=str(exc))

    async def run_once(self, *, now_us: int | None = None) -> int:
        now_us = time.time_ns() // 1000 if now_us is None else now_us
        until = now_us - self._settle_us
        since = until - self._first_look_us if self._since is None else self._since
        if until <= since:
            return 0
        written = await self._writer.repair(since, until)
        self._since = until  # only after success: a failed turn is looked at again
        if written:
            logger.info("journaled observations repaired", rows=written)
        return written
