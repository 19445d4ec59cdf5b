"""The dead-letter path: a Kafka topic (replayable) and a Postgres table (searchable)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from loguru import logger

from pipeline.envelope import Envelope
from sinks.postgres.client import Postgres, PostgresError


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
        try:
            await self._pg.insert_many(
                "INSERT INTO dead_letters (stage, event_id, project_id, event_type, request_id, reason, payload)",
                "(%s, %s, %s, %s, %s, %s, %s::jsonb)",
                [
                    (_text(d.stage), _text(d.event_id), _text(d.project_id), _text(d.event_type),
                     _text(d.request_id), _text(d.reason[:2000]), _jsonb(d.payload))
                    for d in letters
                ],
                operation="insert_dead_letters",
            )
        except PostgresError as exc:
            if not exc.permanent:
                raise  # the stage retries the whole put
            # Refused for good: the Kafka copy above is the durable one; never loop on it.
            logger.error("dead letters not recorded in Postgres; they are on the topic", topic=self._topic, count=len(letters), error=str(exc))
        for d in letters:
            logger.warning("event dead-lettered", stage=d.stage, event_id=d.event_id, project_id=d.project_id, reason=d.reason, request_id=d.request_id)


def _text(value: str) -> str:
    # Postgres text cannot hold NUL; a poison event may well contain one.
    return value.replace("\x00", "\ufffd")


def _jsonb(payload: bytes) -> str:
    text = payload.decode() if _is_json(payload) else orjson.dumps({"raw": payload.decode(errors="replace")}).decode()
    # Nor can jsonb hold \u0000. The table is for people; the topic keeps the exact bytes.
    return text.replace("\\u0000", "\\ufffd")


def _is_json(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
        return True
    except orjson.JSONDecodeError:
        return False
