"""The API process: the aiohttp edge, its clients and routes.

cleanup_ctx enters resources in order (stores, then the Kafka producer, then the publisher)
and leaves them in reverse, after aiohttp has stopped accepting and finished in-flight requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from loguru import logger
from prometheus_async.aio.web import server_stats

from agenttrace import clients
from agenttrace.settings import Settings
from health.checks import Check, Health
from ingest import admin
from ingest.auth import Authenticator
from ingest.batch import ingest_batch
from ingest.http import observe
from ingest.intake import Intake
from ingest.limits import InflightBytes, RateLimiter
from ingest.openapi import PATH as OPENAPI_PATH, openapi_document
from ingest.otlp.handler import export_traces
from ingest.projects import PATH as PROJECTS_PATH, get_projects
from ingest.publisher import EventPublisher
from ingest.read import PATH as TRACE_PATH, get_trace
from ingest.scores import create_scores

OTLP_PATHS = ("/v1/traces", "/api/public/otel/v1/traces")


def build_app(settings: Settings) -> web.Application:
    # Compressed bodies may not exceed the decompressed limit either; decompress() checks the rest.
    # aiohttp would otherwise decompress request bodies itself, and decompress() would then see
    # plain bytes under a Content-Encoding: gzip header; one bounded decoder (with zstd) is ours.
    app = web.Application(
        middlewares=[observe],
        client_max_size=settings.edge.max_body_bytes,
        handler_args={"auto_decompress": False},
    )
    app["settings"] = settings
    app.cleanup_ctx.append(_resources)
    app.router.add_post("/api/public/ingestion", ingest_batch)
    app.router.add_get(TRACE_PATH, get_trace)
    app.router.add_post("/api/public/scores", create_scores)
    app.router.add_post(admin.PATH, admin.create_project_key)
    for path in OTLP_PATHS:
        app.router.add_post(path, export_traces)
    app.router.add_get("/metrics", server_stats)
    app.router.add_get(OPENAPI_PATH, openapi_document)
    app.router.add_get(PROJECTS_PATH, get_projects)
    # Checks are added once the clients exist; the routes must exist before start.
    app["health"] = Health(checks=[])
    app["health"].add_routes(app)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings: Settings = app["settings"]
    pg = await clients.postgres(settings)
    redis = await clients.redis_client(settings)
    # The read API queries a trace's three tables at once; probes take one connection more.
    ch = await clients.clickhouse(settings, pool_size=4)
    app["clickhouse"] = ch
    producer = await clients.kafka_producer(settings)
    publisher = EventPublisher(producer, settings.topics.events, settings.edge.publish_timeout_s)
    app["postgres"] = pg
    app["admin"] = admin.Admin(pg, settings.admin_token)
    app["intake"] = Intake(
        settings.edge,
        Authenticator(pg, redis, settings.edge.auth_cache_ttl_s),
        publisher,
        InflightBytes(settings.edge.max_inflight_bytes),
        RateLimiter(redis, settings.edge.rate_limit_per_minute),
    )
    # The edge needs Postgres (keys) and Kafka (the log); ClickHouse and Redis only degrade it.
    app["health"].checks.extend(
        [
            Check("postgres", pg.ping),
            Check("clickhouse", ch.ping, required=False),
            Check("redis", redis.ping, required=False),
            Check("kafka", publisher.ping),
        ]
    )
    logger.info("api ready", host=settings.edge.host, port=settings.edge.port)
    try:
        yield
    finally:
        await publisher.stop()
        await producer.stop()
        await ch.close()
        await redis.aclose()
        await pg.close()
        logger.info("api stopped")

