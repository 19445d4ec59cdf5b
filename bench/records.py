"""CPU per event of an event's way through Kafka records, in process, by events per record.

The edge writes one record per partition and request (version 4; version 3, the same without
the texts after the JSON, until 2026-12-06 06:00); before 2026-12-06 one per trace and request,
and before that one per event (version 2). What a record costs per event
depends on how many events it holds: a Langfuse batch of one trace is one record of 100; an OTLP
export of twenty traces of five spans was twenty records of 6, and is ~7.5 of 16 on a topic of 8
partitions. For `bench/load.py`'s bodies (a trace and 99 generations) cut into records of N
events, prints µs of CPU per event, the median of 7 runs, for:

- write: the edge's part (`Group.item`, `Group.add`, `Group.record`; version 2: `Envelope`,
  `encode`, `key`);
- kafka: aiokafka's record batch built (the producer) and read back (each consumer group);
- read: `decode_record` into envelopes (each consumer group).

Then the same for OTLP exports of 20 traces of 5 spans (`bench/load.py`'s, mapped by the edge)
packed by `ingest.records.pack` as the edge packs them, a record per partition of 8 (as the
topic has), against a record per trace (what the edge wrote before, here a partition per trace).

    .venv/bin/python bench/records.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load import batch_body, otlp_body
from ingest.config import EdgeConfig
from ingest.intake import MAX_DEPTH
from ingest.otlp.mapping import as_tuples, map_request
from ingest.otlp.wire import parse
from ingest.records import pack
from pipeline.config import TopicConfig
from pipeline.envelope import Envelope, Group, decode_record, partition_key
from pipeline.events import normalize

RUNS = 7
RECEIVED_AT = 1_795_000_000_000_000
HEAD = ("bench-project", RECEIVED_AT, "req-1", "langfuse-python", "2.60.0", "batch")


def events(bodies: int = 20) -> list[tuple[str, str, int, dict]]:
    return [normalize(e) for n in range(bodies) for e in orjson.loads(batch_body("bench", n, 100))["batch"]]


def per_event(n: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return statistics.median(times) / n * 1e6


def write_v2(evs: list[tuple[str, str, int, dict]]) -> list[tuple[bytes, bytes]]:
    out = []
    for event_id, etype, ts, body in evs:
        env = Envelope(event_id, HEAD[0], etype, ts, RECEIVED_AT, body, HEAD[2], HEAD[3], HEAD[4], HEAD[5])
        out.append((env.key(), env.encode()))
    return out


def write_group(evs: list[tuple[str, str, int, dict]], size: int) -> list[tuple[bytes, bytes]]:
    """Records of `size` events each, as the edge groups a request's events of one trace."""
    head = Group.opening(*HEAD)
    out = []
    for start in range(0, len(evs), size):
        group = Group(head)
        for event_id, etype, ts, body in evs[start : start + size]:
            group.add(Group.item(event_id, etype, ts, body))
        event_id, etype, _, body = evs[start]
        out.append((partition_key(HEAD[0], etype, body, event_id), group.record()))
    return out


def kafka(records: list[tuple[bytes, bytes]]) -> int:
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 30)
    for key, value in records:
        builder.append(0, timestamp=None, key=key, value=value, headers=[])
    return sum(1 for _ in DefaultRecordBatch(bytes(builder.build())))


def main() -> None:
    evs = events()
    n = len(evs)
    print(f"{n} events, µs of CPU per event, median of {RUNS} runs")
    print(f"{'record':<24}{'bytes/event':>12}{'write':>8}{'kafka':>8}{'read':>8}{'total*':>8}")
    variants: list[tuple[str, Callable[[], list[tuple[bytes, bytes]]]]] = [("v2, one event", lambda: write_v2(evs))]
    variants += [(f"v4, {k} events", lambda k=k: write_group(evs, k)) for k in (1, 5, 10, 100)]  # type: ignore[misc]
    for name, write in variants:
        records = write()
        size = sum(len(v) for _, v in records) / n
        w = per_event(n, write)
        k = per_event(n, lambda records=records: kafka(records))  # type: ignore[misc]
        r = per_event(n, lambda records=records: [decode_record(v) for _, v in records])  # type: ignore[misc]
        # The edge writes once; each of the two consumer groups reads (kafka counts both ends once).
        print(f"{name:<24}{size:>12.0f}{w:>8.2f}{k:>8.2f}{r:>8.2f}{w + k + 2 * r:>8.2f}")
    print("* write + kafka + 2 x read (two consumer groups)")
    exports = [as_tuples(map_request(parse(otlp_body("bench", n, 100, 5))).events) for n in range(20)]
    n = sum(len(e) for e in exports)
    print(f"\nOTLP, {len(exports)} exports of 20 traces of 5 spans, {n} events (a trace-create a trace)")
    head = Group.opening(*HEAD[:5], "otlp")
    # 2**31 - 1 partitions: a trace's key gets one of its own, so a record per trace.
    for name, partitions in (("a record per trace", 2**31 - 1), ("per partition of 8", TopicConfig.partitions)):

        def write(partitions: int = partitions) -> list[tuple[bytes, bytes]]:
            limit, out = EdgeConfig.max_event_bytes, []
            for e in exports:
                out += pack(head, HEAD[0], e, RECEIVED_AT, limit, False, MAX_DEPTH, partitions).records
            return out

        records = write()
        size = sum(len(v) for _, v in records) / n
        w = per_event(n, write)
        k = per_event(n, lambda records=records: kafka(records))  # type: ignore[misc]
        r = per_event(n, lambda records=records: [decode_record(v) for _, v in records])  # type: ignore[misc]
        label = f"{name} ({len(records) / len(exports):.1f}/export)"
        print(f"{label:<36}{size:>6.0f}{w:>8.2f}{k:>8.2f}{r:>8.2f}{w + k + 2 * r:>8.2f}")


if __name__ == "__main__":
    main()
