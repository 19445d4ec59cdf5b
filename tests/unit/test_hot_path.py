"""What the hot path must do, checked against oracles worked out apart from its code.

- Times: ISO 8601 text (Z, an offset, or none for UTC; any fraction digits, cut to the µs) and
  epoch numbers (s, ms, µs or ns, told apart by size) become integer µs; anything else raises ValueError.
- Envelopes: decode(encode(e)) == e, types included; a broken record raises EnvelopeError and
  nothing else; a version-1 body's times come out in µs, as to_micros reads them.
- Fold: an event is applied whole or not at all; per field (and per map key) the latest event time
  wins, a tie goes to the event folded later, null never overwrites, tags are a union; the same
  events at distinct times fold to the same state in any order.
- Rows: every column in order, from the state or its default; each time decodes back to its µs.
"""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import date, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from pipeline.envelope import GROUP_VERSION, TEXT_FIELDS, VERSION, Envelope, Group, decode_record
from pipeline.errors import EnvelopeError, PoisonEvent
from pipeline.events import EVENT_TYPES, OBSERVATION_TYPES, TIME_FIELDS, UPDATE_TYPES
from pipeline.fold import FIELDS, FIRST_WINS, OBSERVATION, SCORE, TRACE, EntityState, apply, usage_and_cost
from pipeline.prices import priced
from pipeline.times import MAX_US, column_of_micros, micros_of_column, micros_to_iso, to_micros
from sinks.clickhouse.schema import dialect_for
from sinks.clickhouse.versions import versions_text
from sinks.clickhouse.writer import _ROW_DEFAULTS, COLUMNS, MAP_COLUMNS, TIME_COLUMNS, ClickHouseWriter
from tests.support import deep_copy

FAST = settings(max_examples=200, deadline=None, database=None)
EPOCH_DAY = date(1970, 1, 1)
US = st.integers(0, MAX_US - 1)  # the times the edge accepts: 1970 up to 2100
TEXT = st.text(st.characters(codec="utf-8"), max_size=4)
INT64 = st.integers(-(2**63), 2**63 - 1)
SCALARS = st.none() | st.booleans() | INT64 | st.floats(allow_nan=False, allow_infinity=False) | TEXT
JSON = st.recursive(SCALARS, lambda j: st.lists(j, max_size=2) | st.dictionaries(TEXT, j, max_size=2), max_leaves=4)


def civil_micros(day: date, h: int = 0, m: int = 0, s: int = 0, us: int = 0) -> int:
    """µs since the epoch of a UTC wall-clock time, worked out from the calendar alone."""
    return (day.toordinal() - EPOCH_DAY.toordinal()) * 86_400 * 10**6 + ((h * 60 + m) * 60 + s) * 10**6 + us


@st.composite
def iso_times(draw: st.DrawFn) -> tuple[str, int]:
    """ISO 8601 as clients send it (years 1..9999, 0-9 fraction digits, any offset), with its µs."""
    day, clock = draw(st.dates()), [draw(st.integers(0, top)) for top in (23, 59, 59)]
    digits = draw(st.text("0123456789", max_size=9))
    text = f"{day}{draw(st.sampled_from('T '))}" + ":".join(f"{x:02d}" for x in clock) + (digits and f".{digits}")
    # The offset: Z or none, else ±hh, ±hh:mm, ±hhmm, ±hh:mm:ss or ±hh:mm:ss.ffffff.
    n, sep = draw(st.sampled_from([(0, "Z"), (0, ""), (1, ":"), (2, ":"), (2, ""), (3, ":"), (4, ":")]))
    sign, parts = draw(st.sampled_from([1, -1])), [draw(st.integers(0, top)) for top in (23, 59, 59, 999_999)][:n]
    assume(n < 4 or any(parts[:3]))  # CPython 3.11 reads +00:00:00.000001 as UTC; no client sends that
    if n:
        text += "+-"[sign < 0] + sep.join(f"{x:02d}" for x in parts[:3]) + (f".{parts[3]:06d}" if n == 4 else "")
    else:
        text += sep
    offset = sign * civil_micros(EPOCH_DAY, *parts)
    return text, civil_micros(day, *clock, int(digits[:6].ljust(6, "0"))) - offset


@FAST
@given(iso_times())
@example(("1969-12-31T23:59:59.9999999Z", -1))  # digits past the µs are cut, not rounded
@example(("2026-11-27T10:00:00.123456789+01:00", 1_795_770_000_123_456))
@example(("0001-01-01T00:00:00+05:00", -62_135_614_800_000_000))
@example(("9999-12-31T23:59:59.999999-23:59", 253_402_387_139_999_999))
def test_to_micros_reads_iso_8601_exactly(text_and_us: tuple[str, int]) -> None:
    text, us = text_and_us
    assert to_micros(text) == us


@FAST
@given(US)
@example(MAX_US - 1)
def test_micros_go_out_as_utc_text_and_columns_and_come_back(us: int) -> None:
    days, rest = divmod(us, 86_400 * 10**6)
    seconds, fraction = divmod(rest, 10**6)
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{fraction:06d}Z"
    assert micros_to_iso(us) == f"{EPOCH_DAY + timedelta(days=days)}T{clock}"
    assert to_micros(micros_to_iso(us)) == us
    legacy, modern = column_of_micros(us, False), column_of_micros(us, True)
    assert type(legacy) is int and micros_of_column(legacy) == us
    assert isinstance(modern, datetime) and modern.utcoffset() == timedelta(0)
    assert civil_micros(modern.date(), modern.hour, modern.minute, modern.second, modern.microsecond) == us
    assert micros_of_column(modern) == micros_of_column(modern.replace(tzinfo=None)) == us


@FAST
@given(st.integers(10**14, MAX_US - 1), st.integers(0, 999))  # from 1973 on, a number's size says its unit
def test_to_micros_reads_epoch_numbers_by_magnitude(us: int, ns: int) -> None:
    s, ms = us // 10**6, us // 10**3
    assert (to_micros(s), to_micros(ms), to_micros(us)) == (s * 10**6, ms * 10**3, us)
    assert to_micros(us / 10**6) == us  # float seconds, as time.time() gives them
    assert abs(to_micros(us * 1000 + ns) * 1000 - (us * 1000 + ns)) <= 2000  # ns pass through a double


NOT_TIMES = st.booleans() | st.binary(max_size=3) | st.lists(INT64, max_size=1) | st.dictionaries(TEXT, SCALARS)
NOT_TIMES |= st.sampled_from([float("nan"), float("inf"), -float("inf"), 10**20, -(10**20), 1e20])  # beyond ns


@FAST
@given(NOT_TIMES)
@example("yesterday")
@example("2026-02-30T00:00:00Z")
@example("2026-11-27T10:00:00+24:00")
@example("２０２６-11-27T10:00:00Z")
def test_to_micros_refuses_what_is_not_a_time(value: Any) -> None:
    with pytest.raises(ValueError):
        to_micros(value)


@FAST
@given(st.text(max_size=30) | st.floats() | INT64 | st.none())
def test_to_micros_gives_micros_or_none_or_a_value_error(value: Any) -> None:
    try:
        got = to_micros(value)
    except ValueError:
        return
    assert got is None if value is None or value == "" else type(got) is int


# ---- envelopes
BODIES = st.dictionaries(TEXT | st.sampled_from(TEXT_FIELDS), JSON, max_size=4)
ENVELOPES = st.builds(Envelope, TEXT, TEXT, st.sampled_from(sorted(EVENT_TYPES)) | TEXT, INT64, INT64, BODIES)
# An empty source reads back as the default, "batch".
ENVELOPES = st.builds(replace, ENVELOPES, request_id=TEXT, sdk_name=TEXT, sdk_version=TEXT, source=TEXT.filter(bool))
V1_TIMES = iso_times().map(lambda t: t[0]) | US | st.floats(1e8, 4e9) | JSON


@FAST
@given(ENVELOPES)
def test_decode_inverts_encode(env: Envelope) -> None:
    got = Envelope.decode(env.encode())
    assert got == env
    assert [type(getattr(got, f.name)) for f in fields(got)] == [type(getattr(env, f.name)) for f in fields(env)]
    assert got.encode() == env.encode()  # the body keeps its types too: True is not 1, 1.0 not 1


@FAST
@given(ENVELOPES, st.data())
def test_decode_reads_a_version_1_bodys_times_as_to_micros_does(env: Envelope, data: st.DataObject) -> None:
    names = TIME_FIELDS.get(env.type, ())
    env.body.update({name: data.draw(V1_TIMES) for name in names if data.draw(st.booleans())})
    want = dict(env.body)
    for name in names:
        if want.get(name) is not None:
            try:
                want[name] = to_micros(want[name])
            except ValueError:
                pass  # not a time: left as it is, for the fold to refuse
    got = Envelope.decode(replace(env, v=1).encode())
    assert got == replace(env, body=want, v=VERSION)
    assert orjson.dumps(got.body) == orjson.dumps(want)


GOOD = {"v": 2, "id": "e", "project_id": "p", "type": "span-create", "ts": 5, "received_at": 6, "request_id": "r"}
GOOD |= {"sdk": {"name": "n", "version": "1"}, "source": "otel", "body": {"startTime": 1}}
REQUIRED, KEYS = {"v", "id", "project_id", "type", "ts", "received_at", "body"}, st.sampled_from(sorted(GOOD))
RECORDS = st.builds(
    lambda drop, over: {k: over.get(k, v) for k, v in GOOD.items() if k not in drop},
    st.sets(KEYS),
    st.dictionaries(KEYS, JSON | st.sampled_from([1, 2])),
)


@FAST
@given(RECORDS | JSON | st.binary(max_size=20))
@example({**GOOD, "v": 1, "type": []})
@example({**GOOD, "sdk": "x"})
@example(b"")
def test_decode_refuses_broken_records_with_envelope_error_only(record: Any) -> None:
    try:
        Envelope.decode(record if isinstance(record, bytes) else orjson.dumps(record))
    except EnvelopeError:
        return
    assert isinstance(record, dict) and record.keys() >= REQUIRED and record["v"] in (1, 2)
    assert isinstance(record["type"], str) and isinstance(record["body"], dict)


def grouped(envs: list[Envelope]) -> bytes:
    """The edge's record for envelopes of one request (the first's shared fields)."""
    first = envs[0]
    group = Group(
        Group.opening(
            first.project_id, first.received_at, first.request_id, first.sdk_name, first.sdk_version, first.source
        )
    )
    for env in envs:
        group.add(Group.item(env.id, env.type, env.ts, env.body))
    return group.record()


@FAST
@given(ENVELOPES, st.lists(st.tuples(TEXT, st.sampled_from(sorted(EVENT_TYPES)) | TEXT, INT64, BODIES), max_size=5))
def test_a_group_record_reads_back_as_its_envelopes_in_order(first: Envelope, more: list[Any]) -> None:
    envs = [first] + [replace(first, id=i, type=t, ts=ts, body=b) for i, t, ts, b in more]
    raw = grouped(envs)
    got = decode_record(raw)
    doc = orjson.loads(raw[raw.index(b"\n") + 1 :][: int(raw[3 : raw.index(b"\n")])])
    # No text in the JSON: the edge's bodies hold 0 in their place.
    placed = [{k: e[3][k] for i, k in enumerate(TEXT_FIELDS) if len(e) == 5 and e[4][i] >= 0} for e in doc["events"]]
    assert placed == [dict.fromkeys((k for k in TEXT_FIELDS if env.body.get(k) is not None), 0) for env in envs]
    # Inputs and outputs come back as the JSON texts of their values.
    assert [replace(a, body=a.plain_body(), texts=False) for a in got] == envs
    for a, b in zip(got, envs, strict=True):
        assert [type(getattr(a, f.name)) for f in fields(a)] == [type(getattr(b, f.name)) for f in fields(b)]
        assert a.encode() == b.encode()  # alone (a dead letter, a requeue) it is a version-2 envelope
        texts = {k: orjson.dumps(b.body[k]).decode() for k in TEXT_FIELDS if b.body.get(k) is not None}
        assert a.texts == bool(texts) and {k: a.body[k] for k in texts} == texts
    assert orjson.loads(got[0].encode())["v"] == VERSION


def test_version_3_records_still_read_and_version_4_is_framed() -> None:
    old = {**GROUP, "v": 3, "events": [["e", "span-create", 5, {"input": {"q": 1}, "output": "a"}]]}
    [env] = decode_record(orjson.dumps(old))
    assert env.body == {"input": {"q": 1}, "output": "a"} and not env.texts
    raw = grouped([env])
    assert raw.startswith(b"v4 ") and raw.endswith(b'{"input":0,"output":0},[7,3]]]}{"q":1}"a"')
    [again] = decode_record(raw)
    assert again.texts and again.body == {"input": '{"q":1}', "output": '"a"'} and again.plain_body() == env.body
    with pytest.raises(EnvelopeError):  # version 4 is only ever framed
        decode_record(orjson.dumps({**old, "v": GROUP_VERSION}))
    with pytest.raises(EnvelopeError):  # a version-3 event holds no lengths
        decode_record(orjson.dumps({**old, "events": [["e", "span-create", 5, {}, [-1, -1]]]}))


@FAST
@given(ENVELOPES)
def test_a_version_2_record_reads_back_as_one_envelope(env: Envelope) -> None:
    assert decode_record(env.encode()) == [env]


GROUP = {"v": 3, "project_id": "p", "received_at": 6, "request_id": "r", "source": "otel"}  # unframed: 3
GROUP |= {"sdk": {"name": "n", "version": "1"}, "events": [["e", "span-create", 5, {"startTime": 1}]]}
GROUP_KEYS = st.sampled_from(sorted(GROUP))
GROUPS = st.builds(
    lambda drop, over: {k: over.get(k, v) for k, v in GROUP.items() if k not in drop},
    st.sets(GROUP_KEYS),
    st.dictionaries(GROUP_KEYS, JSON | st.lists(JSON | st.lists(JSON, max_size=5), max_size=3)),
)


@st.composite
def framed(draw: st.DrawFn) -> bytes:
    """A version-4 record, or something like one: its prefix, JSON and texts each perhaps off."""
    group = draw(GROUPS)
    if draw(st.booleans()):
        group["v"] = GROUP_VERSION
    if draw(st.booleans()):
        group["events"] = [["e", "span-create", 5, {"startTime": 1}, draw(st.lists(INT64 | JSON, max_size=3))]]
    doc = orjson.dumps(group)
    texts = draw(st.sampled_from([b"", b'"a"', b'{"q":1}"a"', b"\xff\xfe", b"1"]))
    length = draw(st.sampled_from([len(doc)] * 3 + [len(doc) - 1, len(doc) + 1, 0, 10**9]))
    prefix = draw(st.sampled_from([b"v4 %d\n" % length] * 4 + [b"v4 \n", b"v4 -1\n", b"v4 %d" % length]))
    return prefix + doc + texts


@FAST
@given(GROUPS | RECORDS | JSON | st.binary(max_size=20) | framed())
@example({**GROUP, "events": []})
@example({**GROUP, "events": [["e", "span-create", 5]]})
@example({**GROUP, "events": [["e", "span-create", 5, {}], ["e", 1, 5, {}]]})
@example({**GROUP, "sdk": {"name": 1, "version": "1"}})
def test_decode_record_refuses_broken_records_with_envelope_error_only(record: Any) -> None:
    raw = record if isinstance(record, bytes) else orjson.dumps(record)
    try:
        got = decode_record(raw)
    except EnvelopeError:
        return
    assert got  # a record that reads holds at least one event
    if isinstance(record, bytes) and record.startswith(b"v4 "):
        doc = orjson.loads(record[record.index(b"\n") + 1 :][: int(record[3 : record.index(b"\n")])])
        assert doc["v"] == GROUP_VERSION and len(got) == len(doc["events"])
        assert all(type(e.body) is dict and type(e.ts) is int and type(e.id) is str for e in got)
        assert all(type(e.body.get(k)) is str for e in got if e.texts for k in TEXT_FIELDS if k in e.body)
    elif isinstance(record, dict) and record.get("v") == 3:
        assert len(got) == len(record["events"]) and not any(e.texts for e in got)
        assert all(type(e.body) is dict and type(e.ts) is int and type(e.id) is str for e in got)
    else:
        assert got == [Envelope.decode(raw)]


# ---- the fold
Events = tuple[str, list[Envelope]]  # a table and one entity's events


def when(env: Envelope) -> int:
    return env.ts or env.received_at


KINDS = {k: sorted(t for t in OBSERVATION_TYPES if OBSERVATION_TYPES[t] == k) for k in OBSERVATION_TYPES.values()}
TYPES = {TRACE: [["trace-create"]], SCORE: [["score-create"]], OBSERVATION: sorted(KINDS.values())}
EXTRA = {TRACE: ["tags"], SCORE: [], OBSERVATION: ["modelParameters", "usage", "usageDetails", "costDetails"]}
TIME_KEYS = {name for names in TIME_FIELDS.values() for name in names}
AMOUNT = st.integers(-(10**15), 10**15) | st.floats(-1e15, 1e15) | SCALARS
AMOUNTS = st.dictionaries(st.sampled_from(["input", "output", "total", "promptTokens", "totalCost", "unit"]), AMOUNT)
VALUES = {k: st.none() | US for k in TIME_KEYS} | dict.fromkeys(["usage", "usageDetails", "costDetails"], AMOUNTS)
VALUES |= dict.fromkeys(["metadata", "modelParameters"], st.dictionaries(st.sampled_from("ab"), SCALARS) | JSON)
VALUES["tags"] = st.lists(TEXT, max_size=3) | JSON
# What JSON carries but some fields refuse: a time that is not µs, a usage count past int64.
BAD = st.sampled_from(["2026-11-27T10:00:00Z", 1.5, True, [1], {"a": 1}, 2**64 - 1, 1e300, -1e300])


@st.composite
def entity_events(draw: st.DrawFn, bad: bool = False) -> Events:
    """One entity's events (an observation's of one kind): a few fields and times shared among them, so
    that events often set the same field (and map key) at the same time; `bad` spoils some."""
    table = draw(st.sampled_from(sorted(FIELDS)))
    keys = ["metadata", *draw(st.lists(st.sampled_from(sorted({*FIELDS[table], *EXTRA[table]})), max_size=3))]
    times = draw(st.lists(st.integers(1, MAX_US - 1), min_size=1, max_size=3))
    types, events = draw(st.sampled_from(TYPES[table])), []
    for i in range(draw(st.integers(1, 5))):
        body = {k: draw(VALUES.get(k, JSON)) for k in draw(st.lists(st.sampled_from(keys), min_size=1, unique=True))}
        if bad and body and draw(st.booleans()):
            body[draw(st.sampled_from(sorted(body)))] = draw(BAD)
        t = draw(st.sampled_from(times))
        ts, received = draw(st.sampled_from([(t, draw(US)), (0, t)]))  # no client time: the edge's
        events.append(Envelope(f"e{i}", "p", draw(st.sampled_from(types)), ts, received, body))
    return table, events


def fold(table: str, events: list[Envelope]) -> tuple[EntityState, list[str]]:
    """The state and the poison events; checks that a poison event changes nothing, and that a body
    time which is not µs (an int) is poison."""
    state, poison = EntityState("p", "x"), []
    for env in events:
        before = deep_copy(state)
        try:
            apply(state, env, table)
        except PoisonEvent:
            assert state == before
            poison.append(env.id)
        else:
            assert all(type(env.body.get(k)) in (int, type(None)) for k in TIME_KEYS & set(FIELDS[table]))
    return state, poison


@FAST
@given(entity_events(bad=True))
def test_an_entity_folds_alike_from_its_record(events: Events) -> None:
    """Inputs and outputs as texts (a version-4 record) give the state their values give."""
    table, envs = events
    envs = [replace(env, received_at=envs[0].received_at) for env in envs]  # one request's
    try:
        raw = grouped(envs)
    except orjson.JSONEncodeError:
        return  # the edge refuses such an event (400) before any stage sees it
    got = decode_record(raw)
    assert fold(table, got) == fold(table, envs)


def replayed(table: str, events: list[Envelope]) -> EntityState:
    """The oracle: oldest first (a stable sort: of equal times, the later folded), each event overwrites
    the fields and map keys it carries, but for the FIRST_WINS fields an earlier event set."""
    state = EntityState("p", "x", first_ts=min(map(when, events), default=0), last_ts=max(map(when, events), default=0))
    for env in sorted(events, key=when):
        t, body, metadata = when(env), env.body, env.body.get("metadata")
        for key, (column, conv) in FIELDS[table].items():
            if key in body and (value := conv(body[key])) is not None:
                if column in FIRST_WINS and state.versions.get(column, t) < t:
                    continue  # the earliest event's value stays
                state.values[column], state.versions[column] = value, t
        wrapped = {} if metadata is None else metadata if isinstance(metadata, dict) else {"metadata": metadata}
        maps = {"metadata": wrapped}  # metadata that is not an object is kept under "metadata"
        if table == OBSERVATION:
            params = body.get("modelParameters")
            maps["model_parameters"] = params if isinstance(params, dict) else {}
            maps["usage_details"], maps["cost_details"] = usage_and_cost(body)
        for column, m in maps.items():
            for k, v in m.items():
                state.values.setdefault(column, {})[k], state.versions[f"{column}.{k}"] = v, t
    if table == OBSERVATION and events:  # a create fixes the type; updates only stand in for a missing create
        state.values["type"] = OBSERVATION_TYPES[events[0].type]
        state.versions["type"] = max((when(e) for e in events if e.type not in UPDATE_TYPES), default=-1)
    tags = [str(t) for e in events if isinstance(e.body.get("tags"), list) for t in e.body["tags"]]
    if table == TRACE and tags:
        state.values["tags"] = list(dict.fromkeys(tags))  # in the order first seen
    return state


def observed(state: EntityState, tag_order: bool = True) -> tuple[Any, ...]:
    values = {k: v for k, v in state.values.items() if v != {} and v != []}  # an empty map is no map
    if "tags" in values and not tag_order:
        values["tags"] = sorted(values["tags"])
    return values, state.versions, state.first_ts, state.last_ts


@FAST
@given(entity_events(bad=True), st.randoms(use_true_random=False))
def test_fold_is_latest_writer_wins_all_or_nothing_in_any_order(table_events: Events, rnd: Any) -> None:
    table, events = table_events
    state, poison = fold(table, events)
    assert observed(state) == observed(replayed(table, [e for e in events if e.id not in poison]))
    if len({when(e) for e in events}) == len(events):  # no ties: the order is nobody's business
        again, poison_again = fold(table, rnd.sample(events, len(events)))
        assert observed(again, tag_order=False) == observed(state, tag_order=False)
        assert sorted(poison_again) == sorted(poison)


# ---- ClickHouse rows
DERIVED = {"project_id", "id", "field_versions", "created_at", "updated_at", "event_ts", "is_deleted", "total_cost"}
DERIVED |= {"input_tokens", "output_tokens", "total_tokens", "usage_pricing_model_id", "usage_pricing_tier_name"}
PARTS, MAP = st.sampled_from(["input", "output", "total", "x"]), st.dictionaries(TEXT, JSON, max_size=3)
ROW_VALUES = {"metadata": MAP, "model_parameters": MAP, "tags": st.lists(TEXT, max_size=3), "public": st.integers(0, 1)}
ROW_VALUES["value"] = st.floats(allow_nan=False)
ROW_VALUES["usage_details"] = st.dictionaries(PARTS, st.integers(-(10**15), 10**15))
ROW_VALUES["cost_details"] = st.dictionaries(PARTS, st.floats(-1e15, 1e15))


@st.composite
def stored_states(draw: st.DrawFn) -> tuple[str, EntityState]:
    """A state as a fold or a load leaves it: any of its columns, times in µs, maps by key, else text."""
    table = draw(st.sampled_from(sorted(COLUMNS)))
    state = EntityState(draw(TEXT), draw(TEXT), first_ts=draw(US), last_ts=draw(US), revision=draw(US))
    state.versions = draw(st.dictionaries(TEXT, US, max_size=3))
    others = st.sampled_from(sorted(set(COLUMNS[table]) - DERIVED - set(MAP_COLUMNS[table])))
    for column in [*MAP_COLUMNS[table], *draw(st.lists(others, max_size=10, unique=True))]:
        state.values[column] = draw(US if column in TIME_COLUMNS[table] else ROW_VALUES.get(column, TEXT))
    return table, state


@FAST
@given(stored_states() | entity_events().map(lambda te: (te[0], fold(*te)[0])))
@pytest.mark.parametrize("version", [(18, 16, 1), (24, 8)])
def test_a_row_is_the_state_in_column_order(version: tuple[int, ...], table_state: tuple[str, EntityState]) -> None:
    table, s = table_state
    row = ClickHouseWriter(None, dialect_for(version))._row(table, s)  # type: ignore[arg-type]  # no store needed
    assert type(row) is tuple and len(row) == len(COLUMNS[table])
    want = {**_ROW_DEFAULTS[table], **s.values, "project_id": s.project_id, "id": s.id, "event_ts": s.revision}
    want |= {"field_versions": versions_text(s.versions), "is_deleted": 0}
    first = "start_time" if table == OBSERVATION else "timestamp"
    want |= {"created_at": s.first_ts, "updated_at": s.last_ts, first: s.values.get(first, s.first_ts)}
    if table == OBSERVATION:
        # No model prices (an empty price book): only the totals the client left out are added.
        usage, cost, _ = priced(s.values.get("usage_details", {}), s.values.get("cost_details", {}), None)
        want |= {"usage_details": usage, "cost_details": cost, "total_cost": cost.get("total")}
        want |= {f"{k}_tokens": max(0, usage.get(k, 0)) for k in ("input", "output", "total")}
    want |= {column: orjson.dumps(want[column] or {}).decode() for column in MAP_COLUMNS[table]}
    for column, got in zip(COLUMNS[table], row, strict=True):
        if column in TIME_COLUMNS[table] and want[column] is not None:
            modern = isinstance(got, datetime) and got.utcoffset() == timedelta(0)
            assert modern if version >= (20, 1) else type(got) is int, column
            assert micros_of_column(got) == want[column], column
        else:
            assert (got, type(got)) == (want[column], type(want[column])), column


@FAST
@given(st.lists(stored_states(), max_size=6))
@pytest.mark.parametrize("version", [(18, 16, 1), (24, 8)])
def test_rows_built_by_column_are_each_states_row(
    version: tuple[int, ...], states: list[tuple[str, EntityState]]
) -> None:
    writer = ClickHouseWriter(None, dialect_for(version))  # type: ignore[arg-type]  # no store needed
    for table in COLUMNS:
        mine = [s for t, s in states if t == table]
        columns = writer._rows(table, mine)
        assert len(columns) == len(mine) and len(columns.values) == len(COLUMNS[table])
        assert list(columns) == [writer._row(table, s) for s in mine]


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
