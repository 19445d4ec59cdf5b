"""`agenttrace worker --processes N` against the real servers: N processes of the ClickHouse
stage behind one port, on a private lane (tests/stack/lanes.py: its own topic and consumer
group), so it stops no shared server and disturbs no other worker. Run it alone with
`.venv/bin/python -m pytest tests/stack/test_supervisor.py`.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.postgres.keys import NewKey
from tests.stack.lanes import DRAIN_S, Lane, Stream, census
from tests.stack.test_resilience import kafka, lane  # noqa: F401 - the fixtures
from tests.support import eventually, sample, scrape

pytestmark = [pytest.mark.stack, pytest.mark.slow]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SUCCESS = {"type": "clickhouse", "status": "success"}


async def processes(http: aiohttp.ClientSession, base: str) -> dict[str, dict[str, Any]]:
    """The supervisor's children as its /health lists them: {index: {pid, port, ready, ...}}."""
    async with http.get(f"{base}/health") as r:
        doc = await r.json()
    found: dict[str, dict[str, Any]] = doc["jobs"]["processes"]
    return found


def child_url(child: dict[str, Any]) -> str:
    return f"http://127.0.0.1:{child['port']}"


async def children_sum(http: aiohttp.ClientSession, base: str, name: str, **labels: str) -> float:
    """A sample summed over the children's own /metrics."""
    total = 0.0
    for child in (await processes(http, base)).values():
        total += sample(await scrape(http, child_url(child)), name, **labels)
    return total


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for n, labels in samples if n == name]


@pytest.mark.timeout(300)
async def test_one_command_supervises_n_processes(
    lane: Lane,  # noqa: F811
    http: aiohttp.ClientSession,
    ch: ClickHouse,
    project: NewKey,
) -> None:
    """Two processes share the partitions behind one port, whose /metrics sums theirs; a child
    killed with SIGKILL is started again; SIGTERM drains both, and nothing is lost."""
    pid = project.project_id
    parent = lane.worker(processes=2)
    await parent.ready(http, timeout_s=60)
    first = await processes(http, parent.url)
    assert sorted(first) == ["0", "1"] and all(c["pid"] and c["ready"] for c in first.values()), first
    stream = Stream(lane, pid).start()
    try:
        # Both hold partitions of the lane and write.
        for child in first.values():
            await eventually(
                lambda c=child: scrape(http, child_url(c)),
                lambda s: sample(s, "worker_jobs_processed_total", **SUCCESS) > 0,
                timeout_s=60,
            )

        # Counters are summed: between two scrapes of the parent lies the children's sum.
        before = sample(await scrape(http, parent.url), "worker_jobs_processed_total", **SUCCESS)
        summed = await children_sum(http, parent.url, "worker_jobs_processed_total", **SUCCESS)
        merged = await scrape(http, parent.url)
        assert before <= summed <= sample(merged, "worker_jobs_processed_total", **SUCCESS)
        # The guide's gauges keep a single worker's labels: one series per queue, summed.
        assert series(merged, "worker_queue_depth") == [{"queue": "clickhouse"}]
        assert series(merged, "worker_active_jobs") == [{"type": "clickhouse"}]
        # The pools' gauges, which multiprocess mode does not carry, are summed from the children.
        for db in ("clickhouse", "postgres"):
            pool = sample(merged, "db_connections_max", db=db)
            assert pool > 0 and pool == await children_sum(http, parent.url, "db_connections_max", db=db)

        # Each process's memory and CPU, by process: a sum would hide the one that grows.
        assert sorted(s["process"] for s in series(merged, "process_resident_memory_bytes")) == ["0", "1", "supervisor"]
        for child in ("0", "1"):
            assert sample(merged, "process_resident_memory_bytes", process=child) > 20e6
            assert sample(merged, "process_cpu_seconds_total", process=child) > 0

        victim = first["0"]["pid"]
        counted = sample(merged, "worker_jobs_processed_total", **SUCCESS)
        os.kill(victim, signal.SIGKILL)
        again = await eventually(
            lambda: processes(http, parent.url),
            lambda p: p["0"]["pid"] not in (None, victim) and p["0"]["ready"],
            timeout_s=60,
        )
        assert again["0"]["restarts"] == 1 and again["1"]["pid"] == first["1"]["pid"], again
        await parent.ready(http, timeout_s=30)
        # The dead child's counts stay in the total: it never goes back.
        assert sample(await scrape(http, parent.url), "worker_jobs_processed_total", **SUCCESS) >= counted
        seen = (await census(ch, pid))[0]
        await eventually(lambda: census(ch, pid), lambda c: c[0] > seen + 100, timeout_s=60)
    finally:
        await stream.stop()
    await lane.caught_up(timeout_s=60)
    await stream.assert_visible_once(ch)

    last = await processes(http, parent.url)
    parent.signal(signal.SIGTERM)
    code, _ = await parent.exited(DRAIN_S + 20)
    assert code == 0, parent.tail()
    log = parent.log.read_text()
    assert "supervisor stopped" in log and "did not drain" not in log, parent.tail()
    for child in last.values():  # reaped by the supervisor
        assert not Path(f"/proc/{child['pid']}").exists()
    # The merged samples' directory goes with the supervisor.
    assert not (Path(tempfile.gettempdir()) / f"agenttrace-metrics-127.0.0.1-{parent.port}").exists()


async def test_the_children_of_a_killed_supervisor_drain_and_exit(
    lane: Lane,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    """A supervisor killed with SIGKILL cannot drain its children; they notice and drain
    themselves instead of running on unwatched."""
    parent = lane.worker(processes=1)
    await parent.ready(http, timeout_s=60)
    [child] = (await processes(http, parent.url)).values()
    parent.signal(signal.SIGKILL)
    await parent.exited(5)

    async def running() -> bool:
        # Reparented, it may stay a zombie if nothing reaps it: that is exited too.
        try:
            stat = Path(f"/proc/{child['pid']}/stat").read_text()
        except FileNotFoundError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    await eventually(running, lambda alive: not alive, timeout_s=DRAIN_S + 15)
    log = parent.log.read_text()
    assert "the supervisor is gone; draining" in log and "worker stopped" in log, parent.tail()
    # What a killed supervisor leaves, the next one on its address empties; here, the test.
    shutil.rmtree(Path(tempfile.gettempdir()) / f"agenttrace-metrics-127.0.0.1-{parent.port}")
