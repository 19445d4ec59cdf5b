"""Issue 4's guarantees against the real servers: whatever the order, the redeliveries, the
outages, kills and rebalances, every accepted event's entity is visible exactly once in
ClickHouse with its merged content, and an event that can never be written is dead-lettered
without holding up the rest.

Each test runs its own worker processes on its own topic and consumer group (see `lane`), so it
cannot disturb the worker `make up` started, nor another test.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agenttrace.settings import Settings
from pipeline.envelope import Envelope
from pipeline.times import micros_of_column as decode_time
from sinks.clickhouse.client import ClickHouse
from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey
from tests.stack.lanes import (
    DRAIN_S,
    PARTITIONS,
    ROOT,
    Lane,
    Stream,
    assert_exactly_once,
    census,
    dead_letters,
    envelope,
    fetch,
    micros,
    observations,
    readiness,
)
from tests.support import API, WORKER, eventually, sample, scrape

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture(scope="session")
async def kafka(settings: Settings) -> AsyncIterator[tuple[AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient]]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    offsets = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        await producer.start()
        await offsets.start()
        await admin.start()
        yield producer, offsets, admin
    finally:
        await admin.close()
        await offsets.stop()
        await producer.stop()


@pytest.fixture
async def lane(
    settings: Settings, kafka: tuple[AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient], tmp_path: Path
) -> AsyncIterator[Lane]:
    producer, offsets, admin = kafka
    tag = uuid.uuid4().hex[:10]
    topic, dlq = f"agenttrace.test.{tag}.events", f"agenttrace.test.{tag}.dlq"
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1), NewTopic(dlq, 1, 1)])
    lane = Lane(settings.kafka_bootstrap, topic, dlq, f"test-{tag}-", producer, offsets, admin, tmp_path)
    # The producer and the offsets reader learn of the new topics.
    await eventually(lambda: producer.partitions_for(topic), lambda parts: len(parts or ()) == PARTITIONS)
    try:
        yield lane
    finally:
        await lane.close()
        for w in lane.workers:
            print(f"--- worker {w.proc.pid} (exit {w.proc.returncode}) log tail ---\n{w.tail(15)}")
        await admin.delete_topics([topic, dlq])


# --- the cases ---------------------------------------------------------------------------------


async def test_update_before_create_across_restart(
    lane: Lane, http: aiohttp.ClientSession, ch: ClickHouse, project: NewKey
) -> None:
    """The update (newer) is written first by one worker; a fresh worker then folds the create
    (older) onto the stored row: the create fills in its fields, never overwrites newer ones.
    The generations straddle a month boundary, so the two row versions land in different
    partitions of the table, which FINAL still has to collapse."""
    pid, n = project.project_id, 8
    created = micros("2026-10-31T23:59:59.500000Z")
    updated = micros("2026-11-01T00:00:00.750000Z")
    updates = [
        envelope(
            pid,
            "generation-update",
            {
                "id": f"gen-{i}",
                "traceId": f"trace-{i}",
                "output": {"text": "final"},
                "endTime": "2026-11-01T00:00:00.750000Z",
                "metadata": {"phase": "done"},
                "level": "WARNING",
            },
            updated + i,
        )
        for i in range(n)
    ]
    creates = [
        envelope(
            pid,
            "generation-create",
            {
                "id": f"gen-{i}",
                "traceId": f"trace-{i}",
                "name": "llm",
                "model": "gpt-4o",
                "startTime": "2026-10-31T23:59:59.500000Z",
                "endTime": "2026-10-31T23:59:59.600000Z",
                "input": [{"role": "user", "content": "hi"}],
                "output": {"text": "draft"},
                "metadata": {"phase": "start", "user": "u-1"},
                "level": "DEFAULT",
                "usage": {"input": 10, "output": 5},
            },
            created + i,
        )
        for i in range(n)
    ]
    first = lane.worker()
    await first.ready(http)
    await lane.produce(updates)
    await assert_exactly_once(ch, pid, n)
    await lane.caught_up()
    first.signal(signal.SIGTERM)
    assert (await first.exited(DRAIN_S + 5))[0] == 0

    second = lane.worker()
    await second.ready(http)
    await lane.produce(creates)
    await lane.caught_up()
    await assert_exactly_once(ch, pid, n)
    cols = (
        "id",
        "type",
        "name",
        "provided_model_name",
        "input",
        "output",
        "start_time",
        "end_time",
        "level",
        "metadata",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "trace_id",
    )
    rows = await observations(ch, pid, cols)
    assert sorted(rows) == sorted(f"gen-{i}" for i in range(n))
    for i in range(n):
        row = rows[f"gen-{i}"]
        assert row["type"] == "GENERATION"
        # From the create: fields the update did not carry.
        assert (row["name"], row["provided_model_name"], row["trace_id"]) == ("llm", "gpt-4o", f"trace-{i}")
        assert orjson.loads(row["input"]) == [{"role": "user", "content": "hi"}]
        assert decode_time(row["start_time"]) == created
        assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (10, 5, 15)
        # From the update: the create's older values lost.
        assert orjson.loads(row["output"]) == {"text": "final"}
        assert decode_time(row["end_time"]) == updated
        assert row["level"] == "WARNING"
        assert orjson.loads(row["metadata"]) == {"phase": "done", "user": "u-1"}
    second.signal(signal.SIGTERM)
    assert (await second.exited(DRAIN_S + 5))[0] == 0


async def test_redelivered_batch_changes_nothing(
    lane: Lane, http: aiohttp.ClientSession, ch: ClickHouse, project: NewKey
) -> None:
    """The same envelopes twice (a producer retry, a redelivery after a crash), then the whole
    topic again by a worker with an empty cache (a replay): no duplicates, identical rows."""
    pid = project.project_id
    stream = Stream(lane, pid)
    batch = stream.batch(60)
    # A later update in a second request, so the copies interleave with state from two batches.
    batch += [
        envelope(
            pid,
            "generation-update",
            {"id": "gen-1", "output": "revised", "metadata": {"r": 1}},
            time.time_ns() // 1000 + 10_000_000,
        )
    ]
    worker = lane.worker()
    await worker.ready(http)
    await lane.produce(batch)
    await lane.caught_up()
    await assert_exactly_once(ch, pid, stream.count)
    cols = (
        "id",
        "trace_id",
        "type",
        "name",
        "start_time",
        "end_time",
        "input",
        "output",
        "metadata",
        "usage_details",
        "input_tokens",
        "total_tokens",
        "field_versions",
        "created_at",
        "updated_at",
        "event_ts",
    )
    before = await observations(ch, pid, cols)
    assert orjson.loads(before["gen-1"]["output"]) == "revised"

    await lane.produce(batch)
    await lane.caught_up()
    await assert_exactly_once(ch, pid, stream.count)
    assert await observations(ch, pid, cols) == before

    # A second group reads the topic from the start with nothing cached: it folds onto the
    # stored rows and must land on the same state.
    replay = lane.worker(group_prefix=lane.group_prefix + "replay-")
    await replay.ready(http)
    await lane.caught_up(group=lane.group_prefix + "replay-clickhouse")
    await assert_exactly_once(ch, pid, stream.count)
    assert await observations(ch, pid, cols) == before
    for w in (worker, replay):
        w.signal(signal.SIGTERM)
    for w in (worker, replay):
        assert (await w.exited(DRAIN_S + 5))[0] == 0


OUTAGE_S = 25


async def test_clickhouse_outage_is_ridden_out(
    lane: Lane, http: aiohttp.ClientSession, ch: ClickHouse, pg: Postgres, project: NewKey
) -> None:
    """ClickHouse goes away for OUTAGE_S seconds while events keep arriving: the worker stays
    up, says not ready while it retries, ready again after, and every event is then visible
    once. The shared `make up` worker and api ride it out too."""
    pid = project.project_id
    shared = {base: (await readiness(http, base))[0] for base in (API, WORKER)}
    worker = lane.worker()
    await worker.ready(http)
    stream = Stream(lane, pid).start()
    try:
        await eventually(lambda: census(ch, pid), lambda c: c[0] > 0)
        # One command for the whole outage: it holds the stack lock, so a `make up` elsewhere
        # cannot bring ClickHouse back early, and it restarts ClickHouse even if we die.
        outage = await asyncio.create_subprocess_exec(
            str(ROOT / "ops" / "stack.sh"),
            "restart",
            "clickhouse",
            str(OUTAGE_S),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            # Not ready: the ping fails, and the stage itself is retrying its writes. (The
            # deadline allows for waiting on the stack lock.)
            await eventually(
                lambda: readiness(http, worker.url),
                lambda r: r[0] == 503 and {"clickhouse", "stage_clickhouse"} <= set(r[1]),
                timeout_s=60,
            )
            await asyncio.sleep(OUTAGE_S - 5)
            assert (await readiness(http, worker.url))[0] == 503
            assert worker.proc.poll() is None, worker.tail()
        finally:
            out, _ = await outage.communicate()
        assert outage.returncode == 0, out.decode(errors="replace")
        await worker.ready(http, timeout_s=30)
    finally:
        await stream.stop()
    await lane.caught_up()
    await stream.assert_visible_once(ch)
    # Nothing transient may end up as a dead letter.
    assert await dead_letters(pg, pid) == []
    for base, status in shared.items():
        if status == 200:
            await eventually(lambda b=base: readiness(http, b), lambda r: r[0] == 200, timeout_s=30)
    worker.signal(signal.SIGTERM)
    assert (await worker.exited(DRAIN_S + 5))[0] == 0


async def test_sigkill_mid_batch_redelivers_idempotently(
    lane: Lane, http: aiohttp.ClientSession, ch: ClickHouse, project: NewKey
) -> None:
    """A worker dies by SIGKILL in the middle of a batch: traces written, observations being
    inserted, nothing committed. Its successor gets the whole batch again."""
    pid, n = project.project_id, 2000
    stream = Stream(lane, pid)
    backlog = stream.batch(n, pad=4000)
    traces = [
        envelope(
            pid,
            "trace-create",
            {"id": f"trace-{i}", "name": "run", "userId": f"u-{i % 7}", "tags": ["kill"]},
            time.time_ns() // 1000,
        )
        for i in range(n)
    ]
    # Traces are inserted before observations, so a visible trace means the batch is mid-write.
    await lane.produce(traces + backlog)
    # One big batch: the flush waits for the whole backlog to be fetched.
    victim = lane.worker(AGENTTRACE_FLUSH_INTERVAL_S="2")
    await eventually(lambda: census(ch, pid, "traces"), lambda c: c[0] > 0, timeout_s=60, every_s=0.01)
    victim.signal(signal.SIGKILL)
    assert (await victim.exited(5))[0] == -signal.SIGKILL
    written = (await census(ch, pid, "traces"))[0] + (await census(ch, pid))[0]
    committed, end = await lane.committed(), await lane.end()
    assert written > 0 and committed < end, (written, committed, end)
    print(f"killed mid-batch: {written} rows written, {committed} of {end} offsets committed")

    successor = lane.worker()
    await successor.ready(http)
    stream.start()  # and more arrive meanwhile
    await asyncio.sleep(1.0)
    await stream.stop()
    await lane.caught_up()
    await assert_exactly_once(ch, pid, n, "traces")
    await stream.assert_visible_once(ch)
    [(tagged, users)] = await fetch(
        ch, f"SELECT countIf(tags = ['kill']), uniqExact(user_id) FROM traces FINAL WHERE project_id = '{pid}'"
    )
    assert (tagged, users) == (n, 7)
    successor.signal(signal.SIGTERM)
    assert (await successor.exited(DRAIN_S + 5))[0] == 0


async def test_three_workers_rebalancing(
    lane: Lane, http: aiohttp.ClientSession, ch: ClickHouse, project: NewKey
) -> None:
    """Three workers share the 6 partitions under a steady stream; one leaves gracefully (drains,
    exits 0 within the bound), one is killed, a new one joins: every event visible once."""
    pid = project.project_id
    workers = [lane.worker() for _ in range(3)]
    for w in workers:
        await w.ready(http)
    stream = Stream(lane, pid).start()
    try:
        await eventually(lambda: census(ch, pid), lambda c: c[0] >= 200)
        leaving, killed, staying = workers
        leaving.signal(signal.SIGTERM)
        code, took = await leaving.exited(DRAIN_S + 5)
        assert code == 0, leaving.tail()
        assert took < DRAIN_S + 3, took
        log = leaving.log.read_text()
        assert "worker stopped" in log and "drain timed out" not in log, leaving.tail()
        seen = (await census(ch, pid))[0]
        await eventually(lambda: census(ch, pid), lambda c: c[0] > seen + 100, timeout_s=40)

        killed.signal(signal.SIGKILL)
        await killed.exited(5)
        joining = lane.worker()
        await joining.ready(http)
        seen = (await census(ch, pid))[0]
        await eventually(lambda: census(ch, pid), lambda c: c[0] > seen + 100, timeout_s=40)
    finally:
        await stream.stop()
    # The killed member's partitions move once its session times out.
    await lane.caught_up(timeout_s=60)
    await stream.assert_visible_once(ch)
    for w in (staying, joining):
        assert w.proc.poll() is None, w.tail()
        w.signal(signal.SIGTERM)
    for w in (staying, joining):
        code, took = await w.exited(DRAIN_S + 5)
        assert code == 0, w.tail()


async def test_poison_events_are_dead_lettered_and_the_stage_moves_on(
    lane: Lane, http: aiohttp.ClientSession, ch: ClickHouse, pg: Postgres, project: NewKey
) -> None:
    """Events that can never be written, among good ones of the same trace (one partition, in
    order): each poison lands in the dead-letter topic and table with its reason, has no effect
    on the rows, and the good events around it are written."""
    pid, trace, t = project.project_id, "trace-poison", time.time_ns() // 1000

    def span(i: int, **body: Any) -> Envelope:
        return envelope(
            pid,
            "span-create",
            {"id": f"span-{i}", "traceId": trace, "name": f"step-{i}", "startTime": t + i, "output": "ok", **body},
            t + i,
        )

    bad_time = envelope(
        pid, "generation-create", {"id": "gen-bad-time", "traceId": trace, "startTime": "not a time"}, t + 10
    )
    # Refused at the edge today (1970..2100); a record from elsewhere is refused by the fold.
    pre_epoch = envelope(
        pid,
        "generation-create",
        {"id": "gen-1969", "traceId": trace, "name": "apollo", "startTime": "1969-07-20T20:17:40Z"},
        t + 11,
    )
    # Poison in its last field: none of it may stick (output stays "ok").
    half = envelope(
        pid,
        "span-update",
        {"id": "span-1", "traceId": trace, "output": "poisoned", "metadata": {"x": 1}, "endTime": "not a time"},
        t + 12,
    )
    # Not an envelope at all, with a NUL that Postgres text and jsonb cannot hold.
    garbage = b"\x00not an envelope\xff"
    key = f"{pid}:{trace}".encode()
    records = [(e.key(), e.encode()) for e in (span(1), bad_time, span(2), pre_epoch, half)]
    records += [(key, garbage), (span(3).key(), span(3).encode())]

    worker = lane.worker()
    await worker.ready(http)
    await lane.produce_raw(records)
    await lane.caught_up()
    await lane.produce([span(4)])
    await lane.caught_up()
    await assert_exactly_once(ch, pid, 4)
    rows = await observations(ch, pid, ("id", "output", "end_time", "metadata"))
    assert sorted(rows) == ["span-1", "span-2", "span-3", "span-4"]
    assert rows["span-1"] == {"id": "span-1", "output": '"ok"', "end_time": None, "metadata": "{}"}

    dead = await dead_letters(pg, pid)
    by_id = {d[0]: d for d in dead}
    assert sorted(by_id) == sorted([bad_time.id, pre_epoch.id, half.id]), dead
    assert all(d[2] == "clickhouse" for d in dead)
    assert "bad timestamp 'not a time'" in by_id[bad_time.id][3]
    assert "bad timestamp 'not a time'" in by_id[half.id][3]
    assert "between 1970 and 2100" in by_id[pre_epoch.id][3], by_id[pre_epoch.id][3]
    assert by_id[pre_epoch.id][4]["body"]["name"] == "apollo"

    on_topic = await lane.dead_lettered()
    assert len(on_topic) == 4, on_topic
    assert all(h["stage"] == "clickhouse" and h["reason"] for _, h in on_topic)
    assert garbage in [v for v, _ in on_topic]
    # Each dead letter is counted with its reason, for DeadLettersArriving.
    metrics = await scrape(http, worker.url)
    counted = {
        reason: sample(metrics, "dead_letters_total", stage="clickhouse", reason=reason)
        for reason in ("undecodable", "bad_time", "out_of_range", "store_refused", "other")
    }
    # The pre-1970 time is the fold's to refuse (bad_time), as the edge would have.
    assert counted == {"undecodable": 1, "bad_time": 3, "out_of_range": 0, "store_refused": 0, "other": 0}
    assert (await readiness(http, worker.url))[0] == 200
    worker.signal(signal.SIGTERM)
    assert (await worker.exited(DRAIN_S + 5))[0] == 0
