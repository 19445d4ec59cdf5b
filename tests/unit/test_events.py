import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.events import FIELDS_BY_TYPE, InvalidEvent, normalize


def _event(etype: str, body: dict, **over) -> dict:
    return {"id": "e1", "type": etype, "timestamp": "2026-11-27T10:00:00.000001Z", "body": body, **over}


def test_a_valid_generation_is_normalised() -> None:
    event_id, etype, ts, body = normalize(
        _event("generation-create", {"id": "g", "traceId": "t", "usage": {"input": 1, "unit": "TOKENS"}})
    )
    assert (event_id, etype, ts % 1_000_000) == ("e1", "generation-create", 1)
    assert body["id"] == "g"


def test_ids_the_api_lets_clients_omit_are_generated() -> None:
    assert normalize(_event("trace-create", {}))[3]["id"]
    assert normalize(_event("score-create", {"traceId": "t", "name": "q", "value": 1}))[3]["id"]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ("nope", "must be an object"),
        ({"type": "trace-create", "body": {}}, "event.id"),
        (_event("trace-delete", {}), "unknown event type"),
        (_event("trace-create", {}, timestamp="soon"), "event.timestamp"),
        (_event("trace-create", []), "event.body"),
        (_event("trace-create", {"tags": "a"}), "body.tags"),
        (_event("trace-create", {"public": "yes"}), "body.public"),
        (_event("span-create", {"id": "s"}), "body.traceId"),
        (_event("span-update", {"traceId": "t"}), "body.id"),
        (_event("span-create", {"traceId": "t", "startTime": "later"}), "body.startTime"),
        (_event("span-create", {"traceId": "t", "startTime": "0001-01-01T00:00:01Z"}), "body.startTime"),
        (_event("trace-create", {}, timestamp="1969-12-31T23:59:59Z"), "event.timestamp"),
        (_event("generation-create", {"traceId": "t", "level": "LOUD"}), "body.level"),
        (_event("generation-create", {"traceId": "t", "usage": {"input": "ten"}}), "body.usage.input"),
        (_event("generation-create", {"traceId": "t", "usage": {"input": True}}), "body.usage.input"),
        (_event("generation-create", {"traceId": "t", "usage": {"input": 1e20}}), "body.usage.input is out of range"),
        (_event("generation-create", {"traceId": "t", "costDetails": {"total": -1e16}}), "body.costDetails.total"),
        (
            _event("generation-create", {"traceId": "t", "costDetails": {"prompt_tokens_details": {"x": 1}}}),
            "body.costDetails.prompt_tokens_details must be a number",
        ),
        (
            _event("generation-create", {"traceId": "t", "usageDetails": {"prompt_tokens_details": {"a": "1"}}}),
            "body.usageDetails.prompt_tokens_details.a must be a number",
        ),
        (
            _event(
                "generation-create",
                {"traceId": "t", "usageDetails": {"prompt_tokens_details": {"prompt_tokens_details": {"a": 1}}}},
            ),
            "body.usageDetails.prompt_tokens_details.prompt_tokens_details must be a number",
        ),
        (_event("generation-create", {"traceId": "t", "usageDetails": {"details": {"a": 1}}}), "usageDetails.details"),
        (_event("score-create", {"traceId": "t", "value": 1}), "body.name"),
        (_event("score-create", {"traceId": "t", "name": "q"}), "body.value"),
        (_event("score-create", {"name": "q", "value": 1}), "traceId"),
        (_event("score-create", {"traceId": "t", "name": "q", "value": 1, "dataType": "X"}), "body.dataType"),
    ],
)
def test_invalid_events_are_refused_with_a_message(event, message: str) -> None:
    with pytest.raises(InvalidEvent, match=message.replace(".", r"\.")):
        normalize(event)


def test_openai_usage_objects_are_usage_details_as_langfuse_takes_them() -> None:
    # The Langfuse SDKs' OpenAI integrations send `response.usage` as it is, details nested.
    usage = {
        "prompt_tokens": 25,
        "completion_tokens": 3,
        "total_tokens": 28,
        "prompt_tokens_details": {"cached_tokens": 16, "audio_tokens": None},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": None},
    }
    body = normalize(_event("generation-update", {"id": "g", "traceId": "t", "usageDetails": usage}))[3]
    assert body["usageDetails"] == usage
    responses = {"input_tokens": 5, "output_tokens": 2, "input_tokens_details": {"cached_tokens": 1}}
    assert normalize(_event("generation-create", {"traceId": "t", "usage": responses}))[1] == "generation-create"


def test_sdk_log_is_accepted_as_is() -> None:
    assert normalize(_event("sdk-log", {"log": {"anything": [1]}}))[1] == "sdk-log"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
_KEYS = sorted({k for fields in FIELDS_BY_TYPE.values() for k in fields})


@given(
    etype=st.sampled_from(sorted(FIELDS_BY_TYPE)),
    body=st.dictionaries(st.sampled_from(_KEYS), _JSON, max_size=6),
    timestamp=_JSON | st.sampled_from(["2026-11-27T10:00:00Z", "0001-01-01T00:00:00+14:00"]),
)
def test_any_json_body_is_accepted_or_refused_with_a_message(etype: str, body: dict, timestamp) -> None:
    # Found by schemathesis: an object as dataType or level was looked up in a set (TypeError, 500).
    try:
        normalize({"id": "e1", "type": etype, "timestamp": timestamp, "body": body})
    except InvalidEvent:
        pass


@pytest.mark.parametrize("field", ["dataType", "level"])
@pytest.mark.parametrize("value", [{}, [], ["NUMERIC"]])
def test_unhashable_enum_values_are_refused(field: str, value) -> None:
    etype = "score-create" if field == "dataType" else "span-create"
    with pytest.raises(InvalidEvent, match=f"body.{field}"):
        normalize(_event(etype, {"traceId": "t", "name": "q", "value": 1, field: value}))


@pytest.mark.parametrize(
    ("etype", "field"),
    [("trace-create", "userId"), ("trace-create", "sessionId"), ("generation-create", "model")],
)
def test_keys_the_postgres_stage_would_dead_letter_are_refused_at_the_edge(etype: str, field: str) -> None:
    from pipeline.events import MAX_KEY_CHARS
    from sinks.postgres import rollup

    assert rollup.MAX_KEY_CHARS == MAX_KEY_CHARS  # one contract, one number
    body = {"id": "x", "traceId": "t", field: "m" * MAX_KEY_CHARS}
    normalize({"id": "e1", "type": etype, "timestamp": "2026-11-27T10:00:00Z", "body": dict(body)})
    body[field] = "m" * (MAX_KEY_CHARS + 1)
    with pytest.raises(InvalidEvent, match=f"body.{field} must be a string of at most {MAX_KEY_CHARS}"):
        normalize({"id": "e1", "type": etype, "timestamp": "2026-11-27T10:00:00Z", "body": body})


def test_the_zero_time_of_go_and_dotnet_is_an_unset_time() -> None:
    """Go's encoding/json writes a time.Time left unset as 0001-01-01T00:00:00Z (CloudWeGo Eino's
    Langfuse client on every update's startTime), .NET's DateTime.MinValue the same: the field is
    absent, as Langfuse takes it, and the event is kept."""
    zero = "0001-01-01T00:00:00Z"
    _, _, _, body = normalize(_event("span-update", {"id": "s", "startTime": zero, "endTime": "2026-11-27T10:00:01Z"}))
    assert body == {"id": "s", "endTime": 1_795_773_601_000_000}
    create = {"traceId": "t", "startTime": "2026-11-27T10:00:00Z", "endTime": zero, "completionStartTime": zero}
    _, _, _, body = normalize(_event("generation-create", create))
    assert "endTime" not in body and "completionStartTime" not in body and body["startTime"] == 1_795_773_600_000_000
    for other in ("0001-01-01T00:00:00", "0001-01-01T00:00:00.000+00:00"):
        assert "startTime" not in normalize(_event("span-update", {"id": "s", "startTime": other}))[3]
