"""Model prices: which definition prices a generation, and what it costs, in both projections."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.fold import EntityState
from pipeline.prices import USAGE_TYPES, ModelPrice, PriceBook, priced
from pipeline.times import datetime_from_micros
from sinks.clickhouse.schema import dialect_for
from sinks.clickhouse.writer import ClickHouseWriter
from sinks.postgres.models import default_models, parse_definition
from sinks.postgres.rollup import contribution

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
    usage, cost, inferred = priced({"input": 1000, "output": 500}, {}, GPT4O)
    assert usage == {"input": 1000, "output": 500, "total": 1500}
    assert cost == pytest.approx({"input": 0.0025, "output": 0.005, "total": 0.0075})
    assert inferred
    _, cost, _ = priced({"input": 1000, "output": 500}, {"input": 1.0}, GPT4O)
    assert cost == pytest.approx({"input": 1.0, "output": 0.005, "total": 1.005})
    _, cost, inferred = priced({"input": 10}, {"total": 3.0}, None)
    assert cost == {"total": 3.0} and not inferred
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
        (
            {"modelName": "m", "matchPattern": "^m$",
             "pricingTiers": [{"isDefault": False, "conditions": [{"usageDetailPattern": "input"}], "prices": {}}]},
            "not supported",
        ),
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
    _, cost, inferred = priced(usage, {}, model)
    assert inferred
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


usage_maps = st.dictionaries(st.sampled_from(sorted(USAGE_TYPES)), st.integers(0, 10**7), max_size=5)
cost_maps = st.dictionaries(st.sampled_from(sorted(USAGE_TYPES)), st.floats(0, 100), max_size=3)
price_maps = st.dictionaries(st.sampled_from(sorted(USAGE_TYPES - {"total"})), st.floats(0, 1e-3), min_size=1)


@settings(max_examples=200, deadline=None)
@given(usage=usage_maps, cost=cost_maps, prices=price_maps, model=st.sampled_from(["gpt-x", "other"]))
def test_both_projections_give_the_same_cost(usage: dict, cost: dict, prices: dict, model: str) -> None:
    book = PriceBook([ModelPrice("m1", None, "gpt-x", "^gpt-x$", prices)])
    values = {"provided_model_name": model, "start_time": 5, "usage_details": usage, "cost_details": cost}
    state = EntityState("p", "g", values=values, first_ts=5, last_ts=5)
    _, ch_cost, model_id = ClickHouseWriter(None, dialect_for((18, 16, 1)), prices=lambda: book)._priced(state)  # type: ignore[arg-type]
    pg = contribution(state, 1, book)
    assert pg.cost == (Decimal(repr(float(ch_cost["total"]))) if "total" in ch_cost else Decimal(0))
    # The definition the model matches, whether or not its prices were used (Langfuse's link).
    assert model_id == ("m1" if model == "gpt-x" else "")
