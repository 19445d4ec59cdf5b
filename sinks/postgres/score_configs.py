"""The `score_configs` table (migration 0013): Langfuse's score configs, per project.

A config fixes what a score of its name holds: a NUMERIC value within an optional range, a
BOOLEAN (0 or 1, categories `True`/`False` generated), a CATEGORICAL label among its
categories, each label with a number, or TEXT. A score that names a config (configId) is checked against
it before it is accepted (`check_score`), as Langfuse does, and takes the config's name and data
type. Configs are never deleted, only archived; an archived config accepts no new scores.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from sinks.postgres.client import Postgres, Refused, is_uuid

DATA_TYPES = ("NUMERIC", "CATEGORICAL", "BOOLEAN", "TEXT")
# Langfuse's rules for a config's name (its public API's schema).
MAX_NAME = 35
_NAME = re.compile(r"[A-Za-z0-9_ .()\-]+")
MAX_DESCRIPTION = 10_000
# Every request whose scores name a config reads it whole: a config stays small (at most ~20 KB
# of categories), so concurrent scores naming the largest cannot swell the api's memory.
MAX_CATEGORIES = 100
MAX_LABEL = 200
BOOLEAN_CATEGORIES: list[dict[str, Any]] = [{"label": "True", "value": 1.0}, {"label": "False", "value": 0.0}]
_COLUMNS = (
    "id::text, name, data_type, is_archived, min_value, max_value, categories::text, description,"
    " created_at, updated_at"
)


class ScoreConfigError(Refused):
    """What a client sent cannot be stored or used as asked: `status` 400 or 404."""


@dataclass(frozen=True)
class ScoreConfig:
    id: str
    name: str
    data_type: str
    is_archived: bool
    min_value: float | None
    max_value: float | None
    categories: list[dict[str, Any]] | None
    description: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ConfigFields:
    """A create's fields, or an update's (None: unchanged; `set` names those given)."""

    name: str | None = None
    data_type: str | None = None
    is_archived: bool | None = None
    min_value: float | None = None
    max_value: float | None = None
    categories: list[dict[str, Any]] | None = None
    description: str | None = None
    given: frozenset[str] = frozenset()


def _name(v: object) -> str:
    if not isinstance(v, str) or not 0 < len(v) <= MAX_NAME or not _NAME.fullmatch(v):
        raise ScoreConfigError(
            f"name must be 1 to {MAX_NAME} letters, digits, underscores, spaces, periods, parentheses or hyphens"
        )
    return v


def _bound(what: str, v: object) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ScoreConfigError(f"{what} must be a finite number")
    return float(v)


def _categories(v: object) -> list[dict[str, Any]]:
    if not isinstance(v, list) or not v or len(v) > MAX_CATEGORIES:
        raise ScoreConfigError(f"categories must be a list of 1 to {MAX_CATEGORIES} {{label, value}} objects")
    out, labels, values = [], set(), set()
    for c in v:
        label, value = (c.get("label"), c.get("value")) if isinstance(c, dict) else (None, None)
        if not isinstance(label, str) or not 0 < len(label) <= MAX_LABEL or "\x00" in label:
            raise ScoreConfigError(f"each category needs a label, a string of 1 to {MAX_LABEL} characters")
        number = _bound("a category's value", value)
        if number is None:
            raise ScoreConfigError("each category needs a value, a number")
        if label in labels or number in values:
            raise ScoreConfigError("category labels and values must be unique")
        labels.add(label)
        values.add(number)
        out.append({"label": label, "value": number})
    return out


def _description(v: object) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > MAX_DESCRIPTION or "\x00" in v:
        raise ScoreConfigError(f"description must be a string of at most {MAX_DESCRIPTION} characters")
    return v


def _check_shape(data_type: str, lo: float | None, hi: float | None, categories: list[dict[str, Any]] | None) -> None:
    if data_type == "NUMERIC":
        if categories is not None:
            raise ScoreConfigError("a NUMERIC config has no categories")
        if lo is not None and hi is not None and lo >= hi:
            raise ScoreConfigError("maxValue must be greater than minValue")
    elif lo is not None or hi is not None:
        raise ScoreConfigError(f"a {data_type} config has no minValue or maxValue")
    if data_type == "CATEGORICAL" and not categories:
        raise ScoreConfigError("a CATEGORICAL config needs categories")
    if data_type == "TEXT" and categories is not None:
        raise ScoreConfigError("a TEXT config has no categories")


def parse_new(doc: object) -> ConfigFields:
    """A CreateScoreConfigRequest, validated; a BOOLEAN config's categories generated."""
    if not isinstance(doc, dict):
        raise ScoreConfigError("the body must be a score config object")
    data_type = doc.get("dataType")
    if data_type not in DATA_TYPES:
        raise ScoreConfigError(f"dataType must be one of {', '.join(DATA_TYPES)}")
    lo, hi = _bound("minValue", doc.get("minValue")), _bound("maxValue", doc.get("maxValue"))
    given = doc.get("categories")
    if data_type == "BOOLEAN" and given is not None:
        raise ScoreConfigError("a BOOLEAN config's categories are True (1) and False (0); leave them out")
    categories = BOOLEAN_CATEGORIES if data_type == "BOOLEAN" else None if given is None else _categories(given)
    _check_shape(str(data_type), lo, hi, categories)
    return ConfigFields(
        name=_name(doc.get("name")),
        data_type=str(data_type),
        min_value=lo,
        max_value=hi,
        categories=categories,
        description=_description(doc.get("description")),
    )


def parse_update(doc: object) -> ConfigFields:
    """An UpdateScoreConfigRequest: the fields given, each validated (the whole against the
    config's data type when it is applied)."""
    if not isinstance(doc, dict):
        raise ScoreConfigError("the body must be a score config update object")
    given = frozenset(
        k for k in ("isArchived", "name", "categories", "minValue", "maxValue", "description") if k in doc
    )
    archived = doc.get("isArchived")
    if archived is not None and not isinstance(archived, bool):
        raise ScoreConfigError("isArchived must be a boolean")
    return ConfigFields(
        name=_name(doc["name"]) if doc.get("name") is not None else None,
        is_archived=archived,
        min_value=_bound("minValue", doc.get("minValue")),
        max_value=_bound("maxValue", doc.get("maxValue")),
        categories=None if doc.get("categories") is None else _categories(doc["categories"]),
        description=_description(doc.get("description")),
        given=given,
    )


def check_score(config: ScoreConfig | None, body: dict[str, Any]) -> None:
    """Check a score's body against the config it names, and give it the config's name and
    data type (Langfuse's validateAndInflateScore); ScoreConfigError says why it cannot be."""
    if config is None:
        raise ScoreConfigError("The configId you provided does not match a valid config in this project", status=404)
    given_type = body.get("dataType")
    if given_type is not None and given_type != config.data_type:
        raise ScoreConfigError(f"Data type mismatch based on config: expected {config.data_type}, got {given_type}")
    if config.is_archived:
        raise ScoreConfigError(
            "Config is archived and cannot be used to create new scores. Please restore the config first."
        )
    value = body.get("value")
    if config.data_type == "CATEGORICAL":
        numbers = {c["label"]: c["value"] for c in config.categories or ()}
        if not isinstance(value, str) or value not in numbers:
            raise ScoreConfigError(
                f"Ingested score body not valid against provided config: value must be one of {list(numbers)}"
            )
        # Stored as Langfuse stores it: the label, and the number the config gives it.
        body["stringValue"], body["value"] = value, numbers[value]
    elif config.data_type == "TEXT":
        if not isinstance(value, str):
            raise ScoreConfigError(
                "Ingested score body not valid against provided config: a TEXT score's value is text"
            )
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScoreConfigError(
            f"Ingested score body not valid against provided config: a {config.data_type} score's value is a number"
        )
    elif config.data_type == "BOOLEAN" and value not in (0, 1):
        raise ScoreConfigError("Ingested score body not valid against provided config: value must be 0 or 1")
    elif (config.min_value is not None and value < config.min_value) or (
        config.max_value is not None and value > config.max_value
    ):
        low = "-∞" if config.min_value is None else config.min_value
        high = "∞" if config.max_value is None else config.max_value
        raise ScoreConfigError(
            f"Ingested score body not valid against provided config: value must be within [{low}, {high}]"
        )
    body["name"] = config.name
    body["dataType"] = config.data_type


class ScoreConfigTable:
    def __init__(self, pg: Postgres) -> None:
        self._pg = pg

    async def create(self, project_id: str, new: ConfigFields) -> ScoreConfig:
        rows = await self._pg.fetch(
            "INSERT INTO score_configs (project_id, name, data_type, min_value, max_value, categories, description)"
            f" VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s) RETURNING {_COLUMNS}",
            (
                project_id,
                new.name,
                new.data_type,
                new.min_value,
                new.max_value,
                None if new.categories is None else orjson.dumps(new.categories).decode(),
                new.description,
            ),
            operation="pg_score_config_create",
        )
        return _config(rows[0])

    async def get(self, project_id: str, config_id: str) -> ScoreConfig:
        found = await self.by_ids(project_id, [config_id])
        if config_id not in found:
            raise ScoreConfigError("Score config not found within authorized project", status=404)
        return found[config_id]

    async def by_ids(self, project_id: str, ids: list[str]) -> dict[str, ScoreConfig]:
        """The project's configs of these ids; an id that is no uuid names none."""
        valid = [i for i in ids if is_uuid(i)]
        if not valid:
            return {}
        rows = await self._pg.fetch(
            f"SELECT {_COLUMNS} FROM score_configs WHERE project_id = %s AND id = ANY(%s::uuid[])",
            (project_id, valid),
            operation="pg_score_config_get",
        )
        configs = [_config(r) for r in rows]
        return {c.id: c for c in configs}

    async def page(self, project_id: str, limit: int, offset: int) -> tuple[list[ScoreConfig], int]:
        rows = await self._pg.fetch(
            f"SELECT {_COLUMNS} FROM score_configs WHERE project_id = %s"
            " ORDER BY created_at DESC, id LIMIT %s OFFSET %s",
            (project_id, limit, offset),
            operation="pg_score_config_list",
        )
        ((total,),) = await self._pg.fetch(
            "SELECT count(*) FROM score_configs WHERE project_id = %s", (project_id,), operation="pg_score_config_count"
        )
        return [_config(r) for r in rows], int(total)

    async def update(self, project_id: str, config_id: str, change: ConfigFields) -> ScoreConfig:
        """Apply an update, checked whole against the config's data type, under the row's lock."""
        async with self._pg.transaction(operation="pg_score_config_update") as tx:
            rows = (
                await tx.fetch(
                    f"SELECT {_COLUMNS} FROM score_configs WHERE project_id = %s AND id = %s::uuid FOR UPDATE",
                    (project_id, config_id),
                    operation="pg_score_config_lock",
                )
                if is_uuid(config_id)
                else []
            )
            if not rows:
                raise ScoreConfigError("Score config not found within authorized project", status=404)
            old = _config(rows[0])
            given = change.given
            if "categories" in given and old.data_type == "BOOLEAN":
                raise ScoreConfigError("a BOOLEAN config's categories are True (1) and False (0); leave them out")
            lo = change.min_value if "minValue" in given else old.min_value
            hi = change.max_value if "maxValue" in given else old.max_value
            categories = change.categories if "categories" in given else old.categories
            _check_shape(old.data_type, lo, hi, categories)
            rows = await tx.fetch(
                "UPDATE score_configs SET name = %s, is_archived = %s, min_value = %s, max_value = %s,"
                " categories = %s::jsonb, description = %s, updated_at = now()"
                f" WHERE project_id = %s AND id = %s::uuid RETURNING {_COLUMNS}",
                (
                    change.name if change.name is not None else old.name,
                    change.is_archived if change.is_archived is not None else old.is_archived,
                    lo,
                    hi,
                    None if categories is None else orjson.dumps(categories).decode(),
                    change.description if "description" in given else old.description,
                    project_id,
                    config_id,
                ),
                operation="pg_score_config_write",
            )
        return _config(rows[0])


def _config(row: tuple[Any, ...]) -> ScoreConfig:
    id_, name, data_type, archived, lo, hi, categories, description, created, updated = row
    return ScoreConfig(
        id=id_,
        name=name,
        data_type=data_type,
        is_archived=archived,
        min_value=lo,
        max_value=hi,
        categories=None if categories is None else orjson.loads(categories),
        description=description,
        created_at=created,
        updated_at=updated,
    )
