"""The API process: the edge of ingest/ with its clients, served by aiohttp (HTTP) and grpc.aio
(OTLP/gRPC) on one uvloop loop."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import uvloop
from aiohttp import web

from agenttrace import clients
from agenttrace.settings import Settings
from health.checks import Health
from health.version import git_revision
from ingest.app import EdgeClients, build_app
from ingest.http import PrefaceQuietLogger


def run_api(settings: Settings, host: str | None, port: int, grpc_port: int | None = None) -> None:
    edge = settings.edge.listening(host, port, grpc_port)
    app = build_app(
        edge,
        settings.topics.events,
        settings.admin_token,
        lambda: edge_clients(settings),
        Health(checks=[], revision=settings.revision or git_revision()),
    )
    web.run_app(
        app,
        loop=uvloop.new_event_loop(),
        host=edge.host,
        port=edge.port,
        access_log=None,
        # A gRPC client sent to this port by mistake gets a 400 and fails fast; not an ERROR.
        logger=PrefaceQuietLogger(logging.getLogger("aiohttp.server")),
        print=None,
        # Bounded graceful shutdown: in-flight requests get their Kafka acknowledgement.
        shutdown_timeout=edge.publish_timeout_s + 5,
    )


@asynccontextmanager
async def edge_clients(settings: Settings) -> AsyncIterator[EdgeClients]:
    """The API's clients, opened in order and closed in reverse."""
    async with AsyncExitStack() as stack:
        pg = await clients.postgres(settings)
        stack.push_async_callback(pg.close)
        redis = await clients.redis_client(settings)
        stack.push_async_callback(redis.aclose)
        # The read API queries a trace's three tables at once; probes take one connection more.
        ch = await clients.clickhouse(settings, pool_size=4)
        stack.push_async_callback(ch.close)
        producer = await clients.kafka_producer(settings)
        stack.push_async_callback(producer.stop)
        yield EdgeClients(pg, redis, ch, producer)
