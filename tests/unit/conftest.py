"""Shared fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chdb import session as chdb_session

from sinks.clickhouse.schema import MODERN, migrations


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[chdb_session.Session]:
    """An embedded current ClickHouse with every migration applied (the modern dialect)."""
    s = chdb_session.Session(str(tmp_path_factory.mktemp("chdb")))
    s.query("CREATE DATABASE IF NOT EXISTS agenttrace")
    for m in migrations():
        for statement in m.statements(MODERN, "agenttrace"):
            s.query(statement)
    yield s
    s.close()
