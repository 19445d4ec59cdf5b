"""The migrations render for both dialects; the modern one runs in chDB (a current ClickHouse
engine, embedded), the legacy one runs on Debian's 18.16 in the stack tests."""

from datetime import UTC, datetime

import pytest
from chdb import session as chdb_session

from sinks.clickhouse.schema import LEGACY, MODERN, dialect_for, migrations


@pytest.fixture(scope="module")
def chdb(tmp_path_factory):
    s = chdb_session.Session(str(tmp_path_factory.mktemp("chdb")))
    s.query("CREATE DATABASE IF NOT EXISTS agenttrace")
    for m in migrations():
        for statement in m.statements(MODERN, "agenttrace"):
            s.query(statement)
    yield s
    s.close()


def test_dialect_follows_the_server_version() -> None:
    assert dialect_for((18, 16, 1)) is LEGACY
    assert dialect_for((24, 8)) is MODERN


def test_legacy_ddl_avoids_types_18_16_lacks() -> None:
    sql = "\n".join(s for m in migrations() for s in m.statements(LEGACY, "agenttrace"))
    for modern_only in ("DateTime64", "LowCardinality", "CODEC", "INDEX", "Map("):
        assert modern_only not in sql


def test_modern_ddl_runs_and_tables_have_the_contract_columns(chdb) -> None:
    for table in ("traces", "observations", "scores"):
        cols = chdb.query(f"SELECT name FROM system.columns WHERE database = 'agenttrace' AND table = '{table}'", "CSV")
        names = {c.strip('"') for c in str(cols).split()}
        assert {"project_id", "id"} <= names
        if table != "traces":
            assert "trace_id" in names


def test_modern_ddl_is_idempotent(chdb) -> None:
    for m in migrations():
        for statement in m.statements(MODERN, "agenttrace"):
            chdb.query(statement)


def test_modern_timestamps_keep_microseconds_and_replacing_merges(chdb) -> None:
    ts = "2026-11-27 10:00:00.123456"
    for version, name in ((1, "old"), (2, "new")):
        chdb.query(
            "INSERT INTO agenttrace.observations"
            " (project_id, id, trace_id, name, start_time, created_at, updated_at, event_ts) "
            f"VALUES ('p', 'o1', 't1', '{name}', '{ts}', '{ts}', '{ts}', {version})"
        )
    out = str(
        chdb.query(
            "SELECT name, toUnixTimestamp64Micro(start_time) FROM agenttrace.observations FINAL WHERE id = 'o1'", "CSV"
        )
    ).strip()
    expected = int(datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC).timestamp() * 1_000_000)
    assert out == f'"new",{expected}'
