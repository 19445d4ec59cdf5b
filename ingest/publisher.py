"""Appends envelopes to Kafka and resolves once the broker has acknowledged them.

Requests hand over all their records at once and wait on one future per partition they touch,
not one per event. While a partition's batch is in flight, records of later requests gather
into the next batch, so batches grow with load (the same idea as Nagle's algorithm).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from loguru import logger

from ingest.metrics import KAFKA_PUBLISH_SECONDS
from ingest.partitioner import partition_for


class PublishError(Exception):
    """Kafka did not acknowledge in time or refused: the client should retry (503)."""


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
    """Publishes, and knows whether Kafka is reachable: a background probe pings the brokers
    every `probe_interval_s`, and any publish failure marks them down at once. While down,
    publish() fails in microseconds (503 + Retry-After) instead of after `timeout_s`; the
    probe brings it back when a ping succeeds again."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, timeout_s: float, probe_interval_s: float = 1.0) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout_s = timeout_s
        self._probe_interval_s = probe_interval_s
        self._pending: dict[int, _Pending] = {}
        self._inflight: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._probe: asyncio.Task[None] | None = None
        self._outage: asyncio.Future[None] | None = None
        # Why Kafka is known to be down, or None while it is taken to be up.
        self.down: str | None = None
        self._partition_count: int | None = None

    def start(self) -> None:
        if self._probe is None:
            self._probe = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._probe_interval_s)
            try:
                await asyncio.wait_for(self.ping(), max(self._probe_interval_s, 0.5))
            except Exception as exc:  # a failed probe is a finding, not an error
                self._mark_down(f"probe failed: {exc!r}" if str(exc) else "probe timed out")
            else:
                if self.down is not None:
                    logger.info("Kafka reachable again", topic=self._topic)
                self.down = None

    def _mark_down(self, reason: str) -> None:
        if self.down is None:
            logger.warning("Kafka unavailable; answering 503 until a probe succeeds", reason=reason)
        self.down = reason
        if self._outage is not None and not self._outage.done():
            self._outage.set_result(None)

    async def check(self) -> None:
        """For readiness: fails at once while Kafka is known down, else a real round trip."""
        if self.down is not None:
            raise PublishError(f"Kafka unavailable: {self.down}")
        await self.ping()

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

    async def partition_count(self) -> int:
        """The topic's partitions, which a request's records are packed for. While Kafka is
        down, the last count known: a request whose events are all refused still gets its 4xx
        answers, and one with records to send gets publish()'s 503. PublishError only before
        any count was ever known."""
        if self.down is None:
            # The producer's metadata, which partitions() reads first too, without the task
            # wait_for wraps it in: ~3% of the api's CPU on 10-event requests (py-spy).
            known = self._producer.client.cluster.partitions_for_topic(self._topic)
            if known:
                self._partition_count = len(known)
                return self._partition_count
            try:
                self._partition_count = await asyncio.wait_for(self.partitions(), self._timeout_s)
            except (TimeoutError, KafkaError, PublishError) as exc:
                self._mark_down(f"metadata: {exc!r}")
        if self._partition_count is None:
            raise PublishError(f"Kafka unavailable: {self.down}")
        return self._partition_count

    async def publish(self, records: Records, partitions: int) -> None:
        """Append (key, value) records, each to its key's partition of `partitions` (the count
        they were packed for: partition_count()); return when all are acknowledged, else
        PublishError."""
        if not records:
            return
        if self.down is not None:
            raise PublishError(f"Kafka unavailable: {self.down}")
        loop = asyncio.get_running_loop()
        by_partition: dict[int, Records] = {}
        for key, value in records:
            by_partition.setdefault(partition_for(key, partitions), []).append((key, value))
        waits = []
        for p, recs in by_partition.items():
            fut = loop.create_future()
            # A request that failed on one partition stops listening to the others.
            fut.add_done_callback(_consume)
            self._pending.setdefault(p, _Pending()).chunks.append((recs, fut))
            waits.append(fut)
            if p not in self._inflight:
                self._start(p)
        acked: asyncio.Future[Any] = asyncio.gather(*waits)
        outage: asyncio.Future[Any] = self._outage_signal()
        began = time.perf_counter()
        # Whichever comes first: every acknowledgement, the probe finding Kafka down, the timeout.
        done, _ = await asyncio.wait({acked, outage}, timeout=self._timeout_s, return_when=asyncio.FIRST_COMPLETED)
        if acked in done:
            try:
                acked.result()
            except PublishError as exc:
                self._mark_down(str(exc))
                raise
            KAFKA_PUBLISH_SECONDS.observe(time.perf_counter() - began)
            return
        acked.cancel()  # our chunks, not yet sent, are dropped
        if outage in done:
            raise PublishError(f"Kafka unavailable: {self.down}")
        self._mark_down(f"no acknowledgement within {self._timeout_s}s")
        raise PublishError(f"Kafka did not acknowledge within {self._timeout_s}s")

    def _outage_signal(self) -> asyncio.Future[None]:
        """Resolved when Kafka is next found down, so waiting requests answer 503 at once."""
        if self._outage is None or self._outage.done():
            self._outage = asyncio.get_running_loop().create_future()
        return self._outage

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
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
            self._probe = None
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self._timeout_s)
