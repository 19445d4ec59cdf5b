"""Fixtures for tests against the real stack that `make up` starts (see ops/stack.sh).

Every test gets its own project (and key) so that tests never see each other's rows.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from agenttrace.settings import Settings
from sinks.clickhouse.client import ClickHouse
from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey, create_key


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
async def pg(settings: Settings) -> AsyncIterator[Postgres]:
    client = Postgres(settings.postgres)
    await client.start()
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def ch(settings: Settings) -> AsyncIterator[ClickHouse]:
    client = ClickHouse(settings.clickhouse)
    await client.start()
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
async def project(pg: Postgres) -> NewKey:
    """A fresh project with its own key, created through the same code as `keys create`."""
    return await create_key(pg, f"test-{uuid.uuid4().hex[:12]}")
