"""A stage whose offset commit is refused by a rebalance goes on instead of crashing: the
batch is written, and the partitions' new owner folds it again (harmless, the sinks are
idempotent)."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY

from pipeline.config import StageConfig
from pipeline.envelope import Envelope, Group
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

    async def idle(self) -> None:
        pass


def record(offset: int) -> ConsumerRecord:
    env = Envelope(id=f"e{offset}", project_id="p", type="trace-create", ts=1, received_at=1, body={"id": "t"})
    raw = env.encode()
    return ConsumerRecord("events", 0, offset, 0, 0, b"p:t", raw, None, 3, len(raw), ())


async def test_a_commit_refused_by_a_rebalance_does_not_crash_the_stage() -> None:
    consumer, sink = RebalancedConsumer(), Sink()
    stage = Stage("unit-commit", consumer, sink, dead_letters=None, topic="events", config=StageConfig())  # type: ignore[arg-type]
    stage._fetched.append((TopicPartition("events", 0), [record(0), record(1)], 0))
    stage._fill()
    await stage.flush()
    assert consumer.commits == 1
    assert [e.id for e in sink.written] == ["e0", "e1"]
    assert stage.healthy


def group(offset: int, events: int) -> ConsumerRecord:
    """A record as the edge writes it: one request's events of trace t."""
    g = Group(Group.opening("p", 1, "r", "sdk", "1", "batch"))
    for i in range(events):
        g.add(Group.item(f"e{offset}.{i}", "span-create", 1, {"id": f"s{offset}.{i}", "traceId": "t"}))
    raw = g.record()
    return ConsumerRecord("events", 0, offset, 0, 0, b"p:t", raw, None, 3, len(raw), ())


class Committing:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition("events", 0)}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)


async def test_batches_are_sized_in_events_and_commit_only_what_they_hold() -> None:
    consumer, sink = Committing(), Sink()
    stage = Stage("unit-groups", consumer, sink, None, "events", StageConfig(flush_rows=250))  # type: ignore[arg-type]
    tp = TopicPartition("events", 0)
    stage._fetched.append((tp, [group(10 + i, 100) for i in range(6)], 0))  # 600 events in 6 records
    batches = []
    while stage._fetched:
        stage._fill()
        await stage.flush()
        batches.append((len(sink.written), consumer.commits[-1][tp]))
        sink.written.clear()
    # Each batch stops at the record that fills it; its commit covers exactly its records.
    assert batches == [(300, 13), (300, 16)]
    assert 1 < stage._per_record <= 100  # moving towards 100: the lag, in records, is reported in events


class Lagging(Committing):
    """10 records behind on its one partition."""

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 110)

    async def committed(self, tp: TopicPartition) -> int:
        return 100


async def test_the_lag_is_reported_in_events_not_records() -> None:
    stage = Stage("unit-lag", Lagging(), Sink(), None, "events", StageConfig(lag_interval_s=0.01))  # type: ignore[arg-type]
    stage._per_record = 42.0  # as after fetching records of a request's 42 events of a trace
    task = asyncio.create_task(stage._report_lag())
    await asyncio.sleep(0.05)
    task.cancel()
    assert REGISTRY.get_sample_value("worker_queue_depth", {"queue": "unit-lag"}) == 420
