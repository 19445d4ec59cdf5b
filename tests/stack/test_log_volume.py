"""Log volume stays bounded while Kafka is away: a repeated warning is one line a second per
kind (agenttrace/logs.py), not aiokafka's thousands of retries a second.

An api, and a ClickHouse-stage worker on a private lane (tests/stack/lanes.py), reach Kafka
through the fault proxy of test_edge_kafka_outage; the path is cut for 12 s (the api meanwhile
gets posts) and each process's log may grow by at most a bound in that time.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest

from sinks.postgres.keys import NewKey
from tests.edge_process import edge_process
from tests.stack.lanes import Lane
from tests.stack.test_edge_kafka_outage import PROXY, _post, kafka_path  # noqa: F401 - the fixture
from tests.stack.test_resilience import kafka, lane  # noqa: F401 - the fixtures
from tests.support import TcpPath, eventually

pytestmark = [pytest.mark.stack, pytest.mark.slow]

CUT_S = 12.0
# One line a second per kind and a few kinds, ~300 bytes a line, plus one line per 503 (one a
# second here): 16 kB measured in this 12 s cut; without the limiter ~110 kB (180 in 20 s).
API_LOG_BYTES_BOUND = 36_000
# Measured: 13 kB; without the limiter ~220 kB (373 in 20 s: the coordinator retries every 100 ms).
WORKER_LOG_BYTES_BOUND = 36_000


async def test_a_kafka_cut_does_not_flood_the_log(
    http: aiohttp.ClientSession,
    kafka_path: TcpPath,  # noqa: F811
    project: NewKey,
) -> None:
    env = {"AGENTTRACE_KAFKA_BOOTSTRAP": f"{PROXY[0]}:{PROXY[1]}", "AGENTTRACE_PUBLISH_TIMEOUT_S": "2"}
    async with edge_process(env) as edge:
        status, _, _ = await _post(http, edge.url, project)
        assert status == 207
        before = edge.log.stat().st_size
        kafka_path.cut()
        deadline = time.monotonic() + CUT_S
        statuses = []

        async def client() -> None:
            while time.monotonic() < deadline:
                statuses.append((await _post(http, edge.url, project))[0])
                await asyncio.sleep(0.2)

        await asyncio.gather(client(), client())
        grown = edge.log.stat().st_size - before
        await kafka_path.restore()
        await eventually(lambda: _post(http, edge.url, project), lambda r: r[0] == 207, timeout_s=30, every_s=0.5)

        lines = [orjson.loads(line) for line in edge.log_text().splitlines() if line.startswith("{")]
        held_back = sum(d.get("repeated", 0) for d in lines)
        print(
            f"kafka cut {CUT_S:.0f}s: api log grew {grown} bytes; {len(statuses)} posts answered "
            f"{sorted(set(statuses))}; {held_back} repeated lines held back"
        )
        assert set(statuses) == {503}
        assert grown < API_LOG_BYTES_BOUND, edge.log_text()[-3000:]


async def test_a_kafka_cut_does_not_flood_a_workers_log(
    http: aiohttp.ClientSession,
    kafka_path: TcpPath,  # noqa: F811
    lane: Lane,  # noqa: F811
) -> None:
    worker = lane.worker(AGENTTRACE_KAFKA_BOOTSTRAP=f"{PROXY[0]}:{PROXY[1]}")
    await worker.ready(http)
    await asyncio.sleep(2)  # joined its group and fetching
    before = worker.log.stat().st_size
    kafka_path.cut()
    await asyncio.sleep(CUT_S)
    grown = worker.log.stat().st_size - before
    await kafka_path.restore()
    await worker.ready(http, timeout_s=60)
    lines = [orjson.loads(line) for line in worker.log.read_text().splitlines() if line.startswith("{")]
    print(
        f"kafka cut {CUT_S:.0f}s: worker log grew {grown} bytes; "
        f"{sum(d.get('repeated', 0) for d in lines)} repeated lines held back"
    )
    assert grown < WORKER_LOG_BYTES_BOUND, worker.tail(40)
