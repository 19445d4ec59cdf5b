"""The trace_tombstones and score_tombstones tables (migrations 0007, 0010): written by the
edge, read by every stage.

The edge writes a trace's tombstone before it appends the `trace-delete` event, so the
tombstone exists before any stage can meet the deletion or anything after it; the stages
consume the log in separate groups at separate speeds, and a tombstone written by one of them
would leave the other free to fold a late event first. Both folds consult the tombstones
through `TombstoneCache`: the set of live ones in memory, refreshed at most every `refresh_s`
by reading only those committed since, so the check costs a set lookup per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from loguru import logger

from sinks.postgres.client import Postgres

Key = tuple[str, str]  # project_id, trace_id

# Tombstones committed out of deleted_at order (a slow transaction) are still found: each
# refresh reads back this far before the previous read (a tombstone's transaction, an edge's
# INSERT or a Postgres-stage batch, commits well within it).
_OVERLAP_S = 60.0
# Refresh periods without a successful read after which a batch waits for one.
_STALE_READS = 5


async def write_tombstones(pg: Postgres, project_id: str, trace_ids: Sequence[str], keep_s: float) -> None:
    """Tombstone `trace_ids` of one project (idempotent); they expire after `keep_s`."""
    await _write(pg, "trace", project_id, trace_ids, keep_s)


async def write_score_tombstones(pg: Postgres, project_id: str, score_ids: Sequence[str], keep_s: float) -> None:
    """Tombstone `score_ids` of one project (idempotent); they expire after `keep_s`."""
    await _write(pg, "score", project_id, score_ids, keep_s)


async def _write(pg: Postgres, kind: str, project_id: str, ids: Sequence[str], keep_s: float) -> None:
    if not ids:
        return
    table = f"{kind}_tombstones"
    await pg.execute(
        f"INSERT INTO {table} (project_id, {kind}_id, expires_at) "
        "SELECT %s, i, now() + make_interval(secs => %s) FROM unnest(%s::text[]) AS i "
        f"ON CONFLICT (project_id, {kind}_id) DO UPDATE SET expires_at = GREATEST("
        f"{table}.expires_at, EXCLUDED.expires_at)",
        (project_id, keep_s, sorted(set(ids))),
        operation=f"pg_write_{kind}_tombstones",
    )


async def expire_tombstones(pg: Postgres) -> int:
    gone = 0
    for table in ("trace_tombstones", "score_tombstones"):
        gone += await pg.execute(f"DELETE FROM {table} WHERE expires_at < now()", operation="pg_expire_tombstones")
    return gone


class TombstoneCache:
    """Live tombstones in memory; `refresh()` is called once per batch and reads when due.

    A refresh reads only what the previous one could not see. Rows are found by their
    `deleted_at` (indexed) within `_OVERLAP_S` before the previous read, which covers a
    tombstone committed late (its deleted_at is its transaction's start), and among those only
    the rows whose writing transaction is not older than the previous read's snapshot
    (`xmin`): every older one was visible to that read and is known. So a burst of deletions
    is transferred once, not once a second for a minute, and a quiet table costs one
    round trip returning nothing (bench/tombstone_cpu.py).

    Held as one set of trace ids per project, and read as one row per project (an array of its
    ids) beside one row for the snapshot: 226k tombstones held as (project, trace) pairs, read
    a row each, cost a worker ~100 MB and 0.3 s of CPU at start (bench/README.md, "The tombstone cache's
    load").
    """

    def __init__(self, pg: Postgres, *, refresh_s: float = 1.0) -> None:
        self._pg = pg
        self._refresh_s = refresh_s
        self._traces: dict[str, set[str]] = {}
        self._scores: dict[str, set[str]] = {}
        self._learned: list[Key] = []
        # The previous read: its transaction's time and its snapshot's oldest running xid.
        self._read_at: datetime | None = None
        self._snapshot_xmin = ""
        self._next = 0.0
        self._last_ok = 0.0
        self._task: asyncio.Future[None] | None = None

    async def refresh(self, *, force: bool = False) -> None:
        """A due read runs beside the batch: awaited, its round trip to a Postgres busy with the
        other stage held every batch up once a second, 7.8% end to end (bench/README.md). The
        batch waits for the first read, a forced one, and any read once none has succeeded for
        `_STALE_READS` periods, so a failing Postgres stops the stage rather than its check."""
        now = time.monotonic()
        if not force and self._read_at is not None and now - self._last_ok < _STALE_READS * self._refresh_s:
            if now >= self._next and (self._task is None or self._task.done()):
                self._next = now + self._refresh_s
                self._task = asyncio.ensure_future(self._read())
                self._task.add_done_callback(_report)
            return
        if self._task is not None and not self._task.done():
            with contextlib.suppress(Exception):
                await self._task
        await self._read()

    async def _read(self) -> None:
        # One statement, so one snapshot for its xmin and for the rows it finds.
        args: tuple[object, ...] = ()
        if self._read_at is None:
            where = "expires_at > now()"
            operation = "pg_load_tombstones"
        else:
            # age() compares xids modulo wraparound: a row at least as young as the xmin.
            where = "deleted_at > %s AND age(xmin) <= age(%s::text::xid)"
            args = (self._read_at - timedelta(seconds=_OVERLAP_S), self._snapshot_xmin)
            operation = "pg_refresh_tombstones"
        rows = await self._pg.fetch(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text, now(), NULL, NULL, NULL UNION ALL "
            f"SELECT NULL, NULL, 't', project_id, array_agg(trace_id) FROM trace_tombstones WHERE {where} "
            "GROUP BY project_id UNION ALL "
            f"SELECT NULL, NULL, 's', project_id, array_agg(score_id) FROM score_tombstones WHERE {where} "
            "GROUP BY project_id",
            args + args,
            operation=operation,
        )
        for xmin, at, kind, project_id, ids in rows:
            if project_id is None:
                snapshot_xmin, read_at = xmin, at
            elif kind == "t":
                self._traces.setdefault(project_id, set()).update(ids)
            else:
                known = self._scores.setdefault(project_id, set())
                # Not at the first read: this process has folded nothing before it.
                if self._read_at is not None:
                    self._learned.extend((project_id, s) for s in ids if s not in known)
                known.update(ids)
        self._read_at = read_at
        self._snapshot_xmin = str(int(snapshot_xmin) % 2**32)  # a 64-bit xid8 as the rows' 32-bit xid
        # Set only after a successful read: a failed one is retried with the next batch.
        self._last_ok = time.monotonic()
        self._next = self._last_ok + self._refresh_s

    def deleted(self, project_id: str, trace_id: str) -> bool:
        traces = self._traces.get(project_id)
        return traces is not None and trace_id in traces

    def add(self, keys: Iterable[Key]) -> None:
        for project_id, trace_id in keys:
            self._traces.setdefault(project_id, set()).add(trace_id)

    def score_deleted(self, project_id: str, score_id: str) -> bool:
        scores = self._scores.get(project_id)
        return scores is not None and score_id in scores

    def add_scores(self, keys: Iterable[Key]) -> None:
        for project_id, score_id in keys:
            self._scores.setdefault(project_id, set()).add(score_id)

    def learned_scores(self) -> list[Key]:
        return self._learned

    def __len__(self) -> int:
        return sum(len(ids) for kinds in (self._traces, self._scores) for ids in kinds.values())


def _report(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("refreshing tombstones failed; retried", error=str(task.exception()))
