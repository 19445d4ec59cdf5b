"""A request's events as Kafka records: one record per trace (its key) and request.

The loop every accepted event goes through at the edge, in a module of its own so that `make up`
compiles it (ops/stack/native.py); `Intake.publish` sends what it returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

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
    head: bytes, project_id: str, events: Iterable[Any], now: int, limit: int, partial: bool, max_depth: int
) -> Packed:
    """Group (event id, type, event time µs, body) tuples into records of at most `limit` bytes;
    a trace whose events pass that takes several records, in order, so its partition keeps
    their order. An event too large once enveloped (413) or nested too deeply to encode (400) is
    refused with `partial`, and ends the packing without it (`failed`)."""
    out = Packed()
    groups: dict[bytes, Group] = {}
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
        size = len(head) + 2 + len(item)
        if size > limit:
            if not partial:
                out.failed = (413, f"event {event_id!r} is {size} bytes; the limit is {limit}")
                return out
            out.refused.append((position, 413, f"the event is larger than {limit} bytes once enveloped"))
            continue
        key = partition_key(project_id, etype, body, event_id)
        group = groups.get(key)
        if group is None or not group.fits(item, limit):
            if group is not None:
                out.records.append((key, group.record()))
            group = groups[key] = Group(head)
        group.add(item)
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
    out.records.extend((key, group.record()) for key, group in groups.items())
    return out
