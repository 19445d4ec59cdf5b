"""Per-project retention in days (projects.retention_days, migration 0007)."""

from __future__ import annotations

from sinks.postgres.client import Postgres

MAX_RETENTION_DAYS = 36_500


def validate_retention_days(days: object) -> int | None:
    """None (keep for ever) or a whole number of days from 1; ValueError otherwise."""
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_RETENTION_DAYS:
        raise ValueError(f"retentionDays must be a whole number from 1 to {MAX_RETENTION_DAYS}, or null")
    return days


async def set_retention(pg: Postgres, project_name: str, days: int | None) -> str | None:
    """Set a project's retention; its id, or None when there is no such project."""
    rows = await pg.fetch(
        "UPDATE projects SET retention_days = %s WHERE name = %s RETURNING id",
        (days, project_name),
        operation="pg_set_retention",
    )
    return str(rows[0][0]) if rows else None


async def retention_policies(pg: Postgres) -> list[tuple[str, int]]:
    rows = await pg.fetch(
        "SELECT id, retention_days FROM projects WHERE retention_days IS NOT NULL ORDER BY id",
        operation="pg_retention_policies",
    )
    return [(str(p), int(d)) for p, d in rows]
