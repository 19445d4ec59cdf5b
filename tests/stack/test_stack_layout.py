"""What `make up` leaves on disk for its ClickHouse (ops/stack/clickhouse.sh)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.stack

TABLES = Path(__file__).resolve().parents[2] / ".stack" / "clickhouse" / "data" / "data" / "agenttrace"


def _attributes(path: Path) -> str | None:
    done = subprocess.run(["lsattr", "-d", str(path)], capture_output=True, text=True, check=False)
    return done.stdout.split()[0] if done.returncode == 0 and done.stdout else None


def test_every_table_directory_spreads_its_parts_over_the_block_groups() -> None:
    # The Orlov hint that keeps 18.16's part directories out of the block groups that merges
    # and drops just churned (bench/README.md, "Where the ClickHouse server's CPU goes").
    if shutil.which("lsattr") is None or not TABLES.is_dir():
        pytest.skip("the stack's ClickHouse data is not on this machine's filesystem")
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(TABLES)], capture_output=True, text=True, check=False)
    if not fs.stdout.startswith("ext"):
        pytest.skip(f"not ext2/3/4 ({fs.stdout.strip()}): no Orlov allocator to hint")
    tables = [d for d in TABLES.iterdir() if d.is_dir()]
    assert {"observations", "observations_by_trace", "traces", "scores"} <= {d.name for d in tables}
    for table in tables:
        flags = _attributes(table)
        assert flags is not None and "T" in flags, f"{table.name}: {flags}"
