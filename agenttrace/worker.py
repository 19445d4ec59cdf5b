"""The worker process: consumer stages, each handed its sink, plus a small HTTP server for
metrics and probes.

Start order is downstream first: stores, the dead-letter path, the stages' sinks, then the
consumers; stop is the reverse, and each stage drains (flush, commit) before its consumer
leaves the group. An AsyncExitStack owns that order.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from contextlib import AsyncExitStack

from aiohttp import web
from loguru import logger
from prometheus_async.aio.web import server_stats

from agenttrace import clients
from agenttrace.settings import STAGES, Settings
from health.checks import Check, Health
from health.http import observe
from health.version import git_revision
from pipeline import compiled
from pipeline.dead_letters import DeadLetters
from pipeline.prices import PriceBook
from pipeline.stage import Sink, Stage
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.journal import JournalExpiry, JournalRepair
from sinks.clickhouse.schema import dialect_for
from sinks.clickhouse.writer import ClickHouseWriter
from sinks.postgres.client import Postgres
from sinks.postgres.dead_letters import DeadLetterTable
from sinks.postgres.models import ModelTable, PriceRefresher
from sinks.postgres.tombstones import TombstoneCache
from sinks.postgres.writer import PostgresWriter
from sinks.purge import TombstonePurge
from sinks.readiness import SchemaCheck
from sinks.retention import RetentionJob

# A stage whose loop has not turned for this long is stuck; liveness fails so it is restarted.
STALL_S = 120.0


async def run_worker(
    settings: Settings,
    stages: tuple[str, ...],
    host: str,
    port: int,
    stop: asyncio.Event,
    *,
    between_batches: Callable[[], object] | None = None,
) -> None:
    health = Health(checks=[], revision=settings.revision or git_revision(), compiled=compiled.active())
    app = web.Application(middlewares=[observe])
    app.router.add_get("/metrics", server_stats)
    health.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    # Probes answer from the start: not ready until the stages run, which is what they should say.
    site = web.TCPSite(runner, host, port)
    await site.start()
    logger.info("worker listening", host=host, port=port, stages=list(stages))
    async with AsyncExitStack() as stack:
        stack.push_async_callback(runner.cleanup)
        health.conditions["starting"] = lambda: False
        pg = await clients.postgres(settings)
        stack.push_async_callback(pg.close)
        # Only the ClickHouse stage needs ClickHouse to start; a Postgres-stage worker still
        # reports it in /health (the guide's shape), but starts and stays ready without it.
        writes_clickhouse = "clickhouse" in stages
        ch = await clients.clickhouse(settings) if writes_clickhouse else ClickHouse(settings.clickhouse)
        stack.push_async_callback(ch.close)
        redis = await clients.redis_client(settings)
        stack.push_async_callback(redis.aclose)
        producer = await clients.kafka_producer(settings)
        stack.push_async_callback(producer.stop)
        health.checks.extend(
            [
                Check("postgres", pg.ping),
                Check("clickhouse", ch.ping, required=writes_clickhouse),
                Check("redis", redis.ping, required=False),
                Check("kafka", lambda: producer.client.fetch_all_metadata()),
                Check("schema", SchemaCheck(pg, ch if writes_clickhouse else None)),
            ]
        )
        # After the checks, so that /health says why a worker waits here (e.g. a schema behind).
        dead_letters = DeadLetters(producer, settings.topics.dead_letters, DeadLetterTable(pg))
        prices = PriceRefresher(ModelTable(pg), settings.stage.prices_refresh_s)
        await clients.with_retry("postgres", prices.start)
        stack.push_async_callback(prices.stop)
        if writes_clickhouse:
            purge = TombstonePurge(pg, ch, settings.purge)
            await purge.start()
            stack.push_async_callback(purge.stop)
            retention = RetentionJob(pg, ch, dialect_for(ch.version), settings.retention)
            await retention.start()
            stack.push_async_callback(retention.stop)
            health.jobs["retention"] = retention.report
            expiry = JournalExpiry(ch)
            await expiry.start()
            stack.push_async_callback(expiry.stop)
            repair = JournalRepair(ClickHouseWriter(ch, dialect_for(ch.version), prices=prices.book))
            await repair.start()
            stack.push_async_callback(repair.stop)
        running: list[Stage] = []
        for name in stages:
            sink = sink_for(name, settings, ch=ch, pg=pg, prices=prices.book)
            consumer = await clients.kafka_consumer(settings, settings.stage.group_prefix + name)
            stack.push_async_callback(consumer.stop)
            config = settings.stage_config(name)
            stage = Stage(name, consumer, sink, dead_letters, settings.topics.events, config, between_batches)
            await stage.start()
            stack.push_async_callback(stage.stop)
            running.append(stage)
            health.conditions[f"stage_{name}"] = functools.partial(_stage_ok, stage)
        del health.conditions["starting"]
        health.alive = lambda: all(s.alive() and time.monotonic() - s.heartbeat < STALL_S for s in running)
        logger.info("worker started", stages=list(stages))
        await _wait(stop, running)
        logger.info("worker draining")
    logger.info("worker stopped")


def _stage_ok(stage: Stage) -> bool:
    return stage.alive() and stage.healthy


async def _wait(stop: asyncio.Event, stages: list[Stage]) -> None:
    """Until asked to stop, or until a stage dies (then the process exits and is restarted)."""
    while not stop.is_set():
        if any(not s.alive() for s in stages):
            logger.error("a stage stopped unexpectedly; exiting so the supervisor restarts us")
            return
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass


def sink_for(
    name: str,
    settings: Settings,
    *,
    prices: Callable[[], PriceBook],
    ch: ClickHouse | None = None,
    pg: Postgres | None = None,
) -> Sink:
    """The sink of stage `name`, on the store client it needs (the other may be None); both
    consult the tombstones in Postgres when `pg` is given."""
    tombstones = TombstoneCache(pg, refresh_s=settings.stage.tombstones_refresh_s) if pg is not None else None
    if name == "clickhouse" and ch is not None:
        return ClickHouseWriter(ch, dialect_for(ch.version), prices=prices, tombstones=tombstones)
    if name == "postgres" and pg is not None:
        # A state must outlive every copy of its events the topic can still hand out.
        return PostgresWriter(
            pg, horizon_s=2 * settings.topics.retention_ms / 1000, prices=prices, tombstones=tombstones
        )
    if name in STAGES:
        raise ValueError(f"stage {name!r} needs its store client")
    raise ValueError(f"unknown stage {name!r}; expected one of {', '.join(STAGES)}")
