"""Versioned Postgres migrations: numbered SQL files, each applied once, in a transaction."""

from __future__ import annotations

from importlib import resources

from sinks.postgres.client import Postgres

MIGRATIONS_PACKAGE = "sinks.postgres.migrations"


def migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append((int(version), name, entry.read_text()))
    return sorted(found)


async def pending(pg: Postgres) -> list[int]:
    """The versions this code expects that the database has not applied, in order."""
    exists = await pg.fetch("SELECT to_regclass('schema_migrations') IS NOT NULL", operation="schema")
    done = set()
    if exists[0][0]:
        done = {int(r[0]) for r in await pg.fetch("SELECT version FROM schema_migrations", operation="schema")}
    return [version for version, _, _ in migrations() if version not in done]


async def migrate(pg: Postgres) -> list[int]:
    """Apply pending migrations; an advisory lock keeps concurrent migrators from racing."""
    await pg.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    done = {int(r[0]) for r in await pg.fetch("SELECT version FROM schema_migrations")}
    applied = []
    for version, name, sql in migrations():
        if version in done:
            continue
        # One DO block: the migration and its record commit together or not at all.
        await pg.execute(
            f"""
            DO $migrate$
            BEGIN
                PERFORM pg_advisory_xact_lock(7261);
                IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = {version}) THEN
                    {sql}
                    INSERT INTO schema_migrations (version, name) VALUES ({version}, '{name}');
                END IF;
            END
            $migrate$;
            """,
            operation="migrate",
        )
        applied.append(version)
    return applied
