"""Expiry of the observation journal (migration 0004): a periodic job of the ClickHouse worker.

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
            await self._ch.execute(
                f"ALTER TABLE {mutation_target(JOURNAL, config.database, config.cluster)} DROP PARTITION {hour}",
                operation="journal_drop_hour",
            )
        if hours:
            logger.info("observation journal expired", hours=len(hours))
        return hours
