"""`agenttrace worker --processes N`: N worker processes of the same stages under one command.

One Python process is bound to one core, so a stage scales by processes sharing its
partitions (the consumer group splits them). The parent runs no stage: it starts the children
(each a plain `agenttrace worker` on a private loopback port), restarts one that dies (backing
off while it keeps dying young) or whose `/livez` keeps failing, and serves on the public port
what a single worker serves:

- `/metrics` for all of them: prometheus_client's multiprocess mode, each child writing its
  samples to files in a directory of the parent's, which merges them at scrape time; counters
  and histograms are summed (a dead child's counts stay, so totals never go back), the worker
  gauges are `livesum` (pipeline/metrics.py). The pools' gauges, read from live objects at
  scrape time, are not in those files: they are scraped from the children and summed.
- `process_*` (RSS, CPU seconds, open files, start time) of the parent and of each child,
  labelled `process` ("supervisor" or the child's index): a child's own collector of those
  cannot write to the shared files, and a sum of processes' memory hides the one that grows.
- `/livez` while every child runs, `/readyz` when every child is ready, `/health` with each
  dependency's worst state over the children and, under `jobs.processes`, every child.

SIGTERM (or SIGINT) drains the children (each flushes and commits) before the parent exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web
from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

import agenttrace
from health.checks import Check, Health
from pipeline import compiled

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A child that dies is started again after RESTART_DELAY_S, doubled for each further death
# within STEADY_S of its start, up to RESTART_MAX_S: one that dies at once does not spin.
RESTART_DELAY_S = 1.0
RESTART_MAX_S = 30.0
STEADY_S = 60.0
# How often the children's /livez and /health are asked; a child whose /livez answers 503 this
# many times in a row (a stage stalled, health/checks.py) is killed and started again.
PROBE_S = 2.0
LIVEZ_FAILURES = 3
# A child that answers no probe at all for this long (its loop blocked, or stopped) is killed too;
# it listens before it connects to anything, so a starting child answers within seconds.
UNRESPONSIVE_S = 60.0
# Besides its stages' drains, a stopping child closes its clients; past this it is killed.
STOP_SLACK_S = 15.0
# Families a worker serves from collectors that read live objects (sinks/metrics.py), which
# multiprocess mode never writes to its files: summed from the children's own /metrics.
SCRAPED = ("db_connections_active", "db_connections_idle", "db_connections_max")
_SCRAPED_LINES = tuple(f"{p}db_connections_" for p in ("", "# HELP ", "# TYPE "))


@dataclass
class Child:
    index: int
    port: int = 0
    proc: asyncio.subprocess.Process | None = None
    ready: bool = False
    # Its dependency checks as its last /health said: {name: (healthy, error)}.
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)
    livez_failures: int = 0
    answered_at: float = field(default_factory=time.monotonic)
    restarts: int = 0
    delay_s: float = 0.0
    started_at: float = field(default_factory=time.monotonic)

    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def report(self) -> dict[str, object]:
        failing = sorted(name for name, (ok, _) in self.checks.items() if not ok)
        pid = self.proc.pid if self.running() and self.proc is not None else None
        return {"pid": pid, "port": self.port, "ready": self.ready, "failing": failing, "restarts": self.restarts}


def restart_delay(previous_s: float, lived_s: float) -> float:
    """How long to wait before starting again a child that ran `lived_s` and died, when its
    previous restart waited `previous_s` (0: never restarted)."""
    if previous_s <= 0 or lived_s >= STEADY_S:
        return RESTART_DELAY_S
    return min(RESTART_MAX_S, previous_s * 2)


def _child_ok(child: Child) -> bool:
    return child.running() and child.ready


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SummedGauges(Collector):
    """The SCRAPED gauges of the children, summed per label set."""

    def __init__(self, texts: list[str]) -> None:
        self._texts = texts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sums: dict[str, dict[tuple[tuple[str, str], ...], float]] = {name: {} for name in SCRAPED}
        helps: dict[str, str] = {}
        for text in self._texts:
            # Only their lines: a worker's whole page is mostly histogram buckets.
            lines = "".join(line + "\n" for line in text.splitlines() if line.startswith(_SCRAPED_LINES))
            for family in text_string_to_metric_families(lines):
                if family.name not in sums:
                    continue
                helps[family.name] = family.documentation
                for s in family.samples:
                    key = tuple(sorted(s.labels.items()))
                    sums[family.name][key] = sums[family.name].get(key, 0.0) + s.value
        for name, values in sums.items():
            if not values:
                continue
            labels = [k for k, _ in next(iter(values))]
            gauge = GaugeMetricFamily(name, helps.get(name, name), labels=labels)
            for key, value in values.items():
                gauge.add_metric([v for _, v in key], value)
            yield gauge


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _boot_time() -> float:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


class ProcessTree(Collector):
    """prometheus_client's process_* families for several processes, from /proc, one series
    per process (label `process`). A process that ended between listing and reading is left out."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        rss = GaugeMetricFamily("process_resident_memory_bytes", "Resident memory size in bytes.", labels=["process"])
        vms = GaugeMetricFamily("process_virtual_memory_bytes", "Virtual memory size in bytes.", labels=["process"])
        cpu = CounterMetricFamily(
            "process_cpu_seconds", "Total user and system CPU time spent in seconds.", labels=["process"]
        )
        start = GaugeMetricFamily(
            "process_start_time_seconds", "Start time of the process since unix epoch in seconds.", labels=["process"]
        )
        fds = GaugeMetricFamily("process_open_fds", "Number of open file descriptors.", labels=["process"])
        boot = _boot_time()
        for name, pid in self._pids.items():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                open_fds = len(os.listdir(f"/proc/{pid}/fd"))
            except OSError:
                continue
            # Fields after the command name, which is in parentheses and may hold spaces.
            fields = stat[stat.rindex(")") + 2 :].split()
            rss.add_metric([name], float(fields[21]) * _PAGE)
            vms.add_metric([name], float(fields[20]))
            cpu.add_metric([name], (float(fields[11]) + float(fields[12])) / _TICKS)
            start.add_metric([name], boot + float(fields[19]) / _TICKS)
            fds.add_metric([name], float(open_fds))
        yield from (rss, vms, cpu, start, fds)


class Supervisor:
    def __init__(
        self,
        stages: tuple[str, ...],
        processes: int,
        host: str,
        port: int,
        *,
        drain_s: float,
        log_level: str = "INFO",
        revision: str = "unknown",
    ) -> None:
        if processes < 1:
            raise ValueError("--processes must be at least 1")
        self._stages = stages
        self._host = host
        self._port = port
        self._log_level = log_level
        # Each stage of a child drains in turn.
        self._stop_timeout_s = drain_s * len(stages) + STOP_SLACK_S
        self._children = [Child(i) for i in range(processes)]
        # Named by the address, which the parent holds while it runs: a supervisor killed with
        # SIGKILL leaves its files behind, and the next one on that address removes them.
        safe_host = host.replace(":", "_").replace("/", "_")
        self._dir = Path(tempfile.gettempdir()) / f"agenttrace-metrics-{safe_host}-{port}"
        self._stop = asyncio.Event()
        self._stopping = False
        self._health = Health(checks=[], revision=revision, compiled=compiled.active())
        for child in self._children:
            self._health.conditions[f"process_{child.index}"] = functools.partial(_child_ok, child)
        self._health.alive = lambda: all(c.running() for c in self._children)
        self._health.jobs["processes"] = lambda: {str(c.index): c.report() for c in self._children}
        self._session: aiohttp.ClientSession | None = None

    # --- the children ------------------------------------------------------------------------

    def _argv(self, child: Child) -> list[str]:
        stages = [a for name in self._stages for a in ("--stage", name)]
        # -P: no current directory in front of sys.path, so the child imports this very code.
        return [sys.executable, "-P", "-m", "agenttrace.cli", "--log-level", self._log_level, "worker", *stages]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k.lower() != MULTIPROC_ENV.lower()}
        env[MULTIPROC_ENV] = str(self._dir)
        # The code the parent runs, whether installed or on PYTHONPATH.
        root = str(Path(agenttrace.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        return env

    async def _spawn(self, child: Child) -> asyncio.subprocess.Process:
        # A fresh port each time: the old one may have been taken while the child was down.
        child.port = _free_port()
        argv = [*self._argv(child), "--host", "127.0.0.1", "--port", str(child.port), "--parent-pid", str(os.getpid())]
        proc = await asyncio.create_subprocess_exec(*argv, env=self._env(), stdin=asyncio.subprocess.DEVNULL)
        child.proc, child.ready, child.checks, child.livez_failures = proc, False, {}, 0
        child.started_at = child.answered_at = time.monotonic()
        logger.info("worker process started", process=child.index, pid=proc.pid, port=child.port)
        return proc

    async def _watch(self, child: Child) -> None:
        """Run the child, and again whenever it exits, until the supervisor stops."""
        while True:
            proc = await self._spawn(child)
            if self._stopping:  # asked to stop while it was being started
                proc.terminate()
            code = await proc.wait()
            multiprocess.mark_process_dead(proc.pid, str(self._dir))  # type: ignore[no-untyped-call]
            child.ready = False
            if self._stopping:
                return
            child.delay_s = restart_delay(child.delay_s, time.monotonic() - child.started_at)
            child.restarts += 1
            logger.error(
                "worker process exited; restarting",
                process=child.index,
                pid=proc.pid,
                code=code,
                restart_in_s=child.delay_s,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), child.delay_s)
            if self._stopping:
                return

    async def _stop_children(self, watchers: list[asyncio.Task[None]]) -> None:
        for child in self._children:
            if child.proc is not None and child.running():
                child.proc.send_signal(signal.SIGTERM)
        _, pending = await asyncio.wait(watchers, timeout=self._stop_timeout_s)
        if pending:
            for child in self._children:
                if child.proc is not None and child.running():
                    logger.error("worker process did not drain in time; killing it", pid=child.proc.pid)
                    child.proc.kill()
            await asyncio.wait(pending)

    # --- probes and metrics ------------------------------------------------------------------

    async def _get(self, child: Child, path: str) -> tuple[int, bytes]:
        assert self._session is not None
        try:
            async with self._session.get(f"http://127.0.0.1:{child.port}{path}") as r:
                return r.status, await r.read()
        except (aiohttp.ClientError, TimeoutError, OSError):
            return 0, b""

    async def _probe_one(self, child: Child) -> None:
        (live, _), (status, body) = await asyncio.gather(self._get(child, "/livez"), self._get(child, "/health"))
        now = time.monotonic()
        if live or status:
            child.answered_at = now
        # A stated failure counts at once; silence only when it lasts (a busy child may miss a
        # probe's timeout).
        child.livez_failures = child.livez_failures + 1 if live == 503 else 0
        stalled = child.livez_failures >= LIVEZ_FAILURES
        silent = now - child.answered_at > UNRESPONSIVE_S
        if (stalled or silent) and child.proc is not None and child.running():
            logger.error(
                "worker process not alive; killing it to restart it",
                process=child.index,
                pid=child.proc.pid,
                reason="livez failing" if stalled else f"no answer for {UNRESPONSIVE_S:.0f}s",
            )
            child.proc.kill()
        child.ready = status == 200
        try:
            checks = orjson.loads(body).get("checks", {}) if status else {}
            child.checks = {name: (c.get("status") == "healthy", str(c.get("error", ""))) for name, c in checks.items()}
        except (ValueError, AttributeError):
            child.checks = {}
        for name in child.checks:
            # The child's own conditions (starting, stage_*) are what its readiness says.
            own = name == "starting" or name.startswith("stage_")
            if not own and name not in {c.name for c in self._health.checks}:
                # Not required: whether a child can do without it is the child's own judgement,
                # which its readiness (process_N) carries.
                self._health.checks.append(Check(name, functools.partial(self._dependency, name), required=False))

    async def _dependency(self, name: str) -> None:
        bad = [f"process {c.index}: {c.checks[name][1]}" for c in self._children if not c.checks.get(name, (True,))[0]]
        if bad:
            raise RuntimeError("; ".join(bad))

    async def _probe(self) -> None:
        while True:
            try:
                await asyncio.gather(*(self._probe_one(c) for c in self._children if c.running()))
            except Exception as exc:  # a probe must never end the supervision of readiness
                logger.warning("probing the worker processes failed", error=repr(exc))
            await asyncio.sleep(PROBE_S)

    async def metrics(self, request: web.Request) -> web.Response:
        scraped = await asyncio.gather(*(self._get(c, "/metrics") for c in self._children if c.running()))
        texts = [body.decode() for status, body in scraped if status == 200]
        pids = {"supervisor": os.getpid()}
        pids.update({str(c.index): c.proc.pid for c in self._children if c.running() and c.proc is not None})

        def render() -> bytes:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=str(self._dir))  # type: ignore[no-untyped-call]
            registry.register(SummedGauges(texts))
            registry.register(ProcessTree(pids))
            return generate_latest(registry)

        body = await asyncio.to_thread(render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # --- the whole ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> int:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        self._health.add_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self._host, self._port).start()
        # The address is ours now, and so is the directory named after it.
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir.mkdir(parents=True, exist_ok=True)
        logger.info("supervisor listening", host=self._host, port=self._port, processes=len(self._children))
        crashed = False
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PROBE_S)) as self._session:
            watchers = [asyncio.create_task(self._watch(c)) for c in self._children]
            probe = asyncio.create_task(self._probe())
            stopped = asyncio.create_task(stop.wait())
            try:
                done, _ = await asyncio.wait([stopped, *watchers], return_when=asyncio.FIRST_COMPLETED)
                for task in done - {stopped}:
                    # Only a failure to start a process ends a watcher early (e.g. no executable).
                    crashed = True
                    logger.error("supervising a worker process failed", error=repr(task.exception()))
            finally:
                logger.info("supervisor draining its worker processes")
                self._stopping = True
                self._stop.set()
                stopped.cancel()
                await self._stop_children(watchers)
                probe.cancel()
                await asyncio.gather(probe, stopped, return_exceptions=True)
                await runner.cleanup()
                shutil.rmtree(self._dir, ignore_errors=True)
        codes = [c.proc.returncode for c in self._children if c.proc is not None]
        logger.info("supervisor stopped", exit_codes=codes)
        return 0 if not crashed and all(code == 0 for code in codes) else 1
