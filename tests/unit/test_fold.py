"""The fold must converge whatever the order, batching and repetition of events."""

import itertools

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.envelope import Envelope
from pipeline.fold import (
    OBSERVATION,
    TRACE,
    UNSET,
    EntityState,
    PoisonEvent,
    apply,
    synthesize_trace,
    usage_and_cost,
)
from sinks.clickhouse.writer import _merge_into

FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["a", "b", "c"]),
        "output": st.one_of(st.none(), st.text(max_size=5), st.lists(st.integers(-(2**63), 2**63 - 1), max_size=2)),
        "level": st.sampled_from(["DEBUG", "DEFAULT", "ERROR"]),
        "endTime": st.sampled_from([1_795_773_601_000_000, 1_795_773_602_500_000]),
        "startTime": st.sampled_from([1_795_773_600_000_000, 1_795_773_600_500_000]),
        "metadata": st.dictionaries(st.sampled_from(["k1", "k2", "k3"]), st.integers(-(2**63), 2**63 - 1), max_size=3),
        "usage": st.fixed_dictionaries({}, optional={"input": st.integers(0, 99), "output": st.integers(0, 99)}),
    },
)


@st.composite
def observation_events(draw) -> list[Envelope]:
    n = draw(st.integers(1, 6))
    stamps = draw(st.lists(st.integers(1, 10**6), min_size=n, max_size=n, unique=True))
    events = []
    for i, ts in enumerate(stamps):
        etype = (
            "generation-create"
            if i == 0
            else draw(st.sampled_from(["generation-update", "span-update", "generation-create"]))
        )
        body = {"id": "o1", "traceId": "t1", **draw(FIELDS)}
        events.append(Envelope(id=f"e{i}", project_id="p", type=etype, ts=ts, received_at=ts, body=body))
    return events


def fold(events: list[Envelope], table: str = OBSERVATION) -> EntityState:
    state = EntityState("p", "o1")
    for env in events:
        apply(state, env, table)
    return state


@settings(max_examples=300)
@given(observation_events(), st.randoms(use_true_random=False))
def test_any_order_and_redelivery_converge(events: list[Envelope], rnd) -> None:
    expected = fold(sorted(events, key=lambda e: e.ts))
    shuffled = events + rnd.sample(events, k=len(events) // 2)  # some delivered twice
    rnd.shuffle(shuffled)
    got = fold(shuffled)
    assert got.versions == expected.versions
    assert got.values == expected.values
    assert (got.first_ts, got.last_ts) == (expected.first_ts, expected.last_ts)


@settings(max_examples=200)
@given(observation_events(), st.sampled_from([OBSERVATION, TRACE]))
def test_a_new_state_takes_an_event_as_a_state_with_versions_would(events: list[Envelope], table: str) -> None:
    # apply() skips the versions lookups for a state no event has set a field of; a state with
    # an unrelated version takes the checked path, and must end the same.
    for env in events:
        new = EntityState("p", "o1")
        apply(new, env, table)
        checked = EntityState("p", "o1", versions={"unrelated": UNSET})
        apply(checked, env, table)
        del checked.versions["unrelated"]
        assert (new.values, new.versions) == (checked.values, checked.versions)
        assert (new.first_ts, new.last_ts) == (checked.first_ts, checked.last_ts)


def test_the_newest_event_wins_and_nulls_never_erase() -> None:
    update = Envelope("u", "p", "generation-update", 200, 200, {"id": "o1", "output": "new", "name": None})
    create = Envelope(
        "c", "p", "generation-create", 100, 100, {"id": "o1", "traceId": "t", "name": "n", "output": "old"}
    )
    state = fold([update, create])
    assert state.values["output"] == '"new"'
    assert state.values["name"] == "n"
    assert state.values["type"] == "GENERATION"


def test_the_earliest_event_keeps_the_time_of_a_trace_and_the_start_of_an_observation() -> None:
    # langfuse-langchain (JS 3.x) sends a trace-create at a run's end whose timestamp is the
    # time it was sent; Langfuse keeps the first, and so must the fold, in any order.
    first = Envelope("a", "p", "trace-create", 100, 100, {"id": "t", "timestamp": 100, "name": "run"})
    last = Envelope("b", "p", "trace-create", 900, 900, {"id": "t", "timestamp": 900, "output": "done"})
    for events in ([first, last], [last, first]):
        state = fold(events, TRACE)
        assert (state.values["timestamp"], state.values["name"], state.values["output"]) == (100, "run", '"done"')
        assert state.versions["timestamp"] == 100
    create = Envelope("c", "p", "span-create", 100, 100, {"id": "o1", "traceId": "t", "startTime": 100})
    update = Envelope("u", "p", "span-update", 400, 400, {"id": "o1", "startTime": 400, "endTime": 500})
    for events in ([create, update], [update, create]):
        state = fold(events)
        assert (state.values["start_time"], state.values["end_time"]) == (100, 500)
    # An event's time wins over one synthesized from the trace's observations (negative
    # versions), whichever is earlier; of synthesized ones, the earliest start.
    trace = EntityState("p", "t")
    obs = Envelope("o", "p", "span-create", 50, 50, {"id": "o1", "traceId": "t", "startTime": 40})
    synthesize_trace(trace, obs, OBSERVATION)
    apply(trace, last, TRACE)
    assert trace.values["timestamp"] == 900
    synthesize_trace(trace, Envelope("o2", "p", "span-create", 10, 10, {"id": "o2", "startTime": 5}), OBSERVATION)
    assert trace.values["timestamp"] == 900
    early = EntityState("p", "t")
    for start in (40, 5, 70):
        synthesize_trace(early, Envelope("o", "p", "span-create", 80, 80, {"id": "o", "startTime": start}), OBSERVATION)
    assert early.values["timestamp"] == 5


def test_an_update_does_not_override_the_type_of_a_create() -> None:
    create = Envelope("c", "p", "agent-create", 100, 100, {"id": "o1", "traceId": "t"})
    update = Envelope("u", "p", "span-update", 200, 200, {"id": "o1", "output": "x"})
    assert fold([update, create]).values["type"] == "AGENT"


def test_tags_are_a_union_and_metadata_merges_by_key() -> None:
    a = Envelope("a", "p", "trace-create", 1, 1, {"id": "t", "tags": ["x"], "metadata": {"k": 1, "j": 1}})
    b = Envelope("b", "p", "trace-create", 2, 2, {"id": "t", "tags": ["y", "x"], "metadata": {"k": 2}})
    state = fold([b, a], TRACE)
    assert sorted(state.values["tags"]) == ["x", "y"]
    assert state.values["metadata"] == {"k": 2, "j": 1}


def test_usage_spellings_are_normalised() -> None:
    usage, cost = usage_and_cost({"usage": {"promptTokens": 3, "completionTokens": 4, "totalCost": 0.5}})
    assert usage == {"input": 3, "output": 4}
    assert cost == {"total": 0.5}
    usage, _ = usage_and_cost({"usageDetails": {"input": 1, "output": 2, "input_cached_tokens": 5}})
    assert usage == {"input": 1, "output": 2, "input_cached_tokens": 5}


def test_a_partial_usage_update_keeps_the_other_counts() -> None:
    create = Envelope(
        "c", "p", "generation-create", 1, 1, {"id": "o1", "traceId": "t", "usage": {"input": 10, "output": 1}}
    )
    update = Envelope("u", "p", "generation-update", 2, 2, {"id": "o1", "usage": {"output": 5}})
    assert fold([update, create]).values["usage_details"] == {"input": 10, "output": 5}


def test_a_usage_count_no_store_can_hold_is_poison_not_a_write_that_fails_forever() -> None:
    # The edge refuses these; the log can still hold one (an older edge, a requeued letter).
    state = EntityState("p", "g")
    with pytest.raises(PoisonEvent, match="out of range"):
        apply(
            state, Envelope("e", "p", "generation-create", 1, 1, {"id": "g", "usage": {"input": 10**20}}), OBSERVATION
        )
    assert state.values == {}


def test_observations_and_scores_make_their_trace_exist_and_real_fields_win() -> None:
    def env(i: int, etype: str, body: dict, ts: int) -> Envelope:
        return Envelope(f"e{i}", "p", etype, ts, ts, body)

    child = env(1, "span-create", {"id": "s", "traceId": "t", "name": "tool", "parentObservationId": "g",
                                   "startTime": 300}, 310)  # fmt: skip
    root = env(2, "generation-create", {"id": "g", "traceId": "t", "name": "agent", "startTime": 200}, 400)
    score = env(3, "score-create", {"id": "sc", "traceId": "t", "name": "q", "value": 1, "timestamp": 900}, 900)
    real = env(4, "trace-create", {"id": "t", "name": "run", "timestamp": 250}, 500)
    table_of = {"span-create": OBSERVATION, "generation-create": OBSERVATION, "score-create": "scores"}

    def trace(events: list[Envelope]) -> dict:
        state = EntityState("p", "t")
        for e in events:
            if e.type == "trace-create":
                apply(state, e, TRACE)
            else:
                synthesize_trace(state, e, table_of[e.type])
        return state.values

    for order in itertools.permutations([child, root, score]):
        # Earliest start; named after the root observation, not the child nor the score.
        assert trace(list(order)) == {"timestamp": 200, "name": "agent"}
    for order in itertools.permutations([child, root, score, real]):
        assert trace(list(order)) == {"timestamp": 250, "name": "run"}


def test_a_configured_category_keeps_its_label_and_number() -> None:
    """A categorical score checked against a config carries its label as stringValue and the
    config's number as value; a plain categorical score keeps its label only."""

    def score(body: dict, ts: int) -> EntityState:
        state = EntityState("p", "s")
        apply(state, Envelope(id="e", project_id="p", type="score-create", ts=ts, received_at=ts, body=body), "scores")
        return state

    configured = score({"id": "s", "name": "tone", "value": 1.0, "stringValue": "polite", "dataType": "CATEGORICAL"}, 5)
    assert (configured.values["value"], configured.values["string_value"]) == (1.0, "polite")
    plain = score({"id": "s", "name": "tone", "value": "polite", "dataType": "CATEGORICAL"}, 5)
    assert "value" not in plain.values and plain.values["string_value"] == "polite"
    # Not categorical: a stray stringValue is ignored.
    numeric = score({"id": "s", "name": "n", "value": 2, "stringValue": "x", "dataType": "NUMERIC"}, 5)
    assert numeric.values["value"] == 2.0 and "string_value" not in numeric.values


# A call's input whose message records two (or three) log exports held: parts with keys that
# order them, and perhaps an input some other event gave, which wins over parts.
MESSAGES = [{"role": "system", "content": "s"}, {"role": "user", "content": "u1"}, {"role": "user", "content": "u2"}]


@st.composite
def parted_events(draw) -> tuple[list[Envelope], bool]:
    cuts = draw(st.lists(st.integers(1, 2), unique=True, max_size=2))
    bounds = [0, *sorted(cuts), 3]
    events = [Envelope("c", "p", "span-create", 10, 10, {"id": "o1", "traceId": "t1", "name": "chat"}, source="otlp")]
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        key = f"{1000 + lo:020d}-{i:08x}"
        body = {"id": "o1", "contextTraceId": "t1", "input": MESSAGES[lo:hi], "inputPart": [key, hi - lo]}
        ts = draw(st.integers(20, 40))  # exports' times need not follow the messages' order
        events.append(Envelope(f"l{i}", "p", "span-update", ts, ts, body, source="otlp_logs"))
    other = draw(st.booleans())
    if other:  # an SDK's own update with the input: it wins, whatever its time
        events.append(Envelope("u", "p", "span-update", 5, 5, {"id": "o1", "input": ["own"]}))
    return events, other


@settings(max_examples=300)
@given(parted_events(), st.randoms(use_true_random=False))
def test_an_input_in_parts_is_whole_in_any_order(case: tuple[list[Envelope], bool], rnd) -> None:
    events, other = case
    expected = fold(events)
    assert orjson.loads(expected.values["input"]) == (["own"] if other else MESSAGES)
    shuffled = events + rnd.sample(events, k=len(events) // 2)  # some delivered twice
    rnd.shuffle(shuffled)
    got = fold(shuffled)
    assert (got.values, got.versions) == (expected.values, expected.versions)
    assert (got.first_ts, got.last_ts) == (expected.first_ts, expected.last_ts)
    # As two processes fold them, and the reconcile joins their rows (sinks/clickhouse/writer.py).
    cut = rnd.randint(0, len(shuffled))
    mine, theirs = fold(shuffled[:cut]), fold(shuffled[cut:])
    _merge_into(mine, theirs)
    assert (mine.values, mine.versions) == (expected.values, expected.versions)


def test_parts_only_from_log_records_of_the_edge() -> None:
    # A client's span-update with the same key is an input as any other: no part.
    body = {"id": "o1", "input": ["x"], "inputPart": [f"{1:020d}-00000000", 1]}
    state = fold([Envelope("u", "p", "span-update", 5, 5, body)])
    assert state.versions == {"input": 5, "type": -1}
    # A malformed one from the log path is ignored, not poison.
    state = fold([Envelope("u", "p", "span-update", 5, 5, {**body, "inputPart": ["k", -1]}, source="otlp_logs")])
    assert state.versions["input"] == 5
