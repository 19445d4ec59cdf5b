"""Dependency checks aggregated into the monitoring guide's health document and the probes.

Checks run concurrently, each under a timeout, so one hanging dependency cannot hang a probe.
A failing check that the process needs makes it `unhealthy` (503); a failing check it can do
without makes it `degraded` (200). The run loops feed liveness through `alive` callbacks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from health.version import VERSION

Probe = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Check:
    name: str
    probe: Probe
    # Whether this process cannot do its job without the dependency.
    required: bool = True


@dataclass
class Health:
    checks: list[Check]
    # Named conditions from the process's own loops, e.g. "stage clickhouse writing".
    conditions: dict[str, Callable[[], bool]] = field(default_factory=dict)
    alive: Callable[[], bool] = lambda: True
    # Named reports of periodic jobs (e.g. the last retention run), shown under "jobs".
    jobs: dict[str, Callable[[], Mapping[str, object]]] = field(default_factory=dict)
    timeout_s: float = 2.0
    started: float = field(default_factory=time.monotonic)
    revision: str = "unknown"
    # Whether the per-event modules run compiled (pipeline/compiled.py), shown by /version.
    compiled: bool = False

    async def _one(self, check: Check) -> dict[str, object]:
        start = time.perf_counter()
        try:
            await asyncio.wait_for(check.probe(), self.timeout_s)
        except Exception as exc:  # any failure of a dependency is a finding, not an error
            latency = round((time.perf_counter() - start) * 1000)
            reason = "timeout" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"[:300]
            return {"status": "unhealthy", "latency_ms": latency, "error": reason}
        return {"status": "healthy", "latency_ms": round((time.perf_counter() - start) * 1000)}

    async def report(self) -> tuple[str, dict[str, dict[str, object]]]:
        results = await asyncio.gather(*(self._one(c) for c in self.checks))
        checks = {c.name: r for c, r in zip(self.checks, results, strict=True)}
        for name, condition in self.conditions.items():
            checks[name] = {"status": "healthy" if condition() else "unhealthy", "latency_ms": 0}
        required = {c.name for c in self.checks if c.required} | set(self.conditions)
        failing = {n for n, r in checks.items() if r["status"] != "healthy"}
        status = "unhealthy" if failing & required else "degraded" if failing else "healthy"
        return status, checks

    def uptime(self) -> str:
        s = int(time.monotonic() - self.started)
        h, rest = divmod(s, 3600)
        m, s = divmod(rest, 60)
        return f"{h}h{m}m{s}s"

    async def health(self, request: web.Request) -> web.Response:
        status, checks = await self.report()
        doc: dict[str, object] = {"status": status, "checks": checks, "version": VERSION, "uptime": self.uptime()}
        if self.jobs:
            doc["jobs"] = {name: dict(report()) for name, report in self.jobs.items()}
        return probe_json(doc, 503 if status == "unhealthy" else 200)

    async def livez(self, request: web.Request) -> web.Response:
        ok = self.alive()
        return probe_json({"status": "ok" if ok else "failing"}, 200 if ok else 503)

    async def readyz(self, request: web.Request) -> web.Response:
        status, checks = await self.report()
        failing = sorted(n for n, r in checks.items() if r["status"] != "healthy")
        ready = status != "unhealthy"
        return probe_json({"status": "ready" if ready else "not ready", "failing": failing}, 200 if ready else 503)

    async def version(self, request: web.Request) -> web.Response:
        return probe_json(
            {"version": VERSION, "revision": self.revision, "compiled": self.compiled, "uptime": self.uptime()}, 200
        )

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/health", self.health)
        app.router.add_get("/livez", self.livez)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/version", self.version)


def probe_json(doc: Mapping[str, object], status: int) -> web.Response:
    """A probe's answer: JSON, never cached."""
    return web.Response(
        status=status,
        body=orjson.dumps(doc),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
