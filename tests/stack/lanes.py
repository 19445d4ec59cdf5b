"""Helpers for the resilience tests: private lanes (topic, dead-letter topic, consumer group)
with worker processes on them, a steady stream of events, and exactly-once checks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.envelope import Envelope
from pipeline.times import to_micros
from sinks.clickhouse.client import ClickHouse, ClickHouseError
from sinks.postgres.client import Postgres
from tests.support import edge_body, eventually

ROOT = Path(__file__).resolve().parents[2]
AGENTTRACE = ROOT / ".venv" / "bin" / "agenttrace"
PARTITIONS = 6
# The test workers' drain bound; a SIGTERMed worker must exit within it (plus start-up slack).
DRAIN_S = 8.0


def micros(iso: str) -> int:
    us = to_micros(iso)
    assert us is not None
    return us


def envelope(project_id: str, etype: str, body: dict[str, Any], ts: int, *, event_id: str | None = None) -> Envelope:
    return Envelope(
        id=event_id or str(uuid.uuid4()),
        project_id=project_id,
        type=etype,
        ts=ts,
        received_at=time.time_ns() // 1000,
        body=edge_body(etype, body),
        request_id="test-resilience",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Worker:
    """One `agenttrace worker` process on the lane's topic and group."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def ready(self, http: aiohttp.ClientSession, timeout_s: float = 30.0) -> None:
        async def probe() -> int:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            return (await readiness(http, self.url))[0]

        await eventually(probe, lambda status: status == 200, timeout_s=timeout_s)

    async def exited(self, timeout_s: float) -> tuple[int, float]:
        """Wait for the process to end: (exit code, seconds waited)."""
        start = time.monotonic()
        while self.proc.poll() is None:
            if time.monotonic() - start > timeout_s:
                raise AssertionError(f"worker {self.proc.pid} still running after {timeout_s}s:\n{self.tail()}")
            await asyncio.sleep(0.05)
        return self.proc.returncode, time.monotonic() - start

    def signal(self, sig: signal.Signals) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"


@dataclass
class Lane:
    """A private topic (PARTITIONS partitions), dead-letter topic and consumer group."""

    bootstrap: str
    topic: str
    dlq: str
    group_prefix: str
    producer: AIOKafkaProducer
    offsets: AIOKafkaConsumer
    admin: AIOKafkaAdminClient
    logs: Path
    workers: list[Worker] = field(default_factory=list)

    @property
    def group(self) -> str:
        return self.group_prefix + "clickhouse"

    def worker(self, *, group_prefix: str | None = None, processes: int | None = None, **env: str) -> Worker:
        port = _free_port()
        log = self.logs / f"worker-{len(self.workers)}-{port}.log"
        environ = {
            **os.environ,
            "AGENTTRACE_TOPIC_EVENTS": self.topic,
            "AGENTTRACE_TOPIC_DLQ": self.dlq,
            "AGENTTRACE_CONSUMER_GROUP_PREFIX": group_prefix or self.group_prefix,
            # Recover within a second or two of ClickHouse coming back, drain quickly.
            "AGENTTRACE_RETRY_MAX_S": "1",
            "AGENTTRACE_DRAIN_TIMEOUT_S": str(DRAIN_S),
            **env,
        }
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(AGENTTRACE), "worker", "--stage", "clickhouse", "--port", str(port)]
                + (["--processes", str(processes)] if processes else []),
                cwd=ROOT,
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        w = Worker(proc, port, log)
        self.workers.append(w)
        return w

    async def produce(self, envelopes: list[Envelope]) -> None:
        await self.produce_raw([(e.key(), e.encode()) for e in envelopes])

    async def produce_raw(self, records: list[tuple[bytes, bytes]]) -> None:
        futures = [await self.producer.send(self.topic, key=k, value=v) for k, v in records]
        await asyncio.gather(*futures)

    def partitions(self, topic: str | None = None) -> list[TopicPartition]:
        return [TopicPartition(topic or self.topic, p) for p in range(PARTITIONS)]

    async def end(self) -> int:
        return sum((await self.offsets.end_offsets(self.partitions())).values())

    async def committed(self, group: str | None = None) -> int:
        found = await self.admin.list_consumer_group_offsets(group or self.group, partitions=self.partitions())
        return sum(max(0, o.offset) for o in found.values())

    async def caught_up(self, group: str | None = None, timeout_s: float = 30.0) -> None:
        """Until the group has committed everything in the topic: each event was handled."""
        end = await self.end()
        await eventually(lambda: self.committed(group), lambda c: c == end, timeout_s=timeout_s)

    async def dead_lettered(self) -> list[tuple[bytes, dict[str, str]]]:
        """Everything on the lane's dead-letter topic: (value, headers)."""
        tps = [TopicPartition(self.dlq, 0)]
        ends = await self.offsets.end_offsets(tps)
        if not ends[tps[0]]:
            return []
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await reader.start()
        try:
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            out: list[tuple[bytes, dict[str, str]]] = []
            while len(out) < ends[tps[0]]:
                for records in (await reader.getmany(timeout_ms=1000)).values():
                    out.extend((r.value, {k: v.decode() for k, v in r.headers}) for r in records)
            return out
        finally:
            await reader.stop()

    async def close(self) -> None:
        # Normally each test ended its workers; a failed one leaves them to us.
        for w in self.workers:
            w.signal(signal.SIGTERM)
        for w in self.workers:
            try:
                await w.exited(DRAIN_S + 10)
            except AssertionError:
                w.signal(signal.SIGKILL)
                w.proc.wait()


async def readiness(http: aiohttp.ClientSession, base: str) -> tuple[int, list[str]]:
    try:
        async with http.get(base + "/readyz", timeout=aiohttp.ClientTimeout(total=3)) as r:
            return r.status, (await r.json()).get("failing", [])
    except (aiohttp.ClientError, TimeoutError):
        return 0, []


async def dead_letters(pg: Postgres, project_id: str) -> list[tuple]:
    return await pg.fetch(
        "SELECT event_id, event_type, stage, reason, payload FROM dead_letters WHERE project_id = %s ORDER BY id",
        (project_id,),
    )


async def fetch(ch: ClickHouse, sql: str) -> list[tuple]:
    """ch.fetch, riding out the pool's dead connections after a ClickHouse restart."""
    for attempt in range(10):
        try:
            return await ch.fetch(sql)
        except ClickHouseError:
            if attempt == 9:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def census(ch: ClickHouse, project_id: str, table: str = "observations") -> tuple[int, int]:
    """(rows, distinct ids) as readers see them, under FINAL."""
    [(n, distinct)] = await fetch(
        ch, f"SELECT count(), uniqExact(id) FROM {table} FINAL WHERE project_id = '{project_id}'"
    )
    return int(n), int(distinct)


async def assert_exactly_once(ch: ClickHouse, project_id: str, expected: int, table: str = "observations") -> None:
    await eventually(lambda: census(ch, project_id, table), lambda c: c[0] >= expected, timeout_s=30)
    assert await census(ch, project_id, table) == (expected, expected)


async def observations(ch: ClickHouse, project_id: str, columns: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    found = await fetch(
        ch, f"SELECT {', '.join(columns)} FROM observations FINAL WHERE project_id = '{project_id}' ORDER BY id"
    )
    return {r[columns.index("id")]: dict(zip(columns, r, strict=True)) for r in found}


# --- a steady stream of generations, each a create and a later update ------------------------


@dataclass
class Stream:
    """Produces generation create+update pairs until stopped; knows what must end up visible."""

    lane: Lane
    project_id: str
    per_tick: int = 20
    tick_s: float = 0.05
    count: int = 0
    tokens: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> Stream:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        self._stop.set()
        if self._task:
            await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self.lane.produce(self.batch(self.per_tick))
            await asyncio.sleep(self.tick_s)

    def batch(self, n: int, *, pad: int = 0) -> list[Envelope]:
        out = []
        for _ in range(n):
            self.count += 1
            i, gen, trace = self.count, f"gen-{self.count}", f"trace-{self.count % 50}"
            start = time.time_ns() // 1000
            out.append(
                envelope(
                    self.project_id,
                    "generation-create",
                    {
                        "id": gen,
                        "traceId": trace,
                        "name": "llm",
                        "model": "gpt-4o",
                        "startTime": start,
                        "input": {"n": i, "pad": "x" * pad},
                        "usage": {"input": i, "output": 1},
                    },
                    start,
                )
            )
            out.append(
                envelope(
                    self.project_id,
                    "generation-update",
                    {
                        "id": gen,
                        "traceId": trace,
                        "output": f"done-{i}",
                        "endTime": start + 1000,
                    },
                    start + 1000,
                )
            )
            self.tokens += i
        return out

    async def assert_visible_once(self, ch: ClickHouse, timeout_s: float = 30.0) -> None:
        await eventually(lambda: census(ch, self.project_id), lambda c: c[0] >= self.count, timeout_s=timeout_s)
        [row] = await fetch(
            ch,
            (
                "SELECT count(), uniqExact(id), sum(input_tokens), sum(total_tokens), countIf(output IS NULL), "
                "countIf(end_time IS NULL), countIf(type != 'GENERATION' OR name != 'llm') "
                f"FROM observations FINAL WHERE project_id = '{self.project_id}'"
            ),
        )
        assert tuple(int(v) for v in row) == (self.count, self.count, self.tokens, self.tokens + self.count, 0, 0, 0)
