"""Operating the dead letters: list what was dead-lettered, requeue it onto the events topic.

The `dead_letters` table is the searchable copy (pipeline/dead_letters.py writes it). A requeue
appends the stored envelope to the events topic under its usual key, so it lands in its trace's
partition and every stage reads it again; the stages are idempotent, so a stage that had
written the event already is not disturbed. An event that is still poison is dead-lettered anew.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from pipeline.envelope import Envelope, EnvelopeError
from sinks.postgres.client import Postgres

_COLUMNS = "id, created_at, stage, project_id, event_type, event_id, request_id, reason, requeued_at, payload"


@dataclass(frozen=True)
class StoredLetter:
    id: int
    created_at: datetime
    stage: str
    project_id: str
    event_type: str
    event_id: str
    request_id: str
    reason: str
    requeued_at: datetime | None
    payload: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "createdAt": self.created_at.isoformat(),
            "stage": self.stage,
            "projectId": self.project_id,
            "eventType": self.event_type,
            "eventId": self.event_id,
            "requestId": self.request_id,
            "reason": self.reason,
            "requeuedAt": self.requeued_at.isoformat() if self.requeued_at else None,
            "payload": self.payload,
        }


@dataclass(frozen=True)
class RequeueResult:
    requeued: list[int]  # dead-letter ids marked requeued
    sent: int  # records appended (one per distinct envelope)
    skipped: dict[int, str]  # id -> why it was not requeued


async def list_letters(pg: Postgres, *, project: str | None = None, limit: int = 50) -> list[StoredLetter]:
    """Newest first."""
    where, params = ("WHERE project_id = %s", [project]) if project else ("", [])
    rows = await pg.fetch(
        f"SELECT {_COLUMNS} FROM dead_letters {where} ORDER BY id DESC LIMIT %s",
        (*params, limit),
        operation="list_dead_letters",
    )
    return [StoredLetter(*r) for r in rows]


async def requeue(
    pg: Postgres,
    producer: AIOKafkaProducer,
    topic: str,
    *,
    ids: list[int] | None = None,
    project: str | None = None,
) -> RequeueResult:
    """Requeue the given letters (requeued or not), or with ids=None all not yet requeued.

    The records are acknowledged by the broker before the rows are marked, so a failure in
    between requeues again next time rather than never.
    """
    if ids is not None:
        rows = await pg.fetch(
            f"SELECT {_COLUMNS} FROM dead_letters WHERE id = ANY(%s) ORDER BY id", (list(ids),), operation="select_dead_letters"
        )
        missing = set(ids) - {r[0] for r in rows}
    else:
        where, params = ("AND project_id = %s", [project]) if project else ("", [])
        rows = await pg.fetch(
            f"SELECT {_COLUMNS} FROM dead_letters WHERE requeued_at IS NULL {where} ORDER BY id",
            tuple(params),
            operation="select_dead_letters",
        )
        missing = set()
    skipped = {i: "no such dead letter" for i in sorted(missing)}
    marked: list[int] = []
    # One envelope dead-lettered by several stages is stored once per stage; send it once.
    records: dict[bytes, bytes] = {}
    for letter in (StoredLetter(*r) for r in rows):
        try:
            env = Envelope.decode(orjson.dumps(letter.payload))
        except EnvelopeError as exc:
            skipped[letter.id] = f"not an envelope, cannot requeue: {exc}"
            continue
        records.setdefault(env.encode(), env.key())
        marked.append(letter.id)
    futures = [await producer.send(topic, value=value, key=key) for value, key in records.items()]
    for fut in futures:
        await fut
    if marked:
        await pg.execute(
            "UPDATE dead_letters SET requeued_at = now() WHERE id = ANY(%s)", (marked,), operation="mark_requeued"
        )
    return RequeueResult(requeued=marked, sent=len(records), skipped=skipped)
