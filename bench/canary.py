"""How fast this machine runs Python right now: a fixed workload on every core at once.

    .venv/bin/python bench/canary.py            # one JSON line: µs of CPU per unit, and more

This VM's speed drifts: on 2026-12-06 every process of a live run (the load generator and Kafka
too, which no change touches) took about twice the CPU per event of the night before, for an
hour, and then recovered. A series that straddles such a change compares the machine, not the
trees. The canary is the same work whatever tree is measured (orjson parsing a batch body,
dicts built from it, text formatted and written back as JSON: the kind of work every stage
does), run in one process per core at the same time, since the slow periods showed under
load. `bench/ab.sh` runs it before every run and prints its spread; bench/README.md
("A canary for the machine's speed") has the figures of quiet and slow hours.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load import batch_body

EVENTS = 100


def unit(body: bytes) -> int:
    """One request's worth of work: parse, reshape each event, write the records."""
    batch = orjson.loads(body)["batch"]
    out = []
    for event in batch:
        inner = event["body"]
        shaped = {
            "id": event["id"],
            "type": event["type"],
            "key": f"project:{inner.get('traceId') or inner.get('id')}",
            "fields": {k: v for k, v in inner.items() if v is not None},
        }
        out.append(orjson.dumps(shaped))
    return len(b",".join(out))


def run(units: int, start: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    body = batch_body("canary", 0, EVENTS)
    for _ in range(units // 10):  # warm up caches and the allocator
        unit(body)
    start.wait()
    cpu = time.process_time()
    for _ in range(units):
        unit(body)
    results.put((time.process_time() - cpu) / units * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--units", type=int, default=8000, help="requests of 100 events per process")
    args = parser.parse_args()
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(args.processes)
    results: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=run, args=(args.units, start, results)) for _ in range(args.processes)]
    wall = time.monotonic()
    for p in procs:
        p.start()
    per_process = sorted(results.get() for _ in procs)
    for p in procs:
        p.join()
    print(
        json.dumps(
            {
                "canary_us_per_unit": round(statistics.median(per_process), 1),
                "per_process": [round(v, 1) for v in per_process],
                "processes": args.processes,
                "units": args.units,
                "seconds": round(time.monotonic() - wall, 1),
                "load_average": os.getloadavg()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
