"""How the Postgres stage hands a batch's trace states to Postgres: arrays or one JSON document.

    .venv/bin/python bench/pg_params.py [--traces 300] [--generations 4]     # make up's Postgres

The statement that locks (and mostly inserts) a batch's trace_states rows took them as nine
array parameters (unnest); it now takes one JSON document (jsonb_to_recordset). For a batch of
`--traces` traces of `--generations` generations each (the OTLP load's shape: four LLM calls
under a root span), prints per span: the client's CPU to build the statement (psycopg2's
mogrify, which aiopg's execute runs too), and the server's time to run it into a temporary copy
of trace_states (round trip and commit included), for the arrays, for jsonb_to_recordset and
for json_to_recordset. Then the same for the sessions upsert, a row per trace (each trace its
own session, as in a chat product): a VALUES list mogrified row by row (before) against one
JSON document; per row. Medians of 20; one JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sinks.postgres.config import PostgresConfig
from sinks.postgres.rollup import to_datetime

COLUMNS = "project_id, trace_id, session_id, session_ts, user_id, user_ts, first_seen, last_seen, generations"
SELECTED = (
    "SELECT p, t, coalesce(s, ''), coalesce(st, -1), coalesce(u, ''), coalesce(ut, -1), coalesce(f, 0), "
    "coalesce(l, 0), coalesce(g, '{}')"
)
CONFLICT = "ON CONFLICT (project_id, trace_id) DO UPDATE SET trace_id = EXCLUDED.trace_id RETURNING xmax = 0"
ARRAYS = (
    f"INSERT INTO bench_states ({COLUMNS}) {SELECTED} FROM unnest(%s::text[], %s::text[], %s::text[], "
    "%s::bigint[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::jsonb[]) WITH ORDINALITY "
    f"AS v(p, t, s, st, u, ut, f, l, g, n) ORDER BY n {CONFLICT}"
)
RECORDS = (
    f"INSERT INTO bench_states ({COLUMNS}) {SELECTED} FROM FN(%s::KIND) AS v(p text, t text, s text, "
    f"st bigint, u text, ut bigint, f bigint, l bigint, g jsonb, n int) ORDER BY n {CONFLICT}"
)


def generation(i: int) -> dict[str, Any]:
    """A generation's state as the stage stores it (sinks/postgres/rollup.py, state_doc)."""
    return {
        "v": {
            "provided_model_name": "gpt-4o-mini",
            "start_time": 1795000000000001 + i,
            "usage_details": {"input": 12, "output": 3, "total": 15},
        },
        "f": 1795000000800001,
        "e": [f"{i:016x}-obs"],
        "c": "0.0000036",
    }


def batch(first: int, traces: int, generations: int) -> list[dict[str, Any]]:
    return [
        {
            "p": "bench-project",
            "t": f"{first + i:032x}",
            "s": "",
            "st": -1,
            "u": "",
            "ut": -1,
            "f": 1795000000000000,
            "l": 1795000000800004,
            "g": orjson.dumps({f"{(first + i) * 8 + j:016x}": generation(j) for j in range(generations)}),
            "n": i,
        }
        for i in range(traces)
    ]


def as_arrays(rows: list[dict[str, Any]]) -> tuple[list[Any], ...]:
    names = ("p", "t", "s", "st", "u", "ut", "f", "l", "g")
    return tuple([r[k].decode() if k == "g" else r[k] for r in rows] for k in names)


def as_json(rows: list[dict[str, Any]]) -> tuple[str]:
    return (orjson.dumps([{**r, "g": orjson.Fragment(r["g"])} for r in rows]).decode(),)


def median_s(run: Callable[[], Any], times: int = 20) -> float:
    took = []
    for _ in range(times):
        start = time.perf_counter()
        run()
        took.append(time.perf_counter() - start)
    return statistics.median(took)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--traces", type=int, default=300)
    p.add_argument("--generations", type=int, default=4, help="per trace; a trace is this many spans and a root")
    args = p.parse_args()
    spans = args.traces * (args.generations + 1)
    conn = psycopg2.connect(PostgresConfig.dsn)
    cur = conn.cursor()
    cur.execute("CREATE TEMP TABLE bench_states (LIKE trace_states INCLUDING ALL)")
    conn.commit()
    firsts = itertools.count(0, args.traces)
    out: dict[str, Any] = {"traces": args.traces, "spans": spans}
    forms = (
        ("arrays", ARRAYS, as_arrays),
        ("jsonb_to_recordset", RECORDS.replace("FN", "jsonb_to_recordset").replace("KIND", "jsonb"), as_json),
        ("json_to_recordset", RECORDS.replace("FN", "json_to_recordset").replace("KIND", "json"), as_json),
    )
    for name, sql, params in forms:
        rows = batch(next(firsts), args.traces, args.generations)
        client = median_s(lambda: cur.mogrify(sql, params(rows)))  # noqa: B023
        server = []
        for _ in range(20):
            statement = cur.mogrify(sql, params(batch(next(firsts), args.traces, args.generations)))
            start = time.perf_counter()
            cur.execute(statement)
            cur.fetchall()
            conn.commit()
            server.append(time.perf_counter() - start)
        out[name] = {
            "client_us_per_span": round(client * 1e6 / spans, 2),
            "server_us_per_span": round(statistics.median(server) * 1e6 / spans, 2),
        }
    out["sessions"] = sessions(cur, conn, args.traces)
    print(json.dumps(out))


SESSION_COLUMNS = "project_id, session_id, first_seen, last_seen, trace_count, user_id, user_ts"
SESSIONS_CONFLICT = "ON CONFLICT (project_id, session_id) DO UPDATE SET trace_count = bench_sessions.trace_count + 1"


def sessions(cur: Any, conn: Any, traces: int) -> dict[str, float]:
    cur.execute("CREATE TEMP TABLE bench_sessions (LIKE sessions INCLUDING ALL)")
    conn.commit()
    firsts = itertools.count(0, traces)

    def rows() -> list[tuple[Any, ...]]:
        first = next(firsts)
        return [
            (
                "bench-project",
                f"session-{first + i:08d}",
                to_datetime(1795000000000000 + i),
                to_datetime(1795000000800000 + i),
                1,
                f"user-{first + i}",
                1795000000000000,
            )
            for i in range(traces)
        ]

    def values(rs: list[tuple[Any, ...]]) -> bytes:
        listed = b",".join(cur.mogrify("(%s, %s, %s, %s, %s, %s, %s)", r) for r in rs)
        return (
            f"INSERT INTO bench_sessions ({SESSION_COLUMNS}) VALUES ".encode()
            + listed
            + b" "
            + SESSIONS_CONFLICT.encode()
        )

    def document(rs: list[tuple[Any, ...]]) -> bytes:
        doc = [dict(zip(("p", "k", "f", "l", "c", "u", "ut"), r, strict=True)) | {"n": n} for n, r in enumerate(rs)]
        return cur.mogrify(
            f"INSERT INTO bench_sessions ({SESSION_COLUMNS}) SELECT p, k, f, l, c, u, ut "
            "FROM jsonb_to_recordset(%s::jsonb) "
            "AS v(p text, k text, f timestamptz, l timestamptz, c bigint, u text, ut bigint, n int) ORDER BY n "
            + SESSIONS_CONFLICT,
            (orjson.dumps(doc).decode(),),
        )

    out = {}
    for name, build in (("values", values), ("jsonb_to_recordset", document)):
        sample = rows()
        out[f"{name}_client_us_per_row"] = round(median_s(lambda: build(sample)) * 1e6 / traces, 2)  # noqa: B023
        server = []
        for _ in range(20):
            statement = build(rows())
            start = time.perf_counter()
            cur.execute(statement)
            conn.commit()
            server.append(time.perf_counter() - start)
        out[f"{name}_server_us_per_row"] = round(statistics.median(server) * 1e6 / traces, 2)
    return out


if __name__ == "__main__":
    main()
