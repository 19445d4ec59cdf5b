"""CPU per event of the tombstone check (issue 13), in process: an interleaved A/B.

The check is the same in both folds: once per batch `Tombstones.refresh()` (a no-op unless a
second has passed, then one Postgres query for the newest tombstones) and
`pipeline.tombstones.split_deletions()` (dict and set lookups per event). The edge checks
nothing on ingestion (it writes tombstones only when answering a DELETE). Measured here:

- check: `split_deletions` over batches of 1000 against a set of `--tombstones` live ones
  (none of them this batch's traces, the usual case), against B, the same batches with the
  lookups left out (what /work/notes/no-tombstones.patch does);
- clickhouse write: all of `ClickHouseWriter.write()` (bench/worker_cpu.py's stub client that
  stores nothing, 18.16 dialect) with the check, and with `split_deletions` replaced by B;
- refresh: `TombstoneCache.refresh(force=True)` against the stack's Postgres (read only: the
  incremental query of every refresh after the first), CPU µs and wall ms per call; spread over
  a second of a stage's events it costs (µs per call) / (events per second) per event.

A and B alternate, `--reps` times each, and the median of each is printed with their
difference: CPU time (time.process_time), so neighbours waiting for a core add no cost.
The Postgres fold's write itself needs a database; its check is the same call, so its cost is
the `check` figure plus the refresh.

    .venv/bin/python bench/tombstone_cpu.py [--tombstones 100000] [--reps 31]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sinks.clickhouse.writer as clickhouse_writer
from agenttrace.cli import tune_gc
from agenttrace.settings import Settings
from bench.worker_cpu import BATCH, StubClickHouse, decoder, workloads
from pipeline.envelope import Envelope
from pipeline.tombstones import TRACE_DELETE, Deletions, KnownTombstones, Tombstones, split_deletions, trace_of
from sinks.clickhouse.schema import dialect_for
from sinks.postgres.client import Postgres
from sinks.postgres.tombstones import TombstoneCache

Batches = list[list[Envelope]]


def without_check(envelopes: list[Envelope], tombstones: Tombstones) -> tuple[list[Envelope], Deletions]:
    """B: deletions are still taken out and folded; no event is looked up in the tombstones."""
    deleting = {(e.project_id, t): None for e in envelopes if e.type == TRACE_DELETE if (t := trace_of(e))}
    return [e for e in envelopes if e.type != TRACE_DELETE], Deletions(list(deleting), [])


def batches(envelopes: Sequence[Envelope]) -> Batches:
    return [list(envelopes[i : i + BATCH]) for i in range(0, len(envelopes), BATCH)]


def cpu_us_per_event(work: Callable[[], object], events: int) -> float:
    gc.collect()
    start = time.process_time()
    work()
    return (time.process_time() - start) / events * 1e6


def ab(label: str, a: Callable[[], object], b: Callable[[], object], events: int, reps: int) -> float:
    runs_a, runs_b = [], []
    for i in range(reps):
        # Alternate which goes first, so a drift in the machine's state favours neither.
        first, second = (a, b) if i % 2 == 0 else (b, a)
        x, y = cpu_us_per_event(first, events), cpu_us_per_event(second, events)
        runs_a.append(x if i % 2 == 0 else y)
        runs_b.append(y if i % 2 == 0 else x)
    ma, mb = statistics.median(runs_a), statistics.median(runs_b)
    diffs = statistics.median(x - y for x, y in zip(runs_a, runs_b, strict=True))
    print(f"{label:30} with {ma:7.3f}  without {mb:7.3f}  cost {ma - mb:+6.3f} (median of differences {diffs:+6.3f})")
    return ma - mb


def check_only(work: Batches, tombstones: Tombstones, split: Callable[..., object]) -> Callable[[], object]:
    def run() -> None:
        for batch in work:
            split(batch, tombstones)

    return run


def clickhouse_write(envelopes: Sequence[Envelope], tombstones: Tombstones, check: bool) -> Callable[[], object]:
    def run() -> None:
        # A fresh writer per run (nothing cached), as in bench/worker_cpu.py's write figures.
        writer = clickhouse_writer.ClickHouseWriter(
            StubClickHouse(),  # type: ignore[arg-type]
            dialect_for((18, 16, 1)),
            tombstones=tombstones,
        )
        clickhouse_writer.split_deletions = split_deletions if check else without_check  # type: ignore[assignment]
        try:
            asyncio.run(_write(writer, envelopes))
        finally:
            clickhouse_writer.split_deletions = split_deletions

    return run


async def _write(writer: clickhouse_writer.ClickHouseWriter, envelopes: Sequence[Envelope]) -> None:
    for i in range(0, len(envelopes), BATCH):
        await writer.write(list(envelopes[i : i + BATCH]))


async def refresh_cost(calls: int) -> tuple[float, float, int]:
    """(CPU µs, wall ms) per incremental refresh against the stack's Postgres, and the live count."""
    pg = Postgres(Settings.from_env(dict(os.environ)).postgres)
    await pg.start()
    try:
        cache = TombstoneCache(pg)
        await cache.refresh(force=True)  # the first: every live tombstone
        cpu, wall = [], []
        for _ in range(calls):
            c, w = time.process_time(), time.perf_counter()
            await cache.refresh(force=True)
            cpu.append((time.process_time() - c) * 1e6)
            wall.append((time.perf_counter() - w) * 1e3)
        return statistics.median(cpu), statistics.median(wall), len(cache)
    finally:
        await pg.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tombstones", type=int, default=100_000, help="live tombstones in the set")
    parser.add_argument("--reps", type=int, default=31)
    parser.add_argument("--refreshes", type=int, default=50, help="refresh calls to time (0: skip)")
    args = parser.parse_args()
    tune_gc()
    decoded = {name: decoder(name)(records) for name, records in workloads().items()}
    tombstones = KnownTombstones((f"project-{i % 50}", f"deleted-trace-{i}") for i in range(args.tombstones))
    print(
        f"load average {os.getloadavg()[0]:.2f}; {args.tombstones} tombstones; {args.reps} interleaved runs each; "
        "CPU µs per event"
    )
    for name in ("create", "mix"):
        envelopes = decoded[name]
        work = batches(envelopes)
        ab(
            f"{name} check",
            check_only(work, tombstones, split_deletions),
            check_only(work, tombstones, without_check),
            len(envelopes),
            args.reps,
        )
        ab(
            f"{name} clickhouse write",
            clickhouse_write(envelopes, tombstones, True),
            clickhouse_write(envelopes, tombstones, False),
            len(envelopes),
            max(5, args.reps // 3),
        )
    if args.refreshes:
        cpu, wall, live = asyncio.run(refresh_cost(args.refreshes))
        print(
            f"refresh (incremental, {live} live in the stack's Postgres): {cpu:.0f} µs CPU, "
            f"{wall:.2f} ms wall per call; once a second at 10k events/s per worker: {cpu / 10_000:.3f} µs per event"
        )


if __name__ == "__main__":
    main()
