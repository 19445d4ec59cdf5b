"""The API process's aiohttp application: routes, middlewares, and the resources it is handed.

The shell passes `connect`, which opens the store and Kafka clients and closes them again;
cleanup_ctx enters it before the first request and leaves it after aiohttp has stopped
accepting and finished in-flight requests, the publisher stopping first. The OTLP/gRPC listener
is entered after the clients, on the same loop and with the same Intake, and left before them:
it refuses new RPCs and lets in-flight ones finish before the publisher stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiohttp import web
from aiokafka import AIOKafkaProducer
from loguru import logger
from prometheus_async.aio.web import server_stats

from health.checks import Check, Health
from health.http import observe
from ingest import (
    admin,
    annotation_queues,
    comments,
    datasets,
    deletion,
    langfuse_health,
    media,
    models,
    prompts,
    read,
    read_metrics,
    read_scores,
    read_sessions,
    score_configs,
)
from ingest.auth import Authenticator
from ingest.batch import ingest_batch
from ingest.config import EdgeConfig
from ingest.grpc_server import GrpcListener
from ingest.http import translate
from ingest.intake import Intake
from ingest.limits import InflightBytes, RateLimiter
from ingest.openapi import PATH as OPENAPI_PATH
from ingest.openapi import openapi_document
from ingest.otlp.experiments import Linker
from ingest.otlp.grpc_service import LogsService, TraceService
from ingest.otlp.handler import export_log_records, export_traces
from ingest.projects import PATH as PROJECTS_PATH
from ingest.projects import get_projects
from ingest.publisher import EventPublisher
from ingest.scores import create_scores
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.reader import Reader
from sinks.postgres.client import Postgres
from sinks.readiness import SchemaCheck

OTLP_PATHS = ("/v1/traces", "/api/public/otel/v1/traces")
OTLP_LOGS_PATHS = ("/v1/logs", "/api/public/otel/v1/logs")


@dataclass(frozen=True)
class EdgeClients:
    postgres: Postgres
    redis: aioredis.Redis
    clickhouse: ClickHouse
    producer: AIOKafkaProducer


Connect = Callable[[], AbstractAsyncContextManager[EdgeClients]]


def build_app(
    config: EdgeConfig, events_topic: str, admin_token: str | None, connect: Connect, health: Health
) -> web.Application:
    # Compressed bodies may not exceed the decompressed limit either; decompress() checks the rest.
    # aiohttp would otherwise decompress request bodies itself, and decompress() would then see
    # plain bytes under a Content-Encoding: gzip header; one bounded decoder (with zstd) is ours.
    app = web.Application(
        middlewares=[observe, translate],
        client_max_size=config.max_body_bytes,
        handler_args={"auto_decompress": False},
    )

    async def resources(app: web.Application) -> AsyncIterator[None]:
        async with connect() as clients:
            publisher = EventPublisher(
                clients.producer, events_topic, config.publish_timeout_s, config.kafka_probe_interval_s
            )
            publisher.start()
            pg, redis = clients.postgres, clients.redis
            app["postgres"] = pg
            app["clickhouse"] = clients.clickhouse
            app["tombstone_keep_s"] = config.tombstone_keep_s
            app["reader"] = Reader(clients.clickhouse, cache=True)
            app["admin"] = admin.Admin(pg, admin_token, redis)
            auth = Authenticator(pg, redis, config.auth_cache_ttl_s)
            await auth.start()
            app["intake"] = Intake(
                config,
                auth,
                publisher,
                InflightBytes(config.max_inflight_bytes),
                RateLimiter(redis, config.rate_limit_per_minute),
            )
            # The edge needs Postgres (keys) and Kafka (the log); ClickHouse and Redis only degrade it.
            health.checks.extend(
                [
                    Check("postgres", pg.ping),
                    Check("clickhouse", clients.clickhouse.ping, required=False),
                    Check("redis", redis.ping, required=False),
                    Check("kafka", publisher.check),
                    # Keys, tombstones and prices live in Postgres: the edge needs its schema.
                    Check("schema", SchemaCheck(pg)),
                ]
            )
            logger.info("api ready", host=config.host, port=config.port)
            try:
                yield
            finally:
                await publisher.stop()
                await auth.stop()
        logger.info("api stopped")

    async def grpc_listener(app: web.Application) -> AsyncIterator[None]:
        listener = GrpcListener(
            config.grpc_address,
            [TraceService(app["intake"], Linker(app["postgres"])).handler(), LogsService(app["intake"]).handler()],
            # grpc core holds a message whole before the method sees it: at twice the body limit,
            # 100 calls of 9 MiB at once took the api to 0.9 GB. Past this it refuses from the
            # message's length prefix, without reading it; just past max_body_bytes the method
            # answers itself (counted and logged).
            max_message_bytes=config.max_body_bytes + 64 * 1024,
            grace_s=config.publish_timeout_s + 1,
        )
        await listener.start()
        health.checks.append(Check("grpc", listener.ping))
        logger.info("grpc ready", address=config.grpc_address, port=listener.port)
        try:
            yield
        finally:
            await listener.stop()

    app.cleanup_ctx.append(resources)
    app.cleanup_ctx.append(grpc_listener)
    app.router.add_post("/api/public/ingestion", ingest_batch)
    for path, handler in (
        (read.TRACES_PATH, read.list_traces),
        (read.TRACE_PATH, read.get_trace),
        (read.OBSERVATIONS_PATH, read.list_observations),
        (read.OBSERVATION_PATH, read.get_observation),
        (read.OBSERVATIONS_V2_PATH, read.list_observations_v2),
        (read_sessions.SESSIONS_PATH, read_sessions.list_sessions),
        (read_sessions.SESSION_PATH, read_sessions.get_session),
        (read_sessions.DAILY_PATH, read_sessions.daily_metrics),
        (read_metrics.PATH, read_metrics.metrics),
        (read_metrics.V2_PATH, read_metrics.metrics_v2),
        (read_scores.SCORES_PATH, read_scores.list_scores),
        (read_scores.SCORE_PATH, read_scores.get_score),
        (read_scores.SCORES_V2_PATH, read_scores.list_scores_v2),
        (read_scores.SCORE_V2_PATH, read_scores.get_score_v2),
        (read_scores.SCORES_V3_PATH, read_scores.list_scores_v3),
    ):
        app.router.add_get(path, handler, allow_head=False)
    app.router.add_post("/api/public/scores", create_scores)
    app.router.add_delete(read.TRACE_PATH, deletion.delete_trace)
    app.router.add_delete(read.TRACES_PATH, deletion.delete_traces)
    app.router.add_delete(read_scores.SCORE_PATH, deletion.delete_score)
    app.router.add_post(admin.PATH, admin.create_project_key)
    app.router.add_get(admin.PATH, admin.list_project_keys)
    app.router.add_delete(admin.KEY_PATH, admin.revoke_project_key)
    app.router.add_put(admin.PROJECT_PATH, admin.update_project)
    for path in OTLP_PATHS:
        app.router.add_post(path, export_traces)
    for path in OTLP_LOGS_PATHS:
        app.router.add_post(path, export_log_records)
    app.router.add_get("/metrics", server_stats)
    app.router.add_get(OPENAPI_PATH, openapi_document)
    app.router.add_get(PROJECTS_PATH, get_projects)
    models.add_routes(app)
    media.add_routes(app)
    prompts.add_routes(app)
    score_configs.add_routes(app)
    comments.add_routes(app)
    annotation_queues.add_routes(app)
    datasets.add_routes(app)
    health.add_routes(app)
    langfuse_health.add_routes(app, health)
    return app
