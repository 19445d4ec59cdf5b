"""The trace_tombstones table (migration 0007): written by the edge, read by every stage.

The edge writes a trace's tombstone before it appends the `trace-delete` event, so the
tombstone exists before any stage can meet the deletion or anything after it; the stages
consume the log in separate groups at separate speeds, and a tombstone written by one of them
would leave the other free to fold a late event first. Both folds consult the tombstones
through `TombstoneCache`: the set of live ones in memory, refreshed at most every `refresh_s`
by reading only the newest, so the check costs a set lookup per event.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime

from sinks.postgres.client import Postgres

Key = tuple[str, str]  # project_id, trace_id

# Tombstones committed out of deleted_at order (a slow edge transaction) are still found: each
# refresh reads back this far before the newest one it already has.
_OVERLAP_S = 60.0


async def write_tombstones(pg: Postgres, project_id: str, trace_ids: Sequence[str], keep_s: float) -> None:
    """Tombstone `trace_ids` of one project (idempotent); they expire after `keep_s`."""
    if not trace_ids:
        return
    await pg.execute(
        "INSERT INTO trace_tombstones (project_id, trace_id, expires_at) "
        "SELECT %s, t, now() + make_interval(secs => %s) FROM unnest(%s::text[]) AS t "
        "ON CONFLICT (project_id, trace_id) DO UPDATE SET expires_at = GREATEST("
        "trace_tombstones.expires_at, EXCLUDED.expires_at)",
        (project_id, keep_s, sorted(set(trace_ids))),
        operation="pg_write_tombstones",
    )


async def expire_tombstones(pg: Postgres) -> int:
    return await pg.execute("DELETE FROM trace_tombstones WHERE expires_at < now()", operation="pg_expire_tombstones")


class TombstoneCache:
    """Live tombstones in memory; `refresh()` is called once per batch and reads when due."""

    def __init__(self, pg: Postgres, *, refresh_s: float = 1.0) -> None:
        self._pg = pg
        self._refresh_s = refresh_s
        self._keys: set[Key] = set()
        self._newest: datetime | None = None
        self._next = 0.0

    async def refresh(self, *, force: bool = False) -> None:
        if not force and time.monotonic() < self._next:
            return
        if self._newest is None:
            rows = await self._pg.fetch(
                "SELECT project_id, trace_id, deleted_at FROM trace_tombstones WHERE expires_at > now()",
                operation="pg_load_tombstones",
            )
        else:
            rows = await self._pg.fetch(
                "SELECT project_id, trace_id, deleted_at FROM trace_tombstones "
                "WHERE deleted_at > %s - make_interval(secs => %s)",
                (self._newest, _OVERLAP_S),
                operation="pg_refresh_tombstones",
            )
        for project_id, trace_id, deleted_at in rows:
            self._keys.add((project_id, trace_id))
            if self._newest is None or deleted_at > self._newest:
                self._newest = deleted_at
        # Set only after a successful read: a failed one is retried with the batch.
        self._next = time.monotonic() + self._refresh_s

    def deleted(self, project_id: str, trace_id: str) -> bool:
        return (project_id, trace_id) in self._keys

    def add(self, keys: Iterable[Key]) -> None:
        self._keys.update(keys)

    def __len__(self) -> int:
        return len(self._keys)
