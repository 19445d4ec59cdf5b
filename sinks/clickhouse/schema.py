"""Versioned ClickHouse migrations, rendered for the server's dialect.

Two dialects share one set of migration files: `modern` (ClickHouse >= 20.1: DateTime64,
LowCardinality, ZSTD codecs, skipping indexes) and `legacy` (Debian's 18.16, which has none of
those). Both keep microsecond timestamps.

With a cluster name (AGENTTRACE_CLICKHOUSE_CLUSTER) every projection table is created ON
CLUSTER twice: `<name>_local`, a ReplicatedReplacingMergeTree on each server (its replicas
agree through ZooKeeper on 18.16, Keeper on a current server, under the `{shard}` and
`{replica}` macros of each server's config), and `<name>` itself, a Distributed table over the
local ones. Readers and the writer keep using the public names. Rows are sharded by a hash of
(project_id, trace id), the Kafka key, so a trace's rows share a shard and FINAL, which merges
per shard, sees every version of an entity.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sinks.clickhouse.client import IDS_TABLE, ClickHouseError

MIGRATIONS_PACKAGE = "sinks.clickhouse.migrations"


@dataclass(frozen=True)
class Dialect:
    name: str
    ts: str
    lc: str
    zstd: str
    trace_indexes: str
    observation_indexes: str
    score_indexes: str
    timestamp_partition: str
    start_time_partition: str
    # 18.16 has no ADD COLUMN IF NOT EXISTS: migrate() tolerates "already exists" there instead.
    if_not_exists: str

    @property
    def subsecond_type(self) -> bool:
        return self.name == "modern"


MODERN = Dialect(
    name="modern",
    ts="DateTime64(6, 'UTC')",
    lc="LowCardinality(String)",
    zstd=" CODEC(ZSTD(3))",
    trace_indexes=(
        ",\n    INDEX idx_session session_id TYPE bloom_filter(0.01) GRANULARITY 1"
        ",\n    INDEX idx_user user_id TYPE bloom_filter(0.01) GRANULARITY 1"
    ),
    observation_indexes=",\n    INDEX idx_trace trace_id TYPE bloom_filter(0.01) GRANULARITY 1",
    score_indexes=",\n    INDEX idx_trace trace_id TYPE bloom_filter(0.01) GRANULARITY 1",
    timestamp_partition="timestamp",
    start_time_partition="start_time",
    if_not_exists="IF NOT EXISTS ",
)

LEGACY = Dialect(
    name="legacy",
    ts="UInt64",
    lc="String",
    zstd="",
    trace_indexes="",
    observation_indexes="",
    score_indexes="",
    timestamp_partition="toDateTime(intDiv(timestamp, 1000000))",
    start_time_partition="toDateTime(intDiv(start_time, 1000000))",
    if_not_exists="",
)


def dialect_for(version: tuple[int, ...]) -> Dialect:
    return MODERN if version >= (20, 1) else LEGACY


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self, dialect: Dialect, database: str, cluster: str | None = None) -> list[str]:
        fields = {k: getattr(dialect, k) for k in Dialect.__dataclass_fields__}
        rendered = self.sql.format(db=database, **fields)
        lines = [ln for ln in rendered.splitlines() if not ln.lstrip().startswith("--")]
        plain = [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
        if cluster is None:
            return plain
        return [c for s in plain for c in clustered(s, database, cluster)]


# Copies of observations written without a trace, for concurrent writers (migration 0004).
JOURNAL = "observation_journal"
# The sharding key of each projection: the trace an entity belongs to (a trace is its own).
SHARDING_KEYS = {
    "traces": "cityHash64(project_id, id)",
    "observations": "cityHash64(project_id, trace_id)",
    "scores": "cityHash64(project_id, trace_id)",
}
# The observations of each trace, sorted by trace (migration 0005), and the view that fills it.
BY_TRACE = "observations_by_trace"
# Every table of a cluster behind a Distributed one: the projections; the journal, which is
# written and read by an observation's id alone (migration 0004); the index by trace, which
# its view fills on the shard holding the observations (so sharded as they are).
DISTRIBUTED_KEYS = {**SHARDING_KEYS, JOURNAL: "cityHash64(project_id, id)", BY_TRACE: SHARDING_KEYS["observations"]}
LOCAL_SUFFIX = "_local"
_CREATE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+)\.(\w+)\s*\n")
_ADD_COLUMN = re.compile(r"^ALTER TABLE (\w+)\.(\w+) (ADD COLUMN .*)$", re.S)
_ENGINE = re.compile(r"ENGINE = (Replacing)?MergeTree\(([^)]*)\)")
_VIEW = re.compile(
    r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+)\.(\w+)\s+TO (\w+)\.(\w+)\s+"
    r"AS SELECT (.*?)\s+FROM (\w+)\.(\w+)(.*)$",
    re.S,
)
_BACKFILL = re.compile(r"^INSERT INTO (\w+)\.(\w+)\s+SELECT (.*?)\s+FROM (\w+)\.(\w+)(.*)$", re.S)


def by_trace(value: str) -> str:
    """`trace_id = value` for observations or scores, tested on their trace hash first (migration
    0003): the server scans 4 bytes a row instead of the id, and compares the id where it matched."""
    return f"trace_hash = murmurHash2_32({value}) AND trace_id = {value}"


def by_traces_in_ids() -> str:
    """`trace_id IN _ids` (the external table of ClickHouse.fetch) likewise."""
    return f"trace_hash IN (SELECT murmurHash2_32(id) FROM {IDS_TABLE}) AND trace_id IN {IDS_TABLE}"


# Marks a statement that migrate() runs on every server of the cluster itself (`each_server`),
# not through the DDL queue.
EACH_SERVER = "/* each server */ "
# Marks an ALTER of a replicated local table that migrate() runs on one replica of each shard
# (`each_shard`, ClickHouse.execute_on_each_shard), its replication log taking it to the other:
# not ON CLUSTER, whose ALTERs can stop 18.16's DDL worker (see execute_on_each_shard).
EACH_SHARD = "/* each shard */ "


def clustered(statement: str, database: str, cluster: str) -> list[str]:
    """One table statement of a migration as a cluster runs it: the replicated local table and
    the Distributed table under the public name, both idempotent; a column added to a
    projection is added to both; a materialized view and its backfill join the local tables.
    A statement of another kind must say itself how it runs on a cluster, so it is refused
    rather than guessed."""
    alter = _ADD_COLUMN.match(statement)
    if alter and alter.group(1) == database and alter.group(2) in DISTRIBUTED_KEYS:
        table, rest = alter.group(2), alter.group(3)
        # A Distributed table cannot be altered ON CLUSTER beside replicated shards (18.16:
        # "isn't replicated"), but each server alters its own in place (metadata only), so the
        # public name never goes missing on a running cluster (dropping and making it again did:
        # inserts and reads failed meanwhile).
        return [
            f"{EACH_SHARD}ALTER TABLE {database}.{table}{LOCAL_SUFFIX} {rest}",
            f"{EACH_SERVER}ALTER TABLE {database}.{table} {rest}",
        ]
    view = _VIEW.match(statement)
    if view and {view.group(1), view.group(3), view.group(6)} == {database} and view.group(4) in DISTRIBUTED_KEYS:
        # On the local tables of every server: an insert fires it on the replica that takes the
        # rows, and the target's other replicas fetch its part (a fetched part fires nothing).
        name, target, columns, source, rest = view.group(2, 4, 5, 7, 8)
        return [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{name} ON CLUSTER {cluster} "
            f"TO {database}.{target}{LOCAL_SUFFIX} AS SELECT {columns} FROM {database}.{source}{LOCAL_SUFFIX}{rest}"
        ]
    backfill = _BACKFILL.match(statement)
    if backfill and {backfill.group(1), backfill.group(4)} == {database} and backfill.group(2) in DISTRIBUTED_KEYS:
        # Each server copies its own rows: the source's replicas each do, so a shard may list
        # an entry twice, which a reader of the index takes as once.
        target, columns, source, rest = backfill.group(2, 3, 5, 6)
        return [
            f"{EACH_SERVER}INSERT INTO {database}.{target}{LOCAL_SUFFIX} "
            f"SELECT {columns} FROM {database}.{source}{LOCAL_SUFFIX}{rest}"
        ]
    create = _CREATE.match(statement)
    engine = _ENGINE.search(statement)
    if not create or not engine or create.group(1) != database or create.group(2) not in DISTRIBUTED_KEYS:
        raise ValueError(f"no cluster form for this migration statement: {statement[:80]!r}")
    table = create.group(2)
    local = table + LOCAL_SUFFIX
    # One ZooKeeper path per shard and table; the replica name tells the shard's copies apart.
    path = f"/clickhouse/tables/{{shard}}/{database}/{local}"
    args = ", ".join(a for a in (f"'{path}'", "'{replica}'", engine.group(2)) if a)
    replicated = f"ENGINE = Replicated{engine.group(1) or ''}MergeTree({args})"
    head = f"CREATE TABLE IF NOT EXISTS {database}.{local} ON CLUSTER {cluster}\n"
    local_sql = head + _ENGINE.sub(lambda _: replicated, statement[create.end() :], count=1)
    return [local_sql, _distributed(database, cluster, table)]


def _distributed(database: str, cluster: str, table: str) -> str:
    local = table + LOCAL_SUFFIX
    return (
        f"CREATE TABLE IF NOT EXISTS {database}.{table} ON CLUSTER {cluster} AS {database}.{local}\n"
        f"ENGINE = Distributed({cluster}, {database}, {local}, {DISTRIBUTED_KEYS[table]})"
    )


def mutation_target(table: str, database: str, cluster: str = "") -> str:
    """What an `ALTER TABLE ... DELETE` (or DROP PARTITION) of a projection names, to be run
    with ClickHouse.execute_on_each_shard.

    Alone: the table itself. In a cluster, the Distributed table under the public name holds no
    rows and 18.16 cannot mutate it, so the Replicated local table, on one replica of each
    shard: the other replicas take the mutation from the shard's replication log, so each
    shard applies it once. It is idempotent anyway: a DELETE WHERE run again, or a partition
    dropped again, removes nothing more.
    """
    if not cluster:
        return table
    return f"{database}.{table}{LOCAL_SUFFIX}"


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append(Migration(int(version), name, entry.read_text()))
    return sorted(found, key=lambda m: m.version)


Execute = Callable[[str], Awaitable[object]]
Fetch = Callable[[str], Awaitable[list[tuple[Any, ...]]]]


async def migrate(
    execute: Execute,
    fetch: Fetch,
    dialect: Dialect,
    database: str,
    cluster: str | None = None,
    each_server: Execute | None = None,
    each_shard: Execute | None = None,
) -> list[int]:
    """Apply pending migrations in order; return the versions applied. Safe to run again, and
    from several processes at once: every statement is IF NOT EXISTS (ON CLUSTER statements
    queue in ZooKeeper and each server runs them once, in order). In a cluster, `each_server`
    runs a statement on every server (see run_on_each_server), `each_shard` an ALTER of a
    replicated table on one replica of each shard; an ON CLUSTER statement returns once every
    server ran it, so the tables a later one alters exist everywhere."""
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    await execute(f"CREATE DATABASE IF NOT EXISTS {database}{on_cluster}")
    # The record of applied versions is per server (the one this migrator reached): another
    # server's migrator may apply a version again, which the idempotent statements allow.
    await execute(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime) ENGINE = TinyLog"
    )
    done = {int(r[0]) for r in await fetch(f"SELECT version FROM {database}.schema_migrations")}
    applied = []
    for m in migrations():
        if m.version in done:
            continue
        # Statements are idempotent (IF NOT EXISTS), so a migration cut short is safe to rerun.
        for statement in m.statements(dialect, database, cluster):
            if statement.startswith(EACH_SERVER):
                if each_server is None:
                    raise ValueError("a cluster migration needs each_server")
                await each_server(statement.removeprefix(EACH_SERVER))
            elif statement.startswith(EACH_SHARD):
                if each_shard is None:
                    raise ValueError("a cluster migration needs each_shard")
                await _run_statement(each_shard, statement.removeprefix(EACH_SHARD))
            else:
                await _run_statement(execute, statement)
        # INSERT ... SELECT, not VALUES: over the native protocol an 18.16 server waits for data
        # blocks after inline VALUES, while the driver waits for the result, and both hang.
        await execute(
            f"INSERT INTO {database}.schema_migrations (version, name, applied_at) "
            f"SELECT {m.version}, '{m.name}', now()"
        )
        applied.append(m.version)
    if cluster:
        await check_cluster_tables(fetch, database)
    return applied


# An ALTER of a replicated table waits for the shard's other replica to apply it, and fails
# while the replica it reached is read-only (its ZooKeeper session being renewed) or away:
# run again, it finishes or finds the column there.
ALTER_TRIES = 6
ALTER_RETRY_S = 5.0


async def _run_statement(execute: Execute, statement: str, retry_s: float = ALTER_RETRY_S) -> None:
    for attempt in range(1, ALTER_TRIES + 1):
        try:
            await execute(statement)
            return
        except ClickHouseError as exc:
            if not statement.startswith("ALTER"):
                raise
            # A rerun of a migration cut short, on a server without ADD COLUMN IF NOT EXISTS.
            if "already exists" in str(exc):
                return
            if exc.permanent or attempt == ALTER_TRIES:
                raise
        await asyncio.sleep(retry_s)


def run_on_each_server(
    fetch: Fetch, connect: Callable[[str, int], Awaitable[tuple[Execute, Callable[[], Awaitable[None]]]]], cluster: str
) -> Execute:
    """An `each_server` for migrate(): the statement on every server of `cluster` as
    system.clusters lists them, one connection each (`connect` gives its execute and close),
    each tolerating "already exists" like any ALTER of a migration."""

    async def run(statement: str) -> None:
        servers = await fetch(
            f"SELECT DISTINCT host_address, port FROM system.clusters WHERE cluster = '{cluster}' ORDER BY 1, 2"
        )
        if not servers:
            raise RuntimeError(f"no servers of cluster {cluster!r} in system.clusters")
        for host, port in servers:
            execute, close = await connect(str(host), int(port))
            try:
                await _run_statement(execute, statement)
            finally:
                await close()

    return run


async def pending(fetch: Fetch, database: str) -> list[int]:
    """The versions this code expects that this server's record has not applied, in order."""
    found = await fetch(
        f"SELECT count() FROM system.tables WHERE database = '{database}' AND name = 'schema_migrations'"
    )
    done = set()
    if found[0][0]:
        done = {int(r[0]) for r in await fetch(f"SELECT version FROM {database}.schema_migrations")}
    return [m.version for m in migrations() if m.version not in done]


async def _projections(
    fetch: Fetch, database: str, column: str, tables: Iterable[str] = tuple(SHARDING_KEYS)
) -> dict[str, str]:
    """`column` of system.tables for each of `tables` (the projections) that exists in `database`."""
    rows = await fetch(
        f"SELECT name, {column} FROM system.tables WHERE database = '{database}' "
        f"AND name IN ({', '.join(repr(t) for t in tables)})"
    )
    return {str(name): str(value) for name, value in rows}


async def check_cluster_tables(fetch: Fetch, database: str, *, settle_s: float = 30.0) -> None:
    """IF NOT EXISTS keeps a table of the same name whatever its engine: a server that ran
    single-node before has plain tables under the public names, which would take every insert
    on that server alone. Refuse to call such a schema migrated.

    A missing one is waited for up to `settle_s`: a migrator of an older version, which dropped
    and made again a Distributed table to add a column, may be between the two elsewhere."""
    deadline = time.monotonic() + settle_s
    while True:
        engines = await _projections(fetch, database, "engine", DISTRIBUTED_KEYS)
        wrong = {t: engines.get(t) for t in DISTRIBUTED_KEYS if engines.get(t) != "Distributed"}
        if not wrong or any(engine is not None for engine in wrong.values()) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.5)
    if wrong:
        raise RuntimeError(f"cluster mode needs Distributed tables under the public names; found {wrong}")


# Rows per granule of the projections (migration 0001); tables made before it have 8192.
GRANULARITY = 1024
_GRANULARITY = re.compile(r"index_granularity = (\d+)")
OLD_SUFFIX = "__coarse"
NEW_SUFFIX = "__granules"


async def coarse_granules(fetch: Fetch, database: str) -> dict[str, int]:
    """The projections whose granules hold another number of rows than GRANULARITY, and that number."""
    engines = await _projections(fetch, database, "engine_full")
    found = {name: _GRANULARITY.search(engine) for name, engine in engines.items()}
    return {name: int(m.group(1)) for name, m in found.items() if m and int(m.group(1)) != GRANULARITY}


async def rebuild_granules(
    execute: Execute,
    fetch: Fetch,
    database: str,
    table: str,
    *,
    before_swap: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, int]:
    """Copy a projection into a table of GRANULARITY-row granules and put it under the name.

    Writers may keep running (single node only): rows they insert during the copy land in parts
    numbered above every block that existed when it began, and MergeTree keeps those numbers in
    the names of the parts that merge them. After the swap, the rows of such parts are copied
    again from the old table; a row copied twice is a duplicate version, which merges and
    readers drop. A run cut short before the swap leaves the original under its name and is
    simply run again. The original stays as `<table>__coarse` for the operator to compare and
    drop (a check here would group every row of the table). `before_swap` is for tests (a
    writer's insert in the middle). Returns the row counts of both (before merges).
    """
    name, new, old = f"{database}.{table}", f"{database}.{table}{NEW_SUFFIX}", f"{database}.{table}{OLD_SUFFIX}"
    leftover = await fetch(
        f"SELECT count() FROM system.tables WHERE database = '{database}' AND name = '{table}{OLD_SUFFIX}'"
    )
    if leftover[0][0]:
        raise RuntimeError(f"{old} exists from an earlier rebuild: compare it with {name}, then drop it")
    ((ddl,),) = await fetch(f"SHOW CREATE TABLE {name}")
    head = re.match(rf"CREATE TABLE {re.escape(name)}\s", str(ddl))
    if not head or not _GRANULARITY.search(str(ddl)):
        raise RuntimeError(f"unexpected definition of {name}: {str(ddl)[:120]!r}")
    await execute(f"DROP TABLE IF EXISTS {new}")
    await execute(
        f"CREATE TABLE {new} " + _GRANULARITY.sub(f"index_granularity = {GRANULARITY}", str(ddl)[head.end() :])
    )
    ((mark,),) = await fetch(
        f"SELECT max(max_block_number) FROM system.parts WHERE database = '{database}' AND table = '{table}'"
    )
    await execute(f"INSERT INTO {new} SELECT * FROM {name}")
    if before_swap is not None:
        await before_swap()
    await execute(f"RENAME TABLE {name} TO {old}, {new} TO {name}")
    # A part's name is partition_minblock_maxblock_level[_mutation]; no partition id has "_".
    late = f"toUInt64(splitByChar('_', _part)[3]) > {int(mark)}"
    await execute(f"INSERT INTO {name} SELECT * FROM {old} WHERE {late}")
    ((rows_old,),) = await fetch(f"SELECT count() FROM {old}")
    ((rows_new,),) = await fetch(f"SELECT count() FROM {name}")
    return {"rows_before": int(rows_old), "rows_after": int(rows_new)}
