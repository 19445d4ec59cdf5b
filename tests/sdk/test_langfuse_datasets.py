"""Datasets and experiments through the Langfuse SDKs, unchanged: the current Python SDK's
create_dataset, create_dataset_item, get_dataset and run_experiment (which links items to
traces by span attributes only), and the 3.x SDK's item.run and run_experiment (which post
/api/public/dataset-run-items) with its reads and deletion of runs. What they made is then
read back through our API and the trace store."""

from __future__ import annotations

import shutil
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.postgres.dataset_runs import run_id
from sinks.postgres.keys import NewKey
from tests.sdk.conftest import sdk_runner
from tests.support import API, basic_auth, eventually, rows

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]


async def _get(http: aiohttp.ClientSession, key: NewKey, path: str, **params: str) -> Any:
    async with http.get(f"{API}/api/public{path}", headers=basic_auth(key), params=params) as r:
        assert r.status == 200, (path, await r.text())
        return await r.json()


def _quoted(name: str) -> str:
    return urllib.parse.quote(name, safe="")


async def test_the_current_python_sdk_runs_an_experiment_on_a_dataset(
    langfuse_v5_python: Path, http: aiohttp.ClientSession, ch: ClickHouse, project: NewKey
) -> None:
    run = uuid.uuid4().hex[:12]
    got = await sdk_runner(langfuse_v5_python, "langfuse_v5_datasets.py", project)(run)
    assert got["sdk_version"].startswith("5."), got
    name = f"{run}-evals/capitals"
    assert got["dataset"] == {"name": name, "description": "capital cities", "metadata": {"owner": "qa"}}
    # Read back a page of two at a time, without the archived item.
    assert got["fetched"]["items"] == [
        ["France", "Paris", 1, "ACTIVE"],
        ["Italy", "Rome", 0, "ACTIVE"],
        ["Japan", "Tokyo", 2, "ACTIVE"],
    ]
    active = set(got["made"][:3])
    experiment = got["experiment"]
    # The SDK's experiment id is the run's id here: both derive it from project, dataset and run name.
    assert experiment["experiment_id"] == run_id(project.project_id, got["fetched"]["id"], f"{run}-run")
    assert {i[0] for i in experiment["items"]} == active
    assert sorted((i[2], i[3]) for i in experiment["items"]) == [
        ("?", [["exact", 0.0]]),
        ("Lyon", [["exact", 0.0]]),
        ("Rome", [["exact", 1.0]]),
    ]
    traces = {item_id: trace_id for item_id, trace_id, _, _ in experiment["items"]}

    # The run and its items, from the experiment's spans (the SDK posts no run items).
    runs = await _get(http, project, f"/datasets/{_quoted(name)}/runs")
    assert [(r["id"], r["name"], r["description"]) for r in runs["data"]] == [
        (experiment["experiment_id"], f"{run}-run", "baseline")
    ]
    whole = await _get(http, project, f"/datasets/{_quoted(name)}/runs/{_quoted(f'{run}-run')}")
    assert {i["datasetItemId"]: i["traceId"] for i in whole["datasetRunItems"]} == traces
    assert all(i["observationId"] for i in whole["datasetRunItems"])

    # The traces and the evaluators' scores the SDK sent, in the trace store.
    pid = project.project_id
    found = await eventually(
        lambda: rows(ch, f"SELECT id, environment FROM traces FINAL WHERE project_id = '{pid}'"),
        lambda r: {t["id"] for t in r} >= set(traces.values()),
        timeout_s=60,
    )
    assert {t["environment"] for t in found if t["id"] in traces.values()} == {"sdk-experiment"}
    scores = await eventually(
        lambda: rows(ch, f"SELECT trace_id, name, value FROM scores FINAL WHERE project_id = '{pid}'"),
        lambda r: len(r) >= 3,
        timeout_s=60,
    )
    rome = next(item_id for item_id, _, output, _ in experiment["items"] if output == "Rome")
    assert {(s["trace_id"], s["name"], s["value"]) for s in scores} == {
        (trace_id, "exact", 1.0 if item_id == rome else 0.0) for item_id, trace_id in traces.items()
    }


async def test_the_3x_python_sdk_links_runs_by_run_items_and_reads_and_deletes_them(
    langfuse_v3_python: Path, http: aiohttp.ClientSession, project: NewKey
) -> None:
    run = uuid.uuid4().hex[:12]
    got = await sdk_runner(langfuse_v3_python, "langfuse_v3_datasets.py", project)(run)
    name = f"{run}-support/tickets"
    items = [f"{run}-t{n}" for n in range(3)]
    assert got["items"] == items
    assert got["run"] == {
        "name": f"{run}-manual",
        "description": "by hand",
        "metadata": {"v": 1},
        "dataset_name": name,
        "links": sorted([item, trace] for item, trace in got["manual"].items()),
    }
    assert got["runs"] == [f"{run}-experiment", f"{run}-manual"]
    assert (got["deleted"], got["runs_after"]) == ("Dataset run successfully deleted", [f"{run}-experiment"])
    assert [i[2] for i in got["experiment"]["items"]] == ["refund", "none", "none"]

    # The experiment's run items, as the SDK posted them, paged through our API.
    dataset = await _get(http, project, f"/v2/datasets/{_quoted(name)}")
    assert got["experiment"]["dataset_run_id"] == run_id(project.project_id, dataset["id"], f"{run}-experiment")
    linked: dict[str, str] = {}
    for page in (1, 2):
        answer = await _get(
            http,
            project,
            "/dataset-run-items",
            datasetId=dataset["id"],
            runName=f"{run}-experiment",
            limit="2",
            page=str(page),
        )
        assert answer["meta"]["totalItems"] == 3
        linked |= {i["datasetItemId"]: i["traceId"] for i in answer["data"]}
        assert all(i["observationId"] for i in answer["data"])
    assert linked == {item: trace for item, trace, _ in got["experiment"]["items"]}


async def test_the_current_js_client_gets_datasets_links_items_and_runs_experiments(
    langfuse_js_v5: Path, http: aiohttp.ClientSession, project: NewKey
) -> None:
    run = uuid.uuid4().hex[:12]
    node = Path(shutil.which("node") or "node")
    got = await sdk_runner(node, "langfuse_js5_datasets.cjs", project, str(langfuse_js_v5))(run)
    name = f"{run}/translations"
    assert got["created"] == [name, "en to fr", {"team": "i18n"}]
    assert got["items"] == [
        [f"{run}-bird", "bird", "oiseau", 2],
        [f"{run}-cat", "cat", "chat", 0],
        [f"{run}-dog", "dog", "chien", 1],
    ]
    # item.link(): the run item names the observation's trace and id, as the SDK sent them.
    for run_trace, span_trace, run_observation, span_id in got["linked"].values():
        assert (run_trace, run_observation) == (span_trace, span_id)
    assert got["run"] == [
        f"{run}-manual",
        "by hand",
        {"v": 1},
        sorted([item, link[0]] for item, link in got["linked"].items()),
    ]
    assert got["runs"] == [f"{run}-experiment", f"{run}-manual"]
    experiment = got["experiment"]
    assert [(i[2], i[3]) for i in experiment["items"]] == [("pigeon", [0]), ("chat", [1]), ("chien", [1])]
    # Its run items, posted by the SDK, once each although its spans state them too.
    whole = await _get(http, project, f"/datasets/{_quoted(name)}/runs/{run}-experiment")
    assert whole["id"] == experiment["runId"]
    assert sorted([i["datasetItemId"], i["traceId"]] for i in whole["datasetRunItems"]) == sorted(
        [item_id, trace_id] for item_id, trace_id, _, _ in experiment["items"]
    )


async def test_the_2x_python_sdk_links_traces_and_generations_to_a_run(
    langfuse_v2_python: Path, http: aiohttp.ClientSession, project: NewKey
) -> None:
    run = uuid.uuid4().hex[:12]
    got = await sdk_runner(langfuse_v2_python, "langfuse_v2_datasets.py", project)(run)
    assert got["created"] == [f"{run}-v2/summaries", "short texts", {"lang": "en"}]
    assert got["items"] == [
        [f"{run}-s0", {"text": "text 0"}, "t0", "ACTIVE"],
        [f"{run}-s1", {"text": "text 1"}, "t1", "ACTIVE"],
    ]
    # A trace linked as a trace, a generation as its observation in its trace.
    assert got["run"] == {
        "name": f"{run}-run",
        "description": "v2 run",
        "metadata": {"model": "m"},
        "links": got["links"],
    }
    assert got["runs"] == [f"{run}-run"]
    # The linked traces, sent through the batch API, are there to read.
    for trace_id, _ in got["links"].values():
        await eventually(lambda t=trace_id: _status(http, project, f"/traces/{t}"), lambda s: s == 200, timeout_s=30)


async def _status(http: aiohttp.ClientSession, key: NewKey, path: str) -> int:
    async with http.get(f"{API}/api/public{path}", headers=basic_auth(key)) as r:
        return r.status
