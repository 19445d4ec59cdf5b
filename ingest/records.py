"""A request's events as Kafka records: one record per partition and request.

The loop every accepted event goes through at the edge, in a module of its own so that `make up`
compiles it (ops/stack/native.py); `Intake.publish` sends what it returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from ingest.partitioner import partition_for
from pipeline.envelope import Group, partition_key
from pipeline.events import OBSERVATION_TYPES


class Packed:
    """A request's records, what was refused and why, and the counts for its metrics and log."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        # (position in the events given, HTTP status, reason) of the events left out.
        self.refused: list[tuple[int, int, str]] = []
        # Without `partial`: the first refusal's status and message, and nothing packed.
        self.failed: tuple[int, str] | None = None
        self.accepted = 0
        self.traces = 0
        self.observations = 0
        self.scores = 0
        self.trace_id: str | None = None  # the first trace an event named


def pack(
    head: bytes,
    project_id: str,
    events: Iterable[Any],
    now: int,
    limit: int,
    partial: bool,
    max_depth: int,
    partitions: int,
) -> Packed:
    """Group (event id, type, event time µs, body) tuples into records of at most `limit` bytes,
    one per partition of the topic's `partitions` that the events' traces (their keys) go to;
    events that pass that take several records, in order, so a partition keeps their order. An
    event too large once enveloped (413) or nested too deeply to encode (400) is refused with
    `partial`, and ends the packing without it (`failed`).

    A record is keyed by its first event's trace: the other traces in it hash to the same
    partition, so the key places the record where every one of its events belongs. Records per
    partition instead of per trace: an OTLP export of 20 traces is ~7 records on 8 partitions,
    not 20, and each record costs the edge, the broker and every stage a fixed share."""
    out = Packed()
    groups: dict[int, tuple[bytes, Group]] = {}
    for position, (event_id, etype, ts, body) in enumerate(events):
        try:
            item = Group.item(event_id, etype, ts or now, body)
        except orjson.JSONEncodeError:
            reason = f"event {event_id!r} is nested too deeply (at most {max_depth} levels)"
            if not partial:
                out.failed = (400, reason)
                return out
            out.refused.append((position, 400, reason))
            continue
        size = Group.alone(head, item)
        if size > limit:
            if not partial:
                out.failed = (413, f"event {event_id!r} is {size} bytes; the limit is {limit}")
                return out
            out.refused.append((position, 413, f"the event is larger than {limit} bytes once enveloped"))
            continue
        key = partition_key(project_id, etype, body, event_id)
        partition = partition_for(key, partitions)
        held = groups.get(partition)
        if held is None or not held[1].fits(item, limit):
            if held is not None:
                out.records.append((held[0], held[1].record()))
            held = groups[partition] = (key, Group(head))
        held[1].add(item)
        out.accepted += 1
        if out.trace_id is None:
            found = body.get("id") if etype == "trace-create" else body.get("traceId")
            out.trace_id = str(found) if found else None
        if etype == "trace-create":
            out.traces += 1
        elif etype in OBSERVATION_TYPES:
            out.observations += 1
        elif etype == "score-create":
            out.scores += 1
    out.records.extend((key, group.record()) for key, group in groups.values())
    return out
