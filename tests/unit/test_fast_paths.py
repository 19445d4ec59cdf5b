"""The hot path's fast paths give exactly what the plain code they replaced gives.

Each reference below is that plain code, kept verbatim: the stage's output (values, types,
JSON text, poison messages) must not change with its CPU cost.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingest.events import OBSERVATION_TYPES, UPDATE_TYPES
from pipeline.envelope import VERSION, Envelope, EnvelopeError, _micros, to_micros
from pipeline.fold import (
    FIELDS, OBSERVATION, OBSERVATION_FIELDS, SCORE, SCORE_FIELDS, TRACE, TRACE_FIELDS, EntityState, PoisonEvent,
    _score_value, apply, usage_and_cost, with_totals,
)
from sinks.clickhouse.schema import Dialect, dialect_for
from sinks.clickhouse.times import encode_time
from sinks.clickhouse.writer import (
    _ROW_DEFAULTS, _ROW_GETTERS, COLUMNS, MAP_COLUMNS, TIME_COLUMNS, ClickHouseWriter,
)

def reference_to_micros(value: Any) -> int | None:
    """Every string through the plain path (`_micros`, which the fast one must agree with)."""
    if isinstance(value, str) and value:
        return _micros(datetime.fromisoformat(value))
    return to_micros(value)


def outcome(f, *args) -> tuple:
    """A result or the exception it raised, comparable (with types: True is not 1)."""
    try:
        return ("value", repr(f(*args)))
    except Exception as exc:  # noqa: BLE001 - the type and message are what is compared
        return ("raised", type(exc), str(exc))


@st.composite
def iso_times(draw) -> str:
    """Extended ISO 8601 as clients write it: any year, 0-9 fraction digits, Z, offsets or none."""
    dt = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
    text = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}{draw(st.sampled_from('T '))}"
    text += f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    digits = draw(st.integers(0, 9))
    if digits:
        text += f".{draw(st.integers(0, 10**digits - 1)):0{digits}d}"
    sign, hours, minutes = draw(st.sampled_from("+-")), draw(st.integers(0, 23)), draw(st.integers(0, 59))
    offset = st.sampled_from([f"{sign}{hours:02d}:{minutes:02d}", f"{sign}{hours:02d}{minutes:02d}",
                              f"{sign}{hours:02d}:{minutes:02d}:30", f"{sign}00:00:00.500000"])
    return text + draw(st.one_of(st.sampled_from(["Z", "+00:00", "-00:00", ""]), offset))


@given(iso_times())
@example("1969-12-31T23:59:59.999999Z")
@example("1970-01-01T00:00:00Z")
@example("1970-01-01T00:30:00+01:00")
@example("0001-01-01T00:00:00Z")
@example("2026-11-27T10:00:00.123456789Z")
@example("2499-12-31T23:59:59.999999Z")  # the last year of the fast path, at its least exact
@example("2499-12-31T23:59:59.999999")
@example("2500-01-01T00:00:00.999999Z")
@example("2600-01-01T00:00:00.999999Z")  # past 2**34 s the general path's float rounds up
@example("9999-12-31T23:59:59.999999+00:00")
def test_to_micros_of_iso_times_is_unchanged(text: str) -> None:
    assert outcome(to_micros, text) == outcome(reference_to_micros, text)


@given(st.one_of(st.text(max_size=40), st.none(), st.booleans(), st.integers(), st.floats(),
                 st.lists(st.integers(), max_size=1), st.dictionaries(st.text(max_size=1), st.integers(), max_size=1)))
@example("")
@example("2026-11-27T10:00:00.Z")
@example("2026-11-27T10:00:00+24:00")
@example("２０２６-11-27T10:00:00Z")
def test_to_micros_of_anything_else_is_unchanged(value: Any) -> None:
    assert outcome(to_micros, value) == outcome(reference_to_micros, value)


def reference_decode(raw: bytes) -> Envelope:
    try:
        d = orjson.loads(raw)
        if d.get("v") != VERSION:
            raise EnvelopeError(f"unsupported envelope version {d.get('v')!r}")
        sdk = d.get("sdk") or {}
        env = Envelope(
            id=d["id"],
            project_id=d["project_id"],
            type=d["type"],
            ts=int(d["ts"]),
            received_at=int(d["received_at"]),
            body=d["body"],
            request_id=d.get("request_id") or "",
            sdk_name=sdk.get("name") or "",
            sdk_version=sdk.get("version") or "",
            source=d.get("source") or "batch",
        )
    except EnvelopeError:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EnvelopeError(f"undecodable envelope: {exc}") from exc
    if not isinstance(env.body, dict):
        raise EnvelopeError("envelope body is not an object")
    return env


JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
                    | st.text(max_size=3), lambda inner: st.lists(inner, max_size=2)
                    | st.dictionaries(st.text(max_size=2), inner, max_size=2), max_leaves=4)
GOOD = {"v": 1, "id": "e1", "project_id": "p1", "type": "span-create", "ts": 5, "received_at": 6,
        "request_id": "r", "sdk": {"name": "n", "version": "1"}, "source": "otel", "body": {"id": "s"}}


@given(st.dictionaries(st.sampled_from(sorted(GOOD)), JSON | st.sampled_from(list(GOOD.values()))),
       st.sets(st.sampled_from(sorted(GOOD))))
@example({}, set())
def test_decode_is_unchanged(over: dict, dropped: set) -> None:
    raw = orjson.dumps({k: over.get(k, v) for k, v in GOOD.items() if k not in dropped})
    got, want = outcome(Envelope.decode, raw), outcome(reference_decode, raw)
    assert got == want
    if got[0] == "value":
        env, ref = Envelope.decode(raw), reference_decode(raw)
        assert [type(getattr(env, f.name)) for f in fields(env)] == [type(getattr(ref, f.name)) for f in fields(ref)]


@pytest.mark.parametrize("raw", [b"", b"[]", b"1", b'"s"', b"{", b"\xff", b'{"v": 1}', b'{"v": 1, "sdk": 1}'])
def test_decode_of_broken_records_is_unchanged(raw: bytes) -> None:
    assert outcome(Envelope.decode, raw) == outcome(reference_decode, raw)


def reference_apply(state: EntityState, env: Envelope, table: str) -> None:
    body, ts = env.body, env.ts or env.received_at
    try:
        sets = [(column, conv(body[key]), ts) for key, (column, conv) in FIELDS[table].items() if key in body]
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
            sets.append(("type", OBSERVATION_TYPES[env.type], -1 if env.type in UPDATE_TYPES else ts))
            if isinstance(body.get("modelParameters"), dict):
                maps.append(("model_parameters", body["modelParameters"]))
            usage, cost = usage_and_cost(body)
            maps += [(column, m) for column, m in (("usage_details", usage), ("cost_details", cost)) if m]
        elif table == SCORE:
            sets += _score_value(body.get("value"), body.get("dataType"), ts)
    except PoisonEvent:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise PoisonEvent(f"{env.type} {state.id}: {exc}") from exc
    for column, value, version in sets:
        state.set(column, value, version)
    for column, m in maps:
        current = state.values.setdefault(column, {})
        for k, v in m.items():
            vkey = f"{column}.{k}"
            if ts >= state.versions.get(vkey, -1):
                current[k] = v
                state.versions[vkey] = ts
    if tags is not None:
        state.union("tags", tags)
    state.first_ts = ts if not state.first_ts else min(state.first_ts, ts)
    state.last_ts = max(state.last_ts, ts)


TIMES = st.sampled_from(["2026-11-27T10:00:00Z", "2026-11-27T10:00:00.5+01:00", "1960-01-01T00:00:00Z", "",
                         "yesterday", "9999-12-31T23:59:59.999999-23:59"]) | st.integers() | st.floats()
BODY_VALUES = {
    "startTime": TIMES, "endTime": TIMES, "completionStartTime": TIMES, "timestamp": TIMES,
    "usage": st.dictionaries(st.sampled_from(["input", "output", "total", "promptTokens", "totalCost", "unit"]),
                             st.integers(-(2**63), 2**63 - 1) | st.floats() | st.booleans() | st.none() | st.text(max_size=2)),
    "usageDetails": JSON, "costDetails": st.dictionaries(st.sampled_from(["input", "total"]), st.floats() | JSON),
    "tags": st.lists(st.text(max_size=2) | st.integers(), max_size=3) | JSON,
    "value": st.floats(allow_nan=False) | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=2) | st.booleans() | JSON,
    "dataType": st.sampled_from(["NUMERIC", "CATEGORICAL", "BOOLEAN", "TEXT"]) | JSON,
}
BODY_KEYS = sorted({*TRACE_FIELDS, *OBSERVATION_FIELDS, *SCORE_FIELDS, *BODY_VALUES, "metadata", "modelParameters"})


@st.composite
def any_events(draw) -> tuple[str, list[Envelope]]:
    table = draw(st.sampled_from([TRACE, OBSERVATION, SCORE]))
    types = {TRACE: ["trace-create"], SCORE: ["score-create"], OBSERVATION: sorted(OBSERVATION_TYPES)}[table]
    events = []
    for i in range(draw(st.integers(1, 5))):
        keys = draw(st.lists(st.sampled_from(BODY_KEYS), max_size=8, unique=True))
        body = {k: draw(BODY_VALUES.get(k, JSON)) for k in keys}
        ts = draw(st.sampled_from([0, 1, 5, 1_795_000_000_000_000]))
        events.append(Envelope(f"e{i}", "p", draw(st.sampled_from(types)), ts, draw(st.sampled_from([1, 7])), body))
    return table, events


def folded(fold, table: str, events: list[Envelope]) -> tuple:
    state, poison = EntityState("p", "x"), []
    for env in events:
        try:
            fold(state, env, table)
        except PoisonEvent as exc:
            poison.append(str(exc))
    # Key order too: field_versions and the map columns are written as JSON text.
    return repr(state), repr(list(state.versions.items())), poison


@settings(max_examples=500)
@given(any_events())
def test_apply_is_unchanged(table_events: tuple[str, list[Envelope]]) -> None:
    table, events = table_events
    assert folded(apply, table, events) == folded(reference_apply, table, events)


def reference_row(dialect: Dialect, table: str, s: EntityState) -> tuple:
    v = dict(_ROW_DEFAULTS[table])
    for column, value in s.values.items():
        v[column] = value
    v["project_id"], v["id"] = s.project_id, s.id
    if table == OBSERVATION:
        usage, cost = with_totals(v.get("usage_details") or {}, v.get("cost_details") or {})
        v["usage_details"], v["cost_details"] = usage, cost
        v["input_tokens"] = max(0, int(usage.get("input", 0)))
        v["output_tokens"] = max(0, int(usage.get("output", 0)))
        v["total_tokens"] = max(0, int(usage.get("total", 0)))
        v["total_cost"] = cost.get("total")
        v["start_time"] = s.values.get("start_time", s.first_ts)
    else:
        v["timestamp"] = s.values.get("timestamp", s.first_ts)
    for column in MAP_COLUMNS[table]:
        v[column] = orjson.dumps(v.get(column) or {}).decode()
    v["field_versions"] = orjson.dumps(s.versions).decode()
    v["created_at"], v["updated_at"] = s.first_ts, s.last_ts
    v["event_ts"], v["is_deleted"] = s.revision, 0
    for column in TIME_COLUMNS[table]:
        if v.get(column) is not None:
            v[column] = encode_time(v[column], dialect.subsecond_type)
    return _ROW_GETTERS[table](v)


US = st.integers(0, 4_102_444_800_000_000)


@st.composite
def stored_states(draw) -> tuple[str, EntityState]:
    """States as a fold or a load leaves them: any column, times in µs, maps, tags."""
    table = draw(st.sampled_from([TRACE, OBSERVATION, SCORE]))
    state = EntityState("p", "x", first_ts=draw(US), last_ts=draw(US), revision=draw(US))
    for column in draw(st.lists(st.sampled_from(COLUMNS[table]), max_size=12, unique=True)):
        if column in TIME_COLUMNS[table]:
            value = draw(US)
        elif column in MAP_COLUMNS[table]:
            value = draw(st.dictionaries(st.text(max_size=2), st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)))
        else:
            value = draw(JSON)
        state.values[column] = value
        state.versions[column] = draw(US)
    return table, state


def folded_state(table: str, events: list[Envelope]) -> EntityState:
    state = EntityState("p", "x")
    for env in events:
        try:
            apply(state, env, table)
        except PoisonEvent:
            pass
    state.revision = state.last_ts
    return state


@settings(max_examples=300)
@given(st.one_of(stored_states(), any_events().map(lambda te: (te[0], folded_state(*te)))))
@pytest.mark.parametrize("version", [(18, 16, 1), (24, 8)])
def test_rows_are_unchanged(version: tuple[int, ...], table_state: tuple[str, EntityState]) -> None:
    table, state = table_state
    dialect = dialect_for(version)
    writer = ClickHouseWriter(None, dialect)  # type: ignore[arg-type]  # _row never calls the store
    assert outcome(writer._row, table, state) == outcome(reference_row, dialect, table, state)



class _Store:
    """Holds no rows; keeps what is inserted."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    async def fetch(self, sql: str, *, operation: str = "query", ids: object = None) -> list[tuple]:
        return []

    async def insert(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        self.rows += rows


async def test_write_folds_an_entitys_events_in_time_order() -> None:
    # Tags are a list in first-seen order: it shows the order the events were folded in.
    late = Envelope("b", "p", "trace-create", 2, 2, {"id": "t", "tags": ["late"]})
    early = Envelope("a", "p", "trace-create", 1, 1, {"id": "t", "tags": ["early"]})
    single = Envelope("c", "p", "trace-create", 3, 3, {"id": "u", "tags": ["only"]})
    store = _Store()
    assert await ClickHouseWriter(store, dialect_for((18, 16, 1))).write([late, single, early]) == []  # type: ignore[arg-type]
    tags = {row[COLUMNS[TRACE].index("id")]: row[COLUMNS[TRACE].index("tags")] for row in store.rows}
    assert tags == {"t": ["early", "late"], "u": ["only"]}
