"""CPU per event of the edge's batch route, in process and without servers.

The work `POST /api/public/ingestion` does per event, on `bench/load.py`'s Langfuse batches
(one trace-create and 99 generation-creates per body), without HTTP and Kafka: parse the body,
validate and normalise each event, envelope and encode it (`Intake.publish` with a publisher
that keeps nothing), and encode the 207 answer. Prints µs of CPU per event, the minimum and
median of RUNS runs (the minimum is the least disturbed by neighbours on a shared machine).

    .venv/bin/python bench/edge_cpu.py
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agenttrace.cli import tune_gc
from bench.load import batch_body
from ingest.config import EdgeConfig
from ingest.intake import Caller, Intake
from pipeline.events import InvalidEvent, normalize

BODIES = 50  # 5000 events
RUNS = 15
CALLER = Caller("bench-project", "req-1", "langfuse-python", "2.60.0")


class StubPublisher:
    """Keeps nothing: the encoded records are counted and dropped."""

    def __init__(self) -> None:
        self.records = 0

    async def partition_count(self) -> int:
        return 8

    async def publish(self, records: list[tuple[bytes, bytes]], partitions: int) -> None:
        self.records += len(records)


def route(intake: Intake, body: bytes) -> bytes:
    """ingest/batch.py's work on one body, minus the awaits of auth, rate limit and Kafka."""
    doc = orjson.loads(body)
    accepted: list[tuple[str, str, int, dict[str, Any]]] = []
    successes: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for event in doc["batch"]:
        try:
            normalized = normalize(event)
        except InvalidEvent as exc:
            errors.append({"id": None, "status": 400, "error": str(exc)})
            continue
        accepted.append(normalized)
        successes.append({"id": normalized[0], "status": 201})
    coro = intake.publish(CALLER, accepted, "batch", partial=True)
    try:
        coro.send(None)  # the stub publisher never suspends
    except StopIteration:
        pass
    return orjson.dumps({"successes": successes, "errors": errors})


def parse_only(body: bytes) -> object:
    return orjson.loads(body)


def normalize_only(doc: dict[str, Any]) -> None:
    for event in doc["batch"]:
        normalize(event)


def measure(work: Callable[[Any], object], items: Callable[[], list[Any]], events: int) -> tuple[float, float]:
    runs = []
    for _ in range(RUNS):
        batch = items()
        gc.collect()
        start = time.process_time()
        for item in batch:
            work(item)
        runs.append((time.process_time() - start) / events * 1e6)
    return min(runs), statistics.median(runs)


def main() -> None:
    tune_gc()  # as the api runs
    bodies = [batch_body("bench", n, 100) for n in range(BODIES)]
    events = BODIES * 100
    intake = Intake(EdgeConfig(), None, StubPublisher(), None, None)  # type: ignore[arg-type]
    print(f"{events} events; µs of CPU per event, min and median of {RUNS} runs")
    for label, work, items in (
        ("parse", parse_only, lambda: bodies),
        ("normalize", normalize_only, lambda: [orjson.loads(b) for b in bodies]),
        ("route", lambda b: route(intake, b), lambda: bodies),
    ):
        low, mid = measure(work, items, events)
        print(f"{label:12} {low:6.2f} {mid:6.2f}")


if __name__ == "__main__":
    main()
