"""The dead-letter path: events no retry can write, kept where they can be found and requeued.

A dead letter goes to a Kafka topic first (the replayable copy, exact bytes) and then to a
store for people (`DeadLetterStore`, the Postgres `dead_letters` table), which the CLI lists.
A requeue appends the stored envelope to the events topic under its usual key, so it lands in
its trace's partition and every stage reads it again; the stages are idempotent, so a stage
that had written the event already is not disturbed, and one that still refuses it
dead-letters it anew.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from loguru import logger

from pipeline.envelope import Envelope, decode_record
from pipeline.errors import EnvelopeError, StoreError
from pipeline.metrics import DEAD_LETTERS


def reason_kind(reason: str) -> str:
    """The metric's reason (DEAD_LETTER_REASONS) for a sink's poison reason: the words come from
    the PoisonEvent messages of pipeline/fold.py and sinks/postgres/rollup.py."""
    if "timestamp" in reason or "time out of range" in reason:
        return "bad_time"
    if "out of range" in reason or "longer than" in reason:
        return "out_of_range"
    return "other"


@dataclass(frozen=True)
class DeadLetter:
    stage: str
    reason: str
    payload: bytes
    key: bytes | None
    event_id: str = ""
    project_id: str = ""
    event_type: str = ""
    request_id: str = ""
    kind: str = "other"  # the dead_letters_total reason

    @classmethod
    def of_record(cls, rec: ConsumerRecord[bytes, bytes], reason: str, stage: str) -> DeadLetter:
        return cls(stage, reason, rec.value or b"", rec.key, kind="undecodable")

    @classmethod
    def of_envelope(cls, env: Envelope, reason: str, stage: str, kind: str = "other") -> DeadLetter:
        return cls(stage, reason, env.encode(), env.key(), env.id, env.project_id, env.type, env.request_id, kind)


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


class DeadLetterStore(Protocol):
    async def record(self, letters: list[DeadLetter]) -> None:
        """Keep the letters for people; StoreError (permanent or not) when it cannot."""

    async def newest(self, *, project: str | None, limit: int) -> list[StoredLetter]: ...

    async def by_id(self, ids: list[int]) -> list[StoredLetter]: ...

    async def not_requeued(self, *, project: str | None) -> list[StoredLetter]: ...

    async def mark_requeued(self, ids: list[int]) -> None: ...


class DeadLetters:
    def __init__(self, producer: AIOKafkaProducer, topic: str, store: DeadLetterStore) -> None:
        self._producer = producer
        self._topic = topic
        self._store = store

    async def put(self, letters: list[DeadLetter]) -> None:
        """Durable in Kafka first (the replayable copy), then recorded in the store for people."""
        futures = [
            await self._producer.send(
                self._topic,
                value=d.payload,
                key=d.key,
                headers=[("reason", d.reason.encode()[:1000]), ("stage", d.stage.encode())],
            )
            for d in letters
        ]
        for fut in futures:
            await fut
        try:
            await self._store.record(letters)
        except StoreError as exc:
            if not exc.permanent:
                raise  # the stage retries the whole put
            # Refused for good: the Kafka copy above is the durable one; never loop on it.
            logger.error(
                "dead letters not recorded in the store; they are on the topic",
                topic=self._topic,
                count=len(letters),
                error=str(exc),
            )
        for d in letters:
            DEAD_LETTERS.labels(d.stage, d.kind).inc()
            logger.warning(
                "event dead-lettered",
                stage=d.stage,
                event_id=d.event_id,
                project_id=d.project_id,
                reason=d.reason,
                request_id=d.request_id,
            )


@dataclass(frozen=True)
class RequeueResult:
    requeued: list[int]  # dead-letter ids marked requeued
    sent: int  # records appended (one per distinct envelope)
    skipped: dict[int, str]  # id -> why it was not requeued


def _envelopes_of(payload: Any) -> list[Envelope]:
    """A letter's events: its envelope, or those of a record a stage could not read, stored as
    its text (sinks/postgres/dead_letters.py). The edge writes only records its stages read, so
    such a record is usually a newer edge's, read by a stage not yet upgraded: requeued once the
    stage reads it, each of its events alone."""
    raw = payload.get("raw") if type(payload) is dict and len(payload) == 1 else None
    if type(raw) is str:
        return decode_record(raw.encode())
    return [Envelope.decode(orjson.dumps(payload))]


async def requeue(
    store: DeadLetterStore,
    producer: AIOKafkaProducer,
    topic: str,
    *,
    ids: list[int] | None = None,
    project: str | None = None,
) -> RequeueResult:
    """Requeue the given letters (requeued or not), or with ids=None all not yet requeued.

    The records are acknowledged by the broker before the letters are marked, so a failure in
    between requeues again next time rather than never.
    """
    if ids is not None:
        letters = await store.by_id(list(ids))
        missing = set(ids) - {letter.id for letter in letters}
    else:
        letters = await store.not_requeued(project=project)
        missing = set()
    skipped = dict.fromkeys(sorted(missing), "no such dead letter")
    marked: list[int] = []
    # One envelope dead-lettered by several stages is stored once per stage; send it once.
    records: dict[bytes, bytes] = {}
    for letter in letters:
        try:
            envelopes = _envelopes_of(letter.payload)
        except EnvelopeError as exc:
            skipped[letter.id] = f"not an envelope, cannot requeue: {exc}"
            continue
        for env in envelopes:
            records.setdefault(env.encode(), env.key())
        marked.append(letter.id)
    futures = [await producer.send(topic, value=value, key=key) for value, key in records.items()]
    for fut in futures:
        await fut
    if marked:
        await store.mark_requeued(marked)
    return RequeueResult(requeued=marked, sent=len(records), skipped=skipped)
