"""A batch's trace states sent to Postgres as a VALUES list or as one array per column (unnest).

The Postgres stage writes one row of trace_states per trace of a batch (sinks/postgres/writer.py,
_trace_states). For `--rows` rows shaped like its UPDATE's (two ids, session, user, four
bigints, a generation document), prints µs per row, the median of 5 runs:

- render: the client's CPU to make the statement (psycopg2's mogrify of each row, or of the
  column arrays once);
- server: the wall time of `SELECT count(*) FROM <rows>` minus the client's CPU, i.e. Postgres
  parsing and reading the rows plus the loopback, without any table touched.

    .venv/bin/python bench/pg_values.py [--rows 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

import orjson
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agenttrace.settings import Settings

ROW = "(%s, %s, %s, %s::bigint, %s, %s::bigint, %s::bigint, %s::bigint, %s::jsonb)"
ARRAYS = ", ".join(
    f"%s::{t}[]" for t in ("text", "text", "text", "bigint", "text", "bigint", "bigint", "bigint", "jsonb")
)
NAMES = "v(project_id, trace_id, session_id, session_ts, user_id, user_ts, first_seen, last_seen, generations)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2000)
    args = p.parse_args()
    n = args.rows
    rows = [
        (
            f"proj-{i % 3}",
            str(uuid.uuid4()),
            None,
            None,
            "user-1",
            1_700_000_000_000_000,
            1_700_000_000_000_000 + i,
            1_700_000_000_000_000 + i,
            orjson.dumps({f"gen-{i}": {"m": "gpt-4o", "u": [10, 20, 30], "c": 0.001, "e": ["a", "b"]}}).decode(),
        )
        for i in range(n)
    ]
    conn = psycopg2.connect(Settings.from_env().postgres.dsn)
    cur = conn.cursor()

    def values() -> bytes:
        listed = b",".join(cur.mogrify(ROW, r) for r in rows)
        return b"SELECT count(*) FROM (VALUES " + listed + b") AS " + NAMES.encode()

    def arrays() -> bytes:
        columns = tuple(list(c) for c in zip(*rows, strict=True))
        return cur.mogrify(f"SELECT count(*) FROM unnest({ARRAYS}) AS {NAMES}", columns)

    figures: dict[str, dict[str, list[float]]] = {
        "values": {"render": [], "server": []},
        "arrays": {"render": [], "server": []},
    }
    for _ in range(5):
        for name, make in (("values", values), ("arrays", arrays)):
            cpu = time.process_time()
            sql = make()
            figures[name]["render"].append((time.process_time() - cpu) / n * 1e6)
            wall, cpu = time.perf_counter(), time.process_time()
            cur.execute(sql)
            assert cur.fetchone() == (n,)
            figures[name]["server"].append(((time.perf_counter() - wall) - (time.process_time() - cpu)) / n * 1e6)
    conn.close()
    for name, f in figures.items():
        render, server = statistics.median(f["render"]), statistics.median(f["server"])
        print(f"{name:7} render {render:5.2f} us/row, server {server:5.2f} us/row")


if __name__ == "__main__":
    main()
