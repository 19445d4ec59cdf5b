"""`agenttrace`: the API, the worker, migrations, key management, dead letters and replays.

This is the only place that reads the environment (through Settings.from_env) and configures
logging.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
from pathlib import Path
from typing import Any

import orjson
import uvloop
from loguru import logger

from agenttrace import clients
from agenttrace.logs import configure
from agenttrace.memory import TRIM_INTERVAL_S, BatchCollector, trim_every, tune_malloc
from agenttrace.settings import STAGES, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agenttrace", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    api = sub.add_parser("api", help="run the ingestion edge: HTTP, and OTLP/gRPC")
    api.add_argument("--host", help="where HTTP and gRPC listen (default 127.0.0.1)")
    api.add_argument("--port", type=int, default=8080)
    api.add_argument("--grpc-port", type=int, help="OTLP/gRPC port (default: that of AGENTTRACE_GRPC_ADDRESS, 4317)")

    worker = sub.add_parser("worker", help="run consumer stages (metrics and probes on --port)")
    worker.add_argument("--host", default="127.0.0.1")
    worker.add_argument("--port", type=int, default=8081)
    worker.add_argument("--stage", action="append", choices=list(STAGES), help="repeatable; default: all")
    worker.add_argument(
        "--processes",
        type=int,
        help="run N worker processes of these stages, supervised and restarted; --port serves them all",
    )
    # Given by the supervisor to its children (agenttrace/supervisor.py).
    worker.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)

    migrate = sub.add_parser("migrate", help="create or upgrade topics, ClickHouse tables and the Postgres schema")
    migrate.add_argument(
        "--rebuild-granules",
        action="store_true",
        help="copy ClickHouse tables made with 8192-row granules into 1024-row ones (single node; writers may run)",
    )

    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key (and the project if new)")
    create.add_argument("--project", required=True, help="project name")
    create.add_argument("--expires-in-days", type=int, help="refuse the key after N days (default: never)")
    create.add_argument("--json", action="store_true", help="print {project_id, public_key, secret_key, expires_at}")
    keys_list = keys_sub.add_parser("list", help="a project's keys, newest first; secrets are never shown")
    keys_list.add_argument("--project", required=True, help="project name")
    keys_list.add_argument("--json", action="store_true", help="print a JSON array")
    revoke = keys_sub.add_parser("revoke", help="revoke a key; every api refuses it within seconds")
    revoke.add_argument("--public-key", required=True)

    projects = sub.add_parser("projects", help="project settings")
    projects_sub = projects.add_subparsers(dest="projects_command", required=True)
    retention = projects_sub.add_parser("retention", help="keep a project's traces N days (the worker removes older)")
    retention.add_argument("--project", required=True, help="project name")
    retention.add_argument("--days", type=int, help="days to keep; leave out to keep for ever")

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

    models = sub.add_parser("models", help="model prices: the shipped defaults and each project's own")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    models_list = models_sub.add_parser("list", help="definitions, a project's own first")
    models_list.add_argument("--project", help="project name (default: the shipped defaults alone)")
    models_list.add_argument("--json", action="store_true")
    models_import = models_sub.add_parser(
        "import", help='load a price file ({"models": [...]}, prices per 1M units, as default_models.json)'
    )
    models_import.add_argument("file")
    models_import.add_argument("--project", help="the project's own models (default: replace the shipped defaults)")

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
        return _api(settings, args.host, args.port, args.grpc_port)
    if args.command == "worker" and args.processes is not None:
        return uvloop.run(_supervise(settings, args))
    if args.command == "worker":
        return uvloop.run(_worker(settings, tuple(args.stage or STAGES), args.host, args.port, args.parent_pid))
    if args.command == "migrate":
        return asyncio.run(_migrate(settings, rebuild_granules=args.rebuild_granules))
    if args.command == "keys":
        if args.keys_command == "list":
            return asyncio.run(_keys_list(settings, args.project, args.json))
        if args.keys_command == "revoke":
            return asyncio.run(_keys_revoke(settings, args.public_key))
        return asyncio.run(_keys_create(settings, args.project, args.expires_in_days, args.json))
    if args.command == "projects":
        return asyncio.run(_projects_retention(settings, args.project, args.days))
    if args.command == "dlq":
        return asyncio.run(_dlq(settings, args))
    if args.command == "models":
        try:
            doc = orjson.loads(Path(args.file).read_bytes()) if args.models_command == "import" else None
        except (OSError, orjson.JSONDecodeError) as exc:
            print(f"error: {args.file}: {exc}", file=sys.stderr)
            return 2
        return asyncio.run(_models(settings, args, doc))
    if args.command == "replay":
        return asyncio.run(_replay(settings, args.stage, args.since))
    return 2


def tune_memory(*, fixed_mmap_threshold: bool = True) -> None:
    """The collector's thresholds and the C allocator of a server process (agenttrace/memory.py)."""
    tune_gc()
    tune_malloc(fixed_mmap_threshold=fixed_mmap_threshold)


def tune_gc() -> None:
    # Requests and batches allocate ~10^5 short-lived dicts; with the default thresholds the
    # cyclic collector runs hundreds of times a second, and its full passes stall the loop.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def _api(settings: Settings, host: str | None, port: int, grpc_port: int | None) -> int:
    from agenttrace.api import run_api

    tune_memory()
    run_api(settings, host, port, grpc_port)
    return 0


async def _worker(
    settings: Settings, stages: tuple[str, ...], host: str, port: int, parent_pid: int | None = None
) -> int:
    from agenttrace.worker import run_worker

    tune_memory(fixed_mmap_threshold=False)
    # Collected between batches instead (BatchCollector).
    gc.disable()
    collector = BatchCollector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    helpers = [asyncio.create_task(trim_every(TRIM_INTERVAL_S)), asyncio.create_task(collector.backstop())]
    if parent_pid is not None:
        helpers.append(asyncio.create_task(_stop_without_parent(parent_pid, stop)))
    try:
        await run_worker(settings, stages, host, port, stop, between_batches=collector.between_batches)
    finally:
        for task in helpers:
            task.cancel()
    return 0 if stop.is_set() else 1


async def _stop_without_parent(parent_pid: int, stop: asyncio.Event) -> None:
    """A supervised worker whose supervisor is gone (killed with SIGKILL, say) drains and exits
    rather than go on unwatched, beside the children of the supervisor that replaces it."""
    # Nothing signals an orphan (a child's parent-death signal would need a hook run at fork);
    # its parent pid changes, so it asks once a second.
    while os.getppid() == parent_pid:  # noqa: ASYNC110 - no event to wait on
        await asyncio.sleep(1.0)
    logger.error("the supervisor is gone; draining", supervisor=parent_pid)
    stop.set()


async def _supervise(settings: Settings, args: argparse.Namespace) -> int:
    from agenttrace.supervisor import Supervisor
    from health.version import git_revision

    stages = tuple(args.stage or STAGES)
    try:
        supervisor = Supervisor(
            stages,
            args.processes,
            args.host,
            args.port,
            drain_s=settings.stage.drain_timeout_s,
            log_level=args.log_level,
            revision=settings.revision or git_revision(),
        )
    except ValueError as exc:
        logger.error("invalid arguments", error=str(exc))
        return 2
    if args.processes > settings.topics.partitions:
        # The group hands each partition to one member: the extra processes would idle.
        logger.warning(
            "more processes than partitions; some will idle",
            processes=args.processes,
            partitions=settings.topics.partitions,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await supervisor.run(stop)


async def _migrate(settings: Settings, *, rebuild_granules: bool = False) -> int:
    from collections.abc import Awaitable, Callable
    from dataclasses import replace

    from pipeline.topics import ensure_topics
    from sinks.clickhouse import schema as ch_schema
    from sinks.clickhouse.client import ClickHouse
    from sinks.postgres import schema as pg_schema
    from sinks.postgres.models import ModelTable, default_models

    if rebuild_granules and settings.clickhouse.cluster:
        # The public names are Distributed tables there; the replicated local tables below them
        # would need their ZooKeeper paths moved too.
        logger.error("--rebuild-granules runs on a single node, not on a cluster")
        return 2
    topics = await clients.with_retry("kafka", lambda: ensure_topics(settings.kafka_bootstrap, settings.topics))
    ch = await clients.clickhouse(settings, database="default", pool_size=1)
    try:
        dialect = ch_schema.dialect_for(ch.version)
        db = settings.clickhouse.database
        cluster = settings.clickhouse.cluster or None
        each_server = each_shard = None
        if cluster:

            async def connect(host: str, port: int) -> tuple[ch_schema.Execute, Callable[[], Awaitable[None]]]:
                one = ClickHouse(
                    replace(settings.clickhouse, host=host, port=port, fallbacks=(), pool_size=1), database="default"
                )
                return one.execute, one.close

            each_server = ch_schema.run_on_each_server(ch.fetch, connect, cluster)

            async def each_shard(sql: str) -> None:
                await ch.execute_on_each_shard(sql, operation="migrate")

        ch_applied = await ch_schema.migrate(
            ch.execute, ch.fetch, dialect, db, cluster=cluster, each_server=each_server, each_shard=each_shard
        )
        coarse = await ch_schema.coarse_granules(ch.fetch, db)
        if coarse and rebuild_granules:
            for table in sorted(coarse):
                counts = await ch_schema.rebuild_granules(ch.execute, ch.fetch, db, table)
                logger.info(
                    "rebuilt with finer granules",
                    table=table,
                    granularity=ch_schema.GRANULARITY,
                    **counts,
                    drop_when_checked=f"DROP TABLE {db}.{table}{ch_schema.OLD_SUFFIX}",
                )
        elif coarse:
            # Tables made before 0001 set the granularity: correct, only lookups by id are dearer.
            logger.warning(
                "ClickHouse tables with coarse granules; `agenttrace migrate --rebuild-granules` makes lookups "
                "1.5-2.3x cheaper",
                granules=coarse,
            )
    finally:
        await ch.close()
    pg = await clients.postgres(settings)
    try:
        pg_applied = await pg_schema.migrate(pg)
        try:
            models = await ModelTable(pg).load_defaults(default_models())
        except ValueError as exc:
            logger.error("the default model prices cannot be loaded", error=str(exc))
            return 2
    finally:
        await pg.close()
    logger.info(
        "migrated",
        topics_created=topics.created,
        clickhouse_dialect=dialect.name,
        clickhouse_cluster=cluster,
        clickhouse_applied=ch_applied,
        postgres_applied=pg_applied,
        default_models=models,
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


async def _keys_create(settings: Settings, project: str, expires_in_days: int | None, as_json: bool) -> int:
    from ingest.metrics import API_KEYS_CREATED
    from sinks.postgres.keys import create_key, validate_expiry_days, validate_project_name

    try:
        validate_project_name(project)
        validate_expiry_days(expires_in_days)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pg = await clients.postgres(settings)
    try:
        key = await create_key(pg, project, expires_in_days)
    finally:
        await pg.close()
    API_KEYS_CREATED.inc()
    # The only time the secret is ever shown.
    doc = key.to_json()
    if as_json:
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    else:
        for k, v in doc.items():
            sys.stdout.write(f"{k}: {v if v is not None else 'never'}\n")
    return 0


async def _keys_list(settings: Settings, project: str, as_json: bool) -> int:
    from sinks.postgres.keys import list_keys, validate_project_name

    try:
        validate_project_name(project)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pg = await clients.postgres(settings)
    try:
        keys = await list_keys(pg, project)
    finally:
        await pg.close()
    if keys is None:
        print(f"error: no project named {project!r}", file=sys.stderr)
        return 1
    if as_json:
        sys.stdout.write(orjson.dumps([k.to_json() for k in keys]).decode() + "\n")
        return 0
    sys.stdout.write("public_key\tsecret\tcreated_at\texpires_at\trevoked_at\n")
    for k in keys:
        doc = k.to_json()
        sys.stdout.write(
            f"{k.public_key}\t{k.display_secret}\t{doc['created_at']}\t{doc['expires_at'] or '-'}\t"
            f"{doc['revoked_at'] or '-'}\n"
        )
    return 0


async def _projects_retention(settings: Settings, project: str, days: int | None) -> int:
    from sinks.postgres.retention import set_retention, validate_retention_days

    try:
        validate_retention_days(days)
    except ValueError as exc:
        print(f"error: {exc}".replace("retentionDays", "--days"), file=sys.stderr)
        return 2
    pg = await clients.postgres(settings)
    try:
        project_id = await set_retention(pg, project, days)
    finally:
        await pg.close()
    if project_id is None:
        print(f"error: no project named {project!r}", file=sys.stderr)
        return 1
    kept = f"{days} days" if days else "for ever"
    sys.stdout.write(f"project {project} ({project_id}) keeps traces {kept}\n")
    return 0


async def _keys_revoke(settings: Settings, public_key: str) -> int:
    from ingest.auth import invalidate
    from ingest.metrics import API_KEYS_REVOKED
    from sinks.postgres.keys import revoke_key

    pg = await clients.postgres(settings)
    try:
        found = await revoke_key(pg, public_key)
    finally:
        await pg.close()
    if not found:
        print(f"error: no key {public_key!r}", file=sys.stderr)
        return 1
    API_KEYS_REVOKED.inc()
    redis = await clients.redis_client(settings)
    try:
        invalidated = await invalidate(redis, public_key)
    finally:
        await redis.aclose()
    sys.stdout.write(f"revoked {public_key}\n")
    if not invalidated:
        # The database refuses the key already; api processes stop trusting cached entries
        # within their in-process TTL, or their Redis TTL if Redis comes back holding one.
        print("warning: redis unreachable; cached entries expire on their own (AUTH_CACHE_TTL_S)", file=sys.stderr)
        return 3
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
    from sinks.postgres.models import ModelTable

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
        # Replays price with today's definitions: that is how history is re-priced.
        prices_pg = pg or await clients.postgres(settings)
        if prices_pg is not pg:
            stack.push_async_callback(prices_pg.close)
        book = await ModelTable(prices_pg).book()
        consumer = await clients.kafka_reader(settings)
        stack.push_async_callback(consumer.stop)
        # Postgres for the tombstones too: a replay must not fold a deleted trace back in.
        sink = sink_for(stage, settings, ch=ch, pg=prices_pg, prices=lambda: book)
        summary = await replay(
            consumer, sink, settings.topics.events, stage=stage, since_ms=since_ms, progress=Progress
        )
    for line in summary.lines():
        sys.stdout.write(line + "\n")
    return 0


async def _models(settings: Settings, args: argparse.Namespace, doc: Any) -> int:
    from sinks.postgres.keys import project_id_of
    from sinks.postgres.models import ModelTable

    pg = await clients.postgres(settings)
    try:
        table = ModelTable(pg)
        project_id = None
        if args.project:
            project_id = await project_id_of(pg, args.project)
            if project_id is None:
                print(f"error: no project named {args.project!r}", file=sys.stderr)
                return 2
        if args.models_command == "import":
            try:
                count = await _import_models(table, doc, project_id)
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            sys.stdout.write(f"imported {count} models\n")
            return 0
        models, _ = await table.visible(project_id or "", limit=10_000)
    finally:
        await pg.close()
    if args.json:
        sys.stdout.write(orjson.dumps([_model_json(m) for m in models]).decode() + "\n")
        return 0
    sys.stdout.write("id\tproject\tmodel\tpattern\tstart\tprices (USD per 1M)\n")
    for m in models:
        per_million = ", ".join(f"{k}={v * 1e6:g}" for k, v in sorted(m.prices.items()))
        start = m.start_date.date().isoformat() if m.start_date else "-"
        sys.stdout.write(
            f"{m.id}\t{m.project_id or 'default'}\t{m.model_name}\t{m.match_pattern}\t{start}\t{per_million}\n"
        )
    return 0


async def _import_models(table: Any, doc: Any, project_id: str | None) -> int:
    from sinks.postgres.models import parse_file_entry

    if project_id is None:
        return await table.load_defaults(doc)
    entries = doc.get("models") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ValueError('the file must be an object with a "models" list')
    parsed = [(e.get("id") if isinstance(e, dict) else None, parse_file_entry(e)) for e in entries]
    for model_id, new in parsed:
        await table.create(project_id, new, model_id if isinstance(model_id, str) and model_id else None)
    return len(parsed)


def _model_json(m: Any) -> dict[str, Any]:
    return {
        "id": m.id,
        "projectId": m.project_id,
        "modelName": m.model_name,
        "matchPattern": m.match_pattern,
        "startDate": m.start_date.isoformat() if m.start_date else None,
        "unit": m.unit,
        "prices": m.prices,
        "defaultTier": m.default_tier,
        "tiers": m.tiers,
    }


if __name__ == "__main__":
    sys.exit(main())
