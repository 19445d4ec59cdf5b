"""A consumer stage: fetch from its consumer group, fold into a sink, then commit.

Offsets are committed only after the sink has durably written the whole buffer, so a crash at
any point redelivers instead of losing; the sinks are idempotent, so redelivery is harmless.
Store errors are retried with backoff, without limit, while the stage reports not ready; an
event that can never be written goes to the dead-letter path and the stage moves on.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord
from loguru import logger

from pipeline.config import StageConfig
from pipeline.dead_letters import DeadLetter, DeadLetters, reason_kind
from pipeline.envelope import Envelope, decode_record
from pipeline.errors import EnvelopeError, StoreError
from pipeline.metrics import ACTIVE_JOBS, JOB_SECONDS, JOBS_PROCESSED, QUEUE_DEPTH, declare
from pipeline.retry import Backoff, isolate, retry

T = TypeVar("T")


_LOGGED_REQUEST_IDS = 20


class Sink(Protocol):
    async def write(self, envelopes: list[Envelope]) -> list[tuple[Envelope, str]]:
        """Write durably; return poison events with reasons; raise StoreError when the store
        failed (a permanent one for data it refuses, which the stage then isolates)."""

    def forget(self) -> None:
        """Drop cached state: partitions were reassigned."""

    async def idle(self) -> None:
        """Called about every half second while nothing is buffered: work that must not wait
        for the next event (raise StoreError to have it retried at the next call)."""


def _request_ids(envelopes: list[Envelope]) -> list[str]:
    """The first distinct request ids of a batch, one more than are logged (that there are more
    is all the log says of the rest): not a pass over every event of the batch for a log line."""
    found: dict[str, None] = {}
    for env in envelopes:
        if env.request_id:
            found[env.request_id] = None
            if len(found) > _LOGGED_REQUEST_IDS:
                break
    return list(found)


class Stage:
    def __init__(
        self,
        name: str,
        consumer: AIOKafkaConsumer,
        sink: Sink,
        dead_letters: DeadLetters,
        topic: str,
        config: StageConfig,
        between_batches: Callable[[], object] | None = None,
    ) -> None:
        self.name = name
        self._consumer = consumer
        self._sink = sink
        self._dlq = dead_letters
        self._topic = topic
        self._config = config
        # A batch is sized in events, and a record holds one request's events for a partition
        # (pipeline/envelope.py): fetched records wait undecoded, and are decoded into the
        # buffer until it is full; the rest start the next batch.
        self._fetched: collections.deque[tuple[TopicPartition, list[ConsumerRecord], int]] = collections.deque()
        self._buffer: list[Envelope] = []
        self._undecodable: list[DeadLetter] = []
        # Events per record seen lately: the lag, counted in records, is reported in events.
        self._per_record = 1.0
        # The next offset of each partition in the buffer, kept per fetched chunk: a loop over
        # every record at commit time cost ~2 µs per event (py-spy, ClickHouse stage).
        self._ends: dict[TopicPartition, int] = {}
        self._oldest = 0.0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self.healthy = False
        self.heartbeat = 0.0
        self._backoff = Backoff(config.retry_initial_s, config.retry_max_s)
        # Run after each batch is written and committed, when its objects are gone: the shell's
        # garbage collection (agenttrace/memory.py), which mid-batch would walk them all.
        self._between_batches = between_batches
        declare(name)

    async def start(self) -> None:
        self._consumer.subscribe([self._topic], listener=_Rebalance(self))
        self._task = asyncio.create_task(self._run(), name=f"stage-{self.name}")
        self._lag_task = asyncio.create_task(self._report_lag(), name=f"lag-{self.name}")

    async def stop(self) -> None:
        """Stop fetching, flush what is buffered, commit; bounded by the drain timeout."""
        self._stopping.set()
        if self._task is None:
            return
        task, self._task = self._task, None
        try:
            await asyncio.wait_for(asyncio.shield(task), self._config.drain_timeout_s)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
            logger.warning("stage drain timed out; uncommitted events will be redelivered", stage=self.name)
        if self._lag_task:
            self._lag_task.cancel()
            await asyncio.gather(self._lag_task, return_exceptions=True)

    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self.heartbeat = time.monotonic()
                if not self._fetched:
                    held = self._buffer or self._undecodable
                    wait_ms = int(self._config.flush_interval_s * 1000) if held else 500
                    batches = await self._consumer.getmany(
                        timeout_ms=wait_ms, max_records=self._config.max_fetch_records
                    )
                    self._fetched.extend((tp, records, 0) for tp, records in batches.items() if records)
                self._fill()
                if not self._buffer and not self._undecodable:
                    self.healthy = True
                    try:
                        await self._sink.idle()
                    except StoreError as exc:
                        logger.warning("idle work failed; retried", stage=self.name, error=str(exc))
                    continue
                age = time.monotonic() - self._oldest
                if self._full() or age >= self._config.flush_interval_s:
                    await self.flush()
                    if self._between_batches is not None:
                        self._between_batches()
            await self.flush()
            while self._fetched:  # what was fetched is written before the drain ends
                self._fill()
                await self.flush()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("stage crashed", stage=self.name)
            self.healthy = False
            raise

    def _full(self) -> bool:
        return len(self._buffer) >= self._config.flush_rows

    def _fill(self) -> None:
        """Decode fetched records into the batch until it is full, noting each partition's
        next offset; what is left waits for the next batch."""
        if self._fetched and not self._buffer and not self._undecodable:
            self._oldest = time.monotonic()
        buffer, limit = self._buffer, self._config.flush_rows
        while self._fetched and len(buffer) < limit:
            tp, records, at = self._fetched.popleft()
            before, end = len(buffer), at
            for end in range(at, len(records)):
                try:
                    buffer.extend(decode_record(records[end].value))
                except EnvelopeError as exc:
                    self._undecodable.append(DeadLetter.of_record(records[end], str(exc), self.name))
                if len(buffer) >= limit:
                    break
            end += 1
            if end < len(records):
                self._fetched.appendleft((tp, records, end))
            self._ends[tp] = max(self._ends.get(tp, 0), records[end - 1].offset + 1)
            self._per_record = 0.8 * self._per_record + 0.2 * max(1.0, (len(buffer) - before) / (end - at))

    async def flush(self) -> None:
        async with self._flush_lock:
            if not self._buffer and not self._undecodable:
                return
            envelopes, self._buffer = self._buffer, []
            dead, self._undecodable = self._undecodable, []
            ends, self._ends = self._ends, {}
            await self._write(envelopes, dead, ends)

    async def _write(self, envelopes: list[Envelope], dead: list[DeadLetter], ends: dict[TopicPartition, int]) -> None:
        start = time.perf_counter()
        ACTIVE_JOBS.labels(self.name).inc()
        try:
            judged: set[int] = set()  # the envelopes the sink itself called poison (by identity)

            async def write(batch: list[Envelope]) -> list[tuple[Envelope, str]]:
                refused = await self._sink.write(batch)
                judged.update(id(env) for env, _ in refused)
                return refused

            poison = await self._retrying("store write", lambda: isolate(write, envelopes))
            # The rest were isolated by a store refusing them (a permanent StoreError).
            dead.extend(
                DeadLetter.of_envelope(
                    env, reason, self.name, reason_kind(reason) if id(env) in judged else "store_refused"
                )
                for env, reason in poison
            )
            if dead:
                await self._retrying("dead-letter write", lambda: self._dlq.put(dead))
                JOBS_PROCESSED.labels(self.name, "dead_letter").inc(len(dead))
            await self._commit(ends)
        finally:
            ACTIVE_JOBS.labels(self.name).dec()
        self.healthy = True
        JOBS_PROCESSED.labels(self.name, "success").inc()
        JOB_SECONDS.labels(self.name).observe(time.perf_counter() - start)
        # The edge's request ids, so a request can be followed into the worker (a batch mixes
        # many requests; the first few identify a quiet system's batches exactly).
        request_ids = _request_ids(envelopes)
        logger.info(
            "batch written",
            stage=self.name,
            events=len(envelopes),
            dead_letters=len(dead),
            request_id=request_ids[0] if len(request_ids) == 1 else None,
            request_ids=request_ids[:_LOGGED_REQUEST_IDS] if len(request_ids) > 1 else None,
            duration_ms=round((time.perf_counter() - start) * 1000, 1),
        )

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Every failure that reaches here is transient (poison is returned, not raised): retry
        with backoff, not ready meanwhile; give up only when stopping, to let the drain end."""

        def failed(exc: Exception, delay: float) -> None:
            self.healthy = False
            JOBS_PROCESSED.labels(self.name, "retry").inc()
            logger.warning(f"{what} failed; retrying", stage=self.name, error=str(exc), retry_in_s=round(delay, 2))

        return await retry(attempt, self._backoff, on_error=failed, stopping=self._stopping)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assigned = self._consumer.assignment()
        owned = {tp: o for tp, o in offsets.items() if tp in assigned}
        if not owned:
            return
        try:
            await self._consumer.commit(owned)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced while the batch was written (a write outlasting the revoke's
            # drain): the partitions' new owner reads them again from the last commit, and the
            # sinks make that second fold harmless. Crashing would only add a restart to it.
            JOBS_PROCESSED.labels(self.name, "retry").inc()
            logger.warning(
                "commit refused after a rebalance; the new owner will fold these events again",
                stage=self.name,
                error=str(exc).splitlines()[0],
            )

    async def on_revoke(self) -> None:
        # Finish what we hold before another member takes these partitions.
        try:
            await asyncio.wait_for(self.flush(), self._config.drain_timeout_s)
        except Exception as exc:
            logger.warning("flush on revoke failed; events will be redelivered", stage=self.name, error=repr(exc))
            self._buffer, self._undecodable, self._ends = [], [], {}
        self._fetched.clear()  # not committed: the partitions' next owner reads them again
        self._sink.forget()

    async def _report_lag(self) -> None:
        while True:
            try:
                depth = 0
                assigned = list(self._consumer.assignment())
                ends = await self._consumer.end_offsets(assigned) if assigned else {}
                for tp, end in ends.items():
                    committed = await self._consumer.committed(tp)
                    depth += max(0, end - (committed or 0))
                # The lag is in records; operators read it in events (the monitoring guide's
                # thresholds), so it is scaled by the events per record seen lately.
                QUEUE_DEPTH.labels(self.name).set(round(depth * self._per_record))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("lag refresh failed", stage=self.name, error=repr(exc))
            await asyncio.sleep(self._config.lag_interval_s)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, stage: Stage) -> None:
        self._stage = stage

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if revoked:
            await self._stage.on_revoke()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        logger.info("partitions assigned", stage=self._stage.name, partitions=sorted(tp.partition for tp in assigned))
