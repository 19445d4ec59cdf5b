"""Langfuse's own probes, `GET /api/public/health` and `GET /api/public/ready`, in its shapes.

Langfuse's docs, Helm chart and users' compose files probe these paths, without credentials;
ours (/health, /readyz) stay the operator's contract. `failIfDatabaseUnavailable=true` fails
when the api cannot reach Postgres (keys, as Langfuse's database) or ClickHouse (the reads), and
`failIfNoRecentEvents=true` when no trace or observation has a timestamp in the last three
minutes, as Langfuse's do: both answer 503 with the reason as `status`.
"""

from __future__ import annotations

import time

from aiohttp import web

from health.checks import Health, probe_json
from health.version import VERSION

HEALTH_PATH = "/api/public/health"
READY_PATH = "/api/public/ready"
RECENT_S = 180
_DATABASES = ("postgres", "clickhouse")
# Partition pruning keeps this to the current month's parts of `timestamp` (µs), LIMIT 1 to the
# first hit: the cost of the probe Langfuse's operators already accept.
_RECENT = "SELECT 1 FROM {table} WHERE {column} >= %(since)s LIMIT 1"


def _asked(request: web.Request, name: str) -> bool:
    return request.query.get(name) == "true"


def add_routes(app: web.Application, health: Health) -> None:
    async def recent_events(request: web.Request) -> bool:
        clickhouse = request.app["clickhouse"]
        since = (int(time.time()) - RECENT_S) * 1_000_000
        for table, column in (("traces", "timestamp"), ("observations", "start_time")):
            sql = _RECENT.format(table=table, column=column)
            if await clickhouse.fetch(sql, {"since": since}, operation="recent_events"):
                return True
        return False

    async def public_health(request: web.Request) -> web.Response:
        if _asked(request, "failIfDatabaseUnavailable"):
            _, checks = await health.report()
            down = [n for n in _DATABASES if checks.get(n, {}).get("status") != "healthy"]
            if down:
                return probe_json({"status": "Database not available", "version": VERSION, "failing": down}, 503)
        if _asked(request, "failIfNoRecentEvents"):
            try:
                recent = await recent_events(request)
            except Exception:  # unreachable ClickHouse: no evidence of recent events either
                recent = False
            if not recent:
                status = f"No trace or observation events within the last {RECENT_S // 60} minutes"
                return probe_json({"status": status, "version": VERSION}, 503)
        return probe_json({"status": "OK", "version": VERSION}, 200)

    async def public_ready(request: web.Request) -> web.Response:
        status, _ = await health.report()
        if status == "unhealthy":
            return probe_json({"status": "Not ready", "version": VERSION}, 503)
        return probe_json({"status": "OK", "version": VERSION}, 200)

    app.router.add_get(HEALTH_PATH, public_health, allow_head=False)
    app.router.add_get(READY_PATH, public_ready, allow_head=False)
