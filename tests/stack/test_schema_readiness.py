"""A process whose code is newer than its database's schema says so, and is not ready until
`agenttrace migrate` has run; then it becomes ready by itself."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from agenttrace.settings import Settings
from sinks.postgres import schema
from sinks.postgres.client import Postgres
from sinks.postgres.config import PostgresConfig
from sinks.readiness import SchemaBehind, SchemaCheck
from tests.support import AGENTTRACE, eventually


@pytest.fixture
async def empty_dsn(settings: Settings, pg: Postgres) -> AsyncIterator[str]:
    """The DSN of a new database that no migration has touched."""
    name = f"agenttrace_schema_{uuid.uuid4().hex[:10]}"
    await pg.execute(f"CREATE DATABASE {name}")
    u = urlsplit(settings.postgres.dsn)
    try:
        yield urlunsplit(u._replace(path=f"/{name}"))
    finally:
        await pg.execute(f"DROP DATABASE IF EXISTS {name}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_check_names_exactly_the_missing_migrations(empty_dsn: str) -> None:
    pg = Postgres(PostgresConfig(dsn=empty_dsn))
    await pg.start()
    try:
        expected = [version for version, _, _ in schema.migrations()]
        with pytest.raises(SchemaBehind) as untouched:
            await SchemaCheck(pg)()
        assert f"postgres {expected}" in str(untouched.value)
        assert "agenttrace migrate" in str(untouched.value)

        await schema.migrate(pg)
        await SchemaCheck(pg)()  # current: no error

        # A database one migration behind the code (as after an upgrade without migrate).
        await pg.execute("DELETE FROM schema_migrations WHERE version = %s", (expected[-1],))
        with pytest.raises(SchemaBehind) as behind:
            await SchemaCheck(pg)()
        assert f"postgres [{expected[-1]}]" in str(behind.value)
    finally:
        await pg.close()


async def test_a_worker_waits_unready_for_migrate_then_runs(
    empty_dsn: str, settings: Settings, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:10]
    env = {
        **os.environ,
        "AGENTTRACE_POSTGRES_DSN": empty_dsn,
        "AGENTTRACE_TOPIC_EVENTS": f"agenttrace.test.{tag}.events",
        "AGENTTRACE_TOPIC_DLQ": f"agenttrace.test.{tag}.dlq",
        "AGENTTRACE_CONSUMER_GROUP_PREFIX": f"test-{tag}-",
    }
    port = _free_port()
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(AGENTTRACE), "worker", "--stage", "postgres", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    async def health() -> tuple[int, dict]:
        assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
        try:
            async with http.get(base + "/health") as r:
                return r.status, await r.json()
        except aiohttp.ClientError:
            return 0, {}

    async def ready() -> int:
        assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
        try:
            async with http.get(base + "/readyz") as r:
                return r.status
        except aiohttp.ClientError:
            return 0

    try:
        status, doc = await eventually(health, lambda h: "schema" in h[1].get("checks", {}), timeout_s=30)
        assert status == 503
        assert doc["checks"]["schema"]["status"] == "unhealthy"
        assert "run `agenttrace migrate`" in doc["checks"]["schema"]["error"]
        assert await ready() == 503

        proc_migrate = await asyncio.create_subprocess_exec(
            str(AGENTTRACE), "migrate", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc_migrate.communicate(), 60)
        assert proc_migrate.returncode == 0, err.decode()[-2000:]

        await eventually(ready, lambda s: s == 200, timeout_s=30)
        status, doc = await health()
        assert doc["checks"]["schema"]["status"] == "healthy"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([env["AGENTTRACE_TOPIC_EVENTS"], env["AGENTTRACE_TOPIC_DLQ"]])
        except KafkaError:
            pass  # migrate never ran: no topics to remove
        finally:
            await admin.close()
