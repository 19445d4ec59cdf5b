"""The Postgres projection's arithmetic (sinks/postgres/rollup.py), without a database: however
events are ordered, batched, duplicated or replayed, the aggregates end the same."""

from __future__ import annotations

import random
from datetime import UTC
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.envelope import Envelope
from pipeline.fold import EntityState
from pipeline.prices import ModelPrice, PriceBook
from pipeline.times import to_micros
from sinks.postgres.rollup import (
    Changes,
    Key,
    StoredTrace,
    TraceDelta,
    _day,
    apply_to_stored,
    fold_event,
    relevant,
    state_doc,
    state_from_doc,
    to_datetime,
)
from tests.support import deep_copy

BASE_US = 1_795_000_000_000_000


class Store:
    """trace_states and the aggregates, as dicts, updated the way the writer's SQL does."""

    def __init__(self, prices: PriceBook | None = None) -> None:
        self.prices = prices or PriceBook([ModelPrice("m", None, "m", "^m$", {"input": 0.5, "output": 1.0})])
        self.traces: dict[Key, StoredTrace] = {}
        self.sessions: dict[Key, int] = {}
        self.users: dict[Key, int] = {}
        self.usage: dict[tuple, list[Any]] = {}

    def write(self, envelopes: list[Envelope]) -> None:
        folded: dict[Key, TraceDelta] = {}
        for env in sorted(envelopes, key=lambda e: e.ts):
            if relevant(env):
                fold_event(folded, env)
        changes = Changes()
        for key in sorted(folded):
            stored = self.traces.setdefault(key, StoredTrace(*key))
            apply_to_stored(stored, folded[key], changes, self.prices)
        for table, agg in ((self.sessions, changes.sessions), (self.users, changes.users)):
            for key, a in agg.items():
                table[key] = table.get(key, 0) + a.count
        for key, delta in changes.usage.items():
            row = self.usage.setdefault(key, [0, 0, 0, 0, 0, Decimal(0)])
            for i, v in enumerate(delta):
                row[i] += v
            if row[0] == 0:
                del self.usage[key]

    def view(self) -> tuple:
        return (
            {k: v for k, v in self.sessions.items() if v},
            {k: v for k, v in self.users.items() if v},
            {k: tuple(v) for k, v in self.usage.items()},
        )


def env(eid: str, etype: str, ts: int, body: dict[str, Any]) -> Envelope:
    return Envelope(id=eid, project_id="p", type=etype, ts=BASE_US + ts, received_at=BASE_US, body=body)


@st.composite
def histories(draw: st.DrawFn) -> list[Envelope]:
    """Traces moving between sessions and users, generations created, updated and corrected.

    Event times are distinct: on a tie, the fold keeps the value of the event read last (the
    log's order), which no reordering can be expected to preserve.
    """
    out: list[Envelope] = []

    def ts() -> int:
        return draw(st.integers(0, 50)) * 1000 + len(out)

    for t in range(draw(st.integers(1, 3))):
        for i in range(draw(st.integers(0, 3))):
            body = {"id": f"t{t}"}
            if draw(st.booleans()):
                body["sessionId"] = draw(st.sampled_from(["s1", "s2"]))
            if draw(st.booleans()):
                body["userId"] = draw(st.sampled_from(["u1", "u2"]))
            out.append(env(f"t{t}-e{i}", "trace-create", ts(), body))
        for g in range(draw(st.integers(0, 2))):
            for i in range(draw(st.integers(1, 3))):
                body = {"id": f"t{t}-g{g}", "traceId": f"t{t}"}
                if draw(st.booleans()):
                    body["model"] = draw(st.sampled_from(["m1", "m2"]))
                if draw(st.booleans()):
                    body["startTime"] = draw(
                        st.sampled_from([to_micros("2026-11-20T10:00:00Z"), to_micros("2026-11-21T10:00:00Z")])
                    )
                if draw(st.booleans()):
                    body["usage"] = {"input": draw(st.integers(0, 100)), "output": draw(st.integers(0, 100))}
                if draw(st.booleans()):
                    body["costDetails"] = {"total": draw(st.sampled_from([0.5, 0.25, 1.0]))}
                etype = "generation-create" if i == 0 else "generation-update"
                out.append(env(f"t{t}-g{g}-e{i}", etype, ts(), body))
        if draw(st.booleans()):
            out.append(env(f"t{t}-span", "span-create", ts(), {"id": f"t{t}-s", "traceId": f"t{t}"}))
    return out


def batches(events: list[Envelope], rnd: random.Random) -> list[list[Envelope]]:
    events = events[:]
    rnd.shuffle(events)
    out, i = [], 0
    while i < len(events):
        n = rnd.randint(1, 4)
        out.append(events[i : i + n])
        i += n
    return out


@settings(max_examples=300, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_any_order_batching_and_duplication_ends_the_same(events: list[Envelope], rnd: random.Random) -> None:
    reference = Store()
    reference.write(events)

    shuffled = Store()
    for batch in batches(events, rnd):
        shuffled.write(batch)
    assert shuffled.view() == reference.view()

    # Redelivered batches, a client's retry appended again, and a replay of the whole log.
    again = batches(events, rnd)
    for batch in again + rnd.sample(again, k=len(again) // 2):
        shuffled.write(batch)
    shuffled.write(events)
    assert shuffled.view() == reference.view()


@settings(max_examples=200, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_traces_joined_apart_and_added_in_key_order_change_what_one_join_does(
    events: list[Envelope], rnd: random.Random
) -> None:
    """The writer joins the traces it guesses are new apart, then adds their changes in key order
    among the others' (sinks/postgres/writer.py): the aggregates must be those of one join."""
    store = Store()
    for batch in batches(events, rnd)[::2]:  # some traces stored already, some not
        store.write(batch)
    folded: dict[Key, TraceDelta] = {}
    for e in sorted(events, key=lambda e: e.ts):
        if relevant(e):
            fold_event(folded, e)
    together, apart = Changes(), Changes()
    for key in sorted(folded):
        stored = store.traces.get(key) or StoredTrace(*key)
        apply_to_stored(deep_copy(stored), folded[key], together, store.prices)
        if rnd.random() < 0.5:
            apply_to_stored(deep_copy(stored), folded[key], apart, store.prices)
        else:
            own = Changes()
            apply_to_stored(deep_copy(stored), folded[key], own, store.prices)
            apart.add(own)
    assert apart == together


def test_a_correction_replaces_usage_and_an_early_update_moves_with_its_create() -> None:
    store = Store()
    store.write([env("e2", "generation-update", 5, {"id": "g", "traceId": "t", "usage": {"input": 20, "output": 10}})])
    assert list(store.usage) == [("p", store_day(5), "")]
    store.write(
        [
            env(
                "e1",
                "generation-create",
                0,
                {
                    "id": "g",
                    "traceId": "t",
                    "model": "m",
                    "startTime": to_micros("2026-11-21T23:59:59Z"),
                    "usage": {"input": 1, "output": 1},
                },
            )
        ]
    )
    from datetime import date

    # Priced at 0.5 per input and 1 per output token: 20 * 0.5 + 10 * 1.
    assert store.view()[2] == {("p", date(2026, 11, 21), "m"): (1, 2, 20, 10, 30, Decimal(20))}


def test_the_ledger_day_is_the_first_start_an_sdk_sent() -> None:
    # An update that sends the start again, later (as SDKs do), does not move the usage to
    # its day: the earliest event's start stays, as in the ClickHouse fold.
    create = env(
        "e1",
        "generation-create",
        0,
        {
            "id": "g",
            "traceId": "t",
            "model": "m",
            "startTime": to_micros("2026-11-21T23:59:59Z"),
            "usage": {"input": 1},
        },
    )
    update = env(
        "e2", "generation-update", 5, {"id": "g", "traceId": "t", "startTime": to_micros("2026-11-22T00:00:01Z")}
    )
    from datetime import date

    for order in ([create, update], [update, create]):
        store = Store()
        for event in order:
            store.write([event])
        assert [key[1] for key in store.view()[2]] == [date(2026, 11, 21)]


def test_a_replay_under_new_prices_re_prices_exactly() -> None:
    events = [
        env("e1", "generation-create", 0, {"id": "g1", "traceId": "t", "model": "m", "usage": {"input": 4}}),
        env("e2", "generation-create", 1, {"id": "g2", "traceId": "t", "model": "m", "usage": {"output": 2},
                                           "costDetails": {"output": 7.0}}),
    ]  # fmt: skip
    store = Store()
    store.write(events)
    assert [v[5] for v in store.view()[2].values()] == [Decimal(9)]  # 4 * 0.5 + the client's 7
    store.prices = PriceBook([ModelPrice("m2", None, "m", "^m$", {"input": 2.0, "output": 100.0})])
    store.write(events)  # what `agenttrace replay` does after a price change
    store.write(events)  # and again: nothing moves
    assert [v[5] for v in store.view()[2].values()] == [Decimal(15)]  # 4 * 2 + the client's 7


def test_a_generation_document_leaves_out_what_its_first_time_says_and_reads_back_whole() -> None:
    values = {"provided_model_name": "m", "start_time": 5, "usage_details": {"input": 1, "output": 2}}
    versions = {"provided_model_name": 5, "start_time": 5, "usage_details.input": 5, "usage_details.output": 9}
    state = EntityState("p", "g", values, versions, first_ts=5, last_ts=9)
    compact = state_doc(state, ["e1", "e2"], Decimal("0.5"))
    assert compact["t"] == {"usage_details.output": 9} and compact["l"] == 9
    one_event = state_doc(EntityState("p", "g", values, dict.fromkeys(versions, 5), 5, 5), ["e1"], Decimal(0))
    assert "t" not in one_event and "l" not in one_event
    written_before = {"v": values, "t": versions, "f": 5, "l": 9, "e": ["e1", "e2"], "c": "0.5"}
    for doc in (compact, written_before, orjson.loads(orjson.dumps(compact))):
        assert state_from_doc("p", "g", doc) == state


def test_a_redelivery_onto_documents_written_in_full_counts_nothing_again() -> None:
    events = [
        env("e1", "generation-create", 0, {"id": "g", "traceId": "t", "model": "m", "usage": {"input": 4}}),
        env("e2", "generation-update", 3, {"id": "g", "traceId": "t", "usage": {"output": 2}}),
    ]
    store = Store()
    store.write(events)
    before = store.view()
    doc = store.traces[("p", "t")].generations["g"]
    state = state_from_doc("p", "g", doc)
    # As documents were written before they left versions out.
    store.traces[("p", "t")].generations["g"] = {**doc, "t": state.versions, "l": state.last_ts}
    store.write(events)
    assert store.view() == before
    assert store.traces[("p", "t")].generations["g"] == doc


def store_day(ts: int):
    from datetime import datetime

    return datetime.fromtimestamp((BASE_US + ts) / 1e6, UTC).date()


def test_a_trace_counts_once_in_its_session_and_moves_with_it() -> None:
    store = Store()
    store.write([env("a", "trace-create", 0, {"id": "t", "sessionId": "s1", "userId": "u"})])
    store.write([env("a", "trace-create", 0, {"id": "t", "sessionId": "s1", "userId": "u"})])
    assert store.view()[:2] == ({("p", "s1"): 1}, {("p", "u"): 1})
    store.write([env("b", "trace-create", 1, {"id": "t", "sessionId": "s2"})])
    assert store.view()[:2] == ({("p", "s2"): 1}, {("p", "u"): 1})


@given(st.integers(-(10**18), 10**18))
def test_the_ledger_day_is_the_utc_date_of_the_clamped_time(us: int) -> None:
    assert _day(us) == to_datetime(us).date()


def test_a_value_no_encoder_takes_is_poison_and_leaves_the_batch_untouched() -> None:
    from pipeline.fold import PoisonEvent

    folded: dict[Key, TraceDelta] = {}
    with pytest.raises(PoisonEvent):
        fold_event(folded, env("e", "trace-create", 0, {"id": "t", "sessionId": 10**20}))
    with pytest.raises(PoisonEvent):
        fold_event(folded, env("e", "generation-create", 0, {"id": "g", "traceId": "t", "model": {"n": 10**20}}))
    assert folded == {}
