"""Versioned ClickHouse migrations, rendered for the server's dialect.

Two dialects share one set of migration files: `modern` (ClickHouse >= 20.1: DateTime64,
LowCardinality, ZSTD codecs, skipping indexes) and `legacy` (Debian's 18.16, which has none of
those). Both keep microsecond timestamps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sinks.clickhouse.client import ClickHouseError

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

    def statements(self, dialect: Dialect, database: str) -> list[str]:
        fields = {k: getattr(dialect, k) for k in Dialect.__dataclass_fields__}
        rendered = self.sql.format(db=database, **fields)
        lines = [ln for ln in rendered.splitlines() if not ln.lstrip().startswith("--")]
        return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append(Migration(int(version), name, entry.read_text()))
    return sorted(found, key=lambda m: m.version)


Execute = Callable[[str], Awaitable[object]]
Fetch = Callable[[str], Awaitable[list[tuple[Any, ...]]]]


async def migrate(execute: Execute, fetch: Fetch, dialect: Dialect, database: str) -> list[int]:
    """Apply pending migrations in order; return the versions applied. Safe to run again."""
    await execute(f"CREATE DATABASE IF NOT EXISTS {database}")
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
        for statement in m.statements(dialect, database):
            try:
                await execute(statement)
            except ClickHouseError as exc:
                # A rerun of a migration cut short, on a server without ADD COLUMN IF NOT EXISTS.
                if not (statement.startswith("ALTER") and "already exists" in str(exc)):
                    raise
        # INSERT ... SELECT, not VALUES: over the native protocol an 18.16 server waits for data
        # blocks after inline VALUES, while the driver waits for the result, and both hang.
        await execute(
            f"INSERT INTO {database}.schema_migrations (version, name, applied_at) "
            f"SELECT {m.version}, '{m.name}', now()"
        )
        applied.append(m.version)
    return applied
