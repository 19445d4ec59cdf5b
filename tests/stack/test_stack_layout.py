"""What `make up` leaves on disk for its ClickHouse (ops/stack/clickhouse.sh), and the
scheduling priorities it runs its processes at (ops/stack/lib.sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sinks.clickhouse.client import ClickHouse

pytestmark = pytest.mark.stack

TABLES = Path(__file__).resolve().parents[2] / ".stack" / "clickhouse" / "data" / "data" / "agenttrace"
PIDS = Path(__file__).resolve().parents[2] / ".stack" / "pids"


def _attributes(path: Path) -> str:
    return subprocess.run(["lsattr", "-d", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]


def test_every_table_directory_spreads_its_parts_over_the_block_groups() -> None:
    # The Orlov hint that keeps 18.16's part directories out of the block groups that merges
    # and drops just churned (bench/README.md, "Where the ClickHouse server's CPU goes").
    # make up keeps its ClickHouse data under .stack; lsattr comes with e2fsprogs, which
    # Debian always installs. Only another filesystem has no such hint to set.
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(TABLES)], capture_output=True, text=True, check=True)
    if not fs.stdout.startswith("ext"):
        pytest.skip(f"not ext2/3/4 ({fs.stdout.strip()}): no Orlov allocator to hint")
    tables = [d for d in TABLES.iterdir() if d.is_dir()]
    assert {"observations", "observations_by_trace", "traces", "scores"} <= {d.name for d in tables}
    for table in tables:
        flags = _attributes(table)
        assert "T" in flags, f"{table.name}: {flags}"


async def test_every_merge_of_the_servers_tables_is_vertical(ch: ClickHouse) -> None:
    # ops/stack/clickhouse/config.xml.in: 18.16 merges the newest small part into a growing one
    # nearly at every insert, and its horizontal merge cost ~22% more server CPU per event
    # (bench/README.md, "Vertical merges for every part"). Read at start: a server started
    # before the setting was added needs `make down && make up`.
    rows = await ch.fetch(
        "SELECT name, value FROM system.merge_tree_settings "
        "WHERE name IN ('enable_vertical_merge_algorithm', 'vertical_merge_algorithm_min_rows_to_activate')"
    )
    assert dict(rows) == {"enable_vertical_merge_algorithm": "1", "vertical_merge_algorithm_min_rows_to_activate": "1"}


# Above the three `make up`s' own limits: one that recompiles the per-event modules (sources
# edited since) takes minutes, and a `make` killed by pytest would leave that build running.
@pytest.mark.timeout(960)
def test_make_up_says_when_the_running_servers_config_is_not_this_checkouts() -> None:
    # The vertical merges above take effect at the server's start only; `make up` on a running
    # stack keeps the server, so it has to say that the config it started with is out of date.
    root = TABLES.parents[4]
    started_with = root / ".stack" / "clickhouse" / "config.xml"
    kept = started_with.read_bytes()

    def make_up() -> str:
        done = subprocess.run(["make", "up"], cwd=root, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    notice = "its config changed since it started"
    assert notice not in make_up()
    try:
        started_with.write_bytes(kept.replace(b"<merge_tree>", b"<!-- an older config --><merge_tree>", 1))
        assert notice in make_up()
    finally:
        started_with.write_bytes(kept)
    assert notice not in make_up()


def _priorities(name: str) -> tuple[set[int], int | None]:
    """The nice values of every thread of make up's `name` process, and its session's
    scheduling group's (None where the kernel has no sched_autogroup)."""
    pid = int((PIDS / f"{name}.pid").read_text().split()[0])
    # /proc/PID/task/TID/stat: the fields after the command's ")", nice the 17th.
    tasks = Path(f"/proc/{pid}/task").iterdir()
    threads = {int(t.joinpath("stat").read_text().rsplit(")", 1)[1].split()[16]) for t in tasks}
    group = Path(f"/proc/{pid}/autogroup")  # "/autogroup-123 nice 10"
    return threads, int(group.read_text().split()[-1]) if group.exists() else None


def test_the_stages_and_the_stores_yield_the_cpu_to_the_edge() -> None:
    # ops/stack/lib.sh, yield_to_edge: at half load on two cores the edge's p99 was 4-20 times its
    # 10 ms target while the stages folded and ClickHouse merged at its priority. Under
    # sched_autogroup (each spawned process has a session, so a group, of its own) a
    # thread's nice counts only inside its group: the group's has to be set too.
    for name in ("worker", "worker_2", "worker_postgres", "clickhouse", "postgres"):
        threads, group = _priorities(name)
        assert threads == {10}, (name, threads)
        assert group in (None, 10), (name, group)
    for name in ("api", "kafka", "redis"):
        # At make up's own nice (0 unless it was started under `nice`), below the stages'.
        threads, group = _priorities(name)
        assert max(threads) < 10 and group in (None, 0), (name, threads, group)
