"""The tombstone check both folds share (pipeline/tombstones.py) and the Postgres undo (rollup.withdraw)."""

from __future__ import annotations

from decimal import Decimal

from pipeline.envelope import Envelope
from pipeline.tombstones import TRACE_DELETE, KnownTombstones, split_deletions
from sinks.postgres.rollup import Changes, StoredTrace, withdraw


def env(etype: str, body: dict[str, object], project: str = "p") -> Envelope:
    return Envelope(f"e-{etype}-{body}", project, etype, 1, 1, body)


def test_events_of_a_deleted_trace_are_left_out_wherever_they_stand_in_the_batch() -> None:
    before = env("span-create", {"id": "s1", "traceId": "t1"})
    delete = env(TRACE_DELETE, {"traceId": "t1"})
    after = env("trace-create", {"id": "t1", "name": "retry"})
    other_project = env("trace-create", {"id": "t1"}, project="q")
    live = env("span-create", {"id": "s2", "traceId": "t2"})
    kept, deleting = split_deletions([before, delete, after, other_project, live], KnownTombstones())
    assert kept == [other_project, live]
    assert deleting == [("p", "t1")]


def test_tombstoned_traces_and_their_generations_are_skipped() -> None:
    tombstones = KnownTombstones([("p", "t1"), ("p", "g1")])
    late = env("score-create", {"id": "sc", "traceId": "t1", "name": "n", "value": 1})
    orphan_update = env("generation-update", {"id": "g1", "output": "x"})
    other_update = env("generation-update", {"id": "g2", "output": "x"})
    kept, deleting = split_deletions([late, orphan_update, other_update], tombstones)
    assert kept == [other_update] and deleting == []


def test_withdraw_undoes_exactly_what_a_trace_was_counted_with() -> None:
    doc = {
        "v": {"provided_model_name": "gpt-4o", "start_time": 86_400_000_000, "usage_details": {"input": 10}},
        "t": {"provided_model_name": 1, "start_time": 1, "usage_details.input": 1},
        "f": 1,
        "l": 1,
        "e": ["e1", "e2"],
        "c": "0.25",
    }
    changes = Changes()
    withdraw(StoredTrace("p", "t1", "s1", user_id="u1", generations={"g1": doc}), changes)
    assert changes.sessions[("p", "s1")].count == -1
    assert changes.users[("p", "u1")].count == -1
    ((key, delta),) = changes.usage.items()
    assert key[0] == "p" and key[2] == "gpt-4o"
    assert delta[:3] == [-1, -2, -10] and delta[5] == Decimal("-0.25")
