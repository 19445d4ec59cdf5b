"""The Postgres projection: sessions, users and a daily usage ledger, folded from the event log.

Same contract as ClickHouseWriter: `write(envelopes)` returns the poison events (judged by the
same fold, `pipeline.fold.apply`) and raises PostgresError for a store failure; `forget()`.

Idempotency. The aggregates are counters, which a redelivered or replayed event must not move
again, and which must still count what they mean (distinct traces, a generation's final usage)
whatever order the events arrive in. Two mechanisms, in one transaction per batch:

1. A per-event record. `INSERT INTO projected_events ... ON CONFLICT DO NOTHING RETURNING`
   tells which events of the batch are new; only those are folded. A concurrent transaction
   holding the same event (a rebalance overlap, a replay next to the live stage) waits on the
   primary key and then sees the conflict, so an event counts once however often it is read.
   Records are kept for `horizon_s` (twice the topic's retention by default) and pruned after;
   an event received before the horizon is skipped, so a pruned record never lets one count twice.
2. Per-entity states with deltas. Aggregates are never "+1 per event": `trace_links` keeps each
   trace's session and user (last writer wins by event time, like the ClickHouse fold) and the
   extent of its activity; `generation_usage` keeps each generation's folded model, start time,
   token and cost fields and the contribution it was counted with. A batch folds its new events
   into these states (rows locked with a no-op upsert, in key order, so concurrent writers
   serialise instead of losing updates) and applies the difference to the aggregates: a trace
   counts once in its session, and moves if its session changes; an update that corrects a
   generation's usage replaces its contribution instead of adding to it; an update that arrives
   before its create lands in the same bucket once the create's start time and model arrive.

`first_seen`/`last_seen` of sessions and users only ever widen (LEAST/GREATEST), so they are
idempotent without help. A batch is nine statements at most, whatever its size.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
from loguru import logger

from ingest.events import OBSERVATION_TYPES
from pipeline.envelope import Envelope
from pipeline.fold import OBSERVATION, TRACE, EntityState, PoisonEvent, apply, with_totals
from sinks.postgres.client import Postgres, PostgresError, Transaction

# Observation events that feed the usage ledger: generations, and anything carrying a model or usage.
GENERATION_EVENTS = frozenset({"generation-create", "generation-update", "embedding-create"})
USAGE_FIELDS = ("model", "usage", "usageDetails", "costDetails")
# The parts of a generation's folded state that place and size its contribution.
GENERATION_COLUMNS = ("provided_model_name", "start_time")
# Usage keys per name; every cost key, as a cost total the client left out is their sum.
GENERATION_MAPS: dict[str, tuple[str, ...] | None] = {"usage_details": ("input", "output", "total"), "cost_details": None}
TRACE_COLUMNS = ("session_id", "user_id")
UNUSED_FIELDS = frozenset({"input", "output", "metadata", "modelParameters"})
# Ids, session and user ids and model names are primary-key parts; a btree entry must stay small.
MAX_KEY_CHARS = 1000
# Event times beyond what a timestamp column holds (|µs| >= 1e17 is past the year 5000).
MAX_EVENT_US = 10**17
# Per generation and token kind: keeps the ledger's bigint sums far from overflowing (the batch
# API takes any number; ClickHouse's UInt64 columns refuse what is past their range instead).
TOKENS_MAX = 10**12
PRUNE_EVERY_S = 60.0
PRUNE_ROWS = 100_000

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)
# What a datetime can hold, with a day to spare for time zones: an absurd time is clamped, so
# it can never raise OverflowError (which the stage would retry forever) on its way to a column.
_MIN_US = (datetime(1, 1, 2, tzinfo=timezone.utc) - _EPOCH) // _US
_MAX_US = (datetime(9999, 12, 30, tzinfo=timezone.utc) - _EPOCH) // _US
Key = tuple[str, str]  # project_id, entity id


@dataclass
class _Entity:
    state: EntityState
    events: int = 0


@dataclass
class _Folded:
    traces: dict[Key, _Entity] = field(default_factory=dict)
    generations: dict[Key, _Entity] = field(default_factory=dict)


@dataclass(frozen=True)
class _Contribution:
    day: date | None
    model: str
    events: int
    input: int
    output: int
    total: int
    cost: Decimal


class PostgresWriter:
    def __init__(self, client: Postgres, *, horizon_s: float = 14 * 86_400.0) -> None:
        self._pg = client
        self._horizon_us = int(horizon_s * 1_000_000)
        self._next_prune = 0.0

    def forget(self) -> None:
        """Nothing is cached: every batch reads the states it changes, under lock."""

    async def write(self, envelopes: list[Envelope]) -> list[tuple[Envelope, str]]:
        horizon = time.time_ns() // 1000 - self._horizon_us
        poison: list[tuple[Envelope, str]] = []
        # Folding the whole batch judges each event (apply is all or nothing) and, in the usual
        # case where every event is new, already is the fold of the new events.
        folded, events = _Folded(), {}
        for env in sorted(envelopes, key=_event_ts):
            key = (env.project_id, _clean(env.id))
            if not _relevant(env) or env.received_at < horizon or key in events:
                continue
            try:
                _check(env)
                _fold(folded, env)
            except PoisonEvent as exc:
                poison.append((env, str(exc)))
                continue
            events[key] = env
        if events:
            async with self._pg.transaction(operation="pg_projection") as tx:
                await self._project(tx, events, folded)
        await self._prune(horizon)
        return poison

    async def _project(self, tx: Transaction, events: dict[Key, Envelope], folded: _Folded) -> None:
        rows = await tx.insert_many(
            "INSERT INTO projected_events (project_id, event_id, received_at)",
            "(%s, %s, %s)",
            [(p, e, _datetime(events[(p, e)].received_at)) for p, e in sorted(events)],
            "ON CONFLICT DO NOTHING RETURNING project_id, event_id",
            operation="pg_projected_events",
        )
        new = {(p, e) for p, e in rows}
        if len(new) < len(events):  # some were projected before: fold only the others
            folded = _Folded()
            for key, env in events.items():
                if key in new:
                    _fold(folded, env)
        if not new:
            return
        sessions, users = await self._traces(tx, folded.traces)
        usage = await self._generations(tx, folded.generations)
        await tx.insert_many(
            "INSERT INTO sessions (project_id, session_id, first_seen, last_seen, trace_count, user_id, user_ts)",
            "(%s, %s, %s, %s, %s, %s, %s)",
            [(p, s, _datetime(a.first), _datetime(a.last), a.count, a.user, a.user_ts) for (p, s), a in sorted(sessions.items())],
            "ON CONFLICT (project_id, session_id) DO UPDATE SET "
            "first_seen = LEAST(sessions.first_seen, EXCLUDED.first_seen), "
            "last_seen = GREATEST(sessions.last_seen, EXCLUDED.last_seen), "
            "trace_count = sessions.trace_count + EXCLUDED.trace_count, "
            "user_id = CASE WHEN EXCLUDED.user_ts >= sessions.user_ts THEN EXCLUDED.user_id ELSE sessions.user_id END, "
            "user_ts = GREATEST(sessions.user_ts, EXCLUDED.user_ts), updated_at = now()",
            operation="pg_upsert_sessions",
        )
        await tx.insert_many(
            "INSERT INTO users (project_id, user_id, first_seen, last_seen, trace_count)",
            "(%s, %s, %s, %s, %s)",
            [(p, u, _datetime(a.first), _datetime(a.last), a.count) for (p, u), a in sorted(users.items())],
            "ON CONFLICT (project_id, user_id) DO UPDATE SET "
            "first_seen = LEAST(users.first_seen, EXCLUDED.first_seen), "
            "last_seen = GREATEST(users.last_seen, EXCLUDED.last_seen), "
            "trace_count = users.trace_count + EXCLUDED.trace_count, updated_at = now()",
            operation="pg_upsert_users",
        )
        await tx.insert_many(
            "INSERT INTO usage_daily (project_id, day, model, observations, events, input_tokens, output_tokens, total_tokens, cost)",
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(*key, *delta) for key, delta in sorted(usage.items()) if any(delta)],
            "ON CONFLICT (project_id, day, model) DO UPDATE SET "
            "observations = usage_daily.observations + EXCLUDED.observations, "
            "events = usage_daily.events + EXCLUDED.events, "
            "input_tokens = usage_daily.input_tokens + EXCLUDED.input_tokens, "
            "output_tokens = usage_daily.output_tokens + EXCLUDED.output_tokens, "
            "total_tokens = usage_daily.total_tokens + EXCLUDED.total_tokens, "
            "cost = usage_daily.cost + EXCLUDED.cost, updated_at = now()",
            operation="pg_upsert_usage_daily",
        )
        vacated = sorted(key for key, delta in usage.items() if delta[0] < 0)
        if vacated:
            # Buckets a generation left (an update folded before its create, a corrected model):
            # drop those that no generation is counted in any more.
            await tx.execute(
                "DELETE FROM usage_daily WHERE (project_id, day, model) IN (SELECT * FROM unnest(%s::text[], %s::date[], %s::text[])) "
                "AND observations = 0",
                ([k[0] for k in vacated], [k[1] for k in vacated], [k[2] for k in vacated]),
                operation="pg_delete_empty_usage",
            )

    async def _traces(
        self, tx: Transaction, traces: dict[Key, _Entity]
    ) -> tuple[dict[Key, _Aggregate], dict[Key, _Aggregate]]:
        """Fold into trace_links; return the changes for sessions and users."""
        sessions: dict[Key, _Aggregate] = {}
        users: dict[Key, _Aggregate] = {}
        if not traces:
            return sessions, users
        stored = await tx.insert_many(
            "INSERT INTO trace_links (project_id, trace_id)",
            "(%s, %s)",
            sorted(traces),
            "ON CONFLICT (project_id, trace_id) DO UPDATE SET trace_id = EXCLUDED.trace_id "
            "RETURNING project_id, trace_id, session_id, session_ts, user_id, user_ts, first_seen, last_seen",
            operation="pg_lock_trace_links",
        )
        written = []
        for project, trace_id, session, session_ts, user, user_ts, first, last in stored:
            state = EntityState(project, trace_id, first_ts=first, last_ts=last)
            if session_ts >= 0:
                state.set("session_id", session, session_ts)
            if user_ts >= 0:
                state.set("user_id", user, user_ts)
            _merge(state, traces[(project, trace_id)].state, TRACE_COLUMNS, {})
            new_session, new_user = state.values.get("session_id", ""), state.values.get("user_id", "")
            new_user_ts = state.versions.get("user_id", -1)
            for table, old, new in ((sessions, session, new_session), (users, user, new_user)):
                if old and old != new:
                    table.setdefault((project, old), _Aggregate()).count -= 1
                if new:
                    agg = table.setdefault((project, new), _Aggregate())
                    agg.count += int(old != new)
                    agg.widen(state.first_ts, state.last_ts)
                    if table is sessions and new_user and new_user_ts >= agg.user_ts:
                        agg.user, agg.user_ts = new_user, new_user_ts
            written.append((
                project, trace_id, new_session, state.versions.get("session_id", -1),
                new_user, new_user_ts, state.first_ts, state.last_ts,
            ))
        await tx.insert_many(
            "INSERT INTO trace_links (project_id, trace_id, session_id, session_ts, user_id, user_ts, first_seen, last_seen)",
            "(%s, %s, %s, %s, %s, %s, %s, %s)",
            written,
            "ON CONFLICT (project_id, trace_id) DO UPDATE SET session_id = EXCLUDED.session_id, "
            "session_ts = EXCLUDED.session_ts, user_id = EXCLUDED.user_id, user_ts = EXCLUDED.user_ts, "
            "first_seen = EXCLUDED.first_seen, last_seen = EXCLUDED.last_seen",
            operation="pg_write_trace_links",
        )
        return sessions, users

    async def _generations(self, tx: Transaction, generations: dict[Key, _Entity]) -> dict[tuple, list]:
        """Fold into generation_usage; return the changes to usage_daily per (project, day, model)."""
        usage: dict[tuple, list] = {}
        if not generations:
            return usage
        stored = await tx.insert_many(
            "INSERT INTO generation_usage (project_id, observation_id)",
            "(%s, %s)",
            sorted(generations),
            "ON CONFLICT (project_id, observation_id) DO UPDATE SET observation_id = EXCLUDED.observation_id "
            "RETURNING project_id, observation_id, state, day, model, events, input_tokens, output_tokens, total_tokens, cost",
            operation="pg_lock_generation_usage",
        )
        written = []
        for project, obs_id, doc, day, model, n, tin, tout, total, cost in stored:
            state = _state_from_doc(project, obs_id, doc)
            entity = generations[(project, obs_id)]
            _merge(state, entity.state, GENERATION_COLUMNS, GENERATION_MAPS)
            old = _Contribution(day, model, n, tin, tout, total, cost)
            new = _contribution(state, n + entity.events)
            if old.day is not None:
                _add(usage, (project, old.day, old.model), old, -1)
            _add(usage, (project, new.day, new.model), new, 1)
            written.append((
                project, obs_id, _state_doc(state), new.day, new.model, new.events,
                new.input, new.output, new.total, new.cost,
            ))
        await tx.insert_many(
            "INSERT INTO generation_usage (project_id, observation_id, state, day, model, events, "
            "input_tokens, output_tokens, total_tokens, cost)",
            "(%s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s)",
            written,
            "ON CONFLICT (project_id, observation_id) DO UPDATE SET state = EXCLUDED.state, day = EXCLUDED.day, "
            "model = EXCLUDED.model, events = EXCLUDED.events, input_tokens = EXCLUDED.input_tokens, "
            "output_tokens = EXCLUDED.output_tokens, total_tokens = EXCLUDED.total_tokens, cost = EXCLUDED.cost",
            operation="pg_write_generation_usage",
        )
        return usage

    async def _prune(self, horizon_us: int) -> None:
        """Forget idempotency records past the horizon, a bounded slice at a time."""
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        try:
            deleted = await self._pg.execute(
                "DELETE FROM projected_events WHERE ctid = ANY(ARRAY("
                "SELECT ctid FROM projected_events WHERE received_at < %s LIMIT %s))",
                (_datetime(horizon_us), PRUNE_ROWS),
                operation="pg_prune_projected_events",
            )
        except PostgresError as exc:  # the batch is written; pruning waits for the next turn
            logger.warning("pruning projected events failed", error=str(exc))
            return
        if deleted:
            logger.info("pruned projected events", rows=deleted)
        if deleted >= PRUNE_ROWS:
            self._next_prune = 0.0  # a backlog: go on with the next batch


@dataclass
class _Aggregate:
    """The change a batch makes to one session or user."""

    count: int = 0
    first: int | None = None
    last: int | None = None
    user: str = ""
    user_ts: int = -1

    def widen(self, first: int, last: int) -> None:
        if first:
            self.first = first if self.first is None else min(self.first, first)
        if last:
            self.last = last if self.last is None else max(self.last, last)


def _relevant(env: Envelope) -> bool:
    return (env.type == "trace-create" or env.type in OBSERVATION_TYPES) and bool(env.body.get("id"))


def _event_ts(env: Envelope) -> int:
    return env.ts or env.received_at


def _check(env: Envelope) -> None:
    """What the fold accepts but a Postgres key cannot hold."""
    if not -MAX_EVENT_US < _event_ts(env) < MAX_EVENT_US:
        raise PoisonEvent(f"{env.type} {env.body.get('id')}: event time out of range")
    for name in ("id", "traceId", "sessionId", "userId", "model"):
        value = env.body.get(name)
        if value is not None and len(value if isinstance(value, str) else str(value)) > MAX_KEY_CHARS:
            raise PoisonEvent(f"{env.type}: body.{name} is longer than {MAX_KEY_CHARS} characters")
    if len(env.id) > MAX_KEY_CHARS:
        raise PoisonEvent(f"{env.type}: event id is longer than {MAX_KEY_CHARS} characters")


def _fold(folded: _Folded, env: Envelope) -> None:
    """Fold one event into the batch's per-entity deltas; PoisonEvent leaves them untouched."""
    body, project, ts = env.body, env.project_id, _event_ts(env)
    if not UNUSED_FIELDS.isdisjoint(body):
        # Serialising payloads nobody here reads is most of a fold's cost; none of them can
        # make an event poison (they are JSON already), so the judgement stays the same.
        env = replace(env, body={k: v for k, v in body.items() if k not in UNUSED_FIELDS})
    entity_id = _clean(str(body["id"]))
    if env.type == "trace-create":
        trace = folded.traces.get((project, entity_id)) or _Entity(EntityState(project, entity_id))
        apply(trace.state, env, TRACE)
        folded.traces[(project, entity_id)] = trace
        trace.events += 1
        return
    if env.type in GENERATION_EVENTS or any(body.get(f) is not None for f in USAGE_FIELDS):
        gen = folded.generations.get((project, entity_id)) or _Entity(EntityState(project, entity_id))
        apply(gen.state, env, OBSERVATION)
        folded.generations[(project, entity_id)] = gen
        gen.events += 1
    else:
        apply(EntityState(project, entity_id), env, OBSERVATION)  # judged, not kept
    trace_id = body.get("traceId")
    if trace_id:
        key = (project, _clean(str(trace_id)))
        trace = folded.traces.setdefault(key, _Entity(EntityState(*key)))
        trace.state.touch(ts)
        trace.events += 1


def _merge(
    dst: EntityState, src: EntityState, columns: Iterable[str], maps: dict[str, tuple[str, ...] | None]
) -> None:
    """Join src's fields into dst, each by its version (last writer wins), and widen the extent.

    `maps` names the keys kept of each map column (None: all of them).
    """
    for column in columns:
        if column in src.versions:
            dst.set(column, src.values[column], src.versions[column])
    for column, keys in maps.items():
        values = src.values.get(column) or {}
        for k in values if keys is None else keys:
            version = src.versions.get(f"{column}.{k}")
            if version is not None and k in values:
                dst.merge_map(column, {_clean(k): values[k]}, version)
    for ts in (src.first_ts, src.last_ts):
        if ts:
            dst.touch(ts)
    for column in columns:
        if isinstance(dst.values.get(column), str):
            dst.values[column] = _clean(dst.values[column])


def _contribution(state: EntityState, events: int) -> _Contribution:
    usage, costs = with_totals(state.values.get("usage_details") or {}, state.values.get("cost_details") or {})
    cost = costs.get("total")
    return _Contribution(
        day=_datetime(state.values.get("start_time") or state.first_ts).date(),
        model=_clean(state.values.get("provided_model_name") or ""),
        events=events,
        input=_tokens(usage.get("input")),
        output=_tokens(usage.get("output")),
        total=_tokens(usage.get("total")),
        cost=Decimal(repr(float(cost))) if cost is not None else Decimal(0),
    )


def _add(usage: dict[tuple, list], key: tuple, c: _Contribution, sign: int) -> None:
    delta = usage.setdefault(key, [0, 0, 0, 0, 0, Decimal(0)])
    for i, v in enumerate((1, c.events, c.input, c.output, c.total, c.cost)):
        delta[i] += sign * v


def _tokens(v: Any) -> int:
    return min(TOKENS_MAX, max(0, int(v or 0)))


def _state_doc(s: EntityState) -> str:
    return orjson.dumps({"values": s.values, "versions": s.versions, "first_ts": s.first_ts, "last_ts": s.last_ts}).decode()


def _state_from_doc(project: str, id_: str, doc: dict[str, Any] | None) -> EntityState:
    doc = doc or {}
    return EntityState(
        project, id_, dict(doc.get("values") or {}), dict(doc.get("versions") or {}),
        int(doc.get("first_ts") or 0), int(doc.get("last_ts") or 0),
    )


def _datetime(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + min(max(us, _MIN_US), _MAX_US) * _US


def _clean(s: str) -> str:
    # Postgres text cannot hold NUL; an id with one is garbage, but must not stall the stage.
    return s.replace("\x00", "\ufffd") if "\x00" in s else s
