"""CPU per event of the Postgres stage's own work, in process and without servers.

The envelopes of `bench/worker_cpu.py` (`create`: one trace-create and 99 generation-creates
per body; `mix`: the same with a generation-update, naming no trace, for every generation;
`otlp`: OTLP requests as the edge maps and packs them, traces of 5 spans).
Prints µs of CPU per event, the median of 5 runs, for:

- decode: the Kafka record values decoded (`otlp`: the edge's records, a trace's events each);
- fold: the writer's `_judge`, which judges and folds a batch into per-trace deltas;
- join: `apply_to_stored` of every delta into a new trace's state, and the JSON of the changed
  generation states (the writer sends them in one object per trace);
- join again: the same deltas joined into the states the first join stored (a redelivery:
  nothing changes), each stored state parsed from its JSON as the writer reads them.

    .venv/bin/python bench/pg_cpu.py [create|mix|otlp ...] [--prompt-bytes N]   # as worker_cpu.py
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.worker_cpu import BOOK, arguments, decoder, median_us, workloads
from pipeline.envelope import Envelope
from sinks.postgres.rollup import Changes, Key, StoredTrace, TraceDelta
from sinks.postgres.writer import _judge, joined


def folded(records: list[bytes], decode: Callable[[list[bytes]], list[Envelope]]) -> dict[Key, TraceDelta]:
    return _judge(decode(records))[1]


def join(deltas: dict[Key, TraceDelta], stored: dict[Key, dict[str, bytes]] | None = None) -> dict[Key, bytes | None]:
    """Every delta joined as the writer joins it; the changed generation states' JSON per trace."""
    changes, written = Changes(), {}
    for key, delta in deltas.items():
        trace = StoredTrace(*key)
        if stored is not None:  # as Postgres sends them: one generation's state per row
            docs = stored[key]
            trace.generations = {g: orjson.loads(docs[g]) for g in delta.generations if g in docs}
        written[key] = joined(trace, delta, changes, BOOK)
    return written


def per_generation(written: dict[Key, bytes | None]) -> dict[Key, dict[str, bytes]]:
    """The states a join wrote, one JSON per generation, as the writer reads them back."""
    return {key: {g: orjson.dumps(d) for g, d in orjson.loads(doc or b"{}").items()} for key, doc in written.items()}


def measure(records: list[bytes], decode: Callable[[list[bytes]], list[Envelope]]) -> dict[str, float]:
    n = len(decode(records))  # events: an OTLP record holds a trace's
    first = per_generation(join(folded(records, decode)))
    return {
        "decode": median_us(decode, n, lambda: records),
        "fold": median_us(_judge, n, lambda: decode(records)),
        "join": median_us(join, n, lambda: folded(records, decode)),
        "join again": median_us(lambda d: join(d, first), n, lambda: folded(records, decode)),
    }


def main() -> None:
    chosen, prompt_bytes = arguments()
    for name, records in workloads(prompt_bytes).items():
        if chosen and name not in chosen:
            continue
        if name != "update":  # updates alone: the mix has them
            for what, us in measure(records, decoder(name)).items():
                print(f"{name:7} {what:12} {us:6.2f}")


if __name__ == "__main__":
    main()
