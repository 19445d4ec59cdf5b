"""Model prices: which definition prices a generation, and what it costs, in both projections."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.envelope import Envelope
from pipeline.fold import EntityState
from pipeline.prices import USAGE_TYPES, ModelPrice, PriceBook, attribute_text, js_number, priced
from pipeline.times import datetime_from_micros
from sinks.clickhouse.schema import dialect_for
from sinks.clickhouse.writer import ClickHouseWriter
from sinks.postgres.models import default_models, parse_definition, parse_file_entry
from sinks.postgres.rollup import GENERATION_MAPS, contribution, fold_event, state_doc, state_from_doc

DAY_US = 86_400_000_000
GPT4O = ModelPrice("d-4o", None, "gpt-4o", r"^gpt-4o(-\d{4}-\d{2}-\d{2})?$", {"input": 2.5e-6, "output": 1e-5})
OLD = ModelPrice("d-old", None, "old", "^old$", {"input": 1.0}, start_us=None)
NEW = ModelPrice("d-new", None, "old", "^old$", {"input": 2.0}, start_us=100 * DAY_US)
OWN = ModelPrice("p-4o", "p1", "gpt-4o", "^gpt-4o", {"input": 1e-6, "output": 2e-6}, created_us=5)


def test_the_project_s_own_definition_wins_then_the_latest_start_date() -> None:
    book = PriceBook([GPT4O, OLD, NEW, OWN])
    assert book.match("p1", "GPT-4o-2024-08-06", 0) is OWN  # case-insensitive, dated variant
    assert book.match("p2", "gpt-4o-2024-08-06", 0) is GPT4O  # another project sees the default
    assert book.match("p2", "gpt-4o-mini", 0) is None
    assert book.match("p2", "old", 99 * DAY_US) is OLD  # the new price starts on day 100
    assert book.match("p2", "old", 100 * DAY_US) is NEW
    assert book.match("p2", "", 0) is None


def test_costs_are_inferred_per_usage_type_and_the_client_s_win() -> None:
    usage, cost, tier = priced({"input": 1000, "output": 500}, {}, GPT4O)
    assert usage == {"input": 1000, "output": 500, "total": 1500}
    assert cost == pytest.approx({"input": 0.0025, "output": 0.005, "total": 0.0075})
    assert tier == "Standard"
    _, cost, _ = priced({"input": 1000, "output": 500}, {"input": 1.0}, GPT4O)
    assert cost == pytest.approx({"input": 1.0, "output": 0.005, "total": 1.005})
    _, cost, tier = priced({"input": 10}, {"total": 3.0}, None)
    assert cost == {"total": 3.0} and tier == ""
    total_only = ModelPrice("t", None, "t", "^t$", {"total": 0.5})
    assert priced({"input": 2, "output": 2}, {}, total_only)[1] == {"total": 2.0}


def test_a_usage_total_not_sent_is_the_sum_of_every_usage_type() -> None:
    # Langfuse's rule ("if no total usage type is ingested, Langfuse sums up all usage type units").
    usage = {"input": 1000, "output": 500, "cache_read_input_tokens": 200}
    assert priced(usage, {}, None)[0] == {**usage, "total": 1700}
    assert priced({**usage, "total": 1500}, {}, None)[0]["total"] == 1500  # a total sent stays
    huge = {"input": 2**62, "output": 2**62}
    assert "total" not in priced(huge, {}, None)[0]  # past what a count column holds


# Deeper than orjson encodes (254 levels), as a 5 MB body may be: orjson parses 1,024.
_DEEP = orjson.loads("[" * 300 + "]" * 300)
_LONG = {"usageDetailPattern": "(input|prompt|cached)", "operator": "gt", "value": 200000, "caseSensitive": False}
_FAST = {"source": "model_parameters", "key": "service_tier", "operator": "in", "values": ["fast", "priority"]}
_STANDARD = {"name": "Standard", "isDefault": True, "priority": 0, "conditions": [], "prices": {"input": 1}}


def _tier(name: str, priority: int, conditions: list, prices: dict) -> dict:
    return {"name": name, "isDefault": False, "priority": priority, "conditions": conditions, "prices": prices}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"modelName": "m", "matchPattern": "(unclosed", "inputPrice": 1}, "regular expression"),
        ({"modelName": "m", "matchPattern": "^m$", "inputPrice": -1}, ">= 0"),
        ({"modelName": "m", "matchPattern": "^m$", "prices": {"in put": 1}}, "usage type 'in put'"),
        ({"modelName": "m", "matchPattern": "^m$", "prices": {"": 1}}, "usage type"),
        ({"modelName": "m", "matchPattern": "^m$", "prices": {f"u{i}": 1 for i in range(101)}}, "at most 100"),
        ({"modelName": "m", "matchPattern": "^m$"}, "at least one price"),
        ({"modelName": "", "matchPattern": "^m$", "inputPrice": 1}, "modelName"),
        ({"modelName": "m", "matchPattern": "^m$", "inputPrice": 1, "totalPrice": 1}, "totalPrice"),
        ({"modelName": "m", "matchPattern": "^m$", "inputPrice": 1, "prices": {"input": 1}}, "one way"),
        ({"modelName": "m", "matchPattern": "^m$", "unit": "LITERS", "inputPrice": 1}, "unit"),
        ({"modelName": "m", "matchPattern": "^m$", "inputPrice": 1, "startDate": "soon"}, "startDate"),
        # Each of these was a 500 or a 503 from the api: the store or the encoder failed instead.
        ({"modelName": "m", "matchPattern": "^m$", "unit": [None], "inputPrice": 1}, "unit"),
        ({"modelName": "m", "matchPattern": "^m$", "inputPrice": 1, "startDate": "0001-01-01T00:00:00+01:00"}, "9999"),
        ({"modelName": "m", "matchPattern": "^m$", "inputPrice": 1, "startDate": "9999-12-31T23:59:59-01:00"}, "9999"),
        ({"modelName": "m\x00", "matchPattern": "^m$", "inputPrice": 1}, "NUL"),
        ({"modelName": "m", "matchPattern": "^m\x00$", "inputPrice": 1}, "NUL"),
        ({"modelName": "m", "matchPattern": "^m$", "inputPrice": 1, "tokenizerConfig": {"k": ["\x00"]}}, "NUL"),
        ({"modelName": "m", "matchPattern": "^m$", "inputPrice": 1, "tokenizerConfig": {"\x00": 1}}, "NUL"),
        ({"modelName": "m", "matchPattern": "^m$", "inputPrice": 1, "tokenizerConfig": _DEEP}, "deeply"),
        ({"modelName": "m", "matchPattern": "^m$", "pricingTiers": [_tier("Long", 1, [_LONG], {"input": 2})]},
         "exactly one pricing tier must have isDefault"),
        ({"modelName": "m", "matchPattern": "^m$", "pricingTiers": [_STANDARD, _STANDARD | {"name": "Two"}]},
         "exactly one"),
        ({"modelName": "m", "matchPattern": "^m$", "pricingTiers": [_STANDARD | {"conditions": [_LONG]}]},
         "priority 0 and no conditions"),
        ({"modelName": "m", "matchPattern": "^m$", "pricingTiers": [_STANDARD, _tier("Long", 1, [], {"input": 2})]},
         "at least one condition"),
        ({"modelName": "m", "matchPattern": "^m$",
          "pricingTiers": [_STANDARD, _tier("A", 1, [_LONG], {"input": 2}), _tier("B", 1, [_LONG], {"input": 3})]},
         "priorities must be unique"),
        ({"modelName": "m", "matchPattern": "^m$",
          "pricingTiers": [_STANDARD, _tier("A", 1, [_LONG], {"input": 2}), _tier("A", 2, [_LONG], {"input": 3})]},
         "names must be unique"),
        ({"modelName": "m", "matchPattern": "^m$", "pricingTiers": [_STANDARD, _tier("L", 1, [_LONG], {"output": 2})]},
         "same usage types"),
        ({"modelName": "m", "matchPattern": "^m$", "pricingTiers": [_STANDARD, _tier("L", 1, [_LONG], {})]},
         "at least one price"),
        ({"modelName": "m", "matchPattern": "^m$",
          "pricingTiers": [_STANDARD, _tier("L", 1000, [_LONG], {"input": 2})]},
         "priority"),
        ({"modelName": "m", "matchPattern": "^m$",
          "pricingTiers": [_STANDARD, _tier("L", 1, [_LONG | {"operator": "between"}], {"input": 2})]},
         "operator"),
        ({"modelName": "m", "matchPattern": "^m$",
          "pricingTiers": [_STANDARD, _tier("L", 1, [_LONG | {"usageDetailPattern": "(input"}], {"input": 2})]},
         "regular expression"),
        ({"modelName": "m", "matchPattern": "^m$",
          "pricingTiers": [_STANDARD, _tier("L", 1, [_LONG | {"usageDetailPattern": "^(in+)+$"}], {"input": 2})]},
         "backtracking"),
        ({"modelName": "m", "matchPattern": "^m$",
          "pricingTiers": [_STANDARD, _tier("L", 1, [_LONG | {"usageDetailPattern": "(x\\d{2})*"}], {"input": 2})]},
         "backtracking"),
        ({"modelName": "m", "matchPattern": "^m$",
          "pricingTiers": [_STANDARD, _tier("L", 1, [_LONG | {"value": -1}], {"input": 2})]},
         ">= 0"),
        ({"modelName": "m", "matchPattern": "^m$",
          "pricingTiers": [_STANDARD, _tier("L", 1, [_FAST | {"values": []}], {"input": 2})]},
         "values"),
        ({"modelName": "m", "matchPattern": "^m$",
          "pricingTiers": [_STANDARD, _tier("L", 1, [_FAST | {"source": "headers"}], {"input": 2})]},
         "source"),
        ({"modelName": "m", "matchPattern": "^m$",
          "pricingTiers": [_STANDARD, _tier("L", 1, [_FAST | {"values": ["x" * 1001]}], {"input": 2})]},
         "1000 characters"),
        ({"modelName": "m", "matchPattern": "^m$", "inputPrice": 1, "pricingTiers": [_STANDARD]}, "one way"),
        ({"modelName": "m", "matchPattern": "^m$", "pricingTiers": [_STANDARD | {"name": " "}]}, "name"),
        ({"modelName": "m", "matchPattern": "^m$", "pricingTiers": {"Standard": {}}}, "list"),
    ],
)  # fmt: skip
def test_bad_definitions_are_refused_with_a_reason(doc: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_definition(doc)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
# Not matchPattern: some random patterns make `re` warn (a nested set), an error under pytest.
_FIELDS = ("modelName", "startDate", "unit", "inputPrice", "outputPrice", "totalPrice", "prices", "pricingTiers",
           "tokenizerId", "tokenizerConfig")  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(_FIELDS), _JSON))
def test_any_json_definition_is_refused_with_a_reason_or_stores(changes: dict) -> None:
    # A client's definition is either a ValueError (the api's 400) or one the table can store.
    try:
        new = parse_definition({"modelName": "m", "matchPattern": "^m$", "inputPrice": 1} | changes)
    except ValueError:
        return
    orjson.dumps(new.tokenizer_config)
    assert "\x00" not in new.model_name
    if new.start_us is not None:
        assert 1 <= datetime_from_micros(new.start_us).year <= 9999


def test_a_pattern_that_matches_nothing_and_a_default_tier_are_fine() -> None:
    tier = {"name": "Standard", "isDefault": True, "priority": 0, "conditions": [], "prices": {"input": 1e-6}}
    new = parse_definition({"modelName": "m", "matchPattern": "^never$", "pricingTiers": [tier]})
    assert new.prices == {"input": 1e-6} and new.unit == "TOKENS"


def test_a_price_may_name_any_usage_type_as_langfuse_allows() -> None:
    # Definitions copied from Langfuse name the providers' own keys; refusing them would refuse
    # the user's whole model.
    prices = {"input": 3e-6, "cache_read_input_tokens": 3e-7, "input_modality_1": 1e-6, "x.y:z-1": 0}
    assert parse_definition({"modelName": "m", "matchPattern": "^m$", "prices": prices}).prices == prices


def test_the_shipped_claude_prices_price_anthropic_usage_keys_as_sent() -> None:
    # What an SDK user passes on from Anthropic's response: `usage_details=message.usage`.
    doc = default_models()
    sonnet = next(m for m in doc["models"] if m["id"] == "at-anthropic-claude-sonnet")
    prices = parse_definition(sonnet, per_million=True).prices
    model = ModelPrice(sonnet["id"], None, "s", sonnet["matchPattern"], prices)
    usage = {"input": 100, "output": 50, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 200}
    _, cost, tier = priced(usage, {}, model)
    assert tier == "Standard"
    assert cost == pytest.approx(
        {
            "input": 3e-4,
            "output": 7.5e-4,
            "cache_read_input_tokens": 3e-4,
            "cache_creation_input_tokens": 7.5e-4,
            "total": 2.1e-3,
        }
    )


def test_the_shipped_defaults_parse_and_price_gpt_4o() -> None:
    doc = default_models()
    book = PriceBook(
        ModelPrice(m["id"], None, m["modelName"], m["matchPattern"], parse_definition(m, per_million=True).prices)
        for m in doc["models"]
    )
    assert doc["source_date"]
    for name in ("gpt-4o", "gpt-4o-2024-08-06", "openai/gpt-4o"):
        found = book.match("p", name, 0)
        assert found is not None and found.id == "at-openai-gpt-4o"
        # Exactly the per-token price as written (the read API shows it), not 2.4999999999999998e-06.
        assert found.prices == {
            "input": 2.5e-06,
            "input_cached_tokens": 1.25e-06,
            "input_cache_read": 1.25e-06,
            "output": 1e-05,
        }
    for name in ("claude-3-5-sonnet-20241022", "gemini-2.5-flash", "text-embedding-3-small", "deepseek-chat"):
        assert book.match("p", name, 0) is not None, name


def _default_book() -> PriceBook:
    return PriceBook(parse_file_entry(m).price(m["id"]) for m in default_models()["models"])


# What clients send: dated, provider-prefixed, Bedrock (cross-region) and Vertex names, and the
# near misses a loose pattern would price as its neighbour. (name, entry, input, output per 1M)
_SENT = [
    ("gpt-5.4-mini", "at-openai-gpt-5.4-mini", 0.75, 4.5),
    ("gpt-5.4-mini-2026-03-17", "at-openai-gpt-5.4-mini", 0.75, 4.5),
    ("openai/gpt-5.4", "at-openai-gpt-5.4", 2.5, 15.0),
    ("azure/gpt-5.4-2026-03-05", "at-openai-gpt-5.4", 2.5, 15.0),
    ("gpt-5.4-pro", "at-openai-gpt-5.4-pro", 30.0, 180.0),
    ("gpt-5.4-nano", "at-openai-gpt-5.4-nano", 0.2, 1.25),
    ("gpt-5-2025-08-07", "at-openai-gpt-5", 1.25, 10.0),
    ("gpt-5-pro-2025-10-06", "at-openai-gpt-5-pro", 15.0, 120.0),
    ("gpt-5.1", "at-openai-gpt-5.1", 1.25, 10.0),
    ("gpt-5.2-2025-12-11", "at-openai-gpt-5.2", 1.75, 14.0),
    ("gpt-5.2-pro", "at-openai-gpt-5.2-pro", 21.0, 168.0),
    ("gpt-5.3-codex", "at-openai-gpt-5.3-codex", 1.75, 14.0),
    ("openai/gpt-5.5", "at-openai-gpt-5.5", 5.0, 30.0),
    ("gpt-5.5-pro-2026-04-23", "at-openai-gpt-5.5-pro", 30.0, 180.0),
    ("GPT-5.6-Terra", "at-openai-gpt-5.6-terra", 2.0, 12.0),
    ("gpt-5.6-sol", "at-openai-gpt-5.6-sol", 5.0, 30.0),
    ("gpt-5.6-luna", "at-openai-gpt-5.6-luna", 0.2, 1.2),
    ("o3-2025-04-16", "at-openai-o3", 2.0, 8.0),
    ("o3-pro-2025-06-10", "at-openai-o3-pro", 20.0, 80.0),
    ("o1-pro", "at-openai-o1-pro", 150.0, 600.0),
    ("o1-preview-2024-09-12", "at-openai-o1-preview", 15.0, 60.0),
    ("gpt-4.5-preview-2025-02-27", "at-openai-gpt-4.5-preview", 75.0, 150.0),
    ("chatgpt-4o-latest", "at-openai-chatgpt-4o-latest", 5.0, 15.0),
    ("gpt-4-0613", "at-openai-gpt-4", 30.0, 60.0),
    ("azure/gpt-4-32k-0314", "at-openai-gpt-4-32k", 60.0, 120.0),
    ("gpt-4-1106-preview", "at-openai-gpt-4-turbo", 10.0, 30.0),
    ("gpt-4-vision-preview", "at-openai-gpt-4-turbo", 10.0, 30.0),
    ("gpt-35-turbo-instruct", "at-openai-gpt-3.5-turbo-instruct", 1.5, 2.0),
    ("gpt-3.5-turbo-1106", "at-openai-gpt-3.5-turbo-1106", 1.0, 2.0),
    ("gpt-3.5-turbo-0125", "at-openai-gpt-3.5-turbo", 0.5, 1.5),
    ("claude-sonnet-4-6", "at-anthropic-claude-sonnet", 3.0, 15.0),
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "at-anthropic-claude-sonnet", 3.0, 15.0),
    ("claude-3-5-sonnet-v2@20241022", "at-anthropic-claude-sonnet", 3.0, 15.0),
    ("claude-opus-4-5-20251101", "at-anthropic-claude-opus-4-5", 5.0, 25.0),
    ("claude-opus-4-5@20251101", "at-anthropic-claude-opus-4-5", 5.0, 25.0),
    ("global.anthropic.claude-opus-4-6-v1", "at-anthropic-claude-opus-4-5", 5.0, 25.0),
    ("anthropic/claude-opus-4-8", "at-anthropic-claude-opus-4-5", 5.0, 25.0),
    ("claude-opus-5", "at-anthropic-claude-opus-4-5", 5.0, 25.0),
    ("claude-opus-4-1-20250805", "at-anthropic-claude-opus-4", 15.0, 75.0),
    ("eu.anthropic.claude-opus-4-20250514-v1:0", "at-anthropic-claude-opus-4", 15.0, 75.0),
    ("apac.anthropic.claude-sonnet-5-v1:0", "at-anthropic-claude-sonnet-5", 2.0, 10.0),
    ("claude-fable-5", "at-anthropic-claude-fable-5", 10.0, 50.0),
    ("jp.anthropic.claude-mythos-5-v1:0", "at-anthropic-claude-mythos-5", 10.0, 50.0),
    ("claude-haiku-4-5@20251001", "at-anthropic-claude-haiku-4-5", 1.0, 5.0),
    ("au.anthropic.claude-haiku-4-5-20251001-v1:0", "at-anthropic-claude-haiku-4-5", 1.0, 5.0),
    ("anthropic.claude-3-haiku-20240307-v1:0", "at-anthropic-claude-3-haiku", 0.25, 1.25),
    ("models/gemini-3-pro-preview", "at-google-gemini-3-pro-preview", 2.0, 12.0),
    ("gemini-3.1-pro-preview-customtools", "at-google-gemini-3.1-pro-preview", 2.0, 12.0),
    ("gemini-3-flash-preview", "at-google-gemini-3-flash-preview", 0.5, 3.0),
    ("gemini-3.5-flash", "at-google-gemini-3.5-flash", 1.5, 9.0),
    ("google/gemini-3.5-flash-lite", "at-google-gemini-3.5-flash-lite", 0.3, 2.5),
    ("gemini-3.7-flash", "at-google-gemini-3.7-flash", 0.75, 3.75),
    ("gemini-3.1-flash-lite-preview", "at-google-gemini-3.1-flash-lite", 0.25, 1.5),
    ("gemini-2.5-flash-lite", "at-google-gemini-2.5-flash-lite", 0.1, 0.4),
    # Near misses: an unescaped `.` or a pattern open at the end would price these.
    ("gpt-5x4", None, 0, 0),
    ("gemini-3x5-flash", None, 0, 0),
    ("gpt-5.4-turbo", None, 0, 0),
    ("claude-opus-4-9", None, 0, 0),
    ("us-east.anthropic.claude-sonnet-4-6-v1:0", None, 0, 0),
]


@pytest.mark.parametrize(("name", "model_id", "input_price", "output_price"), _SENT)
def test_the_shipped_defaults_price_the_names_clients_send(
    name: str, model_id: str | None, input_price: float, output_price: float
) -> None:
    found = _default_book().match("p", name, 0)
    if model_id is None:
        assert found is None, found
        return
    assert found is not None and found.id == model_id, (name, found)
    per_unit = [float(Decimal(repr(price)) / 1_000_000) for price in (input_price, output_price)]
    assert [found.prices["input"], found.prices["output"]] == per_unit


def test_the_shipped_cache_prices_follow_the_provider_s_published_ones() -> None:
    models = {m["id"]: m["prices"] for m in default_models()["models"]}
    assert models["at-google-gemini-2.5-pro"]["input_cached_tokens"] == 0.125
    assert models["at-google-gemini-2.5-flash"]["input_cached_tokens"] == 0.03
    assert models["at-google-gemini-2.5-flash-lite"]["input_cached_tokens"] == 0.01
    sonnet_5 = models["at-anthropic-claude-sonnet-5"]
    assert (sonnet_5["cache_read_input_tokens"], sonnet_5["input_cache_creation_5m"]) == (0.2, 2.5)
    assert sonnet_5["input_cache_creation_1h"] == 4.0
    # Each provider's entries price the same usage keys, so a key a client sends is priced by
    # every model of the family, not by some.
    keys = set(models["at-anthropic-claude-sonnet"])
    for model_id, prices in models.items():
        if model_id.startswith("at-anthropic-"):
            assert set(prices) == keys, model_id
        assert "output_reasoning_tokens" not in prices, model_id  # reasoning is counted in output


_OPENAI = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4.5-preview", "gpt-5",
           "gpt-5-mini", "gpt-5-nano", "gpt-5-pro", "gpt-5-chat-latest", "gpt-5.1", "gpt-5.2", "gpt-5.2-pro",
           "gpt-5.3-codex", "gpt-5.4", "gpt-5.4-pro", "gpt-5.4-mini", "gpt-5.4-nano", "gpt-5.5", "gpt-5.5-pro",
           "gpt-5.6-sol", "gpt-5.6-terra", "gpt-5.6-luna", "o1", "o1-mini", "o1-preview", "o1-pro", "o3", "o3-mini",
           "o3-pro", "o4-mini", "gpt-4", "gpt-4-0613", "gpt-4-32k", "gpt-4-turbo", "gpt-4-turbo-preview",
           "gpt-4-1106-preview", "gpt-4-preview", "gpt-4-vision-preview", "gpt-3.5-turbo", "gpt-3.5-turbo-0125",
           "gpt-3.5-turbo-1106", "gpt-3.5-turbo-0613", "gpt-3.5-turbo-16k", "gpt-3.5-turbo-16k-0613",
           "gpt-3.5-turbo-0301", "gpt-3.5-turbo-instruct", "chatgpt-4o-latest")  # fmt: skip
_ANTHROPIC = ("claude-3-haiku", "claude-3-5-haiku", "claude-haiku-4-5", "claude-3-opus", "claude-opus-4",
              "claude-opus-4-1", "claude-opus-4-5", "claude-opus-4-6", "claude-opus-4-7", "claude-opus-4-8",
              "claude-opus-5", "claude-3-5-sonnet", "claude-3-7-sonnet", "claude-sonnet-4", "claude-sonnet-4-5",
              "claude-sonnet-4-6", "claude-sonnet-5", "claude-fable-5", "claude-mythos-5")  # fmt: skip
_GOOGLE = ("gemini-1.5-pro", "gemini-1.5-flash", "gemini-2.0-flash", "gemini-2.0-flash-lite", "gemini-2.5-pro",
           "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-3-pro-preview", "gemini-3.1-pro-preview",
           "gemini-3-flash-preview", "gemini-3.5-flash", "gemini-3.6-flash", "gemini-3.7-flash",
           "gemini-3.1-flash-lite", "gemini-3.5-flash-lite")  # fmt: skip


def _variants() -> list[str]:
    names = [p + n + s for n in _OPENAI for p in ("", "openai/", "azure/") for s in ("", "-2026-01-02")]
    names += [
        p + n + s
        for n in _ANTHROPIC
        for p in ("", "anthropic/", "anthropic.", "us.anthropic.", "global.anthropic.")
        for s in ("", "-20260102", "-latest", "-v1:0", "-v1", "-20260102-v1:0", "@20260102", "-v2@20260102")
    ]
    names += [p + n + s for n in _GOOGLE for p in ("", "google/", "models/") for s in ("", "-001", "-preview-06-05")]
    return names + [name for name, *_ in _SENT]


def test_no_name_is_matched_by_two_shipped_defaults() -> None:
    # Between two defaults that match one name, PriceBook has no rule (same owner, no start date,
    # created in whatever order the table was first filled): the entries must not overlap.
    book = _default_book()
    names = _variants()
    for name in names:
        found = [m.id for m in book.models if m.pattern.search(name)]
        assert len(found) <= 1, (name, found)
    # And none of the model names is left unpriced.
    for name in [*_OPENAI, *_ANTHROPIC, *_GOOGLE]:
        assert book.match("p", name, 0) is not None, name


usage_maps = st.dictionaries(st.sampled_from(sorted(USAGE_TYPES)), st.integers(0, 10**7), max_size=5)
cost_maps = st.dictionaries(st.sampled_from(sorted(USAGE_TYPES)), st.floats(0, 100), max_size=3)
price_maps = st.dictionaries(st.sampled_from(sorted(USAGE_TYPES - {"total"})), st.floats(0, 1e-3), min_size=1)


@settings(max_examples=200, deadline=None)
@given(usage=usage_maps, cost=cost_maps, prices=price_maps, model=st.sampled_from(["gpt-x", "other"]))
def test_both_projections_give_the_same_cost(usage: dict, cost: dict, prices: dict, model: str) -> None:
    book = PriceBook([ModelPrice("m1", None, "gpt-x", "^gpt-x$", prices)])
    values = {"provided_model_name": model, "start_time": 5, "usage_details": usage, "cost_details": cost}
    state = EntityState("p", "g", values=values, first_ts=5, last_ts=5)
    _, ch_cost, model_id, _ = ClickHouseWriter(None, dialect_for((18, 16, 1)), prices=lambda: book)._priced(state)  # type: ignore[arg-type]
    pg = contribution(state, 1, book)
    assert pg.cost == (Decimal(repr(float(ch_cost["total"]))) if "total" in ch_cost else Decimal(0))
    # The definition the model matches, whether or not its prices were used (Langfuse's link).
    assert model_id == ("m1" if model == "gpt-x" else "")


# Langfuse's own example of tiers (its public API's docs): a long-context tier over 200k input
# tokens, and a priority tier on a model parameter, evaluated by priority.
_TIERED = {
    "modelName": "tiered",
    "matchPattern": "^tiered$",
    "pricingTiers": [
        _tier("Priority", 2, [_FAST], {"input": 4e-6, "output": 8e-6}),
        _STANDARD | {"prices": {"input": 1e-6, "output": 2e-6}},
        _tier("Large Context", 1, [_LONG], {"input": 2e-6, "output": 3e-6}),
    ],
}  # fmt: skip


def _tiered_model() -> ModelPrice:
    return parse_definition(_TIERED).price("m-tiered")


def test_the_first_tier_by_priority_whose_conditions_all_hold_prices_the_usage() -> None:
    model = _tiered_model()
    assert [t.name for t in model.tiers] == ["Large Context", "Priority"]  # by priority, not as sent
    _, cost, tier = priced({"input": 100_000, "output": 10}, {}, model)
    assert tier == "Standard" and cost == pytest.approx({"input": 0.1, "output": 2e-5, "total": 0.10002})
    # The pattern's usage types are summed: 150k input and 60k cached make 210k.
    _, cost, tier = priced({"input": 150_000, "input_cached_tokens": 60_000, "output": 10}, {}, model)
    assert tier == "Large Context" and cost["input"] == pytest.approx(0.3)
    # Both hold: the lower priority number wins.
    _, cost, tier = priced({"input": 300_000, "output": 10}, {}, model, {"service_tier": "priority"})
    assert tier == "Large Context"
    _, cost, tier = priced({"input": 10, "output": 10}, {}, model, {"service_tier": "priority"})
    assert tier == "Priority" and cost["input"] == pytest.approx(4e-5)
    # A key absent, or a value not listed, is the default tier; a metadata key is not a parameter.
    for params, metadata in (({"service_tier": "flex"}, None), ({}, {"service_tier": "priority"}), (None, None)):
        assert priced({"input": 10}, {}, model, params, metadata)[2] == "Standard"
    # The tier is named whenever a model and usage are there, as Langfuse records it, also when
    # the client sent the cost; without usage there is no tier.
    assert priced({"input": 300_000}, {"total": 1.0}, model)[1:] == ({"total": 1.0}, "Large Context")
    assert priced({}, {"total": 1.0}, model)[2] == ""


@pytest.mark.parametrize(
    ("operator", "value", "holds"),
    [("gt", 100, False), ("gte", 100, True), ("lt", 100, False), ("lte", 100, True), ("eq", 100, True),
     ("neq", 100, False), ("gt", 99.5, True), ("lt", 100.5, True)],
)  # fmt: skip
def test_each_operator_compares_the_sum_as_langfuse_s(operator: str, value: float, holds: bool) -> None:
    condition = {"usageDetailPattern": "^input", "operator": operator, "value": value}
    doc = {"modelName": "m", "matchPattern": "^m$",
           "pricingTiers": [_STANDARD, _tier("T", 1, [condition], {"input": 2})]}  # fmt: skip
    model = parse_definition(doc).price("m")
    # `input` and `input_audio` are summed (search, not a full match); `output` and the total are not.
    assert priced({"input": 60, "input_audio": 40, "output": 7}, {}, model)[2] == ("T" if holds else "Standard")


def test_a_usage_pattern_is_case_insensitive_unless_it_says_otherwise() -> None:
    condition = {"usageDetailPattern": "^Input$", "operator": "gt", "value": 5}
    for sensitive, expected in ((False, "T"), (True, "Standard")):
        tier = _tier("T", 1, [condition | {"caseSensitive": sensitive}], {"input": 2})
        doc = {"modelName": "m", "matchPattern": "^m$", "pricingTiers": [_STANDARD, tier]}
        assert priced({"input": 10}, {}, parse_definition(doc).price("m"))[2] == expected


@pytest.mark.parametrize(
    ("value", "listed"),
    [("priority", "priority"), (True, "true"), (False, "false"), (2, "2"), (2.0, "2"), (0.5, "0.5"),
     (1e21, "1e+21"), (1e-7, "1e-7"), (0.000001, "0.000001"), (2**60, "1152921504606847000"),
     ([1], None), ({"a": 1}, None), (None, None)],
)  # fmt: skip
def test_an_attribute_is_compared_as_the_text_javascript_writes(value: object, listed: str | None) -> None:
    condition = {"source": "metadata", "key": "k", "operator": "in", "values": [listed or "x"]}
    doc = {
        "modelName": "m",
        "matchPattern": "^m$",
        "pricingTiers": [_STANDARD, _tier("T", 1, [condition], {"input": 2})],
    }
    tier = priced({"input": 1}, {}, parse_definition(doc).price("m"), None, {"k": value})[2]
    assert tier == ("T" if listed else "Standard")


# As Node.js 20 writes them (String(x)), where Python's repr differs in all but a few.
@pytest.mark.parametrize(
    ("number", "text"),
    [(1e-7, "1e-7"), (-1e-7, "-1e-7"), (1.5e-7, "1.5e-7"), (0.000001, "0.000001"), (0.00001234, "0.00001234"),
     (1e16, "10000000000000000"), (1.2345678901234568e20, "123456789012345680000"), (1e21, "1e+21"),
     (2e21, "2e+21"), (-1.5e300, "-1.5e+300"), (1.7976931348623157e308, "1.7976931348623157e+308"),
     (5e-324, "5e-324"), (1.23e-18, "1.23e-18"), (123456.789, "123456.789"), (0.1, "0.1"), (100.0, "100"),
     (-0.0, "0"), (1 / 3, "0.3333333333333333"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity"),
     (float("nan"), "NaN")],
)  # fmt: skip
def test_a_number_is_written_as_javascript_writes_it(number: float, text: str) -> None:
    assert js_number(number) == text


@pytest.mark.parametrize(
    ("number", "text"),
    [(2**53, "9007199254740992"), (-(2**53) - 2, "-9007199254740994"), (12345678901234567890, "12345678901234567000"),
     (10**400, "Infinity"), (-(10**400), "-Infinity")],
)  # fmt: skip
def test_an_integer_past_what_a_double_holds_is_written_as_its_double(number: int, text: str) -> None:
    assert attribute_text(number) == text


def test_a_definition_with_tiers_keeps_them_as_given_and_prices_by_its_default() -> None:
    new = parse_definition(_TIERED)
    assert new.prices == {"input": 1e-6, "output": 2e-6} and new.default_tier == "Standard"
    assert [(t["name"], t["priority"]) for t in new.tiers] == [("Large Context", 1), ("Priority", 2)]
    assert new.tiers[0]["conditions"] == [_LONG]
    assert new.tiers[1]["conditions"] == [_FAST]
    # Per 1M in a price file, as the defaults are written.
    entry = {"modelName": "m", "matchPattern": "^m$", "prices": {"input": 2.5},
             "tiers": [{"name": "Long", "priority": 1, "conditions": [_LONG], "prices": {"input": 5}}]}  # fmt: skip
    filed = parse_file_entry(entry)
    assert filed.prices == {"input": 2.5e-6} and filed.tiers[0]["prices"] == {"input": 5e-6}


# (name, params, usage, tier, input price per 1M)
_SHIPPED_TIERS = [
    ("gemini-2.5-pro", None, {"input": 150_000, "input_cached_tokens": 60_000}, "Large Context", 2.5),
    ("gemini-2.5-pro", None, {"input": 150_000}, "Standard", 1.25),
    ("gpt-5-2025-08-07", {"service_tier": "priority"}, {"input": 10}, "Fast mode", 2.5),
    ("gpt-5", {"service_tier": "flex"}, {"input": 10}, "Flex", 0.625),
    ("gpt-5", {"service_tier": "default"}, {"input": 10}, "Standard", 1.25),
    ("gpt-5.4", None, {"input": 300_000}, "Large Context (>272K)", 5.0),
    ("gpt-5.4", {"service_tier": "flex"}, {"input": 300_000}, "Flex · Large context (>272K)", 2.5),
    ("gpt-4o-mini", {"service_tier": "priority", "temperature": 0.2}, {"input": 10}, "Fast mode", 0.25),
]


@pytest.mark.parametrize(("name", "params", "usage", "tier", "input_price"), _SHIPPED_TIERS)
def test_the_shipped_defaults_price_long_context_priority_and_flex(
    name: str, params: dict | None, usage: dict, tier: str, input_price: float
) -> None:
    model = _default_book().match("p", name, 0)
    assert model is not None
    _, cost, found = priced(usage, {}, model, params)
    assert found == tier
    assert cost["input"] == pytest.approx(usage["input"] * input_price / 1e6)


def test_the_shipped_tiers_price_the_usage_types_of_their_default() -> None:
    tiered = [m for m in default_models()["models"] if m.get("tiers")]
    assert len(tiered) >= 20
    for m in tiered:
        for t in m["tiers"]:
            assert sorted(t["prices"]) == sorted(m["prices"]), (m["id"], t["name"])


tier_params = st.fixed_dictionaries(
    {},
    optional={
        "service_tier": st.sampled_from(["priority", "flex", "fast", "default", 1, True, "priority\x00", "f" * 1001]),
        "x": st.text(),
    },
)


@settings(max_examples=200, deadline=None)
@given(usage=usage_maps, cost=cost_maps, params=tier_params, metadata=tier_params)
def test_both_projections_price_by_the_same_tier(usage: dict, cost: dict, params: dict, metadata: dict) -> None:
    # The ClickHouse stage holds the whole state; the Postgres stage only what the book's tier
    # conditions read, as text, through its fold and a stored document.
    metadata_tier = _tier("Meta", 3, [_FAST | {"source": "metadata"}], {"input": 7e-6, "output": 9e-6})
    doc = {**_TIERED, "pricingTiers": [*_TIERED["pricingTiers"], metadata_tier]}
    book = PriceBook([parse_definition(doc).price("m-tiered")])
    assert book.attribute_keys == {
        "model_parameters": frozenset({"service_tier"}),
        "metadata": frozenset({"service_tier"}),
    }
    body = {"id": "g", "traceId": "t", "model": "tiered", "startTime": 5, "usageDetails": usage, "costDetails": cost,
            "modelParameters": params, "metadata": metadata}  # fmt: skip
    folded: dict = {}
    fold_event(folded, Envelope("e", "p", "generation-create", 5, 5, body), book.attribute_keys)
    pg_state = folded[("p", "t")].generations["g"].state
    pg_state = state_from_doc("p", "g", orjson.loads(orjson.dumps(state_doc(pg_state, ["e"], Decimal(0)))))
    assert set(pg_state.values) <= {"provided_model_name", "start_time", *GENERATION_MAPS}
    values = {"provided_model_name": "tiered", "start_time": 5, "usage_details": usage, "cost_details": cost,
              "model_parameters": params, "metadata": metadata}  # fmt: skip
    state = EntityState("p", "g", values=values, first_ts=5, last_ts=5)
    _, ch_cost, _, tier = ClickHouseWriter(None, dialect_for((18, 16, 1)), prices=lambda: book)._priced(state)  # type: ignore[arg-type]
    assert contribution(pg_state, 1, book).cost == (
        Decimal(repr(float(ch_cost["total"]))) if "total" in ch_cost else Decimal(0)
    )
    assert tier == (priced(usage, cost, book.models[0], params, metadata)[2])
    assert not usage or tier
