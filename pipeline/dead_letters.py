"""The dead-letter path: a Kafka topic (replayable) and a Postgres table (searchable)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from loguru import logger

from pipeline.envelope import Envelope
from sinks.postgres.client import Postgres


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

    @classmethod
    def of_record(cls, rec: ConsumerRecord, reason: str, stage: str) -> DeadLetter:
        return cls(stage, reason, rec.value or b"", rec.key)

    @classmethod
    def of_envelope(cls, env: Envelope, reason: str, stage: str) -> DeadLetter:
        return cls(stage, reason, env.encode(), env.key(), env.id, env.project_id, env.type, env.request_id)


class DeadLetters:
    def __init__(self, producer: AIOKafkaProducer, topic: str, postgres: Postgres) -> None:
        self._producer = producer
        self._topic = topic
        self._pg = postgres

    async def put(self, letters: list[DeadLetter]) -> None:
        """Durable in Kafka first (the replayable copy), then recorded in Postgres for people."""
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
        await self._pg.insert_many(
            "INSERT INTO dead_letters (stage, event_id, project_id, event_type, request_id, reason, payload)",
            "(%s, %s, %s, %s, %s, %s, %s::jsonb)",
            [
                (d.stage, d.event_id, d.project_id, d.event_type, d.request_id, d.reason[:2000],
                 d.payload.decode() if _is_json(d.payload) else orjson.dumps({"raw": d.payload.decode(errors="replace")}).decode())
                for d in letters
            ],
            operation="insert_dead_letters",
        )
        for d in letters:
            logger.warning("event dead-lettered", stage=d.stage, event_id=d.event_id, project_id=d.project_id, reason=d.reason, request_id=d.request_id)


def _is_json(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
        return True
    except orjson.JSONDecodeError:
        return False
