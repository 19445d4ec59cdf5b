"""The API process: the edge of ingest/ with its clients, served by aiohttp (HTTP) and grpc.aio
(OTLP/gRPC) on one uvloop loop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import uvloop
from aiohttp import web

from agenttrace import clients
from agenttrace.memory import TRIM_INTERVAL_S, trim_every
from agenttrace.settings import Settings
from health.checks import Health
from health.version import git_revision
from ingest.app import EdgeClients, build_app
from ingest.config import EdgeConfig
from ingest.connections import ConnectionGuard
from ingest.http import PrefaceQuietLogger
from pipeline import compiled

READ_BUFFER_BYTES = 64 * 1024


def run_api(settings: Settings, host: str | None, port: int, grpc_port: int | None = None) -> None:
    edge = settings.edge.listening(host, port, grpc_port)
    app = build_app(
        edge,
        settings.topics.events,
        settings.admin_token,
        lambda: edge_clients(settings),
        Health(checks=[], revision=settings.revision or git_revision(), compiled=compiled.active()),
    )
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(app, edge))


async def serve(app: web.Application, edge: EdgeConfig) -> None:
    """web.run_app's job, with the connection guard installed on aiohttp's server, which
    run_app does not expose. SIGTERM or SIGINT stop it gracefully."""
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        keepalive_timeout=edge.keepalive_timeout_s,
        # What a connection buffers of a body not yet read. aiohttp's default (256 KiB, paused
        # at twice that) let 100 clients refused before their bodies (401, 413, 503) hold
        # ~75 MB between them (bench/hostile.py), 64 KiB ~28 MB: what is left is uvloop's read
        # of up to 256 KiB that precedes the pause.
        read_bufsize=READ_BUFFER_BYTES,
        # A gRPC client sent to this port by mistake gets a 400 and fails fast; not an ERROR.
        logger=PrefaceQuietLogger(logging.getLogger("aiohttp.server")),
        # Bounded graceful shutdown: in-flight requests get their Kafka acknowledgement.
        shutdown_timeout=edge.publish_timeout_s + 5,
    )
    await runner.setup()
    try:
        assert runner.server is not None
        ConnectionGuard(runner.server, edge.max_connections, edge.header_timeout_s).install()
        await web.TCPSite(runner, edge.host, edge.port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        trimmer = asyncio.create_task(trim_every(TRIM_INTERVAL_S))
        await stop.wait()
        trimmer.cancel()
    finally:
        await runner.cleanup()


@asynccontextmanager
async def edge_clients(settings: Settings) -> AsyncIterator[EdgeClients]:
    """The API's clients, opened in order and closed in reverse."""
    async with AsyncExitStack() as stack:
        pg = await clients.postgres(settings)
        stack.push_async_callback(pg.close)
        redis = await clients.redis_client(settings)
        stack.push_async_callback(redis.aclose)
        # The read API queries a trace's three tables at once, a page of traces four: 4
        # connections queued concurrent readers behind each other (a page waited for 12 queries
        # ahead of it). The slow reads (counts, daily metrics) are shared through Reader's cache,
        # so the pool mostly runs short point reads; probes take one connection more.
        ch = await clients.clickhouse(settings, pool_size=12)
        stack.push_async_callback(ch.close)
        producer = await clients.kafka_producer(settings)
        stack.push_async_callback(producer.stop)
        yield EdgeClients(pg, redis, ch, producer)
