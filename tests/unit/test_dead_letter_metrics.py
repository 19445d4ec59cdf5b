"""Every dead letter is counted in dead_letters_total{stage, reason}, with a reason from a
closed set, and each stage's series exist at 0 before its first dead letter."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY

from pipeline.config import StageConfig
from pipeline.dead_letters import DeadLetter, DeadLetters, reason_kind
from pipeline.envelope import Envelope
from pipeline.errors import StoreError
from pipeline.metrics import DEAD_LETTER_REASONS, declare
from pipeline.stage import Stage

TP = TopicPartition("events", 0)
STAGE = "unit-dead-letters"


class Consumer:
    def assignment(self) -> set[TopicPartition]:
        return {TP}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        pass


class Producer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, topic: str, *, value: bytes, key: bytes | None, headers: Any) -> asyncio.Future[None]:
        self.sent.append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Store:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def record(self, letters: list[DeadLetter]) -> None:
        self.letters += letters


class Sink:
    """Calls e1 poison (a bad time); the store refuses any batch holding e2."""

    async def write(self, envelopes: list[Envelope]) -> list[tuple[Envelope, str]]:
        if any(e.id == "e2" for e in envelopes):
            raise StoreError("value too long for the column", permanent=True)
        return [(e, "bad timestamp 'yesterday'") for e in envelopes if e.id == "e1"]

    def forget(self) -> None:
        pass

    async def idle(self) -> None:
        pass


def record(offset: int, raw: bytes | None = None) -> ConsumerRecord:
    if raw is None:
        env = Envelope(id=f"e{offset}", project_id="p", type="trace-create", ts=1, received_at=1, body={"id": "t"})
        raw = env.encode()
    return ConsumerRecord("events", 0, offset, 0, 0, b"p:t", raw, None, 3, len(raw), ())


def count(reason: str) -> float:
    return REGISTRY.get_sample_value("dead_letters_total", {"stage": STAGE, "reason": reason}) or 0.0


def test_reasons_are_a_closed_set() -> None:
    assert reason_kind("bad timestamp 'x'") == "bad_time"
    assert reason_kind("trace-create t: event time out of range") == "bad_time"
    assert reason_kind("usage value 1e30 is out of range") == "out_of_range"
    assert reason_kind("trace-create: body.model is longer than 1000 characters") == "out_of_range"
    assert reason_kind("anything else") == "other"
    assert {reason_kind(r) for r in ("", "x")} <= set(DEAD_LETTER_REASONS)


async def test_dead_letters_are_counted_by_stage_and_reason() -> None:
    declare(STAGE)
    assert all(
        REGISTRY.get_sample_value("dead_letters_total", {"stage": STAGE, "reason": r}) == 0.0
        for r in DEAD_LETTER_REASONS
    )
    store = Store()
    dlq = DeadLetters(Producer(), "dlq", store)  # type: ignore[arg-type]
    stage = Stage(STAGE, Consumer(), Sink(), dead_letters=dlq, topic="events", config=StageConfig())  # type: ignore[arg-type]
    stage._fetched.append((TP, [record(0), record(1), record(2), record(3, b"not an envelope")], 0))
    stage._fill()
    await stage.flush()
    assert sorted(d.kind for d in store.letters) == ["bad_time", "store_refused", "undecodable"]
    assert (count("bad_time"), count("store_refused"), count("undecodable"), count("other")) == (1, 1, 1, 0)
