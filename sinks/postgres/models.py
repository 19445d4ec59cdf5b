"""The `models` table: model price definitions, the shipped defaults and each project's own.

Definitions are validated here once, whoever sends them (the public API, `agenttrace models
import`, the defaults file), so a definition in the table always compiles and prices. The
stages read the table through a `PriceRefresher`, which reloads it within seconds of a change.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import resources
from typing import Any

import orjson
from loguru import logger

from pipeline.errors import StoreError
from pipeline.periodic import Periodic
from pipeline.prices import (
    ATTRIBUTE_SOURCES,
    ATTRIBUTE_TEXT_MAX,
    DEFAULT_TIER,
    OPERATORS,
    UNITS,
    ModelPrice,
    PriceBook,
    PriceTier,
    TierCondition,
    compile_pattern,
)
from pipeline.times import datetime_from_micros, micros_from_datetime, to_micros
from sinks.postgres.client import Postgres

_COLUMNS = (
    "id, project_id, model_name, match_pattern, start_date, unit, prices::text, tokenizer_id,"
    " tokenizer_config::text, created_at, updated_at, pricing_tiers::text, default_tier"
)
_MAX_PATTERN = 1000
_MAX_NAME = 200
_MILLION = Decimal(1_000_000)
_MAX_PRICES = 100
_USAGE_TYPE = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")
# Langfuse's limits on a tier: its name, priority, and a usage condition's pattern.
_MAX_TIER_NAME = 100
_MAX_PRIORITY = 999
_MAX_CONDITION_PATTERN = 200
_MAX_TIERS = 50
_MAX_CONDITIONS = 20
_MAX_VALUES = 100
# A quantified group with a quantifier inside, `(a+)+`: what may backtrack exponentially on a key
# a client sends. Langfuse refuses such usage patterns too (star height above 1, safe-regex2).
_NESTED_QUANTIFIER = re.compile(r"\([^()]*[*+}][^()]*\)[*+{]")


@dataclass(frozen=True)
class Model:
    """A row of `models`; prices in USD per unit."""

    id: str
    project_id: str | None
    model_name: str
    match_pattern: str
    start_date: datetime | None
    unit: str
    prices: dict[str, float]
    tokenizer_id: str | None
    tokenizer_config: Any
    created_at: datetime
    updated_at: datetime
    # The conditional tiers as stored ({name, priority, conditions, prices}), by priority;
    # `prices` is the default tier's.
    tiers: list[dict[str, Any]]
    default_tier: str

    def price(self) -> ModelPrice:
        return ModelPrice(
            id=self.id,
            project_id=self.project_id,
            model_name=self.model_name,
            match_pattern=self.match_pattern,
            prices=self.prices,
            start_us=micros_from_datetime(self.start_date) if self.start_date else None,
            created_us=micros_from_datetime(self.created_at),
            unit=self.unit,
            tiers=tuple(price_tier(self.id, t) for t in self.tiers),
            default_tier=self.default_tier,
        )


def tier_id(model_id: str, priority: int | None) -> str:
    """A tier's id: stable, from its model's and its priority (unique within a model)."""
    return f"{model_id}_tier_default" if priority is None else f"{model_id}_tier_{priority}"


def price_tier(model_id: str, doc: Mapping[str, Any]) -> PriceTier:
    conditions = []
    for c in doc["conditions"]:
        if "usageDetailPattern" in c:
            flags = 0 if c.get("caseSensitive") else re.IGNORECASE
            pattern = re.compile(c["usageDetailPattern"], flags)
            conditions.append(TierCondition(pattern, c["operator"], float(c["value"])))
        else:
            conditions.append(TierCondition(None, "in", 0.0, c["source"], c["key"], frozenset(c["values"])))
    return PriceTier(tier_id(model_id, doc["priority"]), doc["name"], doc["priority"], tuple(conditions), doc["prices"])


@dataclass(frozen=True)
class NewModel:
    """A validated definition, not stored yet."""

    model_name: str
    match_pattern: str
    start_us: int | None
    unit: str
    prices: dict[str, float]
    tokenizer_id: str | None
    tokenizer_config: Any
    tiers: list[dict[str, Any]]
    default_tier: str = DEFAULT_TIER

    def price(self, model_id: str, project_id: str | None = None) -> ModelPrice:
        """How the stages price by this definition, once stored under `model_id`."""
        return ModelPrice(
            id=model_id,
            project_id=project_id,
            model_name=self.model_name,
            match_pattern=self.match_pattern,
            prices=self.prices,
            start_us=self.start_us,
            unit=self.unit,
            tiers=tuple(price_tier(model_id, t) for t in self.tiers),
            default_tier=self.default_tier,
        )


def parse_definition(doc: Any, *, per_million: bool = False) -> NewModel:
    """A definition in Langfuse's request shape (modelName, matchPattern, startDate, unit,
    inputPrice/outputPrice/totalPrice or prices or pricingTiers); ValueError with a message for
    the client otherwise. `per_million`: prices given per 1M units."""
    if not isinstance(doc, dict):
        raise ValueError("a model definition must be an object")
    name, pattern = doc.get("modelName"), doc.get("matchPattern")
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME or "\x00" in name:
        raise ValueError(f"modelName must be a non-empty string of at most {_MAX_NAME} characters, without NUL")
    if not isinstance(pattern, str) or not pattern or len(pattern) > _MAX_PATTERN or "\x00" in pattern:
        raise ValueError(f"matchPattern must be a non-empty string of at most {_MAX_PATTERN} characters, without NUL")
    compile_pattern(pattern)
    unit = doc.get("unit") or "TOKENS"
    if not isinstance(unit, str) or unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(sorted(UNITS))}")
    try:
        start_us = to_micros(doc.get("startDate"))
        if start_us is not None:
            _datetime(start_us)  # a datetime holds the years 1 to 9999 only
    except (ValueError, OverflowError):
        raise ValueError("startDate must be an ISO 8601 date or time in the years 1 to 9999") from None
    tiers, default_tier = _tiers(doc.get("pricingTiers"))
    if tiers and (doc.get("prices") or any(doc.get(f"{k}Price") is not None for k in ("input", "output", "total"))):
        raise ValueError("give prices one way: inputPrice/outputPrice/totalPrice, prices, or pricingTiers")
    prices = _prices(doc) if not tiers else tiers.pop(0)["prices"]
    if per_million:
        prices = _per_unit(prices)
        for tier in tiers:
            tier["prices"] = _per_unit(tier["prices"])
    tokenizer = doc.get("tokenizerId")
    if tokenizer is not None and tokenizer not in ("openai", "claude"):
        raise ValueError("tokenizerId must be openai, claude or null")
    return NewModel(
        name.strip(),
        pattern,
        start_us,
        unit,
        prices,
        tokenizer,
        _tokenizer_config(doc.get("tokenizerConfig")),
        tiers,
        default_tier,
    )


def _per_unit(prices: dict[str, float]) -> dict[str, float]:
    # In decimal: 2.5 * 1e-6 is 2.4999999999999998e-06 in binary, which the read API would
    # show (as Langfuse, with decimal prices, does not) and every cost would carry.
    return {k: float(Decimal(repr(float(v))) / _MILLION) for k, v in prices.items()}


def _tiers(given: Any) -> tuple[list[dict[str, Any]], str]:
    """Langfuse's pricingTiers, validated by its rules: the default tier first, then the
    conditional ones by priority, each `{name, priority, conditions, prices}`; and the default
    tier's name. Nothing given: no tiers, the default named Standard."""
    if given is None or given == []:
        return [], DEFAULT_TIER
    if not isinstance(given, list) or not all(isinstance(t, dict) for t in given):
        raise ValueError("pricingTiers must be a list of tier objects")
    if len(given) > _MAX_TIERS:
        raise ValueError(f"a model may have at most {_MAX_TIERS} pricing tiers")
    tiers: list[dict[str, Any]] = []
    for t in given:
        name = t.get("name", DEFAULT_TIER if t.get("isDefault") else None)
        name = name.strip() if isinstance(name, str) else ""
        if not name or len(name) > _MAX_TIER_NAME or "\x00" in name:
            raise ValueError(f"a pricing tier's name must be 1 to {_MAX_TIER_NAME} characters, without NUL")
        is_default = t.get("isDefault", False)
        priority = t.get("priority", 0 if is_default else None)
        if not isinstance(is_default, bool):
            raise ValueError(f"pricing tier {name!r}: isDefault must be true or false")
        if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= _MAX_PRIORITY:
            raise ValueError(f"pricing tier {name!r}: priority must be an integer from 0 to {_MAX_PRIORITY}")
        conditions = t.get("conditions", [])
        if not isinstance(conditions, list) or len(conditions) > _MAX_CONDITIONS:
            raise ValueError(f"pricing tier {name!r}: conditions must be a list of at most {_MAX_CONDITIONS}")
        if is_default and (priority != 0 or conditions):
            raise ValueError("the default pricing tier must have priority 0 and no conditions")
        if not is_default and not conditions:
            raise ValueError(f"pricing tier {name!r} is not the default and needs at least one condition")
        prices = t.get("prices")
        if not isinstance(prices, dict) or not prices:
            raise ValueError(f"pricing tier {name!r} must have at least one price")
        checked = _prices({"prices": prices})
        tiers.append(
            {
                "name": name,
                "default": is_default,
                "priority": priority,
                "conditions": [_condition(name, c) for c in conditions],
                "prices": checked,
            }
        )
    defaults = [t for t in tiers if t.pop("default")]
    if len(defaults) != 1:
        raise ValueError(f"exactly one pricing tier must have isDefault: true, found {len(defaults)}")
    if len({t["priority"] for t in tiers}) != len(tiers):
        raise ValueError("pricing tier priorities must be unique within a model")
    if len({t["name"] for t in tiers}) != len(tiers):
        raise ValueError("pricing tier names must be unique within a model")
    default = defaults[0]
    for t in tiers:
        if t is not default and sorted(t["prices"]) != sorted(default["prices"]):
            raise ValueError(
                f"pricing tier {t['name']!r} must price the same usage types as the default tier:"
                f" {', '.join(sorted(default['prices']))}"
            )
    others = sorted((t for t in tiers if t is not default), key=lambda t: t["priority"])
    return [default, *others], default["name"]


def _condition(tier: str, c: Any) -> dict[str, Any]:
    """One condition in the shape stored and answered: a usage or an attribute condition."""
    if not isinstance(c, dict):
        raise ValueError(f"pricing tier {tier!r}: a condition must be an object")
    if "source" in c:
        source, key, values = c.get("source"), c.get("key"), c.get("values")
        if source not in ATTRIBUTE_SOURCES:
            raise ValueError(f"pricing tier {tier!r}: a condition's source must be model_parameters or metadata")
        if not isinstance(key, str) or not 0 < len(key) <= _MAX_NAME or "\x00" in key:
            raise ValueError(f"pricing tier {tier!r}: a condition's key must be 1 to {_MAX_NAME} characters")
        if c.get("operator", "in") != "in":
            raise ValueError(f"pricing tier {tier!r}: an attribute condition's operator is in")
        if (
            not isinstance(values, list)
            or not 0 < len(values) <= _MAX_VALUES
            or not all(isinstance(v, str) and 0 < len(v) <= ATTRIBUTE_TEXT_MAX and "\x00" not in v for v in values)
        ):
            raise ValueError(
                f"pricing tier {tier!r}: a condition's values must be 1 to {_MAX_VALUES} strings"
                f" of 1 to {ATTRIBUTE_TEXT_MAX} characters"
            )
        return {"source": source, "key": key, "operator": "in", "values": list(values)}
    pattern, operator, value = c.get("usageDetailPattern"), c.get("operator"), c.get("value")
    case_sensitive = c.get("caseSensitive", False)
    if not isinstance(pattern, str) or not 0 < len(pattern) <= _MAX_CONDITION_PATTERN or "\x00" in pattern:
        raise ValueError(f"pricing tier {tier!r}: usageDetailPattern must be 1 to {_MAX_CONDITION_PATTERN} characters")
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise ValueError(
            f"pricing tier {tier!r}: usageDetailPattern is not a valid regular expression: {exc}"
        ) from None
    if _NESTED_QUANTIFIER.search(pattern):
        raise ValueError(
            f"pricing tier {tier!r}: usageDetailPattern may cause catastrophic backtracking (a repeated group"
            " that repeats inside); simplify it"
        )
    if operator not in OPERATORS:
        raise ValueError(f"pricing tier {tier!r}: a condition's operator must be one of {', '.join(OPERATORS)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"pricing tier {tier!r}: a condition's value must be a number >= 0")
    if not isinstance(case_sensitive, bool):
        raise ValueError(f"pricing tier {tier!r}: caseSensitive must be true or false")
    return {"usageDetailPattern": pattern, "operator": operator, "value": value, "caseSensitive": case_sensitive}


def _tokenizer_config(config: Any) -> Any:
    """The config as jsonb can store it: a body may nest deeper than orjson encodes (254), and
    jsonb cannot hold NUL in a string."""
    try:
        orjson.dumps(config)
    except orjson.JSONEncodeError:
        raise ValueError("tokenizerConfig is nested too deeply") from None
    if _holds_nul(config):
        raise ValueError("tokenizerConfig cannot hold NUL characters")
    return config


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def _prices(doc: Mapping[str, Any]) -> dict[str, float]:
    flat = {k: doc.get(f"{k}Price") for k in ("input", "output", "total")}
    flat = {k: v for k, v in flat.items() if v is not None}
    given = doc.get("prices")
    if sum(bool(x) for x in (flat, given, doc.get("pricingTiers"))) > 1:
        raise ValueError("give prices one way: inputPrice/outputPrice/totalPrice, prices, or pricingTiers")
    prices: dict[str, Any] = dict(flat)
    if given is not None:
        if not isinstance(given, dict):
            raise ValueError("prices must be an object of usage type to price")
        for k, v in given.items():
            prices[k] = v.get("price") if isinstance(v, dict) else v
    if not prices:
        raise ValueError("a model needs at least one price (inputPrice, outputPrice, totalPrice or prices)")
    if len(prices) > _MAX_PRICES:
        raise ValueError(f"a model may price at most {_MAX_PRICES} usage types")
    for k, v in prices.items():
        # Any usage type, as Langfuse takes any: a generation's usage keys are priced as sent
        # (Anthropic's `cache_read_input_tokens`, a provider's own units).
        if not isinstance(k, str) or not _USAGE_TYPE.fullmatch(k):
            raise ValueError(f"usage type {str(k)[:80]!r} must be 1 to 100 letters, digits or _ . : -")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"the price of {k!r} must be a number >= 0")
    if "total" in prices and ("input" in prices or "output" in prices):
        raise ValueError("totalPrice cannot be set together with inputPrice or outputPrice")
    return {k: float(v) for k, v in prices.items()}


class ModelTable:
    def __init__(self, pg: Postgres) -> None:
        self._pg = pg

    async def visible(self, project_id: str, *, offset: int = 0, limit: int = 50) -> tuple[list[Model], int]:
        """The project's own definitions and the defaults, newest first; and how many in all."""
        where = "WHERE project_id = %s OR project_id IS NULL"
        rows = await self._pg.fetch(
            f"SELECT {_COLUMNS} FROM models {where}"
            " ORDER BY project_id IS NULL, created_at DESC, id LIMIT %s OFFSET %s",
            (project_id, limit, offset),
            operation="list_models",
        )
        total = await self._pg.fetch(f"SELECT count(*) FROM models {where}", (project_id,), operation="count_models")
        return [_model(r) for r in rows], int(total[0][0])

    async def get(self, project_id: str, model_id: str) -> Model | None:
        rows = await self._pg.fetch(
            f"SELECT {_COLUMNS} FROM models WHERE id = %s AND (project_id = %s OR project_id IS NULL)",
            (model_id, project_id),
            operation="get_model",
        )
        return _model(rows[0]) if rows else None

    async def prices(self, project_id: str, model_ids: list[str]) -> dict[str, dict[str, float]]:
        """The per-unit prices (usage type -> USD) of these definitions that the project sees."""
        rows = await self._pg.fetch(
            "SELECT id, prices::text FROM models WHERE id = ANY(%s) AND (project_id = %s OR project_id IS NULL)",
            (model_ids, project_id),
            operation="model_prices",
        )
        return {str(model_id): orjson.loads(prices) for model_id, prices in rows}

    async def create(self, project_id: str | None, new: NewModel, model_id: str | None = None) -> Model:
        rows = await self._pg.fetch(
            "INSERT INTO models (id, project_id, model_name, match_pattern, start_date, unit, prices,"
            " tokenizer_id, tokenizer_config, pricing_tiers, default_tier)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s::jsonb, %s::jsonb, %s)"
            " ON CONFLICT (id) DO UPDATE SET model_name = EXCLUDED.model_name,"
            " match_pattern = EXCLUDED.match_pattern, start_date = EXCLUDED.start_date, unit = EXCLUDED.unit,"
            " prices = EXCLUDED.prices, tokenizer_id = EXCLUDED.tokenizer_id,"
            " tokenizer_config = EXCLUDED.tokenizer_config, pricing_tiers = EXCLUDED.pricing_tiers,"
            " default_tier = EXCLUDED.default_tier, updated_at = now()"
            " WHERE models.project_id IS NOT DISTINCT FROM EXCLUDED.project_id"
            f" RETURNING {_COLUMNS}",
            (
                model_id or f"m-{uuid.uuid4().hex}",
                project_id,
                new.model_name,
                new.match_pattern,
                None if new.start_us is None else _datetime(new.start_us),
                new.unit,
                orjson.dumps(new.prices).decode(),
                new.tokenizer_id,
                None if new.tokenizer_config is None else orjson.dumps(new.tokenizer_config).decode(),
                orjson.dumps(new.tiers).decode(),
                new.default_tier,
            ),
            operation="create_model",
        )
        if not rows:
            raise ValueError(f"model {model_id!r} belongs to another project or is a default")
        return _model(rows[0])

    async def delete(self, project_id: str, model_id: str) -> bool:
        """Delete one of the project's own definitions; False when it has none of that id."""
        deleted = await self._pg.execute(
            "DELETE FROM models WHERE id = %s AND project_id = %s", (model_id, project_id), operation="delete_model"
        )
        return deleted > 0

    async def load_defaults(self, doc: Any) -> int:
        """Replace the shipped defaults with those of `doc` (prices per 1M units); a project's
        own definitions are untouched. ValueError naming the definition that is invalid."""
        entries = doc.get("models") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            raise ValueError('the price file must be an object with a "models" list')
        parsed = []
        for entry in entries:
            model_id = entry.get("id") if isinstance(entry, dict) else None
            if not isinstance(model_id, str) or not model_id:
                raise ValueError(f"every default model needs an id: {str(entry)[:200]}")
            try:
                parsed.append((model_id, parse_file_entry(entry)))
            except ValueError as exc:
                raise ValueError(f"default model {model_id}: {exc}") from None
        for model_id, new in parsed:
            await self.create(None, new, model_id)
        ids = [model_id for model_id, _ in parsed]
        await self._pg.execute(
            "DELETE FROM models WHERE project_id IS NULL AND NOT (id = ANY(%s))", (ids,), operation="prune_models"
        )
        return len(parsed)

    async def book(self) -> PriceBook:
        rows = await self._pg.fetch(f"SELECT {_COLUMNS} FROM models", operation="load_models")
        return PriceBook(_model(r).price() for r in rows)

    async def version(self) -> tuple[int, Any]:
        """Changes whenever a definition is created, changed or deleted."""
        rows = await self._pg.fetch("SELECT count(*), max(updated_at) FROM models", operation="models_version")
        return int(rows[0][0]), rows[0][1]


def parse_file_entry(entry: dict[str, Any]) -> NewModel:
    """An entry of a price file (sinks/postgres/default_models.json's shape, per 1M units)."""
    return parse_definition(_tiered(entry), per_million=True)


def _tiered(entry: dict[str, Any]) -> dict[str, Any]:
    """A price file's entry with conditional `tiers` beside its `prices` (the default tier's) as
    Langfuse's pricingTiers; one without them as it is."""
    tiers = entry.get("tiers") if isinstance(entry, dict) else None
    if tiers is None:
        return entry
    if not isinstance(tiers, list) or not all(isinstance(t, dict) for t in tiers):
        raise ValueError("tiers must be a list of tier objects")
    rest = {k: v for k, v in entry.items() if k not in ("prices", "tiers")}
    default: dict[str, Any] = {
        "name": DEFAULT_TIER,
        "isDefault": True,
        "priority": 0,
        "conditions": [],
        "prices": entry.get("prices"),
    }
    return rest | {"pricingTiers": [default, *({**t, "isDefault": False} for t in tiers)]}


def default_models() -> Any:
    return orjson.loads(resources.files("sinks.postgres").joinpath("default_models.json").read_bytes())


class PriceRefresher(Periodic):
    """The price book the stages read, reloaded within `interval_s` of any change to `models`;
    when the table cannot be read, the last book stays in force."""

    name = "prices"

    def __init__(self, table: ModelTable, interval_s: float = 2.0) -> None:
        super().__init__(interval_s)
        self._table = table
        self._book = PriceBook()
        self._version: tuple[int, Any] | None = None

    def book(self) -> PriceBook:
        return self._book

    async def start(self) -> None:
        await self.refresh()
        await super().start()

    async def turn(self) -> None:
        await self.refresh()

    def failed(self, exc: StoreError) -> None:
        logger.warning("model prices not refreshed; the last ones stay in force", error=str(exc))

    async def refresh(self) -> None:
        version = await self._table.version()
        if version != self._version:
            self._book = await self._table.book()
            self._version = version
            logger.info("model prices loaded", models=len(self._book.models))


def _model(row: tuple[Any, ...]) -> Model:
    config = row[8]
    return Model(
        id=row[0],
        project_id=row[1],
        model_name=row[2],
        match_pattern=row[3],
        start_date=row[4],
        unit=row[5],
        prices=orjson.loads(row[6]),
        tokenizer_id=row[7],
        tokenizer_config=None if config is None else orjson.loads(config),
        created_at=row[9],
        updated_at=row[10],
        tiers=orjson.loads(row[11]),
        default_tier=row[12],
    )


def _datetime(us: int) -> datetime:
    return datetime_from_micros(us)
