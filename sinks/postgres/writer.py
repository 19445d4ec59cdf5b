"""The Postgres projection: sessions, users and a daily usage ledger, folded from the event log.

Same contract as ClickHouseWriter: `write(envelopes)` returns the poison events (judged on the
fields it reads, by `pipeline.fold`'s converters) and raises PostgresError for a store failure;
`forget()`.

Exact and idempotent, with one row per trace and none per event or span. The aggregates are
counters, which a redelivered or replayed event must not move again and which must count what
they mean (distinct traces, a generation's final usage) whatever order events arrive in. So
they are never "+1 per event": `trace_states` keeps, per trace, its session and user (last
writer wins by event time, like the ClickHouse fold), the extent of its activity, and each of
its generations' folded model, start time, usage and cost with the ids of the events folded
in. A batch joins its events into those states, in one transaction, and applies the difference
to the aggregates: a trace counts once in its session, and moves if its session changes; a
correction replaces a generation's usage instead of adding to it; an update that arrived
before its create lands in the create's bucket once the create's model and start time arrive.
Joining an event twice changes no state, so nothing is counted twice, whether the copy comes
from a redelivery, a replay, or a client retry that reached the log twice. `first_seen` and
`last_seen` only ever widen (LEAST/GREATEST).

The trace rows are locked (an upsert, in key order) before they are read, so concurrent
writers (a rebalance overlap, a replay beside the live stage) serialise instead of losing
updates; the same statement inserts the traces new to the table whole. A batch is seven
statements at most, whatever its size.

States untouched for longer than `horizon_s` (twice the topic's retention by default) are
pruned, a page range per turn so that the whole table is swept about once an hour; events
received before the horizon are skipped, so a replay of a log that still holds them cannot
count them again. A late event for a pruned trace counts it as new: the price of a table that
does not grow without end.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

import orjson
from loguru import logger

from pipeline.envelope import Envelope
from pipeline.errors import PoisonEvent
from pipeline.prices import PriceBook
from pipeline.tombstones import KnownTombstones, Tombstones, split_deletions
from sinks.postgres.client import Postgres, PostgresError, Transaction
from sinks.postgres.rollup import (
    Changes,
    Key,
    StoredTrace,
    TraceDelta,
    apply_to_stored,
    event_ts,
    fold_event,
    judge,
    relevant,
    to_datetime,
    withdraw,
)

PRUNE_EVERY_S: Final = 10.0
# Pages per pruning turn: at least this many, and enough to sweep the table in SWEEP_S.
PRUNE_PAGES: Final = 1_000
SWEEP_S: Final = 3600.0


class PostgresWriter:
    def __init__(
        self,
        client: Postgres,
        *,
        horizon_s: float = 14 * 86_400.0,
        prices: Callable[[], PriceBook] = PriceBook,
        tombstones: Tombstones | None = None,
        known_traces: int = 50_000,
    ) -> None:
        self._pg = client
        self._tombstones: Tombstones = tombstones if tombstones is not None else KnownTombstones()
        self._prices = prices
        self._horizon_us = int(horizon_s * 1_000_000)
        self._next_prune = 0.0
        self._prune_page = 0
        self._known = Known(known_traces)

    def forget(self) -> None:
        """Every batch reads the states it changes, under lock; what is remembered of the
        traces written lately only guesses which rows exist (_trace_states)."""
        self._known.clear()

    async def idle(self) -> None:
        self._tombstones.learned_scores().clear()  # scores are not this stage's

    async def write(self, envelopes: list[Envelope]) -> list[tuple[Envelope, str]]:
        horizon_us = time.time_ns() // 1000 - self._horizon_us
        await self._tombstones.refresh()
        # Scores are ClickHouse's alone: their deletions are the other stage's to fold.
        envelopes, (deleting, _) = split_deletions(envelopes, self._tombstones)
        self._tombstones.learned_scores().clear()
        book = self._prices()  # one book for the batch: a refresh does not split it
        keys = book.attribute_keys if any(book.attribute_keys.values()) else None
        poison, folded = _judge([e for e in envelopes if e.received_at >= horizon_us], keys)
        if folded or deleting:
            async with self._pg.transaction(operation="pg_projection") as tx:
                await _project(tx, folded, book, self._known)
                await _delete_traces(tx, deleting, self._horizon_us / 1_000_000)
            self._tombstones.add(deleting)
            await self._tombstones.refresh(force=True)  # the generations' tombstones just written
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY_S
            try:
                await self.prune()
            except PostgresError as exc:  # the batch is written; pruning waits for its next turn
                logger.warning("pruning trace states failed", error=str(exc))
        return poison

    async def prune(self, *, pages: int | None = None) -> int:
        """Delete the states untouched since the horizon in the next page range; rows deleted."""
        ((size,),) = await self._pg.fetch(
            "SELECT pg_relation_size('trace_states') / current_setting('block_size')::int", operation="pg_prune_size"
        )
        step = pages or max(PRUNE_PAGES, int(size * PRUNE_EVERY_S / SWEEP_S))
        if self._prune_page >= size:
            self._prune_page = 0
        first, self._prune_page = self._prune_page, self._prune_page + step
        deleted = await self._pg.execute(
            "DELETE FROM trace_states WHERE ctid >= %s::tid AND ctid < %s::tid "
            "AND touched_at < now() - make_interval(secs => %s)",
            (f"({first},0)", f"({first + step},0)", self._horizon_us / 1_000_000),
            operation="pg_prune_trace_states",
        )
        if deleted:
            logger.info("pruned trace states", rows=deleted, horizon_s=self._horizon_us // 1_000_000)
        return deleted


def _judge(
    envelopes: list[Envelope], keys: dict[str, frozenset[str]] | None = None
) -> tuple[list[tuple[Envelope, str]], dict[Key, TraceDelta]]:
    """Poison events, and the fold of the others (an event is converted whole before any of it is
    folded, so folding is judging); `keys`: the attributes the prices' tiers read (fold_event)."""
    poison: list[tuple[Envelope, str]] = []
    folded: dict[Key, TraceDelta] = {}
    for env in sorted(envelopes, key=event_ts):
        if not relevant(env):
            continue
        try:
            judge(env)
            fold_event(folded, env, keys)
        except PoisonEvent as exc:
            poison.append((env, str(exc)))
    return poison, folded


async def _project(tx: Transaction, folded: dict[Key, TraceDelta], prices: PriceBook, known: Known) -> None:
    if not folded:
        return
    changes = Changes()
    await _trace_states(tx, folded, changes, prices, known)
    await _apply(tx, changes)


async def _delete_traces(tx: Transaction, traces: list[Key], keep_s: float) -> None:
    """Drop deleted traces' states and subtract exactly what they were counted with.

    The state says what a trace contributed: one to its session and its user, and each
    generation's counted usage and cost. A trace without a state (deleted before, or never
    folded here) contributes nothing, so a second fold of a deletion changes nothing.
    """
    if not traces:
        return
    rows = await tx.fetch(
        "DELETE FROM trace_states WHERE (project_id, trace_id) IN "
        "(SELECT * FROM unnest(%s::text[], %s::text[])) "
        "RETURNING project_id, trace_id, session_id, user_id, generations::text",
        ([p for p, _ in traces], [t for _, t in traces]),
        operation="pg_delete_trace_states",
    )
    if not rows:
        return
    changes = Changes()
    orphans: list[tuple[str, str]] = []
    for project, trace, session, user, generations in rows:
        stored = StoredTrace(project, trace, session, user_id=user, generations=orjson.loads(generations))
        withdraw(stored, changes)
        orphans.extend((project, gen_id) for gen_id in stored.generations)
    await _apply(tx, changes)
    if orphans:
        # An update naming no trace is folded under its generation's own id (see rollup.py):
        # the deleted trace's generation ids are tombstoned too, so a late one counts nothing.
        await tx.execute(
            "INSERT INTO trace_tombstones (project_id, trace_id, expires_at) "
            "SELECT p, g, now() + make_interval(secs => %s) FROM unnest(%s::text[], %s::text[]) AS v(p, g) "
            "ON CONFLICT (project_id, trace_id) DO NOTHING",
            (keep_s, [o[0] for o in orphans], [o[1] for o in orphans]),
            operation="pg_tombstone_generations",
        )
    for table, column, keys in (
        ("sessions", "session_id", sorted(changes.sessions)),
        ("users", "user_id", sorted(changes.users)),
    ):
        if keys:
            # A session or user left without traces goes (its ids can be content too).
            await tx.execute(
                f"DELETE FROM {table} WHERE (project_id, {column}) IN "
                "(SELECT * FROM unnest(%s::text[], %s::text[])) AND trace_count <= 0",
                ([k[0] for k in keys], [k[1] for k in keys]),
                operation=f"pg_delete_empty_{table}",
            )


async def _apply(tx: Transaction, changes: Changes) -> None:
    """The changes of a batch to sessions, users and usage_daily: at most four statements."""
    # Sessions and users as JSON documents: a row per trace where every trace has its own.
    await tx.insert_documents(
        "INSERT INTO sessions (project_id, session_id, first_seen, last_seen, trace_count, user_id, user_ts)",
        "p text, k text, f timestamptz, l timestamptz, c bigint, u text, ut bigint",
        [
            {
                "p": p,
                "k": s,
                "f": to_datetime(a.first),
                "l": to_datetime(a.last),
                "c": a.count,
                "u": a.user,
                "ut": a.user_ts,
            }
            for (p, s), a in sorted(changes.sessions.items())
        ],
        "ON CONFLICT (project_id, session_id) DO UPDATE SET "
        "first_seen = LEAST(sessions.first_seen, EXCLUDED.first_seen), "
        "last_seen = GREATEST(sessions.last_seen, EXCLUDED.last_seen), "
        "trace_count = sessions.trace_count + EXCLUDED.trace_count, "
        "user_id = CASE WHEN EXCLUDED.user_ts >= sessions.user_ts THEN EXCLUDED.user_id ELSE sessions.user_id END, "
        "user_ts = GREATEST(sessions.user_ts, EXCLUDED.user_ts), updated_at = now()",
        operation="pg_upsert_sessions",
    )
    await tx.insert_documents(
        "INSERT INTO users (project_id, user_id, first_seen, last_seen, trace_count)",
        "p text, k text, f timestamptz, l timestamptz, c bigint",
        [
            {"p": p, "k": u, "f": to_datetime(a.first), "l": to_datetime(a.last), "c": a.count}
            for (p, u), a in sorted(changes.users.items())
        ],
        "ON CONFLICT (project_id, user_id) DO UPDATE SET "
        "first_seen = LEAST(users.first_seen, EXCLUDED.first_seen), "
        "last_seen = GREATEST(users.last_seen, EXCLUDED.last_seen), "
        "trace_count = users.trace_count + EXCLUDED.trace_count, updated_at = now()",
        operation="pg_upsert_users",
    )
    # usage_daily stays a VALUES list: a row per project, day and model, a handful per batch,
    # and its Decimal costs as psycopg2 adapts them.
    await tx.insert_many(
        "INSERT INTO usage_daily"
        " (project_id, day, model, observations, events, input_tokens, output_tokens, total_tokens, cost)",
        "(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [(*key, *delta) for key, delta in sorted(changes.usage.items()) if any(delta)],
        "ON CONFLICT (project_id, day, model) DO UPDATE SET "
        "observations = usage_daily.observations + EXCLUDED.observations, "
        "events = usage_daily.events + EXCLUDED.events, "
        "input_tokens = usage_daily.input_tokens + EXCLUDED.input_tokens, "
        "output_tokens = usage_daily.output_tokens + EXCLUDED.output_tokens, "
        "total_tokens = usage_daily.total_tokens + EXCLUDED.total_tokens, "
        "cost = usage_daily.cost + EXCLUDED.cost, updated_at = now()",
        operation="pg_upsert_usage_daily",
    )
    vacated = sorted(key for key, delta in changes.usage.items() if delta[0] < 0)
    if vacated:
        # Buckets a generation left (an update folded before its create, a corrected model):
        # drop those that no generation is counted in any more.
        await tx.execute(
            "DELETE FROM usage_daily WHERE (project_id, day, model) IN"
            " (SELECT * FROM unnest(%s::text[], %s::date[], %s::text[])) "
            "AND observations = 0",
            ([k[0] for k in vacated], [k[1] for k in vacated], [k[2] for k in vacated]),
            operation="pg_delete_empty_usage",
        )


async def _trace_states(
    tx: Transaction, folded: dict[Key, TraceDelta], changes: Changes, prices: PriceBook, known: Known
) -> None:
    """Join the batch into trace_states (locked rows, key order) and collect the changes.

    A trace this writer has not written lately is most likely new: its row is joined with an
    empty state beforehand and inserted whole by the statement that takes the locks, instead of
    inserted empty and then updated (a second row version, which did not fit on the page and
    took a new index entry: that UPDATE was most of the Postgres server's work per trace).
    Where the row existed after all, the statement only locks it, like the others, and the
    speculative join is dropped.
    """
    keys = sorted(folded)
    guessed: dict[Key, tuple[StoredTrace, bytes | None, Changes]] = {}
    guessing = known.guessing()
    for key in keys:
        if guessing and key not in known:
            stored, own = StoredTrace(*key), Changes()
            guessed[key] = (stored, joined(stored, folded[key], own, prices), own)
    locking: list[dict[str, Any]] = []
    for n, key in enumerate(keys):
        guess = guessed.get(key)
        locking.append(_state_row(guess[0], guess[1] or b"{}", n) if guess else {"p": key[0], "t": key[1], "n": n})
    # The rows as one JSON document, not a parameter per column: psycopg2 adapts a list element
    # by element (an adapter each, the JSON texts escaped one by one), ~2-4 µs per span, against
    # ~0.5-0.8 for one string that orjson wrote; Postgres parses either as fast (bench/README.md,
    # "The trace states, sessions and users as JSON documents"). `n` keeps key order. `xmax = 0`:
    # the row was inserted, not locked by the conflict's no-op update.
    rows = await tx.fetch(
        "INSERT INTO trace_states (project_id, trace_id, session_id, session_ts, user_id, user_ts, first_seen, "
        "last_seen, generations) "
        "SELECT p, t, coalesce(s, ''), coalesce(st, -1), coalesce(u, ''), coalesce(ut, -1), coalesce(f, 0), "
        f"coalesce(l, 0), coalesce(g, '{{}}') FROM jsonb_to_recordset(%s::jsonb) AS v({_STATE_COLUMNS}) ORDER BY n "
        "ON CONFLICT (project_id, trace_id) DO UPDATE SET trace_id = EXCLUDED.trace_id "
        "RETURNING project_id, trace_id, session_id, session_ts, user_id, user_ts, first_seen, last_seen, "
        # Whether any generation is stored, without reading them: `{}` takes 8 bytes at most.
        "pg_column_size(generations) > 8, xmax = 0",
        (orjson.dumps(locking).decode(),),
        operation="pg_lock_trace_states",
    )
    inserted = {(r[0], r[1]) for r in rows if r[-1] and (r[0], r[1]) in guessed}
    stale = [r[:-1] for r in rows if (r[0], r[1]) not in inserted]
    docs = await _generation_docs(tx, {(r[0], r[1]): folded[(r[0], r[1])] for r in stale if r[-1]})
    existing: dict[Key, StoredTrace] = {}
    for *values, _ in stale:
        stored = existing[(values[0], values[1])] = StoredTrace(*values)
        stored.generations = docs.get((values[0], values[1])) or {}
    # In key order, as if every trace were joined here: the aggregates' ties resolve alike.
    written: list[dict[str, Any]] = []
    for key in keys:
        if key in inserted:
            changes.add(guessed[key][2])
        else:
            stored = existing[key]
            written.append(_state_row(stored, joined(stored, folded[key], changes, prices), len(written)))
    known.wrote(keys, guessed=len(guessed), missed=len(guessed) - len(inserted))
    if not written:
        return
    # The rows exist (locked above): an UPDATE, which replaces the changed generations' states
    # (`||` of two objects: the right one's keys win) and leaves the others alone.
    await tx.execute(
        "UPDATE trace_states t SET session_id = v.s, session_ts = v.st, user_id = v.u, user_ts = v.ut, "
        "first_seen = v.f, last_seen = v.l, "
        "generations = CASE WHEN v.g IS NULL THEN t.generations ELSE t.generations || v.g END, "
        f"touched_at = now() FROM jsonb_to_recordset(%s::jsonb) AS v({_STATE_COLUMNS}) "
        "WHERE t.project_id = v.p AND t.trace_id = v.t",
        (orjson.dumps(written).decode(),),
        operation="pg_write_trace_states",
    )


# A trace_states row in the JSON that the statements above take (jsonb_to_recordset).
_STATE_COLUMNS: Final = "p text, t text, s text, st bigint, u text, ut bigint, f bigint, l bigint, g jsonb, n int"


def _state_row(stored: StoredTrace, generations: bytes | None, n: int) -> dict[str, Any]:
    return {
        "p": stored.project_id,
        "t": stored.trace_id,
        "s": stored.session_id,
        "st": stored.session_ts,
        "u": stored.user_id,
        "ut": stored.user_ts,
        "f": stored.first_seen,
        "l": stored.last_seen,
        # The generations' JSON as written by joined(), not parsed and written again.
        "g": None if generations is None else orjson.Fragment(generations),
        "n": n,
    }


class Known:
    """The traces a writer wrote lately (oldest first), whose rows exist, most likely; and
    whether to guess that the others are new.

    A guess that misses costs a join thrown away. Live traffic mostly brings traces new to the
    table or written lately; a replay into a filled table, or the first batches after a
    rebalance, bring traces stored long ago. After a batch whose guesses mostly missed, the next
    batches guess nothing, twice as many each time it happens again, up to MAX_SKIPPED.
    """

    MAX_SKIPPED = 64

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys: OrderedDict[Key, None] = OrderedDict()
        self._skip = 0
        self._backoff = 1

    def __contains__(self, key: Key) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def clear(self) -> None:
        self._keys.clear()

    def guessing(self) -> bool:
        if self._skip:
            self._skip -= 1
            return False
        return True

    def wrote(self, keys: list[Key], *, guessed: int, missed: int) -> None:
        for key in keys:
            self._keys[key] = None
        while len(self._keys) > self.size:
            self._keys.popitem(last=False)
        if missed * 2 > guessed:
            self._skip, self._backoff = self._backoff, min(2 * self._backoff, self.MAX_SKIPPED)
        elif guessed:
            self._backoff = 1


def joined(stored: StoredTrace, delta: TraceDelta, changes: Changes, prices: PriceBook) -> bytes | None:
    """Join `delta` into `stored` (apply_to_stored); the JSON of the generation states that
    changed, which the UPDATE merges into the stored ones, or None."""
    changed = apply_to_stored(stored, delta, changes, prices)
    return orjson.dumps({g: stored.generations[g] for g in changed}) if changed else None


async def _generation_docs(tx: Transaction, folded: dict[Key, TraceDelta]) -> dict[Key, dict[str, Any]]:
    """The stored states of the generations `folded` holds, and of no others.

    A trace's states grow with its generations, and a long trace is folded in many batches:
    reading and rewriting all of them each time made a batch cost as much as its traces were
    long (bench/README.md, "Long traces"). Postgres walks each trace's document once
    (jsonb_each; `->` per id would decompress it per id) and sends back only what is asked.
    """
    traces = [(key, delta.generations) for key, delta in folded.items() if delta.generations]
    if not traces:
        return {}
    # One JSON document, as the trace states are handed over (see _trace_states).
    wanted = [{"p": key[0], "t": key[1], "wanted": dict.fromkeys(gens, 1)} for key, gens in traces]
    rows = await tx.fetch(
        "SELECT t.project_id, t.trace_id, e.key, e.value::text "
        "FROM jsonb_to_recordset(%s::jsonb) AS w(p text, t text, wanted jsonb) "
        "JOIN trace_states t ON t.project_id = w.p AND t.trace_id = w.t "
        "CROSS JOIN LATERAL jsonb_each(t.generations) AS e WHERE w.wanted ? e.key",
        (orjson.dumps(wanted).decode(),),
        operation="pg_read_generation_states",
    )
    docs: dict[Key, dict[str, Any]] = {}
    for project, trace, gen_id, doc in rows:
        docs.setdefault((project, trace), {})[gen_id] = orjson.loads(doc)
    return docs
