"""A stage whose offset commit is refused by a rebalance goes on instead of crashing: the
batch is written, and the partitions' new owner folds it again (harmless, the sinks are
idempotent)."""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import ConsumerRecord

from pipeline.config import StageConfig
from pipeline.envelope import Envelope
from pipeline.stage import Stage

TP = TopicPartition("events", 0)


class RebalancedConsumer:
    """Owns TP, but the group moved on before the commit arrived."""

    def __init__(self) -> None:
        self.commits = 0

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits += 1
        raise CommitFailedError("the group has already rebalanced")


class Sink:
    def __init__(self) -> None:
        self.written: list[Envelope] = []

    async def write(self, envelopes: list[Envelope]) -> list[tuple[Envelope, str]]:
        self.written += envelopes
        return []

    def forget(self) -> None:
        pass


def record(offset: int) -> ConsumerRecord:
    env = Envelope(id=f"e{offset}", project_id="p", type="trace-create", ts=1, received_at=1, body={"id": "t"})
    raw = env.encode()
    return ConsumerRecord("events", 0, offset, 0, 0, b"p:t", raw, None, 3, len(raw), ())


async def test_a_commit_refused_by_a_rebalance_does_not_crash_the_stage() -> None:
    consumer, sink = RebalancedConsumer(), Sink()
    stage = Stage("unit-commit", consumer, sink, dead_letters=None, topic="events", config=StageConfig())  # type: ignore[arg-type]
    await stage._write([record(0), record(1)])
    assert consumer.commits == 1
    assert [e.id for e in sink.written] == ["e0", "e1"]
    assert stage.healthy
