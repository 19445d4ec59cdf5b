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
    assert deleting.traces == [("p", "t1")] and deleting.scores == []


def test_tombstoned_traces_and_their_generations_are_skipped() -> None:
    tombstones = KnownTombstones([("p", "t1"), ("p", "g1")])
    late = env("score-create", {"id": "sc", "traceId": "t1", "name": "n", "value": 1})
    orphan_update = env("generation-update", {"id": "g1", "output": "x"})
    other_update = env("generation-update", {"id": "g2", "output": "x"})
    kept, deleting = split_deletions([late, orphan_update, other_update], tombstones)
    assert kept == [other_update] and deleting == ([], [])


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


def test_a_deleted_score_is_left_out_and_its_trace_kept() -> None:
    from pipeline.tombstones import SCORE_DELETE

    score = {"id": "sc1", "traceId": "t1", "name": "n", "value": 1}
    before = env("score-create", score)
    delete = env(SCORE_DELETE, {"id": "sc1", "traceId": "t1"})
    retry = env("score-create", score)
    other_score = env("score-create", {"id": "sc2", "traceId": "t1", "name": "n", "value": 2})
    span = env("span-create", {"id": "s1", "traceId": "t1"})
    other_project = env("score-create", score, project="q")
    tombstoned = env("score-create", {"id": "sc3", "name": "n", "value": 3})
    kept, deleting = split_deletions(
        [before, delete, retry, other_score, span, other_project, tombstoned], KnownTombstones(scores=[("p", "sc3")])
    )
    assert kept == [other_score, span, other_project]
    assert deleting.traces == [] and deleting.scores == [("p", "sc1")]


def test_a_score_id_that_names_a_deleted_trace_does_not_delete_the_trace() -> None:
    # Score ids and trace ids are separate: a score tombstone hides only the score's events.
    tombstones = KnownTombstones(scores=[("p", "t1")])
    trace = env("trace-create", {"id": "t1"})
    span = env("span-create", {"id": "s1", "traceId": "t1"})
    kept, deleting = split_deletions([trace, span], tombstones)
    assert kept == [trace, span] and deleting == ([], [])
