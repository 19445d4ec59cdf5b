"""Fixtures for the fault tests against the local cluster of `make cluster-up` (ops/cluster.sh).

The cluster's environment comes from `ops/cluster.sh env`, not from this process's, so these
tests run beside the single-node stack whatever the shell exports.
"""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from agenttrace.settings import Settings
from sinks.clickhouse.client import ClickHouse
from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey, create_key

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "ops" / "cluster.sh"
API_URLS = ("http://127.0.0.1:29080", "http://127.0.0.1:29180")
# ClickHouse servers by name: tcp ports of ops/cluster.sh (shard 1: ch_1, ch_2; shard 2: ch_3, ch_4).
CH_PORTS = {"ch_1": 29001, "ch_2": 29002, "ch_3": 29003, "ch_4": 29004}


def cluster_env() -> dict[str, str]:
    out = subprocess.run([str(CLUSTER), "env"], check=True, capture_output=True, text=True).stdout
    env = {}
    for line in out.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0] if value else ""
    return env


async def cluster(*args: str) -> str:
    """ops/cluster.sh start|stop|kill PROCESS, without blocking the load running meanwhile."""
    proc = await asyncio.create_subprocess_exec(
        str(CLUSTER), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, f"ops/cluster.sh {' '.join(args)} failed:\n{text}"
    return text


@pytest.fixture(scope="session")
def cluster_settings() -> Settings:
    return Settings.from_env(cluster_env())


@pytest.fixture(scope="session")
async def cluster_pg(cluster_settings: Settings) -> AsyncIterator[Postgres]:
    client = Postgres(cluster_settings.postgres)
    await client.start()
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def cluster_ch(cluster_settings: Settings) -> AsyncIterator[dict[str, ClickHouse]]:
    """One client per server; a stopped server's client fails until it is back."""
    clients = {name: ClickHouse(replace(cluster_settings.clickhouse, port=port)) for name, port in CH_PORTS.items()}
    for client in clients.values():
        await client.start()
    yield clients
    for client in clients.values():
        await client.close()


@pytest.fixture
async def cluster_project(cluster_pg: Postgres) -> NewKey:
    return await create_key(cluster_pg, f"cluster-{uuid.uuid4().hex[:12]}")
