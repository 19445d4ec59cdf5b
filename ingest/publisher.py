"""Appends envelopes to Kafka and resolves once the broker has acknowledged them.

Requests hand over all their records at once and wait on one future per partition they touch,
not one per event. While a partition's batch is in flight, records of later requests gather
into the next batch, so batches grow with load (the same idea as Nagle's algorithm).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2


class PublishError(Exception):
    """Kafka did not acknowledge in time or refused: the client should retry (503)."""


@functools.lru_cache(maxsize=1 << 16)
def partition_for(key: bytes, partitions: int) -> int:
    # The Java client's default partitioner, so other producers agree on a key's partition.
    return (murmur2(key) & 0x7FFFFFFF) % partitions


Records = list[tuple[bytes, bytes]]


@dataclass
class _Pending:
    # One chunk per waiting request; a chunk whose request gave up is dropped unsent, so an
    # outage cannot pile up records that were already answered 503.
    chunks: list[tuple[Records, asyncio.Future[None]]] = field(default_factory=list)


def _consume(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()


class EventPublisher:
    def __init__(self, producer: AIOKafkaProducer, topic: str, timeout_s: float) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout_s = timeout_s
        self._pending: dict[int, _Pending] = {}
        self._inflight: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def partitions(self) -> int:
        parts = await self._producer.partitions_for(self._topic)
        if not parts:
            raise PublishError(f"topic {self._topic} has no partitions")
        return len(parts)

    async def ping(self) -> None:
        """A real round trip to the brokers, unlike partitions(), which may answer from cache."""
        metadata = await self._producer.client.fetch_all_metadata()
        if not metadata.brokers():
            raise PublishError("no Kafka broker answered")
        if not metadata.partitions_for_topic(self._topic):
            raise PublishError(f"topic {self._topic} does not exist; run `agenttrace migrate`")

    async def publish(self, records: Records) -> None:
        """Append (key, value) records; return when all are acknowledged, else PublishError."""
        if not records:
            return
        try:
            n = await asyncio.wait_for(self.partitions(), self._timeout_s)
        except (TimeoutError, KafkaError) as exc:
            raise PublishError(f"Kafka metadata unavailable: {exc!r}") from exc
        loop = asyncio.get_running_loop()
        by_partition: dict[int, Records] = {}
        for key, value in records:
            by_partition.setdefault(partition_for(key, n), []).append((key, value))
        waits = []
        for p, recs in by_partition.items():
            fut = loop.create_future()
            # A request that failed on one partition stops listening to the others.
            fut.add_done_callback(_consume)
            self._pending.setdefault(p, _Pending()).chunks.append((recs, fut))
            waits.append(fut)
            if p not in self._inflight:
                self._start(p)
        try:
            await asyncio.wait_for(asyncio.gather(*waits), self._timeout_s)
        except TimeoutError as exc:
            raise PublishError(f"Kafka did not acknowledge within {self._timeout_s}s") from exc

    def _start(self, partition: int) -> None:
        self._inflight.add(partition)
        task = asyncio.create_task(self._drain(partition))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, partition: int) -> None:
        """Send what gathered for a partition, then whatever gathered meanwhile, until none."""
        try:
            while pending := self._pending.pop(partition, None):
                live = [(recs, w) for recs, w in pending.chunks if not w.done()]
                if not live:
                    continue
                try:
                    await self._send(partition, [r for recs, _ in live for r in recs])
                except Exception as exc:  # every waiter must learn the outcome
                    err = exc if isinstance(exc, PublishError) else PublishError(repr(exc))
                    for _, w in live:
                        if not w.done():
                            w.set_exception(err)
                else:
                    for _, w in live:
                        if not w.done():
                            w.set_result(None)
        finally:
            self._inflight.discard(partition)

    async def _send(self, partition: int, records: Records) -> None:
        futures = []
        batch = self._producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                futures.append(await self._producer.send_batch(batch, self._topic, partition=partition))
                batch = self._producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise PublishError("event larger than the producer's max batch size")
        futures.append(await self._producer.send_batch(batch, self._topic, partition=partition))
        await asyncio.gather(*futures)

    async def stop(self) -> None:
        """Let in-flight batches finish so no acknowledged request is left unanswered."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self._timeout_s)
