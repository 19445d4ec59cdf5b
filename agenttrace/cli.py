"""`agenttrace`: the API, the worker, migrations and key management.

This is the only place that reads the environment (through Settings.from_env) and configures
logging.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import orjson
from aiohttp import web
from loguru import logger

from agenttrace import clients
from agenttrace.logs import configure
from agenttrace.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agenttrace", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    api = sub.add_parser("api", help="run the HTTP ingestion edge")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8080)

    worker = sub.add_parser("worker", help="run consumer stages (metrics and probes on --port)")
    worker.add_argument("--host", default="127.0.0.1")
    worker.add_argument("--port", type=int, default=8081)
    worker.add_argument("--stage", action="append", choices=["clickhouse"], help="repeatable; default: all")

    sub.add_parser("migrate", help="create or upgrade topics, ClickHouse tables and the Postgres schema")

    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key (and the project if new)")
    create.add_argument("--project", required=True, help="project name")
    create.add_argument("--json", action="store_true", help="print {project_id, public_key, secret_key}")

    args = parser.parse_args(argv)
    server = args.command in ("api", "worker")
    configure(args.log_level, component=args.command, stream=sys.stdout if server else sys.stderr)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        logger.error("invalid configuration", error=str(exc))
        return 2
    if args.command == "api":
        return _api(settings, args.host, args.port)
    if args.command == "worker":
        return asyncio.run(_worker(settings, tuple(args.stage or ("clickhouse",)), args.host, args.port))
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    if args.command == "keys":
        return asyncio.run(_keys_create(settings, args.project, args.json))
    return 2


def _api(settings: Settings, host: str, port: int) -> int:
    from ingest.app import build_app

    web.run_app(
        build_app(settings),
        host=host,
        port=port,
        access_log=None,
        print=None,
        # Bounded graceful shutdown: in-flight requests get their Kafka acknowledgement.
        shutdown_timeout=settings.edge.publish_timeout_s + 5,
    )
    return 0


async def _worker(settings: Settings, stages: tuple[str, ...], host: str, port: int) -> int:
    from pipeline.worker import run_worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(settings, stages, host, port, stop)
    return 0 if stop.is_set() else 1


async def _migrate(settings: Settings) -> int:
    from pipeline.topics import ensure_topics
    from sinks.clickhouse import schema as ch_schema
    from sinks.postgres import schema as pg_schema

    created = await clients.with_retry("kafka", lambda: ensure_topics(settings.kafka_bootstrap, settings.topics))
    ch = await clients.clickhouse(settings, database="default", pool_size=1)
    try:
        dialect = ch_schema.dialect_for(ch.version)
        db = settings.clickhouse.database
        ch_applied = await ch_schema.migrate(ch.execute, ch.fetch, dialect, db)
    finally:
        await ch.close()
    pg = await clients.postgres(settings)
    try:
        pg_applied = await pg_schema.migrate(pg)
    finally:
        await pg.close()
    logger.info(
        "migrated",
        topics_created=created,
        clickhouse_dialect=dialect.name,
        clickhouse_applied=ch_applied,
        postgres_applied=pg_applied,
    )
    return 0


async def _keys_create(settings: Settings, project: str, as_json: bool) -> int:
    from ingest.metrics import API_KEYS_CREATED
    from sinks.postgres.keys import create_key, validate_project_name

    try:
        validate_project_name(project)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pg = await clients.postgres(settings)
    try:
        key = await create_key(pg, project)
    finally:
        await pg.close()
    API_KEYS_CREATED.inc()
    doc = {"project_id": key.project_id, "public_key": key.public_key, "secret_key": key.secret_key}
    if as_json:
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    else:
        for k, v in doc.items():
            sys.stdout.write(f"{k}: {v}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
