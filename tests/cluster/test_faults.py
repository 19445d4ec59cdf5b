"""Under a steady load the cluster loses one process of each kind, one after the other: a Kafka
broker (SIGKILL), a ClickHouse replica (stopped 60 s), the ClickHouse server half the app enters
through (stopped 30 s), a worker of each stage (SIGKILL), an api (SIGKILL). Afterwards every
accepted event is visible exactly once through the Distributed tables, both replicas of each
shard hold the same rows, and the Postgres aggregates match.

The figures (offered, accepted, lost, duplicated, time to settle) are printed as one JSON line,
`cluster-faults`, for the scaling guide and the CI log.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from agenttrace.settings import Settings
from sinks.clickhouse.client import ClickHouse
from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey
from tests.cluster.conftest import API_URLS, cluster
from tests.cluster.steady_load import GENERATIONS_PER_TRACE, INPUT_TOKENS, OUTPUT_TOKENS, SteadyLoad

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1500)]

TRACES_PER_SECOND = 20  # 100 events/s: steady, and light enough for two cores running 17 processes
SETTLE_TIMEOUT_S = 300


async def visible(ch: ClickHouse, table: str, project_id: str) -> tuple[int, int]:
    """(rows, distinct ids) of the project through the Distributed table, merged (FINAL)."""
    rows = await ch.fetch(
        f"SELECT count(), uniqExact(id) FROM {table} FINAL WHERE project_id = %(p)s", {"p": project_id}
    )
    return int(rows[0][0]), int(rows[0][1])


async def ids(ch: ClickHouse, table: str, project_id: str) -> set[str]:
    rows = await ch.fetch(f"SELECT id FROM {table} FINAL WHERE project_id = %(p)s", {"p": project_id})
    return {str(r[0]) for r in rows}


async def local_count(ch: ClickHouse, table: str, project_id: str) -> int:
    rows = await ch.fetch(f"SELECT count() FROM {table}_local FINAL WHERE project_id = %(p)s", {"p": project_id})
    return int(rows[0][0])


async def full_isr(settings: Settings) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        topics = await admin.describe_topics([settings.topics.events])
        return all(len(p["isr"]) == settings.topics.replication for t in topics for p in t["partitions"])
    finally:
        await admin.close()


async def wait_for(check, timeout_s: float, what: str) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    last: object = None
    while time.monotonic() - start < timeout_s:
        try:
            if await check():
                return time.monotonic() - start
        except Exception as exc:  # a server coming back answers with errors for a while
            last = exc
        await asyncio.sleep(1.0)
    raise AssertionError(f"{what}: not within {timeout_s:.0f}s (last error: {last!r})")


def log(event: str, **fields: object) -> None:
    print(orjson.dumps({"event": event, "t": time.strftime("%H:%M:%S"), **fields}).decode(), file=sys.stderr)


async def test_every_accepted_event_survives_faults_exactly_once(
    cluster_settings: Settings, cluster_pg: Postgres, cluster_ch: dict[str, ClickHouse], cluster_project: NewKey
) -> None:
    pid = cluster_project.project_id
    entry = cluster_ch["ch_2"]  # the apps' entry server; a Distributed read like theirs
    figures: dict[str, object] = {}
    async with SteadyLoad(API_URLS, cluster_project.public_key, cluster_project.secret_key, TRACES_PER_SECOND) as load:
        await asyncio.sleep(15)

        # 1. A Kafka broker dies without warning; the apis keep accepting (min.insync 2 of 3).
        before = len(load.figures.accepted_events)
        log("fault", what="SIGKILL kafka_1")
        await cluster("kill", "kafka_1")
        await asyncio.sleep(20)
        accepted_during = len(load.figures.accepted_events) - before
        log("kafka_1 down", accepted_during_20s=accepted_during)
        assert accepted_during > 0, "nothing accepted while one broker of three was down"
        await cluster("start", "kafka_1")
        figures["kafka_rejoin_s"] = round(await wait_for(lambda: full_isr(cluster_settings), 180, "kafka_1 in sync"), 1)
        log("kafka_1 rejoined", seconds=figures["kafka_rejoin_s"])

        # 2. A ClickHouse replica (the first of shard 1: the one its reads and inserts go to)
        #    stops for 60 s; inserts continue on the other replica.
        log("fault", what="stop ch_1 for 60 s")
        await cluster("stop", "ch_1")
        await asyncio.sleep(5)
        seen_at_stop = (await visible(entry, "observations", pid))[0]
        await asyncio.sleep(55)
        seen_before_restart = (await visible(entry, "observations", pid))[0]
        figures["observations_written_while_ch_1_down"] = seen_before_restart - seen_at_stop
        assert seen_before_restart > seen_at_stop, "no insert reached shard storage while ch_1 was down"
        await cluster("start", "ch_1")

        # 2b. The server the `_1` processes enter through stops for 30 s: they fail over to
        #     ch_4 (their URL's second server) and keep writing.
        log("fault", what="stop ch_2 (entry server of api_1, worker_ch_1) for 30 s")
        await cluster("stop", "ch_2")
        await asyncio.sleep(5)
        other = cluster_ch["ch_4"]
        seen_at_stop = (await visible(other, "observations", pid))[0]
        await asyncio.sleep(25)
        seen_before_restart = (await visible(other, "observations", pid))[0]
        figures["observations_written_while_ch_2_down"] = seen_before_restart - seen_at_stop
        assert seen_before_restart > seen_at_stop, "no insert while the entry server ch_2 was down"
        await cluster("start", "ch_2")

        # 3. A worker of each stage dies mid-batch; the other takes its partitions over.
        log("fault", what="SIGKILL worker_ch_1 and worker_pg_1")
        await cluster("kill", "worker_ch_1")
        await cluster("kill", "worker_pg_1")
        await asyncio.sleep(10)
        await cluster("start", "worker_ch_1", "worker_pg_1")

        # 4. An api dies with requests in flight; clients retry on the other.
        log("fault", what="SIGKILL api_1")
        await cluster("kill", "api_1")
        await asyncio.sleep(5)
        await cluster("start", "api_1")
        await asyncio.sleep(10)
        load_stopped = time.monotonic()
    f = load.figures
    assert f.unsettled_batches == 0, "a batch was never accepted within 180 s of retries"
    traces, generations = f.traces, f.generations

    # Exactly once, through the Distributed tables: every accepted entity once, nothing else.
    async def settled() -> bool:
        t_rows, t_ids = await visible(entry, "traces", pid)
        o_rows, o_ids = await visible(entry, "observations", pid)
        return (t_rows, t_ids, o_rows, o_ids) == (len(traces), len(traces), len(generations), len(generations))

    try:
        figures["clickhouse_settle_s"] = round(await wait_for(settled, SETTLE_TIMEOUT_S, "ClickHouse settled"), 1)
    finally:
        t_rows, t_ids = await visible(entry, "traces", pid)
        o_rows, o_ids = await visible(entry, "observations", pid)
        seen = await ids(entry, "observations", pid)
        # Rows before FINAL merges them, for the record: a redelivered event (a killed worker's
        # uncommitted batch, a retried request) either adds a row FINAL folds away or, when the
        # fold finds it changes nothing, none (the one run that recorded it: none).
        raw = await entry.fetch("SELECT count() FROM observations WHERE project_id = %(p)s", {"p": pid})
        figures.update(
            offered_events=f.offered_events,
            accepted_events=len(f.accepted_events),
            requests=f.requests,
            failed_requests_retried=f.failed_requests,
            accepted_traces=len(traces),
            accepted_generations=len(generations),
            visible_traces=t_rows,
            visible_generations=o_rows,
            lost_generations=len(generations - seen),
            unexpected_generations=len(seen - generations),
            duplicated_traces=t_rows - t_ids,
            duplicated_generations=o_rows - o_ids,
            generation_rows_before_final=int(raw[0][0]),
        )
        log("cluster-faults", **figures)
    assert (o_rows - o_ids, t_rows - t_ids) == (0, 0)
    assert seen == generations

    # Both replicas of each shard hold the same rows: ch_1 caught up after its outage.
    async def replicas_agree() -> bool:
        counts = {name: await local_count(ch, "observations", pid) for name, ch in cluster_ch.items()}
        return counts["ch_1"] == counts["ch_2"] and counts["ch_3"] == counts["ch_4"]

    figures["replica_catch_up_s"] = round(await wait_for(replicas_agree, 180, "replicas agree"), 1)
    shard_rows = [await local_count(cluster_ch[n], "observations", pid) for n in ("ch_1", "ch_3")]
    assert sum(shard_rows) == len(generations) and min(shard_rows) > 0, shard_rows

    # Postgres: the usage ledger and the sessions count every accepted generation and trace once.
    async def postgres_matches() -> bool:
        usage = await cluster_pg.fetch(
            "SELECT coalesce(sum(observations), 0), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0) "
            "FROM usage_daily WHERE project_id = %s",
            (pid,),
        )
        sessions = await cluster_pg.fetch(
            "SELECT coalesce(sum(trace_count), 0) FROM sessions WHERE project_id = %s", (pid,)
        )
        n = len(generations)
        return tuple(int(v) for v in usage[0]) == (n, n * INPUT_TOKENS, n * OUTPUT_TOKENS) and int(
            sessions[0][0]
        ) == len(traces)

    figures["postgres_settle_s"] = round(await wait_for(postgres_matches, SETTLE_TIMEOUT_S, "Postgres settled"), 1)
    figures["total_settle_s"] = round(time.monotonic() - load_stopped, 1)
    log("cluster-faults settled", **figures)
    assert len(generations) == GENERATIONS_PER_TRACE * len(traces)


@pytest.mark.parametrize("server", ["ch_2", "ch_4"])
async def test_a_read_right_after_the_insert_sees_it(cluster_ch: dict[str, ClickHouse], server: str) -> None:
    """insert_distributed_sync: once the insert returned, a read through the same server (as the
    fold's state reads and the read API do through their process's server) sees every row on
    both shards; every other server sees them once the shard's replicas have exchanged them."""
    writer = cluster_ch[server]
    project = f"sync-{time.monotonic_ns()}"
    rows = [(project, f"t{i}", 0, 1, 0) for i in range(200)]
    await writer.insert("traces", ("project_id", "id", "timestamp", "event_ts", "is_deleted"), rows)
    assert await visible(writer, "traces", project) == (200, 200)
    # Each shard got some. Which replica holds them first depends on which is up and on the
    # server's recent connection errors (a server ranks replicas by them before in_order), so a
    # shard counts by its fuller replica.
    per_shard = [
        max([await local_count(cluster_ch[n], "traces", project) for n in replicas])
        for replicas in (("ch_1", "ch_2"), ("ch_3", "ch_4"))
    ]
    assert sum(per_shard) == 200 and min(per_shard) > 0, per_shard

    async def everywhere() -> bool:
        return all([await visible(ch, "traces", project) == (200, 200) for ch in cluster_ch.values()])

    await wait_for(everywhere, 30, "rows visible through every server")
