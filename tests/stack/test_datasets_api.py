"""Langfuse's datasets API against the running api and Postgres: datasets, items, runs and run
items, upserts, paging and filters, names in folders, archiving, deletion, isolation between
projects, and bad input."""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from typing import Any

import aiohttp
import grpc
import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from ingest.datasets import DATASET_ITEMS_CHUNK, RUN_ITEMS_CHUNK
from sinks.postgres.client import Postgres
from sinks.postgres.dataset_runs import run_id
from sinks.postgres.keys import NewKey, create_key
from tests.stack.test_trace_deletion import batch, ingest, visible, whole
from tests.support import API, GRPC, basic_auth, eventually, grpc_auth, grpc_export

pytestmark = pytest.mark.stack

PUBLIC = f"{API}/api/public"


async def call(http: aiohttp.ClientSession, key: NewKey, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with http.request(method, f"{PUBLIC}{path}", headers=basic_auth(key), **kwargs) as r:
        return r.status, await r.json()


async def ok(http: aiohttp.ClientSession, key: NewKey, method: str, path: str, **kwargs: Any) -> Any:
    status, body = await call(http, key, method, path, **kwargs)
    assert status == 200, (method, path, status, body)
    return body


def _name() -> str:
    return f"ds-{uuid.uuid4().hex[:8]}"


def _is_iso_z(value: str) -> bool:
    return value.endswith("Z") and "T" in value


async def test_datasets_are_created_updated_by_name_listed_and_read(
    http: aiohttp.ClientSession, project: NewKey
) -> None:
    name = f"folder/{_name()}"
    made = await ok(http, project, "POST", "/v2/datasets", json={"name": name, "description": "d", "metadata": [1]})
    assert {k: made[k] for k in ("name", "description", "metadata", "inputSchema", "projectId")} == {
        "name": name,
        "description": "d",
        "metadata": [1],
        "inputSchema": None,
        "projectId": project.project_id,
    }
    assert _is_iso_z(made["createdAt"]) and _is_iso_z(made["updatedAt"])
    # The same name again updates it: what is given changes, what is left out stays.
    schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    again = await ok(http, project, "POST", "/v2/datasets", json={"name": name, "inputSchema": schema})
    assert (again["id"], again["description"], again["metadata"], again["inputSchema"]) == (
        made["id"],
        "d",
        [1],
        schema,
    )
    cleared = await ok(http, project, "POST", "/v2/datasets", json={"name": name, "inputSchema": None})
    assert cleared["inputSchema"] is None and cleared["updatedAt"] >= again["updatedAt"]
    # The deprecated path creates too, and answers with (no) items and runs.
    v1 = await ok(http, project, "POST", "/datasets", json={"name": f"{name}-v1"})
    assert (v1["items"], v1["runs"], v1["description"]) == ([], [], None)
    # Read back with the folder's '/' percent-encoded (as the SDKs send it) or not.
    for path in (f"/v2/datasets/{name.replace('/', '%2F')}", f"/v2/datasets/{name}"):
        assert (await ok(http, project, "GET", path))["id"] == made["id"]
    status, body = await call(http, project, "GET", "/v2/datasets/nowhere")
    assert status == 404 and "nowhere" in body["message"]
    # Newest first, paged.
    page = await ok(http, project, "GET", "/v2/datasets", params={"limit": "1"})
    assert page["meta"] == {"page": 1, "limit": 1, "totalItems": 2, "totalPages": 2}
    assert [d["name"] for d in page["data"]] == [f"{name}-v1"]
    assert [
        d["name"] for d in (await ok(http, project, "GET", "/v2/datasets", params={"page": "2", "limit": "1"}))["data"]
    ] == [name]
    past = await ok(http, project, "GET", "/v2/datasets", params={"page": "3", "limit": "1"})
    assert past == {"data": [], "meta": {"page": 3, "limit": 1, "totalItems": 2, "totalPages": 2}}


async def test_items_upsert_archive_filter_page_and_delete(http: aiohttp.ClientSession, project: NewKey) -> None:
    name = f"f/{_name()}"
    dataset = await ok(http, project, "POST", "/v2/datasets", json={"name": name})
    first = await ok(
        http,
        project,
        "POST",
        "/dataset-items",
        json={
            "datasetName": name,
            "id": "item-1",
            "input": {"question": "2+2?"},
            "expectedOutput": "4",
            "metadata": {"level": "easy"},
            "sourceTraceId": "trace-a",
            "sourceObservationId": "obs-a",
        },
    )
    assert {k: v for k, v in first.items() if k not in ("createdAt", "updatedAt")} == {
        "id": "item-1",
        "status": "ACTIVE",
        "input": {"question": "2+2?"},
        "expectedOutput": "4",
        "metadata": {"level": "easy"},
        "sourceTraceId": "trace-a",
        "sourceObservationId": "obs-a",
        "datasetId": dataset["id"],
        "datasetName": name,
        "mediaReferences": [],
    }
    # Upsert by id: the given fields change, the ones left out (or null) stay.
    updated = await ok(
        http, project, "POST", "/dataset-items", json={"datasetName": name, "id": "item-1", "expectedOutput": "four"}
    )
    assert (updated["input"], updated["expectedOutput"], updated["createdAt"]) == (
        {"question": "2+2?"},
        "four",
        first["createdAt"],
    )
    # Without an id, one is made; several items, each newest first in the listing.
    made = [await ok(http, project, "POST", "/dataset-items", json={"datasetName": name, "input": i}) for i in range(3)]
    assert len({m["id"] for m in made}) == 3 and all(m["expectedOutput"] is None for m in made)
    listed = await ok(http, project, "GET", "/dataset-items", params={"datasetName": name})
    assert [i["input"] for i in listed["data"]] == [2, 1, 0, {"question": "2+2?"}]
    assert listed["meta"] == {"page": 1, "limit": 50, "totalItems": 4, "totalPages": 1}
    second = await ok(http, project, "GET", "/dataset-items", params={"datasetName": name, "page": "2", "limit": "3"})
    assert [i["id"] for i in second["data"]] == ["item-1"] and second["meta"]["totalPages"] == 2
    # `version`: the items as of that time (here: the ones created by then).
    then = await ok(http, project, "GET", "/dataset-items", params={"datasetName": name, "version": first["createdAt"]})
    assert [i["id"] for i in then["data"]] == ["item-1"]
    by_source = await ok(http, project, "GET", "/dataset-items", params={"sourceTraceId": "trace-a"})
    assert [i["id"] for i in by_source["data"]] == ["item-1"]
    by_observation = await ok(http, project, "GET", "/dataset-items", params={"sourceObservationId": "obs-a"})
    assert [i["id"] for i in by_observation["data"]] == ["item-1"]
    # Archived: out of the listing, still readable by id, and back when made active again.
    archived = await ok(
        http, project, "POST", "/dataset-items", json={"datasetName": name, "id": "item-1", "status": "ARCHIVED"}
    )
    assert archived["status"] == "ARCHIVED" and archived["expectedOutput"] == "four"
    listed = await ok(http, project, "GET", "/dataset-items", params={"datasetName": name})
    assert "item-1" not in [i["id"] for i in listed["data"]] and listed["meta"]["totalItems"] == 3
    assert (await ok(http, project, "GET", "/dataset-items/item-1"))["status"] == "ARCHIVED"
    await ok(http, project, "POST", "/dataset-items", json={"datasetName": name, "id": "item-1", "status": "ACTIVE"})
    # An item's id is the project's: another dataset cannot take it over (404, as Langfuse).
    other = f"{name}-other"
    await ok(http, project, "POST", "/v2/datasets", json={"name": other})
    status, body = await call(http, project, "POST", "/dataset-items", json={"datasetName": other, "id": "item-1"})
    assert status == 404 and "other than" in body["message"]
    assert (await ok(http, project, "GET", "/dataset-items/item-1"))["datasetName"] == name
    # An unknown dataset, for an item or a listing: 404.
    status, body = await call(http, project, "POST", "/dataset-items", json={"datasetName": "nowhere", "input": 1})
    assert status == 404 and "nowhere" in body["message"]
    assert (await call(http, project, "GET", "/dataset-items", params={"datasetName": "nowhere"}))[0] == 404
    # Deletion.
    assert await ok(http, project, "DELETE", "/dataset-items/item-1") == {
        "message": "Dataset item successfully deleted"
    }
    assert (await call(http, project, "GET", "/dataset-items/item-1"))[0] == 404
    assert (await call(http, project, "DELETE", "/dataset-items/item-1"))[0] == 404


async def test_concurrent_upserts_and_links_agree(http: aiohttp.ClientSession, project: NewKey) -> None:
    name = _name()
    made = await asyncio.gather(*(ok(http, project, "POST", "/v2/datasets", json={"name": name}) for _ in range(6)))
    assert len({m["id"] for m in made}) == 1
    items = await asyncio.gather(
        *(
            ok(http, project, "POST", "/dataset-items", json={"datasetName": name, "id": "same", "input": n})
            for n in range(6)
        )
    )
    assert {i["id"] for i in items} == {"same"}
    listed = await ok(http, project, "GET", "/dataset-items", params={"datasetName": name})
    assert listed["meta"]["totalItems"] == 1
    # An experiment's items link at once (the SDKs run 50 at a time): one run, each linked once.
    for n in range(40):
        await ok(http, project, "POST", "/dataset-items", json={"datasetName": name, "id": f"{name}-{n}"})
    linked = await asyncio.gather(
        *(
            ok(
                http,
                project,
                "POST",
                "/dataset-run-items",
                json={"runName": "at once", "datasetItemId": f"{name}-{n % 40}", "traceId": f"t{n % 40}"},
            )
            for n in range(80)
        )
    )
    assert len({i["datasetRunId"] for i in linked}) == 1 and len({i["id"] for i in linked}) == 40
    run = await ok(http, project, "GET", f"/datasets/{name}/runs/at once")
    assert len(run["datasetRunItems"]) == 40


async def test_runs_are_made_by_run_items_read_paged_and_deleted(http: aiohttp.ClientSession, project: NewKey) -> None:
    name = f"f/{_name()}"
    dataset = await ok(http, project, "POST", "/v2/datasets", json={"name": name})
    items = [
        await ok(http, project, "POST", "/dataset-items", json={"datasetName": name, "id": f"{name}-{n}", "input": n})
        for n in range(3)
    ]
    run = "run 1/with: odd chars"
    linked = []
    for n, item in enumerate(items):
        linked.append(
            await ok(
                http,
                project,
                "POST",
                "/dataset-run-items",
                json={
                    "runName": run,
                    "datasetItemId": item["id"],
                    "traceId": f"trace-{n}",
                    "observationId": f"obs-{n}" if n else None,
                    "runDescription": "first" if n == 0 else None,
                    "metadata": {"model": "m1"} if n == 0 else {"temperature": 0} if n == 2 else None,
                },
            )
        )
    # The run's id is Langfuse's stable experiment id: the SDKs' experiment id names it.
    expected_run = run_id(project.project_id, dataset["id"], run)
    assert {i["datasetRunId"] for i in linked} == {expected_run}
    assert linked[1] | {"id": "", "createdAt": "", "updatedAt": ""} == {
        "id": "",
        "datasetRunId": expected_run,
        "datasetRunName": run,
        "datasetItemId": items[1]["id"],
        "traceId": "trace-1",
        "observationId": "obs-1",
        "createdAt": "",
        "updatedAt": "",
    }
    # A later item may update the run's description and metadata (non-objects are wrapped).
    await ok(
        http,
        project,
        "POST",
        "/dataset-run-items",
        json={"runName": "second", "datasetItemId": items[0]["id"], "traceId": "t", "metadata": "plain"},
    )
    runs = await ok(http, project, "GET", f"/datasets/{name.replace('/', '%2F')}/runs")
    assert [(r["name"], r["description"], r["metadata"]) for r in runs["data"]] == [
        ("second", None, {"metadata": "plain"}),
        (run, "first", {"model": "m1", "temperature": 0}),  # a later item's keys added
    ]
    assert runs["meta"] == {"page": 1, "limit": 50, "totalItems": 2, "totalPages": 1}
    paged = await ok(http, project, "GET", f"/datasets/{name}/runs", params={"page": "2", "limit": "1"})
    assert [r["name"] for r in paged["data"]] == [run]
    # One run with its items, by name (encoded or not).
    for path in (
        f"/datasets/{name}/runs/{run}",
        f"/datasets/{name.replace('/', '%2F')}/runs/run%201%2Fwith%3A%20odd%20chars",
    ):
        whole = await ok(http, project, "GET", path)
        assert (whole["id"], whole["datasetId"], whole["datasetName"]) == (expected_run, dataset["id"], name)
        assert sorted(i["traceId"] for i in whole["datasetRunItems"]) == ["trace-0", "trace-1", "trace-2"]
    # Run items by dataset id and run name, paged.
    page = await ok(
        http, project, "GET", "/dataset-run-items", params={"datasetId": dataset["id"], "runName": run, "limit": "2"}
    )
    assert page["meta"] == {"page": 1, "limit": 2, "totalItems": 3, "totalPages": 2} and len(page["data"]) == 2
    status, _ = await call(
        http, project, "GET", "/dataset-run-items", params={"datasetId": dataset["id"], "runName": "x"}
    )
    assert status == 404
    # Archived items cannot join a run; deleting an item takes its run items with it.
    await ok(
        http, project, "POST", "/dataset-items", json={"datasetName": name, "id": items[2]["id"], "status": "ARCHIVED"}
    )
    status, body = await call(
        http,
        project,
        "POST",
        "/dataset-run-items",
        json={"runName": run, "datasetItemId": items[2]["id"], "traceId": "t"},
    )
    assert status == 404 and "not found" in body["message"]
    await ok(http, project, "DELETE", f"/dataset-items/{items[1]['id']}")
    left = await ok(http, project, "GET", f"/datasets/{name}/runs/{run}")
    assert sorted(i["traceId"] for i in left["datasetRunItems"]) == ["trace-0", "trace-2"]
    # Deleting the run takes its items; the other run stays.
    assert await ok(http, project, "DELETE", f"/datasets/{name}/runs/{run}") == {
        "message": "Dataset run successfully deleted"
    }
    assert (await call(http, project, "GET", f"/datasets/{name}/runs/{run}"))[0] == 404
    assert (await call(http, project, "DELETE", f"/datasets/{name}/runs/{run}"))[0] == 404
    assert [r["name"] for r in (await ok(http, project, "GET", f"/datasets/{name}/runs"))["data"]] == ["second"]
    assert (await call(http, project, "GET", "/datasets/nowhere/runs"))[0] == 404


async def test_projects_never_see_each_others_datasets(
    http: aiohttp.ClientSession, pg: Postgres, project: NewKey
) -> None:
    name = _name()
    dataset = await ok(http, project, "POST", "/v2/datasets", json={"name": name, "metadata": {"secret": 1}})
    await ok(http, project, "POST", "/dataset-items", json={"datasetName": name, "id": f"{name}-i", "input": "x"})
    await ok(
        http, project, "POST", "/dataset-run-items", json={"runName": "r", "datasetItemId": f"{name}-i", "traceId": "t"}
    )
    other = await create_key(pg, f"test-{uuid.uuid4().hex[:12]}")
    assert (await call(http, other, "GET", f"/v2/datasets/{name}"))[0] == 404
    assert (await ok(http, other, "GET", "/v2/datasets"))["data"] == []
    assert (await call(http, other, "GET", f"/dataset-items/{name}-i"))[0] == 404
    assert (await ok(http, other, "GET", "/dataset-items"))["data"] == []
    assert (await call(http, other, "DELETE", f"/dataset-items/{name}-i"))[0] == 404
    assert (await call(http, other, "GET", f"/datasets/{name}/runs/r"))[0] == 404
    assert (await call(http, other, "DELETE", f"/datasets/{name}/runs/r"))[0] == 404
    status, _ = await call(
        http, other, "GET", "/dataset-run-items", params={"datasetId": dataset["id"], "runName": "r"}
    )
    assert status == 404
    status, _ = await call(
        http, other, "POST", "/dataset-run-items", json={"runName": "r", "datasetItemId": f"{name}-i", "traceId": "t"}
    )
    assert status == 404
    # The same name and item id in the other project are its own.
    theirs = await ok(http, other, "POST", "/v2/datasets", json={"name": name})
    assert theirs["id"] != dataset["id"] and theirs["metadata"] is None
    mine = await ok(http, project, "GET", f"/dataset-items/{name}-i")
    await ok(http, other, "POST", "/dataset-items", json={"datasetName": name, "id": f"{name}-i", "input": "theirs"})
    assert (await ok(http, project, "GET", f"/dataset-items/{name}-i")) == mine
    async with http.get(f"{PUBLIC}/v2/datasets") as r:
        assert r.status == 401


def _nested(depth: int) -> Any:
    doc: Any = 1
    for _ in range(depth):
        doc = [doc]
    return doc


async def test_bad_input_is_a_4xx_with_a_message(http: aiohttp.ClientSession, project: NewKey) -> None:
    name = _name()
    await ok(http, project, "POST", "/v2/datasets", json={"name": name})
    await ok(http, project, "POST", "/dataset-items", json={"datasetName": name, "id": f"{name}-i"})
    bad: list[tuple[str, Any]] = [
        ("/v2/datasets", []),
        ("/v2/datasets", {"description": "no name"}),
        ("/v2/datasets", {"name": ""}),
        ("/v2/datasets", {"name": "/lead"}),
        ("/v2/datasets", {"name": "x" * 256}),
        ("/v2/datasets", {"name": 5}),
        ("/v2/datasets", {"name": "n", "description": 1}),
        ("/v2/datasets", {"name": "n", "inputSchema": "not a schema"}),
        ("/v2/datasets", {"name": "n\ud800"}),
        ("/datasets", {"name": "a\x00b"}),
        ("/dataset-items", {"input": "no dataset"}),
        ("/dataset-items", {"datasetName": name, "status": "DELETED"}),
        ("/dataset-items", {"datasetName": name, "id": ""}),
        ("/dataset-items", {"datasetName": name, "id": 7}),
        ("/dataset-items", {"datasetName": name, "sourceTraceId": ["t"]}),
        ("/dataset-items", {"datasetName": name, "input": {"deep": _nested(300)}}),
        ("/dataset-items", {"datasetName": name, "input": "a\x00b"}),
        ("/dataset-run-items", {"runName": "r", "datasetItemId": f"{name}-i"}),
        ("/dataset-run-items", {"runName": "r", "traceId": "t"}),
        ("/dataset-run-items", {"runName": "", "datasetItemId": f"{name}-i", "traceId": "t"}),
        ("/dataset-run-items", {"runName": "r", "datasetItemId": f"{name}-i", "traceId": "t", "extra": 1}),
        ("/dataset-run-items", {"runName": "r", "datasetItemId": f"{name}-i", "traceId": "t", "createdAt": "nope"}),
        ("/dataset-run-items", {"runName": "r", "datasetItemId": f"{name}-i", "traceId": 3}),
        ("/dataset-run-items", "a string"),
    ]
    for path, doc in bad:
        status, body = await call(http, project, "POST", path, json=doc)
        assert status == 400, (path, doc, status, body)
        assert body["message"], (path, doc)
    headers = basic_auth(project) | {"Content-Type": "application/json"}
    for path in ("/v2/datasets", "/dataset-items", "/dataset-run-items"):
        async with http.post(f"{PUBLIC}{path}", data=b'{"name": ', headers=headers) as r:
            assert r.status == 400 and "malformed JSON" in (await r.json())["message"]
    # An item's documents past 256 KiB: 413, as is a body past the edge's limit.
    big = orjson.dumps({"datasetName": name, "input": "x" * (150 * 1024), "expectedOutput": "y" * (150 * 1024)})
    async with http.post(f"{PUBLIC}/dataset-items", data=io.BytesIO(big), headers=headers) as r:
        assert r.status == 413 and "262144" in (await r.json())["message"]
    huge = orjson.dumps({"datasetName": name, "input": "x" * (6 * 1024 * 1024)})
    for path in ("/dataset-items", "/v2/datasets", "/dataset-run-items"):
        async with http.post(f"{PUBLIC}{path}", data=io.BytesIO(huge), headers=headers) as r:
            assert r.status == 413, path
    for params in ({"page": "0"}, {"limit": "x"}, {"limit": "1000"}, {"version": "2026-01-01T00:00:00Z"}):
        assert (await call(http, project, "GET", "/dataset-items", params=params))[0] == 400, params
    assert (await call(http, project, "GET", "/dataset-run-items", params={"runName": "r"}))[0] == 400
    assert (await call(http, project, "GET", "/v2/datasets", params={"limit": "0"}))[0] == 400


def _span(trace_id: str, span_id: str, attributes: dict[str, str]) -> dict[str, Any]:
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "name": "experiment-item-task",
        "startTimeUnixNano": "1796137653817000000",
        "endTimeUnixNano": "1796137653832944537",
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attributes.items()],
    }


async def test_an_experiments_spans_link_its_items_once(
    http: aiohttp.ClientSession, pg: Postgres, project: NewKey
) -> None:
    """The current SDKs state an experiment's links in span attributes only (no run items)."""
    name = _name()
    dataset = await ok(http, project, "POST", "/v2/datasets", json={"name": name})
    for n in range(2):
        await ok(http, project, "POST", "/dataset-items", json={"datasetName": name, "id": f"{name}-{n}", "input": n})
    other = await create_key(pg, f"test-{uuid.uuid4().hex[:12]}")
    theirs = await ok(http, other, "POST", "/v2/datasets", json={"name": name})
    await ok(http, other, "POST", "/dataset-items", json={"datasetName": name, "id": f"{name}-theirs"})
    traces = [uuid.uuid4().hex for _ in range(5)]

    def experiment(n: int, item: str, dataset_id: str, root: str | None = None) -> dict[str, Any]:
        span_id = f"{n + 1:016x}"
        return _span(
            traces[n],
            span_id,
            {
                "langfuse.experiment.id": "ignored",
                "langfuse.experiment.name": "nightly",
                "langfuse.experiment.description": "spans",
                "langfuse.experiment.metadata": '{"model": "m2"}',
                "langfuse.experiment.dataset.id": dataset_id,
                "langfuse.experiment.item.id": item,
                "langfuse.experiment.item.root_observation_id": root or span_id,
            },
        )

    spans = [
        experiment(0, f"{name}-0", dataset["id"]),
        experiment(1, f"{name}-1", dataset["id"]),
        experiment(2, f"{name}-0", dataset["id"], root="00000000000000ff"),  # a child of the item's root
        experiment(3, f"{name}-missing", dataset["id"]),  # no such item
        experiment(4, f"{name}-theirs", theirs["id"]),  # another project's
    ]
    export = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"scope": {}, "spans": spans}]}]}
    for _ in range(2):  # an exporter's retry links nothing twice
        async with http.post(f"{PUBLIC}/otel/v1/traces", json=export, headers=basic_auth(project)) as r:
            assert r.status == 200, await r.text()
    run = await ok(http, project, "GET", f"/datasets/{name}/runs/nightly")
    assert (run["id"], run["description"], run["metadata"]) == (
        run_id(project.project_id, dataset["id"], "nightly"),
        "spans",
        {"model": "m2"},
    )
    assert sorted((i["datasetItemId"], i["traceId"], i["observationId"]) for i in run["datasetRunItems"]) == [
        (f"{name}-0", traces[0], f"{1:016x}"),
        (f"{name}-1", traces[1], f"{2:016x}"),
    ]
    # Posting the same link (as the 3.x SDKs do besides their spans) is that link, not a second one.
    posted = await ok(
        http,
        project,
        "POST",
        "/dataset-run-items",
        json={"runName": "nightly", "datasetItemId": f"{name}-0", "traceId": traces[0]},
    )
    assert posted["id"] in {i["id"] for i in run["datasetRunItems"]}
    again = await ok(http, project, "GET", f"/datasets/{name}/runs/nightly")
    assert len(again["datasetRunItems"]) == 2
    assert (await call(http, other, "GET", f"/datasets/{name}/runs/nightly"))[0] == 404


async def test_a_run_item_naming_only_an_observation_gets_its_trace(
    http: aiohttp.ClientSession, project: NewKey
) -> None:
    """Older SDKs linked observations, not traces: the trace is looked up, as Langfuse does."""
    name = _name()
    await ok(http, project, "POST", "/v2/datasets", json={"name": name})
    await ok(http, project, "POST", "/dataset-items", json={"datasetName": name, "id": f"{name}-i"})
    trace = f"t-{uuid.uuid4()}"
    await ingest(http, project, batch(trace, session="s", user="u", tokens=1))
    await eventually(lambda: visible(http, project, trace), whole, timeout_s=30)
    linked = await ok(
        http,
        project,
        "POST",
        "/dataset-run-items",
        json={"runName": "legacy", "datasetItemId": f"{name}-i", "observationId": f"{trace}-gen"},
    )
    assert (linked["traceId"], linked["observationId"]) == (trace, f"{trace}-gen")
    status, body = await call(
        http,
        project,
        "POST",
        "/dataset-run-items",
        json={"runName": "legacy", "datasetItemId": f"{name}-i", "observationId": "no-such-observation"},
    )
    assert status == 404 and "no-such-observation" in body["message"]


async def test_an_experiments_spans_over_grpc_link_its_items_too(http: aiohttp.ClientSession, project: NewKey) -> None:
    name = _name()
    await ok(http, project, "POST", "/v2/datasets", json={"name": name})
    dataset = await ok(http, project, "GET", f"/v2/datasets/{name}")
    await ok(http, project, "POST", "/dataset-items", json={"datasetName": name, "id": f"{name}-g"})
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id = uuid.uuid4().bytes, os.urandom(8)
    span.name, span.start_time_unix_nano, span.end_time_unix_nano = (
        "task",
        1_795_773_600_000_000_000,
        1_795_773_600_100_000_000,
    )
    for key, value in {
        "langfuse.experiment.name": "over grpc",
        "langfuse.experiment.dataset.id": dataset["id"],
        "langfuse.experiment.item.id": f"{name}-g",
        "langfuse.experiment.item.root_observation_id": span.span_id.hex(),
    }.items():
        span.attributes.add(key=key, value=AnyValue(string_value=value))
    async with grpc.aio.insecure_channel(GRPC) as channel:
        answer = await grpc_export(channel, request.SerializeToString(), grpc_auth(project))
    assert answer.code == grpc.StatusCode.OK, answer
    run = await ok(http, project, "GET", f"/datasets/{name}/runs/over grpc")
    assert [(i["datasetItemId"], i["traceId"], i["observationId"]) for i in run["datasetRunItems"]] == [
        (f"{name}-g", span.trace_id.hex(), span.span_id.hex())
    ]


async def test_a_run_is_read_whole_however_many_items_it_has(
    http: aiohttp.ClientSession, pg: Postgres, project: NewKey
) -> None:
    """Answered a chunk at a time (RUN_ITEMS_CHUNK), many items sharing a time across chunks."""
    name = _name()
    dataset = await ok(http, project, "POST", "/v2/datasets", json={"name": name})
    await ok(http, project, "POST", "/dataset-items", json={"datasetName": name, "id": f"{name}-i"})
    first = await ok(
        http,
        project,
        "POST",
        "/dataset-run-items",
        json={"runName": "big", "datasetItemId": f"{name}-i", "traceId": "t0"},
    )
    many = 2 * RUN_ITEMS_CHUNK + 345
    await pg.execute(
        "INSERT INTO dataset_run_items (project_id, run_id, dataset_item_id, trace_id, created_at) "
        "SELECT %s, %s, %s, 'bulk-' || g, timestamptz '2026-01-01' - (g %% 7) * interval '1 second' "
        "FROM generate_series(1, %s) AS g",
        (project.project_id, run_id(project.project_id, dataset["id"], "big"), f"{name}-i", many),
    )
    run = await ok(http, project, "GET", f"/datasets/{name}/runs/big")
    items = run["datasetRunItems"]
    assert len(items) == many + 1 and len({i["id"] for i in items}) == many + 1
    assert items[0]["id"] == first["id"]  # the newest
    times = [i["createdAt"] for i in items]
    assert times == sorted(times, reverse=True)


async def test_the_deprecated_reads_give_datasets_with_their_items_and_runs(
    http: aiohttp.ClientSession, project: NewKey
) -> None:
    """GET /api/public/datasets[/{name}], which SDKs older than the v2 paths read."""
    name = f"old/{_name()}"
    dataset = await ok(http, project, "POST", "/datasets", json={"name": name, "description": "v1"})
    many = DATASET_ITEMS_CHUNK * 2 + 3  # written a chunk at a time
    for n in range(many):
        await ok(http, project, "POST", "/dataset-items", json={"datasetName": name, "id": f"{name}-{n}", "input": n})
    await ok(
        http, project, "POST", "/dataset-items", json={"datasetName": name, "id": f"{name}-a", "status": "ARCHIVED"}
    )
    await ok(
        http,
        project,
        "POST",
        "/dataset-run-items",
        json={"runName": "r1", "datasetItemId": f"{name}-0", "traceId": "t"},
    )
    whole = await ok(http, project, "GET", f"/datasets/{name.replace('/', '%2F')}")
    assert (whole["id"], whole["description"], whole["runs"]) == (dataset["id"], "v1", ["r1"])
    assert [i["input"] for i in whole["items"]] == list(reversed(range(many)))  # active, newest first
    assert whole["items"][0]["mediaReferences"] == [] and whole["items"][0]["datasetName"] == name
    listed = await ok(http, project, "GET", "/datasets")
    assert [(d["name"], d["runs"], len(d["items"])) for d in listed["data"]] == [(name, ["r1"], many)]
    assert listed["data"][0]["items"][-1] == f"{name}-0"
    assert (await call(http, project, "GET", "/datasets/nowhere"))[0] == 404
