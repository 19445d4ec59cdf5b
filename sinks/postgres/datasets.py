"""The `datasets` and `dataset_items` tables (migration 0012): Langfuse's datasets, per project.

A dataset is named uniquely in its project; creating one with a name in use updates it, as
Langfuse does. An item belongs to one dataset, under an id unique in the project that the
client may choose: posting an item with a known id updates it (its dataset cannot change), and
the fields left out or null keep their values. Items are ACTIVE or ARCHIVED; listings show the
active ones only, as Langfuse's do.

Documents (inputs, outputs, metadata, schemas) are kept as jsonb and read back as JSON text,
which the api sends without parsing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from sinks.postgres.client import Postgres, Refused

MAX_NAME = 255
MAX_ID = 255
# What one item (input, expected output and metadata together) or one dataset (metadata and
# schemas) may take as JSON: far above a real test case (a prompt with its context), and small
# enough that a page of them (the SDKs' get_dataset reads 50 at a time: 12.5 MB at most, twice
# that while answered) fits the api's in-flight budget (40 MB), which a page's documents are
# counted against before they are read (items(), ingest/datasets.py).
MAX_DOC_BYTES = 256 * 1024
STATUSES = ("ACTIVE", "ARCHIVED")
_DATASET = (
    "id, name, description, metadata::text, input_schema::text, expected_output_schema::text, created_at, updated_at"
)
_ITEM = (
    "i.id, i.status, i.input::text, i.expected_output::text, i.metadata::text, i.source_trace_id, "
    "i.source_observation_id, i.dataset_id, d.name, i.created_at, i.updated_at"
)


class DatasetError(Refused):
    """What a client sent cannot be stored or found as asked: `status` 400, 404 or 413."""


@dataclass(frozen=True)
class NewDataset:
    name: str
    description: str | None  # None: unchanged when the dataset exists
    metadata: str | None  # JSON text; None: unchanged
    # Schemas: left out, they stay as they are; given as null, they are cleared.
    input_schema: str | None
    expected_output_schema: str | None
    set_input_schema: bool
    set_expected_output_schema: bool


@dataclass(frozen=True)
class Dataset:
    id: str
    name: str
    description: str | None
    metadata_json: str | None
    input_schema_json: str | None
    expected_output_schema_json: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class NewItem:
    dataset_name: str
    id: str | None
    input: str | None  # JSON text; None: null for a new item, unchanged for a known one
    expected_output: str | None
    metadata: str | None
    source_trace_id: str | None
    source_observation_id: str | None
    status: str | None


@dataclass(frozen=True)
class Item:
    id: str
    status: str
    input_json: str | None
    expected_output_json: str | None
    metadata_json: str | None
    source_trace_id: str | None
    source_observation_id: str | None
    dataset_id: str
    dataset_name: str
    created_at: datetime
    updated_at: datetime


def check_name(name: object, what: str = "name") -> str:
    """Langfuse's folder rules: non-empty, `/` only between folder names; at most 255 characters."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        raise DatasetError(f"{what} must be a non-empty string of at most {MAX_NAME} characters")
    if "\x00" in name or name.startswith("/") or name.endswith("/") or "//" in name:
        raise DatasetError(f"{what} must not contain NUL, nor start, end or repeat '/'")
    return name


def check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID or "\x00" in value:
        raise DatasetError(f"{what} must be a non-empty string of at most {MAX_ID} characters")
    return value


def optional_id(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return None if value is None else check_id(value, key)


def optional_text(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is not None and (not isinstance(value, str) or "\x00" in value):
        raise DatasetError(f"{key} must be a string without NUL")
    return value


def encoded(values: dict[str, Any], what: str) -> dict[str, str | None]:
    """Each non-null value as JSON text, null as None; 413 when together they pass MAX_DOC_BYTES."""
    out: dict[str, str | None] = {}
    total = 0
    for key, value in values.items():
        if value is None:
            out[key] = None
            continue
        try:  # orjson encodes fewer levels than it parses: a body it read may not encode
            text = orjson.dumps(value)
        except orjson.JSONEncodeError:
            raise DatasetError(f"{key} is nested too deeply") from None
        total += len(text)
        out[key] = text.decode()
    if total > MAX_DOC_BYTES:
        raise DatasetError(f"{what} may take at most {MAX_DOC_BYTES} bytes as JSON", status=413)
    return out


def parse_dataset(doc: object) -> NewDataset:
    """A CreateDatasetRequest, validated."""
    if not isinstance(doc, dict):
        raise DatasetError("the body must be a dataset object")
    name = check_name(doc.get("name"))
    docs = encoded(
        {k: doc.get(k) for k in ("metadata", "inputSchema", "expectedOutputSchema")},
        "a dataset's metadata and schemas",
    )
    for key in ("inputSchema", "expectedOutputSchema"):
        if doc.get(key) is not None and not isinstance(doc[key], dict):
            raise DatasetError(f"{key} must be a JSON Schema object")
    return NewDataset(
        name=name,
        description=optional_text(doc, "description"),
        metadata=docs["metadata"],
        input_schema=docs["inputSchema"],
        expected_output_schema=docs["expectedOutputSchema"],
        set_input_schema="inputSchema" in doc,
        set_expected_output_schema="expectedOutputSchema" in doc,
    )


def parse_item(doc: object) -> NewItem:
    """A CreateDatasetItemRequest, validated."""
    if not isinstance(doc, dict):
        raise DatasetError("the body must be a dataset item object")
    name = check_name(doc.get("datasetName"), "datasetName")
    status = doc.get("status")
    if status is not None and status not in STATUSES:
        raise DatasetError(f"status must be one of {', '.join(STATUSES)}")
    docs = encoded(
        {k: doc.get(k) for k in ("input", "expectedOutput", "metadata")},
        "an item's input, expectedOutput and metadata",
    )
    return NewItem(
        dataset_name=name,
        id=optional_id(doc, "id"),
        input=docs["input"],
        expected_output=docs["expectedOutput"],
        metadata=docs["metadata"],
        source_trace_id=optional_id(doc, "sourceTraceId"),
        source_observation_id=optional_id(doc, "sourceObservationId"),
        status=status,
    )


class DatasetTable:
    def __init__(self, pg: Postgres) -> None:
        self._pg = pg

    async def upsert(self, project_id: str, new: NewDataset) -> Dataset:
        """Create the dataset, or update the one of that name with what `new` gives."""
        rows = await self._pg.fetch(
            "INSERT INTO datasets AS d (project_id, id, name, description, metadata, input_schema, "
            "expected_output_schema) VALUES (%(p)s, gen_random_uuid()::text, %(name)s, %(description)s, "
            "%(metadata)s::jsonb, %(input_schema)s::jsonb, %(output_schema)s::jsonb) "
            "ON CONFLICT (project_id, name) DO UPDATE SET "
            "description = COALESCE(EXCLUDED.description, d.description), "
            "metadata = COALESCE(EXCLUDED.metadata, d.metadata), "
            "input_schema = CASE WHEN %(set_input)s THEN EXCLUDED.input_schema ELSE d.input_schema END, "
            "expected_output_schema = CASE WHEN %(set_output)s THEN EXCLUDED.expected_output_schema "
            "ELSE d.expected_output_schema END, updated_at = now() "
            f"RETURNING {_DATASET}",
            {
                "p": project_id,
                "name": new.name,
                "description": new.description,
                "metadata": new.metadata,
                "input_schema": new.input_schema,
                "output_schema": new.expected_output_schema,
                "set_input": new.set_input_schema,
                "set_output": new.set_expected_output_schema,
            },
            operation="pg_dataset_upsert",
        )
        return _dataset(rows[0])

    async def get(self, project_id: str, name: str) -> Dataset:
        rows = await self._pg.fetch(
            f"SELECT {_DATASET} FROM datasets WHERE project_id = %s AND name = %s",
            (project_id, name),
            operation="pg_dataset_get",
        )
        if not rows:
            raise DatasetError(f"Dataset not found: {name!r}", status=404)
        return _dataset(rows[0])

    async def page(self, project_id: str, *, offset: int, limit: int) -> tuple[list[Dataset], int]:
        """Newest first, as Langfuse lists them."""
        rows = await self._pg.fetch(
            f"SELECT {_DATASET}, count(*) OVER () FROM datasets WHERE project_id = %s "
            "ORDER BY created_at DESC, id LIMIT %s OFFSET %s",
            (project_id, limit, offset),
            operation="pg_dataset_list",
        )
        total = int(rows[0][-1]) if rows else await self._count("datasets", project_id)
        return [_dataset(r[:-1]) for r in rows], total

    async def upsert_item(self, project_id: str, new: NewItem) -> Item:
        """Create the item, or update the one of its id with what `new` gives; 404 when the
        dataset is unknown or the id is another dataset's item."""
        async with self._pg.transaction(operation="pg_dataset_item_upsert") as tx:
            found = await tx.fetch(
                "SELECT id FROM datasets WHERE project_id = %s AND name = %s",
                (project_id, new.dataset_name),
                operation="pg_dataset_by_name",
            )
            if not found:
                raise DatasetError(f"Dataset not found: {new.dataset_name!r}", status=404)
            rows = await tx.fetch(
                "WITH i AS (INSERT INTO dataset_items AS i (project_id, id, dataset_id, status, input, "
                "expected_output, metadata, source_trace_id, source_observation_id) VALUES (%(p)s, "
                "COALESCE(%(id)s, gen_random_uuid()::text), %(dataset)s, COALESCE(%(status)s, 'ACTIVE'), "
                "%(input)s::jsonb, %(output)s::jsonb, %(metadata)s::jsonb, %(trace)s, %(observation)s) "
                "ON CONFLICT (project_id, id) DO UPDATE SET "
                "status = COALESCE(%(status)s, i.status), input = COALESCE(EXCLUDED.input, i.input), "
                "expected_output = COALESCE(EXCLUDED.expected_output, i.expected_output), "
                "metadata = COALESCE(EXCLUDED.metadata, i.metadata), "
                "source_trace_id = COALESCE(EXCLUDED.source_trace_id, i.source_trace_id), "
                "source_observation_id = COALESCE(EXCLUDED.source_observation_id, i.source_observation_id), "
                "updated_at = now() WHERE i.dataset_id = EXCLUDED.dataset_id RETURNING *) "
                f"SELECT {_ITEM} FROM i JOIN datasets AS d ON d.project_id = i.project_id AND d.id = i.dataset_id",
                {
                    "p": project_id,
                    "id": new.id,
                    "dataset": found[0][0],
                    "status": new.status,
                    "input": new.input,
                    "output": new.expected_output,
                    "metadata": new.metadata,
                    "trace": new.source_trace_id,
                    "observation": new.source_observation_id,
                },
                operation="pg_dataset_item_upsert",
            )
        if not rows:  # the id is taken by an item of another dataset: Langfuse's 404
            raise DatasetError(
                f"The dataset item with id {new.id!r} already exists in a dataset other than {new.dataset_name!r}",
                status=404,
            )
        return _item(rows[0])

    async def item(self, project_id: str, item_id: str) -> Item:
        rows = await self._pg.fetch(
            f"SELECT {_ITEM} FROM dataset_items AS i JOIN datasets AS d "
            "ON d.project_id = i.project_id AND d.id = i.dataset_id WHERE i.project_id = %s AND i.id = %s",
            (project_id, item_id),
            operation="pg_dataset_item_get",
        )
        if not rows:
            raise DatasetError(f"Dataset item not found: {item_id!r}", status=404)
        return _item(rows[0])

    async def items(
        self,
        project_id: str,
        *,
        dataset_name: str | None,
        source_trace_id: str | None,
        source_observation_id: str | None,
        version: datetime | None,
        offset: int,
        limit: int,
        weigh: Callable[[int], None] | None = None,
    ) -> tuple[list[Item], int]:
        """Active items matching the filters, newest first; 404 for an unknown dataset. `weigh`
        is told the page's document bytes before they are read, and may refuse them."""
        where, args = ["i.project_id = %s", "i.status = 'ACTIVE'"], [project_id]
        if dataset_name is not None:
            dataset = await self.get(project_id, dataset_name)
            where.append("i.dataset_id = %s")
            args.append(dataset.id)
        for clause, value in (
            ("i.source_trace_id = %s", source_trace_id),
            ("i.source_observation_id = %s", source_observation_id),
            # To the millisecond, as answers give times: an item's createdAt as a version includes it.
            ("date_trunc('milliseconds', i.created_at) <= %s", version),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)  # type: ignore[arg-type]
        matching = f"FROM dataset_items AS i WHERE {' AND '.join(where)}"
        # The page's keys and sizes first, then their documents: selected with the page, every
        # matching item's documents were cast to text and sorted before the page was cut (bench:
        # page 100 of 5,000 items of 8 KB, 117 ms and 40 MB sorted on disk; 3 ms so). The sizes
        # are weighed (`weigh`: the api's in-flight budget) before any document is read.
        page = await self._pg.fetch(
            "SELECT i.id, coalesce(octet_length(i.input::text), 0)"
            " + coalesce(octet_length(i.expected_output::text), 0) + coalesce(octet_length(i.metadata::text), 0)"
            f" {matching} ORDER BY i.created_at DESC, i.id LIMIT %s OFFSET %s",
            (*args, limit, offset),
            operation="pg_dataset_item_page",
        )
        if weigh is not None:
            weigh(sum(int(size) for _, size in page))
        rows = await self._pg.fetch(
            f"SELECT {_ITEM} FROM dataset_items AS i "
            "JOIN datasets AS d ON d.project_id = i.project_id AND d.id = i.dataset_id "
            "WHERE i.project_id = %s AND i.id = ANY(%s) ORDER BY i.created_at DESC, i.id",
            (project_id, [item_id for item_id, _ in page]),
            operation="pg_dataset_item_list",
        )
        ((total,),) = await self._pg.fetch(f"SELECT count(*) {matching}", tuple(args), operation="pg_dataset_count")
        return [_item(r) for r in rows], int(total)

    async def item_ids(self, project_id: str, dataset_ids: list[str]) -> dict[str, list[str]]:
        """The active items' ids of these datasets, newest first (the deprecated listing's)."""
        rows = await self._pg.fetch(
            "SELECT dataset_id, array_agg(id ORDER BY created_at DESC, id) FROM dataset_items "
            "WHERE project_id = %s AND dataset_id = ANY(%s) AND status = 'ACTIVE' GROUP BY dataset_id",
            (project_id, dataset_ids),
            operation="pg_dataset_item_ids",
        )
        return {dataset_id: list(ids) for dataset_id, ids in rows}

    async def delete_item(self, project_id: str, item_id: str) -> bool:
        """The item and the run items linking it; whether there was one."""
        gone = await self._pg.execute(
            "DELETE FROM dataset_items WHERE project_id = %s AND id = %s",
            (project_id, item_id),
            operation="pg_dataset_item_delete",
        )
        return gone > 0

    async def _count(self, table: str, project_id: str) -> int:
        ((n,),) = await self._pg.fetch(
            f"SELECT count(*) FROM {table} WHERE project_id = %s", (project_id,), operation="pg_dataset_count"
        )
        return int(n)


def _dataset(row: tuple[Any, ...]) -> Dataset:
    return Dataset(*row)


def _item(row: tuple[Any, ...]) -> Item:
    return Item(*row)
