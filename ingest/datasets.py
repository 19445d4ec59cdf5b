"""Langfuse's datasets API, in its paths and shapes: datasets, their items, and the runs that
link each item to the trace an experiment made of it.

The SDKs' create_dataset/create_dataset_item write through POST /api/public/v2/datasets and
/api/public/dataset-items (both upsert: a dataset by name, an item by id), get_dataset reads
GET /api/public/v2/datasets/{name} (a folder's `/` percent-encoded in the name) and pages
through GET /api/public/dataset-items, and an experiment's items are linked to their traces by
POST /api/public/dataset-run-items. All of it lives in Postgres (sinks/postgres/datasets.py,
sinks/postgres/dataset_runs.py), scoped by the key's project.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from ingest.auth import AuthUnavailable
from ingest.encoding import ClientError
from ingest.intake import Intake
from ingest.params import Params
from ingest.read import meta
from ingest.stored import NotFound, checked, iso, json_answer, stored
from sinks.clickhouse.client import ClickHouseError
from sinks.postgres.client import Postgres
from sinks.postgres.dataset_runs import Run, RunItem, RunTable, parse_run_item
from sinks.postgres.datasets import (
    Dataset,
    DatasetTable,
    Item,
    check_id,
    check_name,
    parse_dataset,
    parse_item,
)

DATASETS_PATH = "/api/public/v2/datasets"
# `{...:.+}`: a name in a folder keeps its `/` when a client sends it unencoded.
DATASET_PATH = "/api/public/v2/datasets/{datasetName:.+}"
DATASETS_V1_PATH = "/api/public/datasets"
DATASET_V1_PATH = "/api/public/datasets/{datasetName:.+}"
RUNS_PATH = "/api/public/datasets/{datasetName:.+}/runs"
RUN_PATH = "/api/public/datasets/{datasetName:.+}/runs/{runName:.+}"
ITEMS_PATH = "/api/public/dataset-items"
ITEM_PATH = "/api/public/dataset-items/{id:.+}"
RUN_ITEMS_PATH = "/api/public/dataset-run-items"
# A run read whole (GET .../runs/{runName}) is answered this many items at a time (~300 bytes
# each as JSON), so that a run of any size is held in the api a few MB at a time.
RUN_ITEMS_CHUNK = 5_000
# A dataset read whole with its items (the deprecated GET /api/public/datasets/{name}): items
# of up to 256 KiB each, so few at a time.
DATASET_ITEMS_CHUNK = 20
_RUN_ITEM_KEYS = frozenset(
    {
        "runName",
        "runDescription",
        "metadata",
        "datasetItemId",
        "observationId",
        "traceId",
        "datasetVersion",
        "createdAt",
    }
)


def add_routes(app: web.Application) -> None:
    app.router.add_post(DATASETS_PATH, create_dataset)
    app.router.add_post(DATASETS_V1_PATH, create_dataset_v1)
    app.router.add_get(DATASETS_PATH, list_datasets, allow_head=False)
    app.router.add_get(DATASET_PATH, get_dataset, allow_head=False)
    # The run's path before the runs', as the item path's name would take "x/runs/y" whole.
    app.router.add_get(RUN_PATH, get_run, allow_head=False)
    app.router.add_delete(RUN_PATH, delete_run)
    app.router.add_get(RUNS_PATH, list_runs, allow_head=False)
    # The deprecated reads, after the runs' paths, which their name would take whole.
    app.router.add_get(DATASETS_V1_PATH, list_datasets_v1, allow_head=False)
    app.router.add_get(DATASET_V1_PATH, get_dataset_v1, allow_head=False)
    app.router.add_post(ITEMS_PATH, create_item)
    app.router.add_get(ITEMS_PATH, list_items, allow_head=False)
    app.router.add_get(ITEM_PATH, get_item, allow_head=False)
    app.router.add_delete(ITEM_PATH, delete_item)
    app.router.add_post(RUN_ITEMS_PATH, create_run_item)
    app.router.add_get(RUN_ITEMS_PATH, list_run_items, allow_head=False)


async def create_dataset(request: web.Request) -> web.Response:
    return json_answer(await _upserted_dataset(request))


async def create_dataset_v1(request: web.Request) -> web.Response:
    # The deprecated path answers the dataset with its items and runs, none as far as it says.
    return json_answer(await _upserted_dataset(request) | {"items": [], "runs": []})


async def _upserted_dataset(request: web.Request) -> dict[str, Any]:
    project_id, pg = await _caller(request)
    doc = await request.app["intake"].json(request)
    new = checked(parse_dataset, doc)
    dataset = await stored(DatasetTable(pg).upsert(project_id, new))
    request["log_msg"] = "dataset upserted"
    request["log"] = {"dataset": dataset.name}
    return dataset_json(dataset, project_id)


async def list_datasets(request: web.Request) -> web.Response:
    project_id, pg = await _caller(request)
    page, limit = Params(request).page()
    datasets, total = await stored(DatasetTable(pg).page(project_id, offset=(page - 1) * limit, limit=limit))
    return json_answer({"data": [dataset_json(d, project_id) for d in datasets], "meta": meta(page, limit, total)})


async def get_dataset(request: web.Request) -> web.Response:
    project_id, pg = await _caller(request)
    name = checked(check_name, request.match_info["datasetName"], "datasetName")
    return json_answer(dataset_json(await stored(DatasetTable(pg).get(project_id, name)), project_id))


async def list_datasets_v1(request: web.Request) -> web.Response:
    """The deprecated listing: each dataset with its active items' ids and its runs' names."""
    project_id, pg = await _caller(request)
    page, limit = Params(request).page()
    datasets, total = await stored(DatasetTable(pg).page(project_id, offset=(page - 1) * limit, limit=limit))
    ids = [d.id for d in datasets]
    items = await stored(DatasetTable(pg).item_ids(project_id, ids))
    runs = await stored(RunTable(pg).names(project_id, ids))
    data = [dataset_json(d, project_id) | {"items": items.get(d.id, []), "runs": runs.get(d.id, [])} for d in datasets]
    return json_answer({"data": data, "meta": meta(page, limit, total)})


async def get_dataset_v1(request: web.Request) -> web.StreamResponse:
    """The deprecated read: the dataset with all its active items and its runs' names, the
    items written a chunk at a time (as get_run writes a run's)."""
    project_id, pg = await _caller(request)
    name = checked(check_name, request.match_info["datasetName"], "datasetName")
    table = DatasetTable(pg)
    dataset = await stored(table.get(project_id, name))
    runs = await stored(RunTable(pg).names(project_id, [dataset.id]))

    async def chunk(offset: int) -> list[Item]:
        items, _ = await stored(
            table.items(
                project_id,
                dataset_name=name,
                source_trace_id=None,
                source_observation_id=None,
                version=None,
                offset=offset,
                limit=DATASET_ITEMS_CHUNK,
            )
        )
        return items

    items = await chunk(0)
    head = orjson.dumps(dataset_json(dataset, project_id) | {"runs": runs.get(dataset.id, []), "items": []})
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    await response.write(head[:-2])  # up to the items' '['
    written = 0
    while items:
        body = orjson.dumps([item_json(i) for i in items])[1:-1]
        await response.write(b"," + body if written else body)
        written += len(items)
        if len(items) < DATASET_ITEMS_CHUNK:
            break
        items = await chunk(written)
    await response.write(b"]}")
    await response.write_eof()
    return response


async def create_item(request: web.Request) -> web.StreamResponse:
    project_id, pg = await _caller(request)
    doc = await request.app["intake"].json(request)
    new = checked(parse_item, doc)
    item = await stored(DatasetTable(pg).upsert_item(project_id, new))
    request["log_msg"] = "dataset item upserted"
    request["log"] = {"dataset": item.dataset_name, "item": item.id}
    return await _sent(request, [item], item_json(item))


async def get_item(request: web.Request) -> web.StreamResponse:
    project_id, pg = await _caller(request)
    item_id = checked(check_id, request.match_info["id"], "id")
    item = await stored(DatasetTable(pg).item(project_id, item_id))
    return await _sent(request, [item], item_json(item))


async def list_items(request: web.Request) -> web.StreamResponse:
    project_id, pg = await _caller(request)
    p = Params(request)
    page, limit = p.page()
    name = p.text("datasetName")
    version = p.time("version")
    if version is not None and name is None:
        raise ClientError("datasetName is required when version parameter is provided")
    items, total = await stored(
        DatasetTable(pg).items(
            project_id,
            dataset_name=None if name is None else checked(check_name, name, "datasetName"),
            source_trace_id=p.text("sourceTraceId"),
            source_observation_id=p.text("sourceObservationId"),
            version=None if version is None else datetime.fromtimestamp(version / 1e6, UTC),
            offset=(page - 1) * limit,
            limit=limit,
            # The documents, as read and as sent, counted before they are read (503 past it).
            weigh=lambda n: request.app["intake"].hold_answer(request, 2 * n),
        )
    )
    return await _sent(
        request, items, {"data": [item_json(i) for i in items], "meta": meta(page, limit, total)}, held=True
    )


async def delete_item(request: web.Request) -> web.Response:
    project_id, pg = await _caller(request)
    item_id = checked(check_id, request.match_info["id"], "id")
    if not await stored(DatasetTable(pg).delete_item(project_id, item_id)):
        raise NotFound(f"Dataset item not found: {item_id!r}")
    request["log_msg"] = "dataset item deleted"
    request["log"] = {"item": item_id}
    return json_answer({"message": "Dataset item successfully deleted"})


async def create_run_item(request: web.Request) -> web.Response:
    project_id, pg = await _caller(request)
    doc = await request.app["intake"].json(request)
    if not isinstance(doc, dict):
        raise ClientError("the body must be a dataset run item object")
    unknown = sorted(set(doc) - _RUN_ITEM_KEYS)
    if unknown:  # Langfuse's schema for this body is strict
        raise ClientError(f"unknown fields: {', '.join(unknown)}")
    new = checked(parse_run_item, doc, _time(doc, "createdAt"), _time(doc, "datasetVersion"))
    trace_id = new.trace_id
    if trace_id is None:
        if new.observation_id is None:
            raise ClientError("observationId or traceId must be provided")
        trace_id = await _trace_of(request, project_id, new.observation_id)
    run_item = await stored(RunTable(pg).link(project_id, new, trace_id))
    request["log_msg"] = "dataset run item created"
    request["log"] = {"run": run_item.run_name, "item": run_item.dataset_item_id, "trace_id": trace_id}
    return json_answer(run_item_json(run_item))


async def list_run_items(request: web.Request) -> web.Response:
    project_id, pg = await _caller(request)
    p = Params(request)
    dataset_id, run_name = p.text("datasetId"), p.text("runName")
    if dataset_id is None or run_name is None:
        raise ClientError("datasetId and runName are required")
    page, limit = p.page()
    items, total = await stored(
        RunTable(pg).run_items(project_id, dataset_id, run_name, offset=(page - 1) * limit, limit=limit)
    )
    return json_answer({"data": [run_item_json(i) for i in items], "meta": meta(page, limit, total)})


async def list_runs(request: web.Request) -> web.Response:
    project_id, pg = await _caller(request)
    name = checked(check_name, request.match_info["datasetName"], "datasetName")
    page, limit = Params(request).page()
    runs, total = await stored(RunTable(pg).runs(project_id, name, offset=(page - 1) * limit, limit=limit))
    return json_answer({"data": [run_json(r) for r in runs], "meta": meta(page, limit, total)})


async def get_run(request: web.Request) -> web.StreamResponse:
    """The run with all its items, as Langfuse answers it: written a chunk at a time. A store
    failing after the first chunk can no longer change the status: the answer is cut short."""
    project_id, pg = await _caller(request)
    name = checked(check_name, request.match_info["datasetName"], "datasetName")
    run_name = checked(check_id, request.match_info["runName"], "runName")
    table = RunTable(pg)
    run = await stored(table.run(project_id, name, run_name))
    chunk = await stored(table.items_of(project_id, run, after=None, limit=RUN_ITEMS_CHUNK))
    head = orjson.dumps(run_json(run) | {"datasetRunItems": []})
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    await response.write(head[:-2])  # up to the items' '['
    separator = b""
    while chunk:
        await response.write(separator + orjson.dumps([run_item_json(i) for i in chunk])[1:-1])
        separator = b","
        if len(chunk) < RUN_ITEMS_CHUNK:
            break
        chunk = await stored(table.items_of(project_id, run, after=chunk[-1], limit=RUN_ITEMS_CHUNK))
    await response.write(b"]}")
    await response.write_eof()
    return response


async def delete_run(request: web.Request) -> web.Response:
    project_id, pg = await _caller(request)
    name = checked(check_name, request.match_info["datasetName"], "datasetName")
    run_name = checked(check_id, request.match_info["runName"], "runName")
    await stored(RunTable(pg).delete_run(project_id, name, run_name))
    request["log_msg"] = "dataset run deleted"
    request["log"] = {"dataset": name, "run": run_name}
    return json_answer({"message": "Dataset run successfully deleted"})


def dataset_json(d: Dataset, project_id: str) -> dict[str, Any]:
    return {
        "id": d.id,
        "name": d.name,
        "description": d.description,
        "metadata": _doc(d.metadata_json),
        "inputSchema": _doc(d.input_schema_json),
        "expectedOutputSchema": _doc(d.expected_output_schema_json),
        "projectId": project_id,
        "createdAt": iso(d.created_at),
        "updatedAt": iso(d.updated_at),
    }


def item_json(i: Item) -> dict[str, Any]:
    return {
        "id": i.id,
        "status": i.status,
        # As stored: a large input is read and sent without becoming objects in between.
        "input": _doc(i.input_json),
        "expectedOutput": _doc(i.expected_output_json),
        "metadata": _doc(i.metadata_json),
        "sourceTraceId": i.source_trace_id,
        "sourceObservationId": i.source_observation_id,
        "datasetId": i.dataset_id,
        "datasetName": i.dataset_name,
        "createdAt": iso(i.created_at),
        "updatedAt": iso(i.updated_at),
        # Media in items is not resolved: no references, which the current SDKs require as a list.
        "mediaReferences": [],
    }


def run_json(r: Run) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "description": r.description,
        "metadata": orjson.Fragment(r.metadata_json),
        "datasetId": r.dataset_id,
        "datasetName": r.dataset_name,
        "createdAt": iso(r.created_at),
        "updatedAt": iso(r.updated_at),
    }


def run_item_json(i: RunItem) -> dict[str, Any]:
    return {
        "id": i.id,
        "datasetRunId": i.run_id,
        "datasetRunName": i.run_name,
        "datasetItemId": i.dataset_item_id,
        "traceId": i.trace_id,
        "observationId": i.observation_id,
        "createdAt": iso(i.created_at),
        "updatedAt": iso(i.updated_at),
    }


async def _trace_of(request: web.Request, project_id: str, observation_id: str) -> str:
    """The trace of an observation, for run items that name only the observation (older SDKs)."""
    try:
        row = await request.app["reader"].observation(project_id, observation_id)
    except ClickHouseError as exc:
        raise AuthUnavailable(f"the trace store is unavailable: {exc}") from exc
    if row is None or not row.get("trace_id"):
        raise NotFound(f"Observation not found: {observation_id!r}")
    return str(row["trace_id"])


def _time(doc: dict[str, Any], key: str) -> datetime | None:
    raw = doc.get(key)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ClientError(f"{key} must be an ISO 8601 datetime string")
    return datetime.fromtimestamp(Params.from_iso(key, raw) / 1e6, UTC)


def _doc(text: str | None) -> orjson.Fragment | None:
    return None if text is None else orjson.Fragment(text)


async def _caller(request: web.Request) -> tuple[str, Postgres]:
    intake: Intake = request.app["intake"]
    caller = await intake.caller(request)
    return caller.project_id, request.app["postgres"]


async def _sent(request: web.Request, items: list[Item], doc: Any, *, held: bool = False) -> web.StreamResponse:
    """Items' answer, its bytes counted in flight (hold_answer; `held`: already) until the
    client has taken them: a page of 50 items of 256 KiB each is 12.5 MB, as read and again as
    sent."""
    if not held:
        size = sum(len(t) for i in items for t in (i.input_json, i.expected_output_json, i.metadata_json) if t)
        request.app["intake"].hold_answer(request, 2 * size)
    body = orjson.dumps(doc)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body)
    await response.write_eof()
    return response
