"""CPU per event of the ClickHouse stage, in process and without servers.

Envelopes are built the way the edge builds them, from `bench/load.py`'s Langfuse batches
(one trace-create and 99 generation-creates per body). Two workloads: `create`, those bodies
alone, and `mix`, the same bodies with a generation-update for every generation. A third,
`otlp`, is the edge's mapping of `bench/load.py`'s OTLP requests (traces of 5 spans: a root
and 4 LLM calls) packed into records as the edge packs them. Prints µs per event of CPU time
(per row for row building), the median of 5 runs, for:

- decode: `Envelope.decode` of the Kafka record value (`otlp`: `decode_record` of the
  edge's records, a trace's events each);
- fold: `apply()` into a fresh state per entity, events of an entity in time order;
- row: `ClickHouseWriter._rows` of the folded states (a call per table), for the 18.16 and a
  modern dialect;
- write: all of `ClickHouseWriter.write()` against a stub client that stores nothing (for
  18.16 it encodes each insert's Native block, as the client does), in batches of 1000
  (`update` is a batch of updates to entities the writer has cached), with the shipped model
  prices (the bench's gpt-4o-mini generations are priced).

    .venv/bin/python bench/worker_cpu.py [create|mix|otlp ...] [--prompt-bytes N]

`--prompt-bytes N`: each LLM call's messages ~N bytes of JSON and its answer a quarter of that
(bench/load.py's `chat`), instead of a one-line question.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agenttrace.cli import tune_gc
from bench.load import batch_body, otlp_body
from ingest.config import EdgeConfig
from ingest.intake import MAX_DEPTH
from ingest.otlp.mapping import as_tuples, map_request
from ingest.otlp.wire import parse
from ingest.records import pack
from pipeline.config import TopicConfig
from pipeline.envelope import OTLP_HTTP, Envelope, Group, decode_record
from pipeline.events import normalize
from pipeline.fold import EntityState, apply, table_of
from pipeline.prices import PriceBook
from sinks.clickhouse import native
from sinks.clickhouse.schema import Dialect, dialect_for
from sinks.clickhouse.writer import NULLABLE, ClickHouseWriter
from sinks.postgres.models import default_models, parse_file_entry

BODIES = 50  # 5000 events per workload
OTLP_BODIES = 100  # 5000 spans: 6000 events (a trace-create per trace)
BATCH = 1000  # events per write(), the stage's flush size order
RUNS = 5
RECEIVED_AT = 1_795_000_000_000_000
PARTITIONS = TopicConfig.partitions  # what the edge packs records for
T = TypeVar("T")


def default_book() -> PriceBook:
    """The shipped model prices, as a worker holds them: one book for every batch."""
    return PriceBook(parse_file_entry(doc).price(doc["id"]) for doc in default_models()["models"])


BOOK = default_book()


def _envelope(event: dict) -> Envelope:
    event_id, etype, ts, body = normalize(event)
    return Envelope(
        id=event_id,
        project_id="bench-project",
        type=etype,
        ts=ts or RECEIVED_AT,
        received_at=RECEIVED_AT,
        body=body,
        request_id="req-1",
        sdk_name="langfuse-python",
        sdk_version="2.60.0",
    )


def _update(create: dict) -> dict:
    """What an SDK sends when the generation ends: end time, output, completion usage."""
    return {
        "id": create["id"] + "-end",
        "type": "generation-update",
        "timestamp": "2026-11-27T10:00:00.900000Z",
        "body": {
            "id": create["body"]["id"],
            "endTime": "2026-11-27T10:00:00.950000Z",
            "output": {"role": "assistant", "content": "Paris is the capital of France."},
            "usage": {"output": 7},
            "metadata": {"finish_reason": "stop"},
        },
    }


def workloads(prompt_bytes: int = 0) -> dict[str, list[bytes]]:
    creates: list[dict] = []
    for n in range(BODIES):
        creates += orjson.loads(batch_body("bench", n, 100, prompt_bytes=prompt_bytes))["batch"]
    updates = [_update(e) for e in creates if e["type"] == "generation-create"]
    return {
        "create": [_envelope(e).encode() for e in creates],
        "mix": [_envelope(e).encode() for e in creates + updates],
        "update": [_envelope(e).encode() for e in updates],
        "otlp": otlp_records(prompt_bytes),
    }


def otlp_records(prompt_bytes: int = 0) -> list[bytes]:
    """Kafka record values of OTLP requests of 50 spans, as the edge writes them."""
    head = Group.opening("bench-project", RECEIVED_AT, "req-1", "opentelemetry", "1.38.0", OTLP_HTTP)
    records: list[bytes] = []
    for n in range(OTLP_BODIES):
        events = as_tuples(map_request(parse(otlp_body("bench", n, 50, 5, prompt_bytes))).events)
        packed = pack(
            head, "bench-project", events, RECEIVED_AT, EdgeConfig.max_event_bytes, False, MAX_DEPTH, PARTITIONS
        )
        records += [value for _, value in packed.records]
    return records


def decode_records(records: list[bytes]) -> list[Envelope]:
    return [env for r in records for env in decode_record(r)]


def decoder(workload: str) -> Callable[[list[bytes]], list[Envelope]]:
    """How a workload's records decode: `otlp`'s are the edge's groups, the others single
    envelopes (decode_record would parse those twice: once to see they are not a group)."""
    return decode_records if workload == "otlp" else decode_all


def median_us(work: Callable[[T], object], count: int, setup: Callable[[], T]) -> float:
    """CPU µs per item of `work(setup())`, the setup untimed.

    CPU time, not wall time: on a machine shared with a running stack, time spent waiting for
    a core is noise of the neighbours, not cost of this code.
    """
    runs = []
    for _ in range(RUNS):
        arg = setup()
        gc.collect()
        start = time.process_time()
        work(arg)
        runs.append((time.process_time() - start) / count * 1e6)
    return statistics.median(runs)


def report(label: str, work: Callable[[T], object], count: int, setup: Callable[[], T]) -> None:
    print(f"{label:22} {median_us(work, count, setup):6.2f}")


def fold(envelopes: Sequence[Envelope]) -> dict[tuple[str, str], EntityState]:
    grouped: dict[tuple[str, str], list[Envelope]] = {}
    for env in envelopes:
        grouped.setdefault((table_of(env.type), env.body["id"]), []).append(env)
    states = {}
    for (table, id_), events in grouped.items():
        state = states[(table, id_)] = EntityState("bench-project", id_)
        for env in sorted(events, key=lambda e: e.ts):
            apply(state, env, table)
        state.revision = state.last_ts
    return states


# 18.16's column types (migrations 0001-0004), for the block an insert encodes.
_UINT64 = {"timestamp", "start_time", "end_time", "completion_start_time", "created_at", "updated_at", "event_ts"}
_UINT64 |= {"input_tokens", "output_tokens", "total_tokens"}
_OTHER = {"tags": "Array(String)", "public": "UInt8", "is_deleted": "UInt8"}
_OTHER |= {"value": "Float64", "total_cost": "Float64"}


def legacy_type(column: str) -> str:
    kind = "UInt64" if column in _UINT64 else _OTHER.get(column, "String")
    return f"Nullable({kind})" if column in NULLABLE else kind


class StubClickHouse:
    """Stores nothing: every entity is new to the store. An insert encodes its Native block as
    the client does (18.16's types; `encode=False` for the modern dialect, whose DateTime64
    asynch encodes) and sends nothing."""

    def __init__(self, encode: bool = True) -> None:
        self.rows = 0
        self._encode = encode

    async def fetch(self, sql: str, *, operation: str = "query", ids: object = None) -> list[tuple]:
        return []

    async def insert(self, table: str, columns: Sequence[str], rows: Any) -> None:
        if self._encode:
            native.block([(c, legacy_type(c)) for c in columns], rows)
        self.rows += len(rows)


async def write_batches(writer: ClickHouseWriter, envelopes: Sequence[Envelope]) -> None:
    for i in range(0, len(envelopes), BATCH):
        await writer.write(list(envelopes[i : i + BATCH]))


def write_all(envelopes: Sequence[Envelope], writer: ClickHouseWriter) -> None:
    asyncio.run(write_batches(writer, envelopes))


def decode_all(records: list[bytes]) -> list[Envelope]:
    # Kept, as the stage keeps a batch: their collection by the GC is part of the cost.
    return [Envelope.decode(r) for r in records]


def rows_of(writer: ClickHouseWriter, states: list[tuple[str, EntityState]]) -> list[object]:
    by_table: dict[str, list[EntityState]] = {}
    for table, state in states:
        by_table.setdefault(table, []).append(state)
    return [writer._rows(table, group) for table, group in by_table.items()]


def new_writer(dialect: Dialect, warm: Sequence[Envelope] = ()) -> ClickHouseWriter:
    stub = StubClickHouse(encode=not dialect.subsecond_type)
    writer = ClickHouseWriter(stub, dialect, prices=lambda: BOOK)  # type: ignore[arg-type]
    asyncio.run(write_batches(writer, warm))
    return writer


def arguments() -> tuple[list[str], int]:
    """The workloads named (`worker_cpu.py otlp`: a subset) and `--prompt-bytes N` (load.py's)."""
    args = sys.argv[1:]
    prompt_bytes = 0
    if "--prompt-bytes" in args:
        at = args.index("--prompt-bytes")
        prompt_bytes = int(args[at + 1])
        del args[at : at + 2]
    return args, prompt_bytes


def main() -> None:
    chosen, prompt_bytes = arguments()
    chosen = chosen or ["create", "mix", "otlp"]
    tune_gc()  # as the worker runs: collections are rare, so allocation dominates
    raw = workloads(prompt_bytes)
    decoded = {name: decoder(name)(records) for name, records in raw.items()}
    print(
        f"events: create {len(decoded['create'])}, mix {len(decoded['mix'])}, otlp {len(decoded['otlp'])}; "
        f"median of {RUNS} runs, µs per event (row: per row)"
    )
    for name in chosen:
        records, envelopes = raw[name], decoded[name]
        report(f"{name} decode", decoder(name), len(envelopes), partial(list, records))
        report(f"{name} fold", fold, len(envelopes), partial(list, envelopes))
        states = [(table, s) for (table, _), s in fold(envelopes).items()]
        for version in ((18, 16, 1), (24, 8)):
            writer = ClickHouseWriter(object(), dialect_for(version), prices=lambda: BOOK)  # type: ignore[arg-type]
            report(f"{name} row {writer._dialect.name}", partial(rows_of, writer), len(states), partial(list, states))
    for version in ((18, 16, 1), (24, 8)):
        dialect = dialect_for(version)
        for name in chosen:
            envelopes = decoded[name]
            report(
                f"{name} write {dialect.name}",
                partial(write_all, envelopes),
                len(envelopes),
                partial(new_writer, dialect),
            )
        if "mix" in chosen:
            # Updates to entities of earlier batches: the cached state is copied, folded, compared.
            updates = decoded["update"]
            report(
                f"update write {dialect.name}",
                partial(write_all, updates),
                len(updates),
                partial(new_writer, dialect, decoded["create"]),
            )


if __name__ == "__main__":
    main()
