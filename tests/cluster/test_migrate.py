"""`agenttrace migrate` on the cluster: several at once on a fresh database (the columns later
migrations add included), and topics that differ from the configuration."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.schema import BY_TRACE
from tests.cluster.conftest import CH_PORTS, ROOT, cluster_env

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

AGENTTRACE = str(ROOT / ".venv" / "bin" / "agenttrace")


async def migrate(env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        AGENTTRACE, "migrate", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_several_migrations_at_once_through_different_servers(cluster_ch: dict[str, ClickHouse]) -> None:
    database = f"mig_{uuid.uuid4().hex[:8]}"
    base = cluster_env()
    runs = [
        {**base, "AGENTTRACE_CLICKHOUSE_URL": f"clickhouse://default:@127.0.0.1:{CH_PORTS[name]}/{database}"}
        for name in ("ch_1", "ch_2", "ch_4")
    ]
    try:
        results = await asyncio.gather(*(migrate(env) for env in runs))
        # One string, not a list: pytest shortens a list's repr to its ends, hiding the error.
        failed = "\n\n".join(f"exit {code}:\n{out[-3000:]}" for code, out in results if code)
        assert [code for code, _ in results] == [0, 0, 0], failed
        for name, ch in cluster_ch.items():
            rows = await ch.fetch(f"SELECT name, engine FROM system.tables WHERE database = '{database}'")
            tables = {str(n): str(e) for n, e in rows}
            for table in ("traces", "observations", "scores"):
                assert tables[table] == "Distributed", name
                assert tables[f"{table}_local"] == "ReplicatedReplacingMergeTree", name
            assert (tables["observation_journal"], tables["observation_journal_local"]) == (
                "Distributed",
                "ReplicatedMergeTree",
            ), name
            # The index by trace (0005) and, on every server, the view filling its local table.
            assert (tables[BY_TRACE], tables[f"{BY_TRACE}_local"], tables[f"{BY_TRACE}_view"]) == (
                "Distributed",
                "ReplicatedReplacingMergeTree",
                "MaterializedView",
            ), name
            # A column a later migration adds (0003), on both tables of every server: the
            # Distributed ones altered in place by each migrator on each server.
            added = await ch.fetch(
                f"SELECT table FROM system.columns WHERE database = '{database}' AND name = 'trace_hash' ORDER BY table"
            )
            # (The journal, made after 0003 as a copy of observations' columns, has it too.)
            assert [r[0] for r in added] == [
                "observation_journal",
                "observation_journal_local",
                "observations",
                "observations_local",
                "scores",
                "scores_local",
            ], name
    finally:
        await cluster_ch["ch_1"].execute(f"DROP DATABASE IF EXISTS {database} ON CLUSTER agenttrace")


async def test_migrate_names_topic_differences_and_fails() -> None:
    env = {**cluster_env(), "AGENTTRACE_TOPIC_PARTITIONS": "12", "AGENTTRACE_TOPIC_MIN_INSYNC_REPLICAS": "3"}
    code, out = await migrate(env)
    assert code == 3, out[-2000:]
    assert "agenttrace.events: 8 partitions, configured 12" in out
    assert "agenttrace.events: min.insync.replicas=2, configured 3" in out
    code, out = await migrate(cluster_env())
    assert code == 0, out[-2000:]


async def test_a_client_fails_over_to_the_next_server_and_stays_there(cluster_settings) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from sinks.clickhouse.client import ClickHouseError

    # Port 1 refuses at once: the first server is "down", the second is ch_4.
    config = replace(cluster_settings.clickhouse, host="127.0.0.1", port=1, fallbacks=(("127.0.0.1", 29004),))
    client = ClickHouse(config)
    try:
        with pytest.raises(ClickHouseError):
            await client.fetch("SELECT 1")
        for _ in range(3):
            rows = await client.fetch("SELECT substitution FROM system.macros WHERE macro = 'replica'")
            assert rows == [("ch_4",)]
    finally:
        await client.close()
