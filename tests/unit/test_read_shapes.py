"""The read API's parameter parsing and JSON shapes, without servers: what the SDKs send and
what their models require (/work/notes/read-api.md, sections 2 and 5)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from multidict import MultiDict

from ingest import shapes
from ingest.encoding import ClientError
from ingest.filters import MAX_CONDITIONS, OBSERVATION_COLUMNS, conditions
from ingest.params import Params, decode_cursor, encode_cursor

T0 = 1_795_773_600_000_000  # 2026-11-27T10:00:00Z


def params(*pairs: tuple[str, str]) -> Params:
    return Params(SimpleNamespace(query=MultiDict(pairs)))  # type: ignore[arg-type]


def test_lists_take_repeated_and_comma_joined_values() -> None:
    assert params(("tags", "a"), ("tags", "b,c"), ("tags", "a")).items("tags") == ("a", "b", "c")
    assert params(("environment", "x,y")).items("environment", split=False) == ("x,y",)


@pytest.mark.parametrize(
    ("raw", "us"),
    [
        ("2026-11-27T10:00:00Z", T0),
        ("2026-11-27T10:00:00.000000Z", T0),
        ("2026-11-27T11:00:00+01:00", T0),
        ("2026-11-27T11:00:00 01:00", T0),  # an unescaped '+' arrives as a space
        ("1900-01-01T00:00:00Z", 0),  # before the epoch clamps to it
    ],
)
def test_times_need_a_timezone(raw: str, us: int) -> None:
    assert params(("fromTimestamp", raw)).time("fromTimestamp") == us


@pytest.mark.parametrize("raw", ["yesterday", "2026-11-27T10:00:00", "2026-13-01T00:00:00Z"])
def test_bad_times_are_400_naming_the_parameter(raw: str) -> None:
    with pytest.raises(ClientError, match="toTimestamp"):
        params(("toTimestamp", raw)).time("toTimestamp")


def test_pages_are_bounded() -> None:
    assert params().page() == (1, 50)
    assert params(("page", "3"), ("limit", "100")).page() == (3, 100)
    for bad in (("limit", "101"), ("limit", "0"), ("page", "0"), ("page", "x")):
        with pytest.raises(ClientError, match=bad[0]):
            params(bad).page()


def test_cursors_round_trip_and_garbage_is_400() -> None:
    doc: dict[str, Any] = {"lastStartTimeTo": "2026-11-27T10:00:00.000000Z", "lastTraceId": "t", "lastId": "o"}
    assert decode_cursor(encode_cursor(doc)) == doc
    for bad in ("%%%", "bm90IGpzb24", "WzFd"):  # not base64, not JSON, not an object
        with pytest.raises(ClientError, match="cursor"):
            decode_cursor(bad)


def _observation(**over: Any) -> dict[str, Any]:
    row = {
        "id": "o", "trace_id": "t", "type": "GENERATION", "parent_observation_id": "", "name": "llm",
        "start_time": T0, "end_time": T0 + 2_000_000, "completion_start_time": T0 + 500_000, "level": "DEFAULT",
        "status_message": "", "version": "", "environment": "", "metadata": "", "input": '{"q":1}', "output": "text",
        "provided_model_name": "m", "model_parameters": '{"t":0.2,"fmt":{"type":"json"},"stop":["a"]}',
        "usage_details": '{"input":10,"output":5.0,"total":15}', "cost_details": '{"total":0.5}', "total_cost": 0.5,
        "prompt_name": "", "prompt_version": "", "created_at": T0, "updated_at": T0,
    }  # fmt: skip
    return row | over


def test_v1_observation_is_what_every_sdk_parses() -> None:
    doc = shapes.observation(_observation(), "p")
    # 2.60 types modelParameters as a flat map of scalars and string lists.
    assert doc["modelParameters"] == {"t": 0.2, "fmt": '{"type":"json"}', "stop": ["a"]}
    assert doc["usage"] == {"input": 10, "output": 5, "total": 15, "unit": "TOKENS"}
    assert doc["usageDetails"] == {"input": 10, "output": 5, "total": 15}  # ints: 3.x and later reject 1.5
    assert (doc["environment"], doc["metadata"], doc["latency"], doc["timeToFirstToken"]) == ("default", {}, 2.0, 0.5)
    assert doc["input"] == {"q": 1} and doc["output"] == "text"
    # A string holding JSON messages (Go's Eino sends them so) as Langfuse's v1 reads it back.
    sent = _observation(input=orjson.dumps('[{"role":"user","content":"Hi"}]').decode(), output='"[not json"')
    assert shapes.observation(sent, "p")["input"] == [{"role": "user", "content": "Hi"}]
    assert shapes.observation(sent, "p")["output"] == "[not json"
    v2 = shapes.observation_v2(_observation(), "p", frozenset({"core", "io", "model"}), None)
    assert v2["input"] == '{"q":1}'  # v2 io is the stored text
    # ... and a string value's own text, as Langfuse stores it, not its JSON
    quoted = shapes.observation_v2(_observation(output='"It is \\"sunny\\"."'), "p", frozenset({"io"}), None)
    assert quoted["output"] == 'It is "sunny".'
    unclosed = shapes.observation_v2(_observation(output='"unclosed'), "p", frozenset({"io"}), None)
    assert unclosed["output"] == '"unclosed'
    assert v2["model"] == v2["providedModelName"] == "m" and v2["totalPrice"] is None
    assert (doc["inputPrice"], doc["outputPrice"], doc["totalPrice"]) == (None, None, None)


def test_observations_carry_their_model_s_per_unit_prices() -> None:
    prices = {"input": 1.5e-07, "output": 6e-07, "input_cached_tokens": 7.5e-08}
    doc = shapes.observation(_observation(usage_pricing_model_id="m1"), "p", prices)
    assert (doc["modelId"], doc["inputPrice"], doc["outputPrice"], doc["totalPrice"]) == ("m1", 1.5e-07, 6e-07, None)
    v2 = shapes.observation_v2(_observation(usage_pricing_model_id="m1"), "p", frozenset({"core"}), None, prices)
    # v2 spells prices as decimal strings, positional and with the float's own digits.
    assert (v2["inputPrice"], v2["outputPrice"], v2["totalPrice"]) == ("0.00000015", "0.0000006", None)
    assert shapes.decimal_text(2.5) == "2.5" and shapes.decimal_text(1e-12) == "0.000000000001"


def _score(data_type: str, value: float, string_value: str = "") -> dict[str, Any]:
    return {
        "id": "s", "trace_id": "t", "observation_id": "", "session_id": "", "dataset_run_id": "", "name": "n",
        "value": value, "string_value": string_value, "data_type": data_type, "source": "API", "comment": "",
        "config_id": "", "environment": "", "metadata": "", "timestamp": T0, "created_at": T0, "updated_at": T0,
    }  # fmt: skip


def test_scores_carry_the_fields_their_data_type_needs() -> None:
    assert shapes.score(_score("NUMERIC", 0.5), "p")["value"] == 0.5
    boolean = shapes.score(_score("BOOLEAN", 1.0), "p")
    assert (boolean["value"], boolean["stringValue"]) == (1.0, "True")
    categorical = shapes.score(_score("CATEGORICAL", 0.0, "calm"), "p")
    assert (categorical["value"], categorical["stringValue"]) == (0.0, "calm")
    assert "value" not in shapes.score(_score("TEXT", 0.0, "fine"), "p")
    assert shapes.score(_score("", 0.3), "p")["dataType"] == "NUMERIC"
    v3 = {t: shapes.score_v3(_score(t, 1.0, "x"), "p")["value"] for t in ("NUMERIC", "BOOLEAN", "TEXT")}
    assert v3 == {"NUMERIC": 1.0, "BOOLEAN": True, "TEXT": "x"}
    assert shapes.score_v3(_score("NUMERIC", 1.0), "p")["subject"] == {"kind": "trace", "id": "t"}


def test_latency_and_days() -> None:
    assert shapes.latency([]) == 0.0
    spans = [{"start_time": T0, "end_time": None}, {"start_time": T0 + 3_000_000, "end_time": None}]
    assert shapes.latency(spans) == 3.0  # no ends: the last start
    assert shapes.day(20_419) == "2025-11-27" and shapes.day(shapes.date(2026, 1, 2)) == "2026-01-02"


def _filter(doc: Any) -> Params:
    return params(("filter", doc if isinstance(doc, str) else orjson.dumps(doc).decode()))


def test_structured_filter_conditions_become_our_columns() -> None:
    got = conditions(
        _filter(
            [
                {"type": "string", "column": "model", "operator": "=", "value": "gpt-4o"},
                {"type": "stringOptions", "column": "level", "operator": "any of", "value": "ERROR"},
                {"type": "datetime", "column": "startTime", "operator": ">=", "value": "2026-11-27T10:00:00Z"},
                {"type": "number", "column": "totalCost", "operator": ">", "value": 0.5},
                {"type": "boolean", "column": "isRootObservation", "operator": "=", "value": True},
                {"type": "arrayOptions", "column": "tags", "operator": "all of", "value": ["a", "b"]},
                {"type": "stringObject", "column": "metadata", "key": "team", "operator": "=", "value": "core"},
                {"type": "number", "column": "latency", "operator": ">", "value": 1.5},
            ]
        ),
        OBSERVATION_COLUMNS,
    )
    assert got == (
        ("provided_model_name", "=", "gpt-4o"),
        ("level", "any of", ("ERROR",)),
        ("start_time", ">=", T0),
        ("total_cost", ">", 0.5),
        ("root", "=", True),
        ("trace.tags", "all of", ("a", "b")),
        ("metadata", "=", ("team", "core")),
        ("latency", ">", 1.5),
    )
    assert conditions(params(), OBSERVATION_COLUMNS) == ()


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ("[", "not JSON"),
        ({"column": "name"}, "JSON array"),
        ([{"column": "name", "operator": "="}] * (MAX_CONDITIONS + 1), "JSON array"),
        (["name"], "each condition"),
        ([{"column": "latency", "operator": "contains", "value": 1}], "latency"),
        ([{"column": "metadata", "operator": "=", "value": "core"}], "needs a key"),
        ([{"column": "metadata", "key": "", "operator": "=", "value": "core"}], "needs a key"),
        ([{"column": "metadata", "key": "team", "operator": "=", "value": 1}], "needs a string"),
        ([{"column": "metadata", "key": "team", "operator": "any of", "value": "x"}], "metadata"),
        ([{"column": "name", "operator": "matches", "value": "x"}], "matches"),
        ([{"column": "totalCost", "operator": ">", "value": True}], "finite number"),
        ([{"column": "totalCost", "operator": ">", "value": "1e999"}], "finite number"),
        ([{"column": "startTime", "operator": ">", "value": "yesterday"}], "startTime"),
        ([{"column": "type", "operator": "any of", "value": [1]}], "list of strings"),
        ([{"column": "isRootObservation", "operator": "=", "value": "true"}], "true or false"),
    ],
)
def test_structured_filters_that_cannot_be_answered_are_400(doc: Any, named: str) -> None:
    with pytest.raises(ClientError) as caught:
        conditions(_filter(doc), OBSERVATION_COLUMNS)
    assert named in caught.value.message
