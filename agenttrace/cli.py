"""`agenttrace`: the API, the worker, migrations, key management, dead letters and replays.

This is the only place that reads the environment (through Settings.from_env) and configures
logging.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys

import orjson
import uvloop
from loguru import logger

from agenttrace import clients
from agenttrace.logs import configure
from agenttrace.settings import STAGES, Settings


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
    worker.add_argument("--stage", action="append", choices=list(STAGES), help="repeatable; default: all")

    sub.add_parser("migrate", help="create or upgrade topics, ClickHouse tables and the Postgres schema")

    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key (and the project if new)")
    create.add_argument("--project", required=True, help="project name")
    create.add_argument("--json", action="store_true", help="print {project_id, public_key, secret_key}")

    dlq = sub.add_parser("dlq", help="list and requeue dead-lettered events")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_sub.add_parser("list", help="newest first")
    dlq_list.add_argument("--project", help="project id")
    dlq_list.add_argument("--limit", type=int, default=50)
    dlq_list.add_argument("--json", action="store_true", help="print a JSON array, payloads included")
    dlq_requeue = dlq_sub.add_parser("requeue", help="append stored events to the events topic again")
    which = dlq_requeue.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=int, nargs="+", action="extend", help="dead-letter ids (see dlq list)")
    which.add_argument("--all", action="store_true", help="every dead letter not requeued yet")
    dlq_requeue.add_argument("--project", help="with --all: only this project id")

    replay = sub.add_parser("replay", help="fold the events topic again through one stage's sink")
    replay.add_argument("--stage", required=True, choices=list(STAGES))
    replay.add_argument(
        "--from", dest="since", help="ISO 8601 time or a duration ago (15m, 2h, 7d); default: the start"
    )

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
        return uvloop.run(_worker(settings, tuple(args.stage or STAGES), args.host, args.port))
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    if args.command == "keys":
        return asyncio.run(_keys_create(settings, args.project, args.json))
    if args.command == "dlq":
        return asyncio.run(_dlq(settings, args))
    if args.command == "replay":
        return asyncio.run(_replay(settings, args.stage, args.since))
    return 2


def tune_gc() -> None:
    # Requests and batches allocate ~10^5 short-lived dicts; with the default thresholds the
    # cyclic collector runs hundreds of times a second, and its full passes stall the loop.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def _api(settings: Settings, host: str, port: int) -> int:
    from agenttrace.api import run_api

    tune_gc()
    run_api(settings, host, port)
    return 0


async def _worker(settings: Settings, stages: tuple[str, ...], host: str, port: int) -> int:
    from agenttrace.worker import run_worker

    tune_gc()
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

    topics = await clients.with_retry("kafka", lambda: ensure_topics(settings.kafka_bootstrap, settings.topics))
    ch = await clients.clickhouse(settings, database="default", pool_size=1)
    try:
        dialect = ch_schema.dialect_for(ch.version)
        db = settings.clickhouse.database
        cluster = settings.clickhouse.cluster or None
        ch_applied = await ch_schema.migrate(ch.execute, ch.fetch, dialect, db, cluster=cluster)
    finally:
        await ch.close()
    pg = await clients.postgres(settings)
    try:
        pg_applied = await pg_schema.migrate(pg)
    finally:
        await pg.close()
    logger.info(
        "migrated",
        topics_created=topics.created,
        clickhouse_dialect=dialect.name,
        clickhouse_cluster=cluster,
        clickhouse_applied=ch_applied,
        postgres_applied=pg_applied,
    )
    if topics.differences:
        # A failure, not a warning: a topic with fewer replicas than configured loses acknowledged
        # events with one broker, and one with other partitions than the workers were sized for
        # idles or overloads them; both go unnoticed until the outage. Kafka cannot shrink
        # partitions and migrate never reassigns replicas behind an operator's back, so it
        # says what differs and exits 3 (deployments gate on it: the Job fails, `make up` stops).
        logger.error("topics differ from the configuration", differences=topics.differences)
        return 3
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


async def _dlq(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.dead_letters import requeue
    from sinks.postgres.dead_letters import DeadLetterTable

    pg = await clients.postgres(settings)
    store = DeadLetterTable(pg)
    try:
        if args.dlq_command == "list":
            letters = await store.newest(project=args.project, limit=args.limit)
            if args.json:
                sys.stdout.write(orjson.dumps([d.to_json() for d in letters]).decode() + "\n")
                return 0
            sys.stdout.write("id\tcreated_at\tstage\tproject_id\ttype\tevent_id\trequeued\treason\n")
            for d in letters:
                requeued = d.requeued_at.isoformat(timespec="seconds") if d.requeued_at else "-"
                sys.stdout.write(
                    f"{d.id}\t{d.created_at.isoformat(timespec='seconds')}\t{d.stage}\t{d.project_id}\t"
                    f"{d.event_type}\t{d.event_id}\t{requeued}\t{d.reason[:200]}\n"
                )
            return 0
        producer = await clients.kafka_producer(settings)
        try:
            result = await requeue(
                store, producer, settings.topics.events, ids=None if args.all else args.id, project=args.project
            )
        finally:
            await producer.stop()
    finally:
        await pg.close()
    sys.stdout.write(f"requeued {len(result.requeued)} dead letters as {result.sent} events\n")
    for letter_id, why in result.skipped.items():
        sys.stdout.write(f"skipped {letter_id}: {why}\n")
    return 1 if result.skipped else 0


async def _replay(settings: Settings, stage: str, since: str | None) -> int:
    from contextlib import AsyncExitStack

    from agenttrace.worker import sink_for
    from pipeline.replay import Progress, parse_since, replay

    try:
        since_ms = parse_since(since) if since else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    async with AsyncExitStack() as stack:
        ch = pg = None
        if stage == "clickhouse":
            ch = await clients.clickhouse(settings)
            stack.push_async_callback(ch.close)
        else:
            pg = await clients.postgres(settings)
            stack.push_async_callback(pg.close)
        consumer = await clients.kafka_reader(settings)
        stack.push_async_callback(consumer.stop)
        sink = sink_for(stage, settings, ch=ch, pg=pg)
        summary = await replay(
            consumer, sink, settings.topics.events, stage=stage, since_ms=since_ms, progress=Progress
        )
    for line in summary.lines():
        sys.stdout.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
