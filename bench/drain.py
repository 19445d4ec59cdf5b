"""The stages alone: each worker's CPU per event while they fold a prepared backlog.

    .venv/bin/python bench/drain.py [--otlp] [--bodies 2000]        # the processes of `make up`
    .venv/bin/python bench/drain.py --url http://127.0.0.1:18900 \\
        --app worker=18901 --app worker_2=18903 --app worker_postgres=18902

Pauses the workers (SIGSTOP), appends `--bodies` requests of 100 events through the api with
bench/load.py while nothing folds, then resumes them and reads, until every observation of the
run is in ClickHouse and every worker reports an empty queue (`worker_queue_depth`, refreshed
every 3 s), the CPU each process used (/proc) and the seconds it took. Unlike bench/cpu_budget.py, no api and no
load generator compete for the cores while the stages run, so a stage's CPU per event moves
less from run to run and a change of a few percent shows. The resumed workers rejoin their
consumer groups first (a second or two, counted in the rate). Prints one JSON line.

With `--preload N` the run's project holds N observations (in N/5 traces) before the backlog,
written straight into ClickHouse in 12 inserts and merged: what the stages pay per event in a
project that has been live for a while, where a lookup of an id reads a block of each part.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cpu_budget import PRELOADED, clickhouse, preload, processes, snapshot, used_between
from bench.load import new_key

ROOT = Path(__file__).resolve().parents[1]
LAG_REFRESH_S = 3.0  # StageConfig.lag_interval_s


def depth_series(metrics: str) -> list[float]:
    """The values of the `worker_queue_depth` series (one per stage) in a /metrics text."""
    return [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith("worker_queue_depth{")]


def queue_depth(port: int) -> float:
    """The sum of a worker's `worker_queue_depth` series (one per stage it runs)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return sum(depth_series(r.read().decode()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8080", help="the api's base URL")
    p.add_argument(
        "--app", action="append", default=[], metavar="NAME=PORT", help="a worker; default: make up's 8081, 8083, 8082"
    )
    p.add_argument("--bodies", type=int, default=2000, help="requests of 100 events in the backlog")
    p.add_argument("--otlp", action="store_true", help="OTLP/HTTP protobuf spans instead of Langfuse batches")
    p.add_argument(
        "--traces", type=int, default=0, help="the bodies add to this many long traces, round robin (0: one each)"
    )
    p.add_argument(
        "--updates", action="store_true", help="then every generation's update, in later batches than its create"
    )
    p.add_argument("--uuids", action="store_true", help="generation ids spread over the key space, as the SDKs'")
    p.add_argument("--spans-per-trace", type=int, default=0, help="--otlp: traces of this many spans (0: one a body)")
    p.add_argument("--preload", type=int, default=0, help="observations in the project before the backlog")
    p.add_argument("--timeout-s", type=float, default=600)
    args = p.parse_args()
    ports = {n: int(port) for n, _, port in (a.partition("=") for a in args.app)} or {
        "worker": 8081,
        "worker_2": 8083,
        "worker_postgres": 8082,
    }
    procs = processes(ports)
    workers = [pid for name in ports for pid in procs[name]]
    load = [sys.executable, str(ROOT / "bench" / "load.py"), "--url", args.url, "--bodies", str(args.bodies)]
    load += ["--seconds", str(args.timeout_s), "--concurrency", "16"] + (["--otlp"] if args.otlp else [])
    load += ["--traces", str(args.traces)] if args.traces else []
    load += ["--spans-per-trace", str(args.spans_per_trace)] if args.spans_per_trace else []
    load += ["--updates"] if args.updates else []
    load += ["--uuids"] if args.uuids else []
    if args.preload:
        key = asyncio.run(new_key())
        preload(key[0], args.preload)
        load += ["--key", ":".join(key)]
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    try:
        filled = json.loads(subprocess.run(load, check=True, capture_output=True).stdout)
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
    before, start = snapshot(procs), time.monotonic()
    events = filled["events"]
    # Every span of an OTLP request is an observation; a batch request's first event is its trace.
    observations = events if args.otlp else events // (200 if args.updates else 100) * 99
    sql = f"SELECT count() FROM observations WHERE project_id = '{filled['project_id']}' AND name != '{PRELOADED}'"
    deadline = start + args.timeout_s
    while int(clickhouse(sql)) < observations and time.monotonic() < deadline:
        time.sleep(0.1)
    in_clickhouse = time.monotonic() - start
    # Each worker refreshes its queue depth every 3 s: a stale 0 from before the backlog must
    # not count as drained.
    time.sleep(max(0.0, LAG_REFRESH_S + 1 - in_clickhouse))
    while any(queue_depth(port) for port in ports.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    drained = time.monotonic() - start
    after = snapshot(procs)
    used = {name: used_between(before[name], after[name]) for name in procs}
    print(
        json.dumps(
            {
                "load": "otlp" if args.otlp else "batch",
                "traces": args.traces or None,
                "spans_per_trace": args.spans_per_trace or None,
                "updates": args.updates,
                "preloaded": args.preload or None,
                "uuids": args.uuids,
                "events": events,
                "observations": observations,
                "seconds_into_clickhouse": round(in_clickhouse, 1),
                "seconds_all_stages": round(drained, 1),
                "observations_per_s_into_clickhouse": round(observations / in_clickhouse),
                "cpu_us_per_event": {name: round(s * 1e6 / events, 1) for name, s in used.items() if name != "api"},
            }
        )
    )


if __name__ == "__main__":
    main()
