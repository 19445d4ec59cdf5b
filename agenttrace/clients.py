"""Factories for the clients a process hands to its components: each retries until its server
answers a ping (bounded by a deadline), so start-up order between services does not matter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from loguru import logger

from agenttrace.settings import Settings
from pipeline.retry import Backoff, retry
from sinks.clickhouse.client import ClickHouse
from sinks.metrics import POOLS
from sinks.postgres.client import Postgres

T = TypeVar("T")


async def with_retry(name: str, attempt: Callable[[], Awaitable[T]], deadline_s: float = 60.0) -> T:
    def failed(exc: Exception, delay: float) -> None:
        logger.warning("dependency not ready; retrying", dependency=name, error=repr(exc)[:300])

    try:
        return await retry(attempt, Backoff(0.2, 5.0, deadline_s=deadline_s), on_error=failed)
    except Exception as exc:  # whatever a server that is not up yet answers
        raise RuntimeError(f"{name} unreachable after {deadline_s:.0f}s: {exc!r}") from exc


async def kafka_producer(settings: Settings) -> AIOKafkaProducer:
    async def attempt() -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            # Idempotent: a produce retried after a lost ack (a broker dying, a leader moving)
            # is written once, not twice, and in order; it requires acks=all, which with the
            # topic's min.insync.replicas means an acknowledged event is on that many brokers.
            acks="all",
            enable_idempotence=True,
            # Our publisher batches per partition itself; these bound one produce request.
            max_batch_size=1024 * 1024,
            linger_ms=0,
            request_timeout_ms=int(settings.edge.publish_timeout_s * 1000),
            retry_backoff_ms=100,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    return await with_retry("kafka", attempt)


async def _consumer(settings: Settings, **options: object) -> AIOKafkaConsumer:
    async def attempt() -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Fetch buffers count against the worker's memory (one set per stage): enough for a
            # 20k-event batch in a few round trips, not a backlog's worth at once.
            max_partition_fetch_bytes=2 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
            **options,
        )
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    return await with_retry("kafka", attempt)


async def kafka_consumer(settings: Settings, group: str) -> AIOKafkaConsumer:
    """A member of a stage's consumer group; offsets are committed by the stage itself."""
    return await _consumer(
        settings,
        group_id=group,
        session_timeout_ms=15_000,
        heartbeat_interval_ms=3_000,
        max_poll_interval_ms=600_000,
        isolation_level="read_uncommitted",
    )


async def kafka_reader(settings: Settings) -> AIOKafkaConsumer:
    """A consumer without a group, for replays: partitions are assigned by hand, nothing is
    committed, and no consumer group's offsets move."""
    return await _consumer(settings, group_id=None)


async def postgres(settings: Settings) -> Postgres:
    pg = Postgres(settings.postgres)

    async def attempt() -> Postgres:
        await pg.start()
        await pg.ping()
        return pg

    await with_retry("postgres", attempt)
    POOLS.track("postgres", pg.stats)
    return pg


async def clickhouse(settings: Settings, *, database: str | None = None, pool_size: int | None = None) -> ClickHouse:
    config = settings.clickhouse
    if pool_size is not None:
        config = replace(config, pool_size=pool_size)
    ch = ClickHouse(config, database=database)
    await with_retry("clickhouse", ch.start)
    POOLS.track("clickhouse", ch.stats)
    return ch


async def redis_client(settings: Settings) -> aioredis.Redis:
    """Redis is a cache and a rate-limit counter here: without it the process still works."""
    client = aioredis.from_url(settings.redis.url, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        await with_retry("redis", client.ping, deadline_s=10.0)
    except RuntimeError as exc:
        logger.warning("redis unavailable at start; continuing without cache", error=str(exc))
    return client
