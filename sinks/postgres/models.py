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
from pipeline.prices import UNITS, ModelPrice, PriceBook, compile_pattern
from pipeline.times import datetime_from_micros, micros_from_datetime, to_micros
from sinks.postgres.client import Postgres

_COLUMNS = (
    "id, project_id, model_name, match_pattern, start_date, unit, prices::text, tokenizer_id,"
    " tokenizer_config::text, created_at, updated_at"
)
_MAX_PATTERN = 1000
_MAX_NAME = 200
_MILLION = Decimal(1_000_000)
_MAX_PRICES = 100
_USAGE_TYPE = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")


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
        )


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


def parse_definition(doc: Any, *, per_million: bool = False) -> NewModel:
    """A definition in Langfuse's request shape (modelName, matchPattern, startDate, unit,
    inputPrice/outputPrice/totalPrice or prices or a single default pricing tier); ValueError
    with a message for the client otherwise. `per_million`: prices given per 1M units."""
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
    prices = _prices(doc)
    if per_million:
        # In decimal: 2.5 * 1e-6 is 2.4999999999999998e-06 in binary, which the read API would
        # show (as Langfuse, with decimal prices, does not) and every cost would carry.
        prices = {k: float(Decimal(repr(float(v))) / _MILLION) for k, v in prices.items()}
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
    )


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
    tiers = doc.get("pricingTiers")
    if sum(bool(x) for x in (flat, given, tiers)) > 1:
        raise ValueError("give prices one way: inputPrice/outputPrice/totalPrice, prices, or pricingTiers")
    if tiers:
        if not isinstance(tiers, list) or len(tiers) != 1 or not isinstance(tiers[0], dict):
            raise ValueError("pricingTiers: only a single default tier (no conditions) is supported")
        tier = tiers[0]
        if tier.get("conditions") or tier.get("isDefault") is False:
            raise ValueError("pricingTiers: conditional tiers are not supported; give the default tier alone")
        given = tier.get("prices")
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
            " tokenizer_id, tokenizer_config) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s::jsonb)"
            " ON CONFLICT (id) DO UPDATE SET model_name = EXCLUDED.model_name,"
            " match_pattern = EXCLUDED.match_pattern, start_date = EXCLUDED.start_date, unit = EXCLUDED.unit,"
            " prices = EXCLUDED.prices, tokenizer_id = EXCLUDED.tokenizer_id,"
            " tokenizer_config = EXCLUDED.tokenizer_config, updated_at = now()"
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
                parsed.append((model_id, parse_definition(entry, per_million=True)))
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
    )


def _datetime(us: int) -> datetime:
    return datetime_from_micros(us)
