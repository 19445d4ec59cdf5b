"""Folds create and update events into entity states, independent of arrival order.

Each field remembers the event time that last set it (a last-writer-wins register per field),
so folding the same events in any order, in any batches, any number of times, ends in the same
state: an update may precede its create, a batch may be redelivered, the log may be replayed.
Metadata merges per key, tags are a union, and a null never overwrites a value. A trace's and a
score's time and an observation's start keep their earliest event's value instead (FIRST_WINS).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from pipeline.envelope import INPUT_PART, LOG_SOURCES, TEXT_FIELDS, Envelope
from pipeline.errors import PoisonEvent
from pipeline.events import OBSERVATION_TYPES, OPENAI_USAGE_DETAILS, UPDATE_TYPES
from pipeline.times import MAX_US, MIN_US

TRACE: Final = "traces"
OBSERVATION: Final = "observations"
SCORE: Final = "scores"
# The version of a field no event has set: below every real (µs, >= 0) and synthetic (< 0) one.
UNSET: Final = -(2**63)
# The fields whose earliest event's value stays, as Langfuse keeps them once written: SDKs send
# them again with later events (langfuse-langchain's trace-create at the end of a run carries the
# time it was sent as the trace's timestamp), which must not move a trace or a span in time.
FIRST_WINS: Final = frozenset({"timestamp", "start_time"})
_FIRST_BASE: Final = 2**62  # above every event time (µs)
# The version of an input joined from parts (add_part): below every event's and synthetic one,
# so that an input any other event gives wins, whatever the order.
PART_VERSION: Final = UNSET + 1
# A part's entry in the versions, `input~<key>`, holds the count of messages it gave.
PART_MARK: Final = "input~"
_PART_KEY_MAX: Final = 40
_PART_COUNT_MAX: Final = 1_000_000


def first_key(version: int) -> int:
    """How the versions of a FIRST_WINS field rank, the higher winning: an event's (>= 0) over a
    synthetic one (< 0, synthesize_trace), the earliest event's first, the highest synthetic."""
    return version if version < 0 else _FIRST_BASE - version


def outranks(column: str, version: int, current: int) -> bool:
    """Whether a field's value at `version` replaces the one at `current` (not on a tie)."""
    if column in FIRST_WINS:
        return first_key(version) > first_key(current)
    return version > current


def table_of(etype: str) -> str | None:
    if etype == "trace-create":
        return TRACE
    if etype in OBSERVATION_TYPES:
        return OBSERVATION
    if etype == "score-create":
        return SCORE
    return None


# init=False and a written __init__: the decorator's own is interpreted Python even compiled
# (pipeline/envelope.py's Envelope says more).
@dataclass(init=False)
class EntityState:
    project_id: str
    id: str
    values: dict[str, Any]
    versions: dict[str, int]
    first_ts: int
    last_ts: int
    # The store's version of the row this state was read from or last written as (0: none).
    revision: int
    # What a sink derived from the fields when it last wrote them (a priced cost): a price
    # change makes a row worth writing again even when no event changed it.
    derived: Any

    def __init__(
        self,
        project_id: str,
        id: str,
        values: dict[str, Any] | None = None,
        versions: dict[str, int] | None = None,
        first_ts: int = 0,
        last_ts: int = 0,
        revision: int = 0,
        derived: Any = None,
    ) -> None:
        self.project_id, self.id = project_id, id
        self.values = {} if values is None else values
        self.versions = {} if versions is None else versions
        self.first_ts, self.last_ts, self.revision, self.derived = first_ts, last_ts, revision, derived

    def set(self, column: str, value: Any, ts: int) -> None:
        if value is None:
            return
        if not outranks(column, self.versions.get(column, UNSET), ts):
            self.values[column] = value
            self.versions[column] = ts

    def merge_map(self, column: str, value: dict[str, Any], ts: int) -> None:
        current, versions = self.values.setdefault(column, {}), self.versions
        for k, v in value.items():
            vkey = f"{column}.{k}"
            if ts >= versions.get(vkey, UNSET):
                current[k] = v
                versions[vkey] = ts

    def take_map(self, column: str, value: dict[str, Any], ts: int) -> None:
        """merge_map for a state that holds no key of `column` yet: each key wins, so `value`
        (not copied) is taken whole, without a versions lookup per key."""
        self.values[column] = value
        versions = self.versions
        for k in value:
            versions[f"{column}.{k}"] = ts

    def union(self, column: str, items: list[str]) -> None:
        current = self.values.setdefault(column, [])
        for item in items:
            if item not in current:
                current.append(item)

    def touch(self, ts: int) -> None:
        if not self.first_ts or ts < self.first_ts:
            self.first_ts = ts
        if ts > self.last_ts:
            self.last_ts = ts


def as_text(v: Any) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else orjson.dumps(v).decode()


def _io(v: Any) -> str | None:
    # Input and output are stored as JSON text, so a string stays distinguishable from an object.
    return None if v is None else orjson.dumps(v).decode()


def _io_text(v: Any) -> str | None:
    """A version-4 record's input or output: already the JSON text stored (pipeline/envelope.py)."""
    return v if v is None or type(v) is str else _io(v)


def body_time(v: Any) -> int | None:
    """A body time: µs since the edge parsed it (pipeline/events.py), within what every store
    holds; a record from elsewhere (an old log, a hand-made one) may hold anything."""
    if v is None or (type(v) is int and MIN_US <= v < MAX_US):
        return v
    raise PoisonEvent(f"bad timestamp {v!r}: not a time between 1970 and 2100")


_USAGE_ALIASES: Final = {
    "input": "input",
    "promptTokens": "input",
    "prompt_tokens": "input",
    "inputTokens": "input",
    "input_tokens": "input",
    "output": "output",
    "completionTokens": "output",
    "completion_tokens": "output",
    "outputTokens": "output",
    "output_tokens": "output",
    "total": "total",
    "totalTokens": "total",
    "total_tokens": "total",
}
_COST_KEYS: Final = {"inputCost": "input", "outputCost": "output", "totalCost": "total"}


_OPENAI_DETAILS: Final = OPENAI_USAGE_DETAILS
_OPENAI_INPUTS: Final = ("prompt_tokens", "input_tokens", "input")


def flat_usage(details: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI usage object's nested counts as keys of their own (`cached_tokens` of the
    prompt's details is `input_cached_tokens`), the cached input taken out of the input, which
    counts it, since each key is priced by itself. Any other usage dict is returned as it is."""
    if not any(type(details.get(k)) is dict for k in _OPENAI_DETAILS):
        return details
    out = {k: v for k, v in details.items() if k not in _OPENAI_DETAILS}
    for key, side in _OPENAI_DETAILS.items():
        parts = details.get(key)
        if type(parts) is dict:
            for k, v in parts.items():
                if type(v) in (int, float):
                    out[f"{side}_{k}"] = v
    cached = out.get("input_cached_tokens")
    if type(cached) in (int, float) and cached:
        for k in _OPENAI_INPUTS:
            if type(out.get(k)) in (int, float):
                out[k] = max(out[k] - cached, 0)
    return out


def usage_and_cost(body: dict[str, Any]) -> tuple[dict[str, int], dict[str, float]]:
    """Langfuse's `usage` (any of its spellings) and `usageDetails`/`costDetails`, normalised."""
    usage: dict[str, int] = {}
    cost: dict[str, float] = {}
    legacy = body.get("usage")
    if isinstance(legacy, dict):
        for k, v in legacy.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if k in _COST_KEYS:
                cost[_COST_KEYS[k]] = float(v)
            else:
                usage[_USAGE_ALIASES.get(str(k), str(k))] = _count(v)
    details = body.get("usageDetails")
    if isinstance(details, dict):
        for k, v in flat_usage(details).items():
            if not isinstance(v, bool) and isinstance(v, (int, float)):
                usage[_USAGE_ALIASES.get(str(k), str(k))] = _count(v)
    cost_details = body.get("costDetails")
    if isinstance(cost_details, dict):
        for k, v in cost_details.items():
            if not isinstance(v, bool) and isinstance(v, (int, float)):
                cost[k] = float(v)
    # Totals the client did not send are derived when the row is written, from the merged
    # state: derived here, an update carrying only `output` would set a wrong total.
    return usage, cost


def _count(v: int | float) -> int:
    # Past int64 no store can hold it (the JSON encoder refuses past 64 bits): poison, not a
    # write that fails, and is retried, forever.
    n = int(v)
    if not -(2**63) <= n < 2**63:
        raise PoisonEvent(f"usage value {v!r} is out of range")
    return n


# body key -> (column, converter); maps merge per key, everything else is last-writer-wins.
Conv = Callable[[Any], Any]
_COMMON: Final[dict[str, tuple[str, Conv]]] = {
    "environment": ("environment", as_text),
    "input": ("input", _io),
    "output": ("output", _io),
}
TRACE_FIELDS: Final[dict[str, tuple[str, Conv]]] = {
    **_COMMON,
    "timestamp": ("timestamp", body_time),
    "name": ("name", as_text),
    "userId": ("user_id", as_text),
    "sessionId": ("session_id", as_text),
    "release": ("release", as_text),
    "version": ("version", as_text),
    "public": ("public", lambda v: 1 if v else 0),
}
OBSERVATION_FIELDS: Final[dict[str, tuple[str, Conv]]] = {
    **_COMMON,
    "traceId": ("trace_id", as_text),
    "parentObservationId": ("parent_observation_id", as_text),
    "name": ("name", as_text),
    "startTime": ("start_time", body_time),
    "endTime": ("end_time", body_time),
    "completionStartTime": ("completion_start_time", body_time),
    "level": ("level", as_text),
    "statusMessage": ("status_message", as_text),
    "version": ("version", as_text),
    "model": ("provided_model_name", as_text),
    "promptName": ("prompt_name", as_text),
    "promptVersion": ("prompt_version", lambda v: None if v is None else str(v)),
}
SCORE_FIELDS: Final[dict[str, tuple[str, Conv]]] = {
    "environment": ("environment", as_text),
    "traceId": ("trace_id", as_text),
    "observationId": ("observation_id", as_text),
    "sessionId": ("session_id", as_text),
    "datasetRunId": ("dataset_run_id", as_text),
    "name": ("name", as_text),
    "dataType": ("data_type", as_text),
    "comment": ("comment", as_text),
    "configId": ("config_id", as_text),
    "source": ("source", as_text),
    "timestamp": ("timestamp", body_time),
}
FIELDS: Final = {TRACE: TRACE_FIELDS, OBSERVATION: OBSERVATION_FIELDS, SCORE: SCORE_FIELDS}
# The same as (key, column, converter) triples: apply() walks its table's for every event, the
# FIRST_WINS fields apart.
_FIELD_LISTS: Final = {
    table: tuple((key, *spec) for key, spec in fields.items() if spec[0] not in FIRST_WINS)
    for table, fields in FIELDS.items()
}
# Each table's one FIRST_WINS field: (key, column, converter).
_FIRST_FIELD: Final = {
    table: next((key, *spec) for key, spec in fields.items() if spec[0] in FIRST_WINS)
    for table, fields in FIELDS.items()
}
# And for events whose input and output came as texts (Envelope.texts).
_TEXT_FIELD_LISTS: Final = {
    table: tuple((key, column, _io_text if key in TEXT_FIELDS else conv) for key, column, conv in specs)
    for table, specs in _FIELD_LISTS.items()
}


def apply(state: EntityState, env: Envelope, table: str) -> None:
    """Fold one event into its entity's state: all of it or nothing.

    Raises PoisonEvent for unusable content and then leaves the state as it was: a
    dead-lettered event must not have half its fields written.
    """
    body, ts = env.body, env.ts or env.received_at
    part = _input_part(body) if env.source in LOG_SOURCES and table == OBSERVATION else None
    try:
        # Convert everything first; only then touch the state. The fields at the event's time
        # as two lists, not a tuple each: allocating and freeing those cost as much as most
        # conversions. `others` are the fields at versions of their own.
        columns: list[str] = []
        converted: list[Any] = []
        for key, column, conv in (_TEXT_FIELD_LISTS if env.texts else _FIELD_LISTS)[table]:
            if key in body:
                columns.append(column)
                converted.append(conv(body[key]))
        first_key_, first_column, first_conv = _FIRST_FIELD[table]
        first = first_conv(body[first_key_]) if first_key_ in body else None
        others: list[tuple[str, Any, int]] = []
        maps: list[tuple[str, dict[str, Any]]] = []
        metadata = body.get("metadata")
        if isinstance(metadata, dict):
            maps.append(("metadata", metadata))
        elif metadata is not None:
            maps.append(("metadata", {"metadata": metadata}))
        tags = None
        if table == TRACE and isinstance(body.get("tags"), list):
            tags = [str(t) for t in body["tags"]]
        elif table == OBSERVATION:
            # A create fixes the type; an update only fills it in when no create was seen yet.
            others.append(("type", OBSERVATION_TYPES[env.type], -1 if env.type in UPDATE_TYPES else ts))
            if isinstance(body.get("modelParameters"), dict):
                maps.append(("model_parameters", body["modelParameters"]))
            usage, cost = usage_and_cost(body)
            if usage:
                maps.append(("usage_details", usage))
            if cost:
                maps.append(("cost_details", cost))
        elif table == SCORE:
            others = _score_value(body.get("value"), body.get("dataType"), ts, body.get("stringValue"))
    except PoisonEvent:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise PoisonEvent(f"{env.type} {state.id}: {exc}") from exc
    part_text: Any = None
    if part is not None and "input" in columns:
        i = columns.index("input")
        del columns[i]
        part_text = converted.pop(i)
    # EntityState.set, inlined: these loops run for every field of every event.
    values, versions = state.values, state.versions
    # A state no event has set a field of yet (most are: a span, a create): each field wins
    # without a versions lookup.
    fresh = not versions and ts >= UNSET
    parted = not fresh and versions.get("input") == PART_VERSION
    for i, column in enumerate(columns):
        value = converted[i]
        if value is not None and (fresh or ts >= versions.get(column, UNSET)):
            values[column] = value
            versions[column] = ts
    if first is not None and (fresh or first_key(ts) >= first_key(versions.get(first_column, UNSET))):
        values[first_column] = first
        versions[first_column] = ts
    for column, value, version in others:
        if value is not None and version >= versions.get(column, UNSET):
            values[column] = value
            versions[column] = version
    for column, m in maps:
        if fresh:  # and so no key of any map
            state.take_map(column, dict(m), ts)
        else:
            state.merge_map(column, m, ts)
    if tags is not None:
        state.union("tags", tags)
    if parted and versions.get("input") != PART_VERSION:
        drop_parts(versions)  # another event's input won over the parts
    if part is not None and part_text is not None:
        add_part(state, part[0], part[1], part_text)
    state.touch(ts)


def _input_part(body: dict[str, Any]) -> tuple[str, int] | None:
    """A log update's INPUT_PART, if it is one the edge writes."""
    part = body.get(INPUT_PART)
    if type(part) is not list or len(part) != 2:
        return None
    key, count = part[0], part[1]
    if type(key) is not str or not 0 < len(key) <= _PART_KEY_MAX or type(count) is not int:
        return None
    return (key, count) if 0 <= count <= _PART_COUNT_MAX else None


def add_part(state: EntityState, key: str, count: int, text: str) -> None:
    """Join a part of an input made of a call's message records (pipeline/envelope.py,
    INPUT_PART): the parts' messages in the order of their keys, each part once. Any other
    event's input wins over parts (PART_VERSION); while one holds, a part changes nothing. So
    the parts of two exports give the whole input in any order, any number of times."""
    versions, values = state.versions, state.values
    mark = PART_MARK + key
    current = versions.get("input", UNSET)
    if current == UNSET:
        values["input"] = text
        versions["input"] = PART_VERSION
        versions[mark] = count
        return
    if current != PART_VERSION or mark in versions:
        return
    held = orjson.loads(values["input"])
    messages = held if type(held) is list else [held]
    given = orjson.loads(text)
    offset = sum(n for name, n in versions.items() if name.startswith(PART_MARK) and name < mark)
    messages[offset:offset] = given if type(given) is list else [given]
    values["input"] = orjson.dumps(messages).decode()
    versions[mark] = count


def parts_of(state: EntityState) -> list[tuple[str, int, str]]:
    """The parts an input joined from parts holds, as add_part takes them, in key order; none
    when another event's input holds."""
    versions = state.versions
    if versions.get("input") != PART_VERSION:
        return []
    marks = sorted((name, n) for name, n in versions.items() if name.startswith(PART_MARK))
    if len(marks) == 1:
        return [(marks[0][0][len(PART_MARK) :], marks[0][1], state.values["input"])]
    held = orjson.loads(state.values["input"])
    messages = held if type(held) is list else [held]
    out: list[tuple[str, int, str]] = []
    offset = 0
    for name, n in marks:
        out.append((name[len(PART_MARK) :], n, orjson.dumps(messages[offset : offset + n]).decode()))
        offset += n
    return out


def drop_parts(versions: dict[str, int]) -> None:
    for name in [name for name in versions if name.startswith(PART_MARK)]:
        del versions[name]


def _score_value(value: Any, data_type: Any, ts: int, label: Any = None) -> list[tuple[str, Any, int]]:
    if value is None:
        return []
    if data_type == "CATEGORICAL" and type(label) is str and not isinstance(value, str):
        # A category of a score config: its label, and the number the config gives it (the edge
        # checked both against the config, ingest/score_configs.py).
        return [("value", float(value), ts), ("string_value", label, ts)]
    if isinstance(value, str):
        sets: list[tuple[str, Any, int]] = [("string_value", value, ts)]
        if data_type in (None, "NUMERIC"):
            sets.append(("data_type", "CATEGORICAL", ts if data_type is None else -1))
        return sets
    sets = [("value", float(value), ts)]
    if data_type == "BOOLEAN":
        sets.append(("string_value", "True" if value else "False", ts))
    return sets


def synthesize_trace(state: EntityState, env: Envelope, table: str) -> None:
    """What an observation or score says of its trace, so that the trace exists even when no
    trace-create ever arrives (an SDK that drops the root span, a child-only OTLP export).

    The trace starts at the earliest of them and is named after its earliest root observation.
    These fields carry negative versions, earlier being higher (-start - 1), so the fold stays
    order-independent and any real trace event (versions >= 0) wins over them.
    """
    body, ts = env.body, env.ts or env.received_at
    start = body.get("startTime" if table == OBSERVATION else "timestamp")
    if type(start) is not int:
        start = ts
    version = -start - 1
    state.set("timestamp", start, version)
    if table == OBSERVATION and not body.get("parentObservationId") and body.get("name"):
        state.set("name", as_text(body["name"]), version)
    if not state.first_ts:
        state.touch(ts)


def root_content(trace: EntityState, root: EntityState) -> bool:
    """A root span's input and output as its trace's where no trace event gave them, as the edge
    gives a root span's own (ingest/otlp/mapping.py): for content that reached the span apart from
    it (log records, ingest/otlp/logs.py). Synthetic versions, as synthesize_trace's: any real
    trace event's value wins. Whether the trace changed."""
    start = root.values.get("start_time", root.first_ts)
    version = -start - 1 if type(start) is int else -1
    changed = False
    for column in ("input", "output"):
        value = root.values.get(column)
        held = trace.versions.get(column, UNSET)
        # On a tie, the root's newer value: its input grew by a part (add_part).
        if value is not None and (version > held or (version == held and value != trace.values.get(column))):
            trace.values[column] = value
            trace.versions[column] = version
            changed = True
    return changed
