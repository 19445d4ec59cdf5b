"""Workers collect garbage between batches (agenttrace/memory.py): never during one, in full
every interval, and from a backstop when no batch ends."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from agenttrace.memory import BatchCollector
from pipeline.config import StageConfig
from pipeline.envelope import Envelope
from pipeline.stage import Stage

TP = TopicPartition("events", 0)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """A cycle that only the collector frees, by a weak reference to one of its nodes."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture
def no_automatic_collection() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    yield
    if was:
        gc.enable()


def test_collects_in_full_once_the_interval_has_passed(no_automatic_collection: None) -> None:
    now = [0.0]
    collector = BatchCollector(interval_s=30.0, clock=lambda: now[0])
    garbage = cycle()
    now[0] = 29.0
    collector.between_batches()
    assert garbage() is not None  # within the interval: nothing walked
    now[0] = 30.0
    collector.between_batches()
    assert garbage() is None
    garbage = cycle()
    now[0] = 59.0
    collector.between_batches()
    assert garbage() is not None  # the interval counts from the last collection


async def test_the_backstop_collects_when_no_batch_ends(no_automatic_collection: None) -> None:
    collector = BatchCollector(interval_s=0.05)
    garbage = cycle()
    task = asyncio.create_task(collector.backstop())
    try:
        for _ in range(100):
            await asyncio.sleep(0.02)
            if garbage() is None:
                break
        assert garbage() is None
    finally:
        task.cancel()


class Consumer:
    """One fetch of two records, then nothing."""

    def __init__(self) -> None:
        self.fetches = 0
        self.commits: list[dict[TopicPartition, int]] = []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        self.fetches += 1
        if self.fetches == 1:
            return {TP: [record(5), record(6)]}
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)


class Sink:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    async def write(self, envelopes: list[Envelope]) -> list[tuple[Envelope, str]]:
        self.batches.append([e.id for e in envelopes])
        return []

    def forget(self) -> None:
        pass

    async def idle(self) -> None:
        pass


def record(offset: int) -> ConsumerRecord:
    raw = Envelope(f"e{offset}", "p", "trace-create", 1, 1, {"id": "t"}).encode()
    return ConsumerRecord("events", 0, offset, 0, 0, b"p:t", raw, None, 3, len(raw), ())


async def test_a_stage_calls_its_hook_after_each_written_batch() -> None:
    consumer, sink, calls = Consumer(), Sink(), []
    config = StageConfig(flush_rows=2, flush_interval_s=0.01)

    def between_batches() -> None:
        # After the batch was written and its offsets committed, never before.
        calls.append((len(sink.batches), len(consumer.commits)))

    stage = Stage("unit", consumer, sink, None, "events", config, between_batches)  # type: ignore[arg-type]
    task = asyncio.create_task(stage._run())
    for _ in range(100):
        await asyncio.sleep(0.01)
        if calls:
            break
    stage._stopping.set()
    await asyncio.wait_for(task, 5)
    assert sink.batches == [["e5", "e6"]]
    assert consumer.commits == [{TP: 7}]  # the fetched chunk's last offset, plus one
    assert calls == [(1, 1)]
