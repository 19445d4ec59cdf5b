"""Replay: fold the events topic again through one stage's sink, from the start or from a time.

A throwaway consumer without a group (partitions assigned by hand, nothing committed, so the
live stages' offsets are untouched) reads every partition from its start offset up to the high
watermark captured when the replay began, in batches, through the same sink class the stage
uses. The sinks are idempotent (ClickHouse: per-field event-time versions; Postgres: per-trace
states that a second fold of an event does not change), so replaying what is already projected
leaves the visible rows unchanged, and replaying into emptied projections rebuilds them.

Poison events are counted and reported, not dead-lettered again: the live stage did that.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.envelope import Envelope, decode_record
from pipeline.errors import EnvelopeError
from pipeline.retry import Backoff, isolate, retry
from pipeline.stage import Sink
from pipeline.times import to_micros

# A replay is run by hand and can be run again: a few retries, then the error.
_BACKOFF = Backoff(initial_s=0.5, attempts=8)
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


@dataclass
class ReplaySummary:
    stage: str
    partitions: int = 0
    records: int = 0  # read from the topic
    events: int = 0  # decoded and handed to the sink
    poison: int = 0
    undecodable: int = 0
    seconds: float = 0.0
    reasons: list[str] = field(default_factory=list)  # the first few poison reasons

    def lines(self) -> list[str]:
        rate = self.records / self.seconds if self.seconds > 0 else 0.0
        out = [
            f"replay {self.stage}: {self.records} records from {self.partitions} partitions in {self.seconds:.1f}s "
            f"({rate:.0f}/s)",
            f"  folded: {self.events}  poison: {self.poison}  undecodable: {self.undecodable}",
        ]
        out += [f"  poison: {r}" for r in self.reasons]
        return out


class Progress:
    """A one-line progress bar, redrawn with \\r at most every `every_s`."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, *, width: int = 30, every_s: float = 0.1) -> None:
        self._total, self._stream, self._width, self._every_s = total, stream, width, every_s
        self._start = time.monotonic()
        self._shown = 0.0
        self._line = ""

    def update(self, done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._shown < self._every_s:
            return
        self._shown = now
        fraction = min(1.0, done / self._total) if self._total else 1.0
        filled = int(fraction * self._width)
        bar = "#" * filled + "." * (self._width - filled)
        line = f"\r[{bar}] {fraction * 100:5.1f}% {done}/{self._total} records {now - self._start:6.1f}s"
        if line != self._line:
            self._line = line
            self._stream.write(line)
            self._stream.flush()

    def finish(self, done: int) -> None:
        self.update(done, force=True)
        self._stream.write("\n")
        self._stream.flush()


def parse_since(text: str, now_s: float | None = None) -> int:
    """`--from`: ISO 8601, or a duration ago (`90s`, `15m`, `2h`, `7d`); epoch milliseconds."""
    text = text.strip()
    relative = _RELATIVE.match(text)
    now_s = time.time() if now_s is None else now_s
    if relative:
        return int((now_s - float(relative.group(1)) * _UNIT_S[relative.group(2)]) * 1000)
    try:
        us = to_micros(text)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"--from: {text!r} is neither ISO 8601 nor a duration like 15m") from exc
    if us is None:
        raise ValueError("--from must not be empty")
    return us // 1000


async def replay(
    consumer: AIOKafkaConsumer,
    sink: Sink,
    topic: str,
    *,
    stage: str,
    since_ms: int | None = None,
    batch_size: int = 5_000,
    progress: Callable[[int], Progress] | None = None,
    backoff: Backoff = _BACKOFF,
) -> ReplaySummary:
    """Fold [start, high watermark at start) of every partition through `sink`.

    `consumer` must be started, without a group, and not subscribed yet. A store failure is
    retried a few times with backoff, then raised: the replay can simply be run again.
    """
    summary = ReplaySummary(stage)
    began = time.monotonic()
    tps = await _all_partitions(consumer, topic)
    ends = await consumer.end_offsets(tps)
    if since_ms is None:
        starts = await consumer.beginning_offsets(tps)
    else:
        found = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
        starts = {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in tps}
    for tp in tps:
        consumer.seek(tp, starts[tp])
    summary.partitions = len(tps)
    pending = {tp for tp in tps if starts[tp] < ends[tp]}
    bar = progress(sum(ends[tp] - starts[tp] for tp in tps)) if progress else None
    done = 0
    per_record = 1.0  # events per record lately: a batch is `batch_size` events, not records
    while pending:
        records_wanted = max(1, math.ceil(batch_size / per_record))
        batches = await consumer.getmany(*pending, timeout_ms=500, max_records=records_wanted)
        envelopes: list[Envelope] = []
        read = summary.records
        for tp, records in batches.items():
            for rec in records:
                if rec.offset >= ends[tp]:
                    continue
                summary.records += 1
                try:
                    envelopes.extend(decode_record(rec.value))
                except EnvelopeError:
                    summary.undecodable += 1
        if summary.records > read:
            per_record = max(1.0, len(envelopes) / (summary.records - read))
        if envelopes:
            poison = await retry(functools.partial(isolate, sink.write, envelopes), backoff)
            summary.events += len(envelopes) - len(poison)
            summary.poison += len(poison)
            for env, reason in poison[: max(0, 5 - len(summary.reasons))]:
                summary.reasons.append(f"{env.project_id} {env.type} {env.id}: {reason}")
        done = 0
        for tp in tps:
            position = await consumer.position(tp) if tp in pending else ends[tp]
            if position >= ends[tp]:
                pending.discard(tp)
            done += min(position, ends[tp]) - starts[tp]
        if bar:
            bar.update(done)
    if bar:
        bar.finish(done)
    summary.seconds = time.monotonic() - began
    return summary


async def _all_partitions(consumer: AIOKafkaConsumer, topic: str, timeout_s: float = 15.0) -> list[TopicPartition]:
    """Without a group, a subscription is assigned every partition as soon as metadata is known."""
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout_s
    while not (assigned := sorted(tp for tp in consumer.assignment() if tp.topic == topic)):
        if time.monotonic() > deadline:
            raise ValueError(f"topic {topic!r} does not exist or has no partitions")
        await asyncio.sleep(0.05)
    return assigned
