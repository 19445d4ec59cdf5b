"""`agenttrace worker --processes N`: N worker processes of the same stages under one command.

One Python process is bound to one core, so a stage scales by processes sharing its
partitions (the consumer group splits them). The parent runs no stage: it starts the children
(each a plain `agenttrace worker` on a private loopback port), restarts one that dies, and
serves on the public port what a single worker serves: `/metrics` for all of them (prometheus
multiprocess mode: each child writes its samples to files in a private directory, the parent
merges them; counters and histograms are summed, gauges carry a `pid` label), `/livez` while
every child runs, `/readyz` when every child says ready. SIGTERM drains the children (each
flushes and commits) before the parent exits.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from health.checks import Health
from health.version import git_revision

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A child that dies is started again after this long, at most once per this long.
RESTART_DELAY_S = 1.0
# A stopping child drains (flush, commit); one that takes longer is killed.
STOP_TIMEOUT_S = 60.0


@dataclass
class Child:
    index: int
    port: int
    proc: asyncio.subprocess.Process | None = None
    ready: bool = False
    restarts: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


def _child_ok(child: Child) -> bool:
    return child.running() and child.ready


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Supervisor:
    def __init__(
        self, stages: tuple[str, ...], processes: int, host: str, port: int, revision: str | None = None
    ) -> None:
        if processes < 1:
            raise ValueError("--processes must be at least 1")
        self._stages = stages
        self._host = host
        self._port = port
        self._children = [Child(i, _free_port("127.0.0.1")) for i in range(processes)]
        self._dir = tempfile.mkdtemp(prefix="agenttrace-metrics-")
        self._stopping = False
        self._health = Health(checks=[], revision=revision or git_revision())
        for child in self._children:
            self._health.conditions[f"process_{child.index}"] = functools.partial(_child_ok, child)
        self._health.alive = lambda: all(c.running() for c in self._children)

    def _argv(self, child: Child) -> list[str]:
        stages = [a for name in self._stages for a in ("--stage", name)]
        return [
            sys.executable,
            "-m",
            "agenttrace.cli",
            "worker",
            *stages,
            "--host",
            "127.0.0.1",
            "--port",
            str(child.port),
        ]

    async def _spawn(self, child: Child) -> None:
        env = {**os.environ, MULTIPROC_ENV: self._dir}
        child.proc = await asyncio.create_subprocess_exec(*self._argv(child), env=env)
        child.ready, child.started_at = False, time.monotonic()
        logger.info("worker process started", process=child.index, pid=child.proc.pid, port=child.port)

    async def _watch(self, child: Child) -> None:
        """Restart the child whenever it exits, until the supervisor stops."""
        while not self._stopping and child.proc is not None:
            code = await child.proc.wait()
            multiprocess.mark_process_dead(child.proc.pid, self._dir)  # type: ignore[no-untyped-call]
            if self._stopping:
                return
            logger.error("worker process exited; restarting", process=child.index, code=code)
            child.restarts += 1
            await asyncio.sleep(max(0.0, RESTART_DELAY_S - (time.monotonic() - child.started_at)))
            if not self._stopping:
                await self._spawn(child)

    async def _probe(self, session: aiohttp.ClientSession) -> None:
        """Every child's readiness, once a second, for the parent's /readyz."""
        while True:
            for child in self._children:
                try:
                    async with session.get(f"http://127.0.0.1:{child.port}/readyz") as r:
                        child.ready = r.status == 200
                except (aiohttp.ClientError, TimeoutError, OSError):
                    child.ready = False
            await asyncio.sleep(1.0)

    async def metrics(self, request: web.Request) -> web.Response:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self._dir)  # type: ignore[no-untyped-call]
        body = await asyncio.to_thread(generate_latest, registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def run(self, stop: asyncio.Event) -> int:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        self._health.add_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self._host, self._port).start()
        logger.info("supervisor listening", host=self._host, port=self._port, processes=len(self._children))
        watchers: list[asyncio.Task[None]] = []
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            probe = asyncio.create_task(self._probe(session))
            try:
                for child in self._children:
                    await self._spawn(child)
                    watchers.append(asyncio.create_task(self._watch(child)))
                await stop.wait()
            finally:
                logger.info("supervisor draining its worker processes")
                self._stopping = True
                await self._stop_children()
                probe.cancel()
                await asyncio.gather(probe, *watchers, return_exceptions=True)
                await runner.cleanup()
                shutil.rmtree(self._dir, ignore_errors=True)
        codes = [c.proc.returncode for c in self._children if c.proc is not None]
        logger.info("supervisor stopped", exit_codes=codes)
        return 0 if all(code == 0 for code in codes) else 1

    async def _stop_children(self) -> None:
        live = [c.proc for c in self._children if c.proc is not None and c.proc.returncode is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in live)), STOP_TIMEOUT_S)
        except TimeoutError:
            for proc in live:
                if proc.returncode is None:
                    logger.error("worker process did not drain in time; killing it", pid=proc.pid)
                    proc.kill()
            await asyncio.gather(*(p.wait() for p in live))
