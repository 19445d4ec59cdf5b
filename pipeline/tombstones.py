"""Deleted traces and scores, as the folds see them: the deletion events and the tombstone check.

A deletion is an event in the log like any other (`trace-delete`, body `{"traceId": ...}`,
keyed by project:trace so it lands in the trace's partition, after the trace's own events;
`score-delete`, body `{"id": ..., "traceId"?: ...}`, keyed as the score's own events when the
edge found its trace). Every stage folds it, and every stage skips the events of a tombstoned
trace or score, whenever they come: a late span, a client's retry, a replay, a requeued dead
letter, a redelivery. The tombstones themselves live in Postgres
(sinks/postgres/tombstones.py); a sink is handed a `Tombstones` and asks it once per batch
(`refresh`, cheap unless due) and per event (`deleted`, a set lookup).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, NamedTuple, Protocol

from pipeline.envelope import Envelope

TRACE_DELETE: Final = "trace-delete"
SCORE_DELETE: Final = "score-delete"
SCORE_CREATE: Final = "score-create"

Key = tuple[str, str]  # project_id, trace_id (or score id)


class Tombstones(Protocol):
    async def refresh(self, *, force: bool = False) -> None:
        """Bring the known tombstones up to date when due (or `force`d); a no-op otherwise."""

    def deleted(self, project_id: str, trace_id: str) -> bool: ...

    def add(self, keys: Iterable[Key]) -> None:
        """Tombstones this process has just folded the deletion of (before the store says so)."""

    def score_deleted(self, project_id: str, score_id: str) -> bool: ...

    def add_scores(self, keys: Iterable[Key]) -> None: ...

    def learned_scores(self) -> list[Key]:
        """Score tombstones read from the store that this process had not folded itself: the
        caller marks those scores deleted too, and empties the list once it has. A score's
        events may be keyed to another partition than its deletion, so another process may
        have folded one just before its tombstone reached this one (`refresh` lags by up to
        its period)."""
        ...


class KnownTombstones:
    """In-memory sets; what tests and a sink without Postgres are handed."""

    def __init__(self, keys: Iterable[Key] = (), scores: Iterable[Key] = ()) -> None:
        self.keys: set[Key] = set(keys)
        self.scores: set[Key] = set(scores)
        self.learned: list[Key] = []

    async def refresh(self, *, force: bool = False) -> None:
        return None

    def deleted(self, project_id: str, trace_id: str) -> bool:
        return (project_id, trace_id) in self.keys

    def add(self, keys: Iterable[Key]) -> None:
        self.keys.update(keys)

    def score_deleted(self, project_id: str, score_id: str) -> bool:
        return (project_id, score_id) in self.scores

    def add_scores(self, keys: Iterable[Key]) -> None:
        self.scores.update(keys)

    def learned_scores(self) -> list[Key]:
        return self.learned


class Deletions(NamedTuple):
    """What a batch deletes, in order, once each: (project, trace) and (project, score id)."""

    traces: list[Key]
    scores: list[Key]


def trace_of(env: Envelope) -> str | None:
    """The trace an event belongs to, as far as the event itself says."""
    found = env.body.get("id") if env.type == "trace-create" else env.body.get("traceId")
    return str(found) if found else None


def split_deletions(envelopes: list[Envelope], tombstones: Tombstones) -> tuple[list[Envelope], Deletions]:
    """The events to fold, and the traces and scores this batch deletes.

    An event of a trace deleted before it (a tombstone, or a deletion in this batch) is left
    out, whatever its position in the batch: what precedes a deletion is erased by it anyway;
    so is a score's event when the score is deleted. Two passes of dict and set lookups: 0.43 µs
    per event with 100,000 tombstones, against ~70 µs per event for a ClickHouse stage's whole
    fold (under 1%).
    """
    deleting: dict[Key, None] = {}
    scores: dict[Key, None] = {}
    for env in envelopes:
        if env.type == TRACE_DELETE:
            trace = trace_of(env)
            if trace:
                deleting[(env.project_id, trace)] = None
        elif env.type == SCORE_DELETE:
            score = env.body.get("id")
            if score:
                scores[(env.project_id, str(score))] = None
    kept = []
    for env in envelopes:
        etype = env.type
        if etype in (TRACE_DELETE, SCORE_DELETE):
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
        if etype == SCORE_CREATE:
            score = env.body.get("id")
            if score:
                key = (env.project_id, str(score))
                if key in scores or tombstones.score_deleted(*key):
                    continue
        kept.append(env)
    return kept, Deletions(list(deleting), list(scores))
