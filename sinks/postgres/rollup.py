"""The pure part of the Postgres projection: a batch folded per trace, and what it changes.

`fold_batch` judges and folds events into per-trace deltas (the trace's session, user and
extent, and the states of its generations). `apply_to_stored` joins one trace's delta into its
stored state and returns the changes to sessions, users and usage_daily. No I/O here, so the
arithmetic is tested without a database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from pipeline.envelope import Envelope
from pipeline.errors import PoisonEvent
from pipeline.events import MAX_KEY_CHARS, OBSERVATION_TYPES
from pipeline.fold import UNSET, EntityState, as_text, body_time, usage_and_cost
from pipeline.prices import ATTRIBUTE_TEXT_MAX, PriceBook, attribute_text, priced, usage_total

# Observation events that feed the usage ledger: generations, and anything carrying a model or usage.
GENERATION_EVENTS: Final = frozenset({"generation-create", "generation-update", "embedding-create"})
USAGE_FIELDS: Final = ("model", "usage", "usageDetails", "costDetails")
# The parts of a generation's folded state that place and size its contribution.
GENERATION_COLUMNS: Final = ("provided_model_name", "start_time")
# The ledger's usage keys; every usage and cost key is kept, as each may be priced.
USAGE_KEYS: Final = ("input", "output", "total")
# model_parameters and metadata: only the keys some pricing tier's condition reads, as text.
GENERATION_MAPS: Final[dict[str, tuple[str, ...] | None]] = {
    "usage_details": None,
    "cost_details": None,
    "model_parameters": None,
    "metadata": None,
}
# Where a generation's body holds what a tier's attribute condition reads, by its source.
_ATTRIBUTE_FIELDS: Final = (("model_parameters", "modelParameters"), ("metadata", "metadata"))
TRACE_COLUMNS: Final = ("session_id", "user_id")
# Ids, session and user ids and model names are primary-key parts; a btree entry must stay small.
# MAX_KEY_CHARS is the edge's own limit (pipeline/events.py): events published before the edge
# checked it are still dead-lettered here.
# Event times beyond what a timestamp column holds (|µs| >= 1e17 is past the year 5000).
MAX_EVENT_US: Final = 10**17
# Per generation and token kind: keeps the ledger's bigint sums far from overflowing (the batch
# API takes any number; ClickHouse's UInt64 columns refuse what is past their range instead).
TOKENS_MAX: Final = 10**12

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
# What a datetime can hold, with a day to spare for time zones: an absurd time is clamped, so
# it can never raise OverflowError (which the stage would retry forever) on its way to a column.
_MIN_US: Final = (datetime(1, 1, 2, tzinfo=UTC) - _EPOCH) // _US
_MAX_US: Final = (datetime(9999, 12, 30, tzinfo=UTC) - _EPOCH) // _US
_EPOCH_ORDINAL: Final = _EPOCH.toordinal()
_US_PER_DAY: Final = 86_400_000_000
_DAYS: Final[dict[int, date]] = {}
_ZERO: Final = Decimal(0)
Key = tuple[str, str]  # project_id, trace id


# init=False and written __init__s here: the decorator's own is interpreted Python even
# compiled (pipeline/envelope.py's Envelope says more), and these are made per trace and event.
@dataclass(init=False)
class Generation:
    state: EntityState
    events: set[str]  # ids of the events folded in

    def __init__(self, state: EntityState, events: set[str] | None = None) -> None:
        self.state = state
        self.events = set() if events is None else events


@dataclass(init=False)
class TraceDelta:
    """What a batch says about one trace: its own fields and extent, and its generations'."""

    state: EntityState
    generations: dict[str, Generation]

    def __init__(self, state: EntityState, generations: dict[str, Generation] | None = None) -> None:
        self.state = state
        self.generations = {} if generations is None else generations


class Contribution:
    """One generation's share of the ledger. A plain class with its own __init__: one is made per
    generation and batch, and both a frozen dataclass's __init__ (~1 µs) and a NamedTuple's
    __new__ are generated Python, also when this module is compiled."""

    __slots__ = ("cost", "day", "events", "input", "model", "output", "total")

    def __init__(self, day: date, model: str, events: int, input: int, output: int, total: int, cost: Decimal) -> None:
        self.day, self.model, self.events, self.cost = day, model, events, cost
        self.input, self.output, self.total = input, output, total


@dataclass(init=False)
class Aggregate:
    """The change a batch makes to one session or user."""

    count: int
    first: int | None
    last: int | None
    user: str
    user_ts: int

    def __init__(
        self, count: int = 0, first: int | None = None, last: int | None = None, user: str = "", user_ts: int = -1
    ) -> None:
        self.count, self.first, self.last, self.user, self.user_ts = count, first, last, user, user_ts

    def widen(self, first: int, last: int) -> None:
        if first:
            self.first = first if self.first is None else min(self.first, first)
        if last:
            self.last = last if self.last is None else max(self.last, last)


@dataclass(init=False)
class Changes:
    """A batch's changes to the aggregates, accumulated over its traces."""

    sessions: dict[Key, Aggregate]
    users: dict[Key, Aggregate]
    # (project, day, model) -> [observations, events, input, output, total, cost]
    usage: dict[tuple[str, date, str], list[Any]]

    def __init__(
        self,
        sessions: dict[Key, Aggregate] | None = None,
        users: dict[Key, Aggregate] | None = None,
        usage: dict[tuple[str, date, str], list[Any]] | None = None,
    ) -> None:
        self.sessions = {} if sessions is None else sessions
        self.users = {} if users is None else users
        self.usage = {} if usage is None else usage

    def add(self, other: Changes) -> None:
        """Fold in `other`, as if its traces had been joined into this one after its own."""
        for mine, theirs in ((self.sessions, other.sessions), (self.users, other.users)):
            for key, b in theirs.items():
                a = mine.get(key)
                if a is None:
                    a = mine[key] = Aggregate()
                a.count += b.count
                a.widen(b.first or 0, b.last or 0)
                if b.user and b.user_ts >= a.user_ts:
                    a.user, a.user_ts = b.user, b.user_ts
        for bucket, delta in other.usage.items():
            row = self.usage.get(bucket)
            if row is None:
                row = self.usage[bucket] = [0, 0, 0, 0, 0, Decimal(0)]
            for i, v in enumerate(delta):
                row[i] += v


@dataclass(init=False)
class StoredTrace:
    """A row of trace_states; `generations` as read: every one, or those a batch folds."""

    project_id: str
    trace_id: str
    session_id: str
    session_ts: int
    user_id: str
    user_ts: int
    first_seen: int
    last_seen: int
    generations: dict[str, Any]

    def __init__(
        self,
        project_id: str,
        trace_id: str,
        session_id: str = "",
        session_ts: int = -1,
        user_id: str = "",
        user_ts: int = -1,
        first_seen: int = 0,
        last_seen: int = 0,
        generations: dict[str, Any] | None = None,
    ) -> None:
        self.project_id, self.trace_id, self.session_id, self.session_ts = project_id, trace_id, session_id, session_ts
        self.user_id, self.user_ts, self.first_seen, self.last_seen = user_id, user_ts, first_seen, last_seen
        self.generations = {} if generations is None else generations


def relevant(env: Envelope) -> bool:
    return (env.type == "trace-create" or env.type in OBSERVATION_TYPES) and bool(env.body.get("id"))


def event_ts(env: Envelope) -> int:
    return env.ts or env.received_at


def judge(env: Envelope) -> None:
    """What the fold accepts but a Postgres key cannot hold: PoisonEvent."""
    if not -MAX_EVENT_US < event_ts(env) < MAX_EVENT_US:
        raise PoisonEvent(f"{env.type} {env.body.get('id')}: event time out of range")
    for name in ("id", "traceId", "sessionId", "userId", "model"):
        value = env.body.get(name)
        if value is not None and len(value if isinstance(value, str) else str(value)) > MAX_KEY_CHARS:
            raise PoisonEvent(f"{env.type}: body.{name} is longer than {MAX_KEY_CHARS} characters")
    if len(env.id) > MAX_KEY_CHARS:
        raise PoisonEvent(f"{env.type}: event id is longer than {MAX_KEY_CHARS} characters")


def fold_event(folded: dict[Key, TraceDelta], env: Envelope, keys: dict[str, frozenset[str]] | None = None) -> None:
    """Fold one relevant event into the batch's per-trace deltas; PoisonEvent leaves them untouched.

    Only what the aggregates read is converted, and judged: a trace's session and user, a
    generation's model, start time, usage and cost, the model parameters and metadata `keys`
    names (what the price book's tier conditions read, by source), and the event's time. (An
    event whose other fields the ClickHouse fold refuses is dead-lettered there and still
    counted here: its usage happened.)

    A generation is kept with its trace. An event of one that names no trace is kept under the
    generation's own id, apart from the rest of it: Langfuse's SDKs send the trace id with every
    update "to avoid relying on the order of events", and finding the trace of a bare generation
    id would take a row (or an index entry) per span.
    """
    try:
        _fold(folded, env, keys)
    except PoisonEvent:
        raise
    except (TypeError, ValueError, OverflowError) as exc:  # e.g. an id no encoder takes: never retried
        raise PoisonEvent(f"{env.type} {str(env.body.get('id'))[:100]}: {exc}") from exc


def _fold(folded: dict[Key, TraceDelta], env: Envelope, keys: dict[str, frozenset[str]] | None) -> None:
    body, project, ts = env.body, env.project_id, event_ts(env)
    entity_id = clean(str(body["id"]))
    if env.type == "trace-create":
        session, user = _key_text(body.get("sessionId")), _key_text(body.get("userId"))
        trace = folded.get((project, entity_id)) or TraceDelta(EntityState(project, entity_id))
        trace.state.set("session_id", session, ts)
        trace.state.set("user_id", user, ts)
        trace.state.touch(ts)
        folded[(project, entity_id)] = trace
        return
    trace_id = body.get("traceId")
    key = (project, clean(str(trace_id)) if trace_id else entity_id)
    if env.type in GENERATION_EVENTS or any(body.get(f) is not None for f in USAGE_FIELDS):
        # Everything converted (and judged) before anything is folded.
        model, start = _key_text(body.get("model")), body_time(body.get("startTime"))
        usage, cost = usage_and_cost(body)
        attributes = _attributes(body, keys) if keys else None
        trace = folded.get(key) or TraceDelta(EntityState(*key))
        gen = trace.generations.get(entity_id)
        if gen is None:
            # New to the batch (most are): each field is the event's, at its time, with none of
            # the lookups that weigh it against a version (what set and merge_map would do).
            values: dict[str, Any] = {}
            versions: dict[str, int] = {}
            if model is not None:
                values["provided_model_name"], versions["provided_model_name"] = model, ts
            if start is not None:
                values["start_time"], versions["start_time"] = start, ts
            # As touch(ts) leaves a new state.
            state = EntityState(project, entity_id, values, versions, ts, ts if ts > 0 else 0)
            if usage:
                state.take_map("usage_details", {clean(k): v for k, v in usage.items()}, ts)
            if cost:
                state.take_map("cost_details", {clean(k): v for k, v in cost.items()}, ts)
            if attributes:
                for column, found in attributes:
                    state.take_map(column, found, ts)
            trace.generations[entity_id] = Generation(state, {clean(env.id)})
        else:
            state = gen.state
            state.set("provided_model_name", model, ts)
            state.set("start_time", start, ts)
            if usage:
                state.merge_map("usage_details", {clean(k): v for k, v in usage.items()}, ts)
            if cost:
                state.merge_map("cost_details", {clean(k): v for k, v in cost.items()}, ts)
            if attributes:
                for column, found in attributes:
                    state.merge_map(column, found, ts)
            state.touch(ts)
            gen.events.add(clean(env.id))
        folded[key] = trace
    if trace_id:
        # Not setdefault: it would build a delta (two objects, two dicts) for every event.
        delta = folded.get(key)
        if delta is None:
            delta = folded[key] = TraceDelta(EntityState(*key))
        delta.state.touch(ts)


def _attributes(body: dict[str, Any], keys: dict[str, frozenset[str]]) -> list[tuple[str, dict[str, str]]]:
    """The model parameters and metadata values `keys` names, as tier conditions compare them."""
    out: list[tuple[str, dict[str, str]]] = []
    for column, field in _ATTRIBUTE_FIELDS:
        wanted, given = keys.get(column), body.get(field)
        if wanted and isinstance(given, dict):
            found: dict[str, str] = {}
            for k in wanted:
                if k in given:
                    text = attribute_text(given[k])
                    # A longer text, or one with NUL, matches no condition's value: not kept.
                    if text is not None and len(text) <= ATTRIBUTE_TEXT_MAX and "\x00" not in text:
                        found[clean(k)] = text
            if found:
                out.append((column, found))
    return out


def _key_text(v: Any) -> str | None:
    text = as_text(v)
    return None if text is None else clean(text)


def apply_to_stored(stored: StoredTrace, delta: TraceDelta, changes: Changes, prices: PriceBook) -> list[str]:
    """Join `delta` into `stored` (in place) and record what that changes; the ids of the
    generations whose stored states changed (`stored.generations` needs to hold only the
    delta's: the others are neither read nor rewritten).

    Idempotent: joining what is already joined (a redelivery, a replay, a client's retry that
    reached the log twice) changes nothing, as every field is a register versioned by event time
    and a generation's events are a set of ids.
    """
    project = stored.project_id
    state = EntityState(project, stored.trace_id, first_ts=stored.first_seen, last_ts=stored.last_seen)
    if stored.session_ts >= 0:
        state.set("session_id", stored.session_id, stored.session_ts)
    if stored.user_ts >= 0:
        state.set("user_id", stored.user_id, stored.user_ts)
    merge(state, delta.state, TRACE_COLUMNS, {})
    new_session, new_user = state.values.get("session_id", ""), state.values.get("user_id", "")
    new_user_ts = state.versions.get("user_id", -1)
    for table, old, new in (
        (changes.sessions, stored.session_id, new_session),
        (changes.users, stored.user_id, new_user),
    ):
        if old and old != new:
            table.setdefault((project, old), Aggregate()).count -= 1
        if new:
            agg = table.setdefault((project, new), Aggregate())
            agg.count += int(old != new)
            agg.widen(state.first_ts, state.last_ts)
            if table is changes.sessions and new_user and new_user_ts >= agg.user_ts:
                agg.user, agg.user_ts = new_user, new_user_ts
    stored.session_id, stored.session_ts = new_session, state.versions.get("session_id", -1)
    stored.user_id, stored.user_ts = new_user, new_user_ts
    stored.first_seen, stored.last_seen = state.first_ts, state.last_ts

    changed: list[str] = []
    for gen_id, gen in delta.generations.items():
        doc = stored.generations.get(gen_id)
        if doc:
            gen_state, seen = state_from_doc(project, gen_id, doc), list(doc.get("e") or ())
            # What was counted, priced as it was then: a price change must not skew the undo.
            before = contribution(gen_state, len(seen), None, counted=doc.get("c"))
            merge(gen_state, gen.state, GENERATION_COLUMNS, GENERATION_MAPS)
        else:  # new: the batch's fold holds only the ledger's fields already
            gen_state, seen, before = gen.state, [], None
        events = seen + sorted(gen.events.difference(seen))
        after = contribution(gen_state, len(events), prices)
        new_doc = state_doc(gen_state, events, after.cost)
        if new_doc == doc:
            continue  # already joined and priced alike: nothing to count, nothing to write
        if before is not None:
            _add(changes.usage, project, before, -1)
        _add(changes.usage, project, after, 1)
        stored.generations[gen_id] = new_doc
        changed.append(gen_id)
    return changed


def withdraw(stored: StoredTrace, changes: Changes) -> None:
    """Record the undoing of everything `stored` is counted with (its trace was deleted)."""
    project = stored.project_id
    for table, key in ((changes.sessions, stored.session_id), (changes.users, stored.user_id)):
        if key:
            table.setdefault((project, key), Aggregate()).count -= 1
    for gen_id, doc in stored.generations.items():
        state = state_from_doc(project, gen_id, doc)
        # As it was counted: the stored cost, not today's price.
        _add(changes.usage, project, contribution(state, len(doc.get("e") or ()), None, counted=doc.get("c")), -1)


def merge(dst: EntityState, src: EntityState, columns: Iterable[str], maps: dict[str, tuple[str, ...] | None]) -> None:
    """Join src's fields into dst, each by its version (last writer wins), and widen the extent.

    `maps` names the keys kept of each map column (None: all of them).
    """
    for column in columns:
        if column in src.versions:
            dst.set(column, src.values[column], src.versions[column])
    dst_values, dst_versions = dst.values, dst.versions
    for column, keys in maps.items():
        values = src.values.get(column) or {}
        for k in values if keys is None else keys:
            version = src.versions.get(f"{column}.{k}")
            if version is not None and k in values:
                # merge_map's, for one key without a dict of it
                current, ck = dst_values.setdefault(column, {}), clean(k)
                vkey = f"{column}.{ck}"
                if version >= dst_versions.get(vkey, UNSET):
                    current[ck] = values[k]
                    dst_versions[vkey] = version
    for ts in (src.first_ts, src.last_ts):
        if ts:
            dst.touch(ts)
    for column in columns:
        if isinstance(dst.values.get(column), str):
            dst.values[column] = clean(dst.values[column])


def contribution(
    state: EntityState, events: int, prices: PriceBook | None, *, counted: str | None = None
) -> Contribution:
    """A generation's share of the ledger, its cost priced by `prices` (None: the client's
    costs alone, as states stored before pricing were counted), or `counted` when given."""
    values = state.values
    start = values.get("start_time") or state.first_ts
    model = clean(values.get("provided_model_name") or "")
    usage: dict[str, int] = values.get("usage_details") or {}
    if counted is not None:  # only the usage's total to derive: none of priced's copies
        cost, total = Decimal(counted), usage_total(usage)
    else:
        price = prices.match(state.project_id, model, start) if prices is not None else None
        usage, costs, _ = priced(
            usage, values.get("cost_details") or {}, price, values.get("model_parameters"), values.get("metadata")
        )
        total_cost = costs.get("total")
        cost = Decimal(repr(float(total_cost))) if total_cost is not None else _ZERO
        total = usage.get("total")
    return Contribution(
        _day(start), model, events, _tokens(usage.get("input")), _tokens(usage.get("output")), _tokens(total), cost
    )


def _add(usage: dict[tuple[str, date, str], list[Any]], project: str, c: Contribution, sign: int) -> None:
    """A generation counts once (observations) in the bucket of its current model and day."""
    key = (project, c.day, c.model)
    delta = usage.get(key)
    if delta is None:
        delta = usage[key] = [0, 0, 0, 0, 0, Decimal(0)]
    delta[0] += sign
    delta[1] += sign * c.events
    delta[2] += sign * c.input
    delta[3] += sign * c.output
    delta[4] += sign * c.total
    delta[5] += sign * c.cost


def _tokens(v: Any) -> int:
    return min(TOKENS_MAX, max(0, int(v or 0)))


def state_doc(s: EntityState, events: list[str], cost: Decimal) -> dict[str, Any]:
    """A generation's state as stored. Versions equal to its first time, most of them (its
    fields mostly come from one event), and a last time equal to the first are left out:
    parsing the jsonb was two thirds of the Postgres server's work per generation, and a
    document without them is half as long and three times cheaper to parse. Documents that
    hold them all (written before) read the same."""
    first = s.first_ts
    doc = {"v": s.values, "f": first, "e": events, "c": str(cost)}
    versions = {k: v for k, v in s.versions.items() if v != first}
    if versions:
        doc["t"] = versions
    if s.last_ts != first:
        doc["l"] = s.last_ts
    return doc


def state_from_doc(project: str, id_: str, doc: dict[str, Any]) -> EntityState:
    # Maps copied too: merging must not change the stored doc it is compared with.
    values = {k: dict(v) if isinstance(v, dict) else v for k, v in (doc.get("v") or {}).items()}
    first = int(doc.get("f") or 0)
    versions = dict(doc.get("t") or {})
    for column, value in values.items():  # every field has a version: left out, the first time
        if isinstance(value, dict):
            for k in value:
                versions.setdefault(f"{column}.{k}", first)
        else:
            versions.setdefault(column, first)
    return EntityState(project, id_, values, versions, first, int(doc["l"]) if "l" in doc else first)


def _day(us: int) -> date:
    """The UTC day of a time in µs (clamped like to_datetime)."""
    ordinal = _EPOCH_ORDINAL + min(max(us, _MIN_US), _MAX_US) // _US_PER_DAY
    # A batch's generations fall on a few days: each date made once (the cache is bounded).
    day = _DAYS.get(ordinal)
    if day is None:
        if len(_DAYS) >= 4096:
            _DAYS.clear()
        day = _DAYS[ordinal] = date.fromordinal(ordinal)
    return day


def to_datetime(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + min(max(us, _MIN_US), _MAX_US) * _US


def clean(s: str) -> str:
    # Postgres text cannot hold NUL; an id with one is garbage, but must not stall the stage.
    return s.replace("\x00", "\ufffd") if "\x00" in s else s
