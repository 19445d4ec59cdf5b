"""The migrations render for both dialects; the modern one runs in chDB (a current ClickHouse
engine, embedded), the legacy one runs on Debian's 18.16 in the stack tests."""

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from sinks.clickhouse.client import ClickHouseError
from sinks.clickhouse.schema import (
    ALTER_TRIES,
    BY_TRACE,
    DISTRIBUTED_KEYS,
    EACH_SERVER,
    EACH_SHARD,
    GRANULARITY,
    JOURNAL,
    LEGACY,
    MODERN,
    SHARDING_KEYS,
    _run_statement,
    clustered,
    coarse_granules,
    dialect_for,
    migrate,
    migrations,
    rebuild_granules,
    run_on_each_server,
)

# The index by trace's columns (migration 0005), as its view and backfill select them.
INDEX_COLUMNS = "project_id, trace_id, id, start_time, end_time, total_cost, event_ts, is_deleted"


def test_dialect_follows_the_server_version() -> None:
    assert dialect_for((18, 16, 1)) is LEGACY
    assert dialect_for((24, 8)) is MODERN


def test_legacy_ddl_avoids_types_18_16_lacks() -> None:
    sql = "\n".join(s for m in migrations() for s in m.statements(LEGACY, "agenttrace"))
    for modern_only in ("DateTime64", "LowCardinality", "CODEC", "INDEX", "Map("):
        assert modern_only not in sql


def test_modern_ddl_runs_and_tables_have_the_contract_columns(chdb) -> None:
    for table in ("traces", "observations", "scores", "observations_by_trace"):
        cols = chdb.query(f"SELECT name FROM system.columns WHERE database = 'agenttrace' AND table = '{table}'", "CSV")
        names = {c.strip('"') for c in str(cols).split()}
        assert {"project_id", "id"} <= names
        if table != "traces":
            assert "trace_id" in names


def test_projections_have_fine_granules_on_both_dialects(chdb) -> None:
    # Point lookups by (project_id, id) read a granule per part: 1024 rows, not 8192.
    for table in ("traces", "observations", "scores", "observations_by_trace"):
        engine = str(
            chdb.query(
                f"SELECT engine_full FROM system.tables WHERE database = 'agenttrace' AND name = '{table}'", "CSV"
            )
        )
        assert "index_granularity = 1024" in engine
    legacy = [s for m in migrations() for s in m.statements(LEGACY, "agenttrace") if s.startswith("CREATE TABLE")]
    assert len(legacy) == 5  # and the observation journal, and the index by trace
    assert all(s.endswith("SETTINGS index_granularity = 1024") for s in legacy)


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


def _cluster_statements(dialect):
    return [s for m in migrations() for s in m.statements(dialect, "agenttrace", "events_cluster")]


@pytest.mark.parametrize("dialect", [LEGACY, MODERN], ids=lambda d: d.name)
def test_cluster_ddl_is_replicated_local_tables_behind_distributed_public_names(dialect) -> None:
    statements = _cluster_statements(dialect)
    # A column a later migration adds: the local tables are altered on one replica of each
    # shard (not ON CLUSTER: 18.16's DDL worker may run such an ALTER on both replicas and then
    # stop), and each server alters its Distributed table in place (18.16 cannot alter it ON
    # CLUSTER beside replicated shards; dropping and making it again left a moment without it).
    added = [s for s in statements if not s.startswith("CREATE")]
    assert [s.split(" ADD COLUMN")[0] for s in added] == [
        # 0002
        f"{EACH_SHARD}ALTER TABLE agenttrace.observations_local",
        f"{EACH_SERVER}ALTER TABLE agenttrace.observations",
        # 0003
        f"{EACH_SHARD}ALTER TABLE agenttrace.observations_local",
        f"{EACH_SERVER}ALTER TABLE agenttrace.observations",
        f"{EACH_SHARD}ALTER TABLE agenttrace.scores_local",
        f"{EACH_SERVER}ALTER TABLE agenttrace.scores",
        # 0005: the index by trace, filled from each server's own observations
        f"{EACH_SERVER}INSERT INTO agenttrace.{BY_TRACE}_local SELECT {INDEX_COLUMNS} "
        "FROM agenttrace.observations_local WHERE trace_id != ''",
        # 0006: the pricing tier, on the observations and their journal
        f"{EACH_SHARD}ALTER TABLE agenttrace.observations_local",
        f"{EACH_SERVER}ALTER TABLE agenttrace.observations",
        f"{EACH_SHARD}ALTER TABLE agenttrace.observation_journal_local",
        f"{EACH_SERVER}ALTER TABLE agenttrace.observation_journal",
    ]
    columns = added.pop(-5)
    pairs = zip(added[::2], added[1::2], strict=True)
    assert all(local.split(" ADD COLUMN")[1] == public.split(" ADD COLUMN")[1] for local, public in pairs)
    creates = [s for s in statements if s.startswith("CREATE TABLE")]
    assert len(creates) == 2 * len(DISTRIBUTED_KEYS)
    # Its view fires on the local observations of the server an insert reaches, into the local index.
    (view,) = [s for s in statements if s.startswith("CREATE MATERIALIZED VIEW")]
    assert view == (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS agenttrace.{BY_TRACE}_view ON CLUSTER events_cluster "
        f"TO agenttrace.{BY_TRACE}_local AS {columns.split(f'{BY_TRACE}_local ')[1]}"
    )
    journal = [s for s in creates if f".{JOURNAL}" in s]
    assert (
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/agenttrace/observation_journal_local', " in journal[0]
    )
    assert journal[1].endswith(
        f"ENGINE = Distributed(events_cluster, agenttrace, {JOURNAL}_local, cityHash64(project_id, id))"
    )
    for table, key in SHARDING_KEYS.items():
        local = next(s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS agenttrace.{table}_local "))
        public = next(s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS agenttrace.{table} "))
        assert " ON CLUSTER events_cluster\n" in local
        assert (
            f"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/agenttrace/{table}_local', "
            "'{replica}', event_ts)"
        ) in local
        assert "ORDER BY (project_id, id)\nSETTINGS index_granularity = 1024" in local
        assert public.endswith(
            f"ON CLUSTER events_cluster AS agenttrace.{table}_local\n"
            f"ENGINE = Distributed(events_cluster, agenttrace, {table}_local, {key})"
        )


def test_cluster_shards_by_the_trace_so_final_sees_all_of_an_entity() -> None:
    # The trace's own id for traces, trace_id for what belongs to one: the Kafka key's parts.
    assert SHARDING_KEYS == {
        "traces": "cityHash64(project_id, id)",
        "observations": "cityHash64(project_id, trace_id)",
        "scores": "cityHash64(project_id, trace_id)",
    }
    # The journal is read by an observation's id alone, whichever trace it turns out to have.
    # The index by trace is filled on the observations' shard, so it is sharded as they are.
    assert DISTRIBUTED_KEYS == {
        **SHARDING_KEYS,
        JOURNAL: "cityHash64(project_id, id)",
        BY_TRACE: "cityHash64(project_id, trace_id)",
    }


def test_cluster_ddl_refuses_statements_it_cannot_place() -> None:
    with pytest.raises(ValueError, match="no cluster form"):
        clustered("ALTER TABLE agenttrace.traces DROP COLUMN x", "agenttrace", "c")
    with pytest.raises(ValueError, match="no cluster form"):
        clustered("ALTER TABLE agenttrace.other ADD COLUMN x String", "agenttrace", "c")
    with pytest.raises(ValueError, match="no cluster form"):
        other = "CREATE TABLE IF NOT EXISTS agenttrace.other\n(a UInt8) ENGINE = MergeTree() ORDER BY a"
        clustered(other, "agenttrace", "c")


def test_legacy_cluster_ddl_avoids_types_18_16_lacks() -> None:
    sql = "\n".join(_cluster_statements(LEGACY))
    for modern_only in ("DateTime64", "LowCardinality", "CODEC", "INDEX", "{database}", "{table}", "{uuid}"):
        assert modern_only not in sql


def test_modern_cluster_ddl_parses(chdb) -> None:
    # chDB has no cluster (no remote_servers, no Keeper), so ON CLUSTER cannot run here; the
    # parser still checks every statement. The legacy form runs on 18.16 in tests/cluster.
    for statement in _cluster_statements(MODERN):
        ast = str(chdb.query(f"EXPLAIN AST {statement}", "TSV"))
        assert ast.startswith(("CreateQuery agenttrace ", "AlterQuery agenttrace ", "InsertQuery ")), ast[:200]


async def test_migrate_in_cluster_mode_runs_on_cluster_and_checks_the_engines() -> None:
    executed: list[str] = []
    engines = dict.fromkeys(DISTRIBUTED_KEYS, "Distributed")

    async def execute(sql: str) -> None:
        executed.append(sql)

    async def fetch(sql: str) -> list[tuple]:
        if "system.tables" in sql:
            return list(engines.items())
        return []

    on_each: list[str] = []

    async def each_server(sql: str) -> None:
        on_each.append(sql)

    on_shards: list[str] = []

    async def each_shard(sql: str) -> None:
        on_shards.append(sql)

    applied = await migrate(
        execute, fetch, LEGACY, "agenttrace", cluster="c", each_server=each_server, each_shard=each_shard
    )
    assert applied == [m.version for m in migrations()]
    assert executed[0] == "CREATE DATABASE IF NOT EXISTS agenttrace ON CLUSTER c"
    assert all(" ON CLUSTER c" in s for s in executed if s.startswith("CREATE TABLE IF NOT EXISTS agenttrace.t"))
    # The public (Distributed) tables are altered on each server, never dropped.
    assert [s.split(" ADD COLUMN")[0] for s in on_each] == [
        "ALTER TABLE agenttrace.observations",
        "ALTER TABLE agenttrace.observations",
        "ALTER TABLE agenttrace.scores",
        f"INSERT INTO agenttrace.{BY_TRACE}_local SELECT {INDEX_COLUMNS} "
        "FROM agenttrace.observations_local WHERE trace_id != ''",
        "ALTER TABLE agenttrace.observations",
        "ALTER TABLE agenttrace.observation_journal",
    ]
    # The replicated local tables are altered on one replica of each shard, not ON CLUSTER.
    assert [s.split(" ADD COLUMN")[0] for s in on_shards] == [
        "ALTER TABLE agenttrace.observations_local",
        "ALTER TABLE agenttrace.observations_local",
        "ALTER TABLE agenttrace.scores_local",
        "ALTER TABLE agenttrace.observations_local",
        "ALTER TABLE agenttrace.observation_journal_local",
    ]
    assert not [s for s in executed if s.startswith(("DROP", "ALTER", EACH_SERVER, EACH_SHARD))]
    with pytest.raises(ValueError, match="each_shard"):
        await migrate(execute, lambda sql: _none(), LEGACY, "fresh", cluster="c", each_server=each_server)

    engines["traces"] = "ReplacingMergeTree"  # a server that ran single-node before
    with pytest.raises(RuntimeError, match="Distributed"):
        await migrate(execute, fetch, LEGACY, "agenttrace", cluster="c", each_server=each_server, each_shard=each_shard)


async def _none() -> list[tuple]:
    return []


async def test_each_server_of_the_cluster_runs_the_statement_and_may_already_have_it() -> None:
    ran: list[tuple[str, int, str]] = []
    closed: list[int] = []

    async def fetch(sql: str) -> list[tuple]:
        assert "system.clusters" in sql and "cluster = 'c'" in sql
        return [("10.0.0.1", 9000), ("10.0.0.2", 9000), ("10.0.0.3", 9001)]

    async def connect(host: str, port: int) -> tuple[Any, Any]:
        async def execute(sql: str) -> None:
            ran.append((host, port, sql))
            if host == "10.0.0.2":  # a migrator before this one got there
                raise ClickHouseError("Code: 44. Cannot add column x: column with this name already exists")

        async def close() -> None:
            closed.append(port)

        return execute, close

    await run_on_each_server(fetch, connect, "c")("ALTER TABLE db.t ADD COLUMN x UInt8")
    assert [(h, p) for h, p, _ in ran] == [("10.0.0.1", 9000), ("10.0.0.2", 9000), ("10.0.0.3", 9001)]
    assert len(closed) == 3


async def test_coarse_tables_are_rebuilt_on_a_current_clickhouse(chdb) -> None:
    # The stack test runs the same on 18.16; here the modern dialect's DDL and part names.
    db = "granules_rebuild"
    chdb.query(f"DROP DATABASE IF EXISTS {db}")
    chdb.query(f"CREATE DATABASE {db}")
    for m in migrations():
        for statement in m.statements(MODERN, db):
            chdb.query(statement.replace(f"index_granularity = {GRANULARITY}", "index_granularity = 8192"))

    async def execute(sql: str) -> None:
        chdb.query(sql)

    async def fetch(sql: str) -> list[tuple]:
        return [tuple(r) for r in orjson.loads(str(chdb.query(sql, "JSONCompact")))["data"]]

    def insert(rows: str) -> None:
        chdb.query(
            f"INSERT INTO {db}.observations (project_id, id, trace_id, name, start_time, event_ts) "
            f"SELECT 'p', r.1, 't', r.3, now64(6), toUInt64(r.2) FROM (SELECT arrayJoin([{rows}]) AS r)"
        )

    async def writer_meanwhile() -> None:
        insert("('o3', 1, 'late'), ('o1', 2, 'updated')")

    insert("('o1', 1, 'first'), ('o2', 1, 'first')")
    assert await coarse_granules(fetch, db) == {"traces": 8192, "observations": 8192, "scores": 8192}
    counts = await rebuild_granules(execute, fetch, db, "observations", before_swap=writer_meanwhile)
    assert counts == {"rows_before": 4, "rows_after": 4}
    assert await coarse_granules(fetch, db) == {"traces": 8192, "scores": 8192}
    newest = await fetch(f"SELECT id, name FROM {db}.observations ORDER BY id, event_ts DESC LIMIT 1 BY id")
    assert newest == [("o1", "updated"), ("o2", "first"), ("o3", "late")]
    chdb.query(f"DROP DATABASE {db}")


async def test_an_alter_that_failed_for_a_while_is_run_again_until_the_column_is_there() -> None:
    # A replica read-only while its ZooKeeper session is renewed refuses the ALTER; run again,
    # it completes, or answers "already exists" where a concurrent migrator was first.
    answers = [
        "Code: 242. Table is in readonly mode",
        "Code: 44. Cannot add column x: column with this name already exists",
    ]
    calls: list[str] = []

    async def execute(sql: str) -> None:
        calls.append(sql)
        if answers:
            raise ClickHouseError(answers.pop(0))

    await _run_statement(execute, "ALTER TABLE db.observations_local ADD COLUMN x UInt8", retry_s=0)
    assert len(calls) == 2 and not answers

    async def always_away(sql: str) -> None:
        calls.append(sql)
        raise ClickHouseError("migrate: ClickHouse unreachable: ConnectionRefusedError()")

    calls.clear()
    with pytest.raises(ClickHouseError):
        await _run_statement(always_away, "ALTER TABLE db.scores_local ADD COLUMN x UInt8", retry_s=0)
    assert len(calls) == ALTER_TRIES

    async def refused(sql: str) -> None:
        calls.append(sql)
        raise ClickHouseError("Code: 62. Syntax error", permanent=True)

    calls.clear()
    with pytest.raises(ClickHouseError):  # what a retry cannot fix is not retried
        await _run_statement(refused, "ALTER TABLE db.scores_local ADD COLUMN x UInt8", retry_s=0)
    assert len(calls) == 1

    with pytest.raises(ClickHouseError):  # only an ALTER is run again
        await _run_statement(always_away, "DROP TABLE IF EXISTS db.scores ON CLUSTER c", retry_s=0)
