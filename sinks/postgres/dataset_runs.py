"""The `dataset_runs` and `dataset_run_items` tables (migration 0012): experiment runs over a
dataset, each item of the dataset linked to the trace (and observation) the run made of it.

A run is named within its dataset and created by the first run item posted with its name; a
later one may update its description, and adds to its metadata (the keys it gives replace the
run's, the others stay: a run item stating only its dataset version keeps the rest). Its id is
the one Langfuse derives for an experiment from (project, dataset, run name), so the id the
current SDKs compute for an experiment names the same run.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sinks.postgres.client import Postgres
from sinks.postgres.datasets import DatasetError, DatasetTable, check_id, encoded, optional_id, optional_text

# The namespace of the ids of run items derived from what they link (uuid5).
_LINKS = uuid.UUID("5b0c7a4e-3f0e-4d4e-9a39-6f1d2c8e7a10")
_RUN = "r.id, r.name, r.description, r.metadata::text, r.dataset_id, d.name, r.created_at, r.updated_at"
_RUN_ITEM = (
    "ri.id::text, ri.run_id, r.name, ri.dataset_item_id, ri.trace_id, ri.observation_id, ri.created_at, ri.updated_at"
)
_RUN_JOIN = "FROM dataset_runs AS r JOIN datasets AS d ON d.project_id = r.project_id AND d.id = r.dataset_id"
_ITEMS_JOIN = "FROM dataset_run_items AS ri JOIN dataset_runs AS r ON r.project_id = ri.project_id AND r.id = ri.run_id"


@dataclass(frozen=True)
class NewRunItem:
    run_name: str
    run_description: str | None
    metadata: str | None  # JSON text of an object; None: the run's stays as it is
    dataset_item_id: str
    trace_id: str | None
    observation_id: str | None
    created_at: datetime | None


@dataclass(frozen=True)
class ExperimentItem:
    """An item's link as an SDK's experiment spans state it (ingest/otlp/experiments.py)."""

    dataset_id: str
    item_id: str
    run_name: str
    trace_id: str
    observation_id: str
    description: str | None
    metadata: str | None  # JSON text of an object


@dataclass(frozen=True)
class Run:
    id: str
    name: str
    description: str | None
    metadata_json: str
    dataset_id: str
    dataset_name: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RunItem:
    id: str
    run_id: str
    run_name: str
    dataset_item_id: str
    trace_id: str
    observation_id: str | None
    created_at: datetime
    updated_at: datetime


def run_id(project_id: str, dataset_id: str, run_name: str) -> str:
    """Langfuse's stable experiment id: the first 16 hex digits of the SHA-256 of the JSON
    array ["langfuse-experiment-v1", project, dataset, run name] as JavaScript writes it."""
    payload = json.dumps(
        ["langfuse-experiment-v1", project_id, dataset_id, run_name], separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def parse_run_item(doc: object, created_at: datetime | None, dataset_version: datetime | None) -> NewRunItem:
    """A CreateDatasetRunItemRequest, validated; its times parsed by the caller."""
    if not isinstance(doc, dict):
        raise DatasetError("the body must be a dataset run item object")
    metadata = doc.get("metadata")
    if metadata is not None or dataset_version is not None:
        # Langfuse keeps a run's metadata as an object: anything else is wrapped in one.
        run_metadata = metadata if isinstance(metadata, dict) else {} if metadata is None else {"metadata": metadata}
        if dataset_version is not None:
            run_metadata = {**run_metadata, "dataset_version": dataset_version.isoformat().replace("+00:00", "Z")}
        metadata = run_metadata
    return NewRunItem(
        run_name=check_id(doc.get("runName"), "runName"),
        run_description=optional_text(doc, "runDescription"),
        metadata=encoded({"metadata": metadata}, "a run's metadata")["metadata"],
        dataset_item_id=check_id(doc.get("datasetItemId"), "datasetItemId"),
        trace_id=optional_id(doc, "traceId"),
        observation_id=optional_id(doc, "observationId"),
        created_at=created_at,
    )


class RunTable:
    def __init__(self, pg: Postgres) -> None:
        self._pg = pg

    async def link(self, project_id: str, new: NewRunItem, trace_id: str) -> RunItem:
        """Link an active item to `trace_id` in the run `new` names, creating the run if new."""
        async with self._pg.transaction(operation="pg_dataset_run_item_create") as tx:
            found = await tx.fetch(
                "SELECT dataset_id FROM dataset_items WHERE project_id = %s AND id = %s AND status = 'ACTIVE'",
                (project_id, new.dataset_item_id),
                operation="pg_dataset_item_active",
            )
            if not found:
                raise DatasetError(f"Dataset item not found: {new.dataset_item_id!r}", status=404)
            dataset_id = found[0][0]
            ((run,),) = await tx.fetch(
                "INSERT INTO dataset_runs AS r (project_id, id, dataset_id, name, description, metadata, created_at, "
                "updated_at) VALUES (%(p)s, %(id)s, %(dataset)s, %(name)s, %(description)s, "
                "COALESCE(%(metadata)s::jsonb, '{}'), COALESCE(%(at)s, now()), COALESCE(%(at)s, now())) "
                "ON CONFLICT (project_id, id) DO UPDATE SET "
                "description = COALESCE(EXCLUDED.description, r.description), "
                "metadata = r.metadata || COALESCE(%(metadata)s::jsonb, '{}'), updated_at = now() RETURNING r.id",
                {
                    "p": project_id,
                    "id": run_id(project_id, dataset_id, new.run_name),
                    "dataset": dataset_id,
                    "name": new.run_name,
                    "description": new.run_description,
                    "metadata": new.metadata,
                    "at": new.created_at,
                },
                operation="pg_dataset_run_upsert",
            )
            rows = await tx.fetch(
                "WITH ri AS (INSERT INTO dataset_run_items (project_id, run_id, dataset_item_id, trace_id, "
                "observation_id, created_at, updated_at) VALUES (%(p)s, %(run)s, %(item)s, %(trace)s, "
                "%(observation)s, COALESCE(%(at)s, now()), COALESCE(%(at)s, now())) "
                # Linked before (posted again, or stated by the experiment's spans): the same link.
                "ON CONFLICT (project_id, run_id, dataset_item_id, trace_id) DO UPDATE SET "
                "observation_id = COALESCE(EXCLUDED.observation_id, dataset_run_items.observation_id), "
                "updated_at = now() RETURNING *) "
                f"SELECT {_RUN_ITEM} FROM ri JOIN dataset_runs AS r "
                "ON r.project_id = ri.project_id AND r.id = ri.run_id",
                {
                    "p": project_id,
                    "run": run,
                    "item": new.dataset_item_id,
                    "trace": trace_id,
                    "observation": new.observation_id,
                    "at": new.created_at,
                },
                operation="pg_dataset_run_item_insert",
            )
        return RunItem(*rows[0])

    async def link_experiment(self, project_id: str, items: list[ExperimentItem]) -> None:
        """Link each item to its trace in its run, creating the run with the dataset's first; an
        item (or dataset) that is not the project's is left out: spans name what they like.
        Idempotent: a link's id derives from what it links."""
        runs: dict[tuple[str, str], list[ExperimentItem]] = defaultdict(list)
        for item in items:
            runs[item.dataset_id, item.run_name].append(item)
        async with self._pg.transaction(operation="pg_experiment_link") as tx:
            # In one order, so that two exports naming the same runs cannot deadlock.
            for (dataset_id, run_name), linked in sorted(runs.items()):
                known = await tx.fetch(
                    "SELECT id FROM dataset_items WHERE project_id = %s AND dataset_id = %s AND id = ANY(%s)",
                    (project_id, dataset_id, sorted({i.item_id for i in linked})),
                    operation="pg_experiment_items",
                )
                if not known:
                    continue
                run = run_id(project_id, dataset_id, run_name)
                last = linked[-1]
                await tx.execute(
                    "INSERT INTO dataset_runs AS r (project_id, id, dataset_id, name, description, metadata) "
                    "VALUES (%(p)s, %(id)s, %(dataset)s, %(name)s, %(description)s, "
                    "COALESCE(%(metadata)s::jsonb, '{}')) ON CONFLICT (project_id, id) DO UPDATE SET "
                    "description = COALESCE(EXCLUDED.description, r.description), "
                    "metadata = r.metadata || COALESCE(%(metadata)s::jsonb, '{}'), updated_at = now()",
                    {
                        "p": project_id,
                        "id": run,
                        "dataset": dataset_id,
                        "name": run_name,
                        "description": last.description,
                        "metadata": last.metadata,
                    },
                    operation="pg_experiment_run",
                )
                present = {r[0] for r in known}
                rows = [
                    (
                        str(uuid.uuid5(_LINKS, f"{run}\x1f{i.item_id}\x1f{i.trace_id}\x1f{i.observation_id}")),
                        i.item_id,
                        i.trace_id,
                        i.observation_id,
                    )
                    for i in linked
                    if i.item_id in present
                ]
                await tx.execute(
                    "INSERT INTO dataset_run_items (project_id, id, run_id, dataset_item_id, trace_id, observation_id) "
                    "SELECT %s, v.id::uuid, %s, v.item, v.trace, v.observation "
                    "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS v(id, item, trace, observation) "
                    "ON CONFLICT DO NOTHING",
                    (project_id, run, *(list(col) for col in zip(*rows, strict=True))),
                    operation="pg_experiment_run_items",
                )

    async def runs(self, project_id: str, dataset_name: str, *, offset: int, limit: int) -> tuple[list[Run], int]:
        """The dataset's runs, newest first; 404 for an unknown dataset."""
        dataset = await DatasetTable(self._pg).get(project_id, dataset_name)
        rows = await self._pg.fetch(
            f"SELECT {_RUN}, count(*) OVER () {_RUN_JOIN} WHERE r.project_id = %s AND r.dataset_id = %s "
            "ORDER BY r.created_at DESC, r.id LIMIT %s OFFSET %s",
            (project_id, dataset.id, limit, offset),
            operation="pg_dataset_run_list",
        )
        if rows:
            total = int(rows[0][-1])
        else:
            ((n,),) = await self._pg.fetch(
                "SELECT count(*) FROM dataset_runs WHERE project_id = %s AND dataset_id = %s",
                (project_id, dataset.id),
                operation="pg_dataset_run_count",
            )
            total = int(n)
        return [Run(*r[:-1]) for r in rows], total

    async def names(self, project_id: str, dataset_ids: list[str]) -> dict[str, list[str]]:
        """The runs' names of these datasets, newest first (the deprecated dataset answers')."""
        rows = await self._pg.fetch(
            "SELECT dataset_id, array_agg(name ORDER BY created_at DESC, id) FROM dataset_runs "
            "WHERE project_id = %s AND dataset_id = ANY(%s) GROUP BY dataset_id",
            (project_id, dataset_ids),
            operation="pg_dataset_run_names",
        )
        return {dataset_id: list(names) for dataset_id, names in rows}

    async def run(self, project_id: str, dataset_name: str, run_name: str) -> Run:
        rows = await self._pg.fetch(
            f"SELECT {_RUN} {_RUN_JOIN} WHERE r.project_id = %s AND d.name = %s AND r.name = %s",
            (project_id, dataset_name, run_name),
            operation="pg_dataset_run_get",
        )
        if not rows:
            raise DatasetError(f"Dataset run not found: {run_name!r} of dataset {dataset_name!r}", status=404)
        return Run(*rows[0])

    async def items_of(self, project_id: str, run: Run, *, after: RunItem | None, limit: int) -> list[RunItem]:
        """The run's items, newest first: at most `limit` of them, those after `after`."""
        where = ""
        args: tuple[object, ...] = ()
        if after is not None:  # created_at descends, the id ascends within one time
            where = "AND (ri.created_at < %s OR (ri.created_at = %s AND ri.id > %s::uuid)) "
            args = (after.created_at, after.created_at, after.id)
        rows = await self._pg.fetch(
            f"SELECT {_RUN_ITEM} {_ITEMS_JOIN} WHERE ri.project_id = %s AND ri.run_id = %s {where}"
            "ORDER BY ri.created_at DESC, ri.id LIMIT %s",
            (project_id, run.id, *args, limit),
            operation="pg_dataset_run_items_of",
        )
        return [RunItem(*r) for r in rows]

    async def run_items(
        self, project_id: str, dataset_id: str, run_name: str, *, offset: int, limit: int
    ) -> tuple[list[RunItem], int]:
        """A page of the items of the run of that name in the dataset of that id; 404 without one."""
        found = await self._pg.fetch(
            "SELECT id FROM dataset_runs WHERE project_id = %s AND dataset_id = %s AND name = %s",
            (project_id, dataset_id, run_name),
            operation="pg_dataset_run_by_name",
        )
        if not found:
            raise DatasetError("Dataset run not found for the given project and dataset id", status=404)
        where = "WHERE ri.project_id = %s AND ri.run_id = %s"
        rows = await self._pg.fetch(
            f"SELECT {_RUN_ITEM}, count(*) OVER () {_ITEMS_JOIN} {where} "
            "ORDER BY ri.created_at DESC, ri.id LIMIT %s OFFSET %s",
            (project_id, found[0][0], limit, offset),
            operation="pg_dataset_run_item_list",
        )
        if rows:
            total = int(rows[0][-1])
        else:
            ((n,),) = await self._pg.fetch(
                f"SELECT count(*) {_ITEMS_JOIN} {where}", (project_id, found[0][0]), operation="pg_dataset_run_count"
            )
            total = int(n)
        return [RunItem(*r[:-1]) for r in rows], total

    async def delete_run(self, project_id: str, dataset_name: str, run_name: str) -> None:
        """The run and its items; 404 when there is no such run."""
        gone = await self._pg.execute(
            "DELETE FROM dataset_runs AS r USING datasets AS d WHERE d.project_id = r.project_id "
            "AND d.id = r.dataset_id AND r.project_id = %s AND d.name = %s AND r.name = %s",
            (project_id, dataset_name, run_name),
            operation="pg_dataset_run_delete",
        )
        if not gone:
            raise DatasetError(f"Dataset run not found: {run_name!r} of dataset {dataset_name!r}", status=404)
