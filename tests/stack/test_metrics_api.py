"""Langfuse's metrics API against the real stack (ClickHouse 18.16's legacy dialect): what the
batch API took, grouped, bucketed and aggregated; another project's key sees none of it, a
deleted trace drops out, and a bad query is a 400 naming what is wrong."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey, create_key
from tests.stack.test_read_api import TIMEOUT_S
from tests.stack.test_read_lists import get, seed
from tests.support import API, basic_auth, eventually
from tests.unit.test_metrics_query import _QUERIES, agg, dims

pytestmark = pytest.mark.stack

WINDOW = {"fromTimestamp": "2026-10-01T00:00:00Z", "toTimestamp": "2026-10-03T00:00:00Z"}
COUNT = [{"measure": "count", "aggregation": "count"}]


async def metrics(http: aiohttp.ClientSession, key: NewKey, path: str = "/api/public/metrics", **q: Any) -> Any:
    status, doc = await get(http, key, path, query=orjson.dumps({**WINDOW, "metrics": COUNT, **q}).decode())
    assert status == 200, doc
    return doc["data"]


async def test_metrics_over_the_stack(http: aiohttp.ClientSession, project: NewKey, pg: Postgres) -> None:
    ids = await seed(http, project)
    assert await metrics(http, project, view="traces", dimensions=dims("name")) == [
        {"name": "a", "count_count": "2"},
        {"name": "b", "count_count": "1"},
    ]
    assert await metrics(http, project, view="traces", timeDimension={"granularity": "day"}) == [
        {"time_dimension": "2026-10-01", "count_count": "2"},
        {"time_dimension": "2026-10-02", "count_count": "1"},
    ]
    generations = await metrics(
        http,
        project,
        view="observations",
        dimensions=dims("providedModelName", "traceName"),
        metrics=agg("sum_totalTokens", "max_latency", "p50_inputTokens"),
        filters=[{"column": "type", "operator": "=", "value": "GENERATION", "type": "string"}],
        orderBy=[{"field": "providedModelName", "direction": "asc"}],
    )
    fields = ("providedModelName", "traceName", "sum_totalTokens", "max_latency", "p50_inputTokens")
    assert [tuple(r[f] for f in fields) for r in generations] == [
        ("m1", "a", "15", "2000", 10.0),
        ("m2", "a", "3", None, 1.0),  # no end time: no latency
    ]
    by_trace = await metrics(
        http,
        project,
        view="observations",
        dimensions=dims("traceName"),
        filters=[{"column": "userId", "operator": "any of", "value": ["u1"], "type": "stringOptions"}],
    )
    assert by_trace == [{"traceName": "a", "count_count": "2"}, {"traceName": "b", "count_count": "1"}]
    traces = await metrics(
        http,
        project,
        view="traces",
        metrics=agg("sum_totalCost", "sum_scoresCount"),
        filters=[{"column": "tags", "operator": "all of", "value": ["x"], "type": "arrayOptions"}],
    )
    # t1 and t2, both with observations and scores (Langfuse joins its relations inner).
    assert traces == [{"sum_totalCost": 0.5, "sum_scoresCount": "2"}]
    scores = await metrics(
        http,
        project,
        view="scores-numeric",
        dimensions=dims("name", "userId"),
        metrics=agg("avg_value"),
        orderBy=[{"field": "name", "direction": "asc"}],
    )
    assert scores == [{"name": "ok", "userId": "u1", "avg_value": 1.0}, {"name": "q", "userId": "u1", "avg_value": 0.5}]
    v2 = await metrics(http, project, "/api/public/v2/metrics", view="observations", dimensions=dims("name"))
    assert {r["name"]: r["count_count"] for r in v2} == {"plan": "1", "llm": "2", "log": "1"}

    other = await create_key(pg, f"test-metrics-other-{uuid.uuid4().hex[:8]}")
    assert await metrics(http, other, view="traces") == [{"count_count": "0"}]
    assert await metrics(http, other, view="observations", dimensions=dims("name")) == []

    async with http.delete(f"{API}/api/public/traces/{ids['t2']}", headers=basic_auth(project)) as r:
        assert r.status == 200, await r.text()

    async def after_deletion() -> tuple[Any, Any]:
        traces = await metrics(http, project, view="traces", dimensions=dims("name"))
        return traces, await metrics(http, project, view="scores-numeric", dimensions=dims("name"))

    # The deletion reaches the trace's row and its scores' in separate inserts.
    await eventually(
        after_deletion,
        lambda got: got == ([{"name": "a", "count_count": "2"}], [{"name": "q", "count_count": "1"}]),
        timeout_s=TIMEOUT_S,
    )


@pytest.mark.parametrize(
    ("path", "query", "named"),
    [
        ("/api/public/metrics", None, "query parameter is required"),
        ("/api/public/metrics", "{not json", "Invalid JSON"),
        ("/api/public/metrics", {"view": "sessions"}, "view 'sessions'"),
        ("/api/public/metrics", {"view": "traces", "toTimestamp": "yesterday"}, "toTimestamp"),
        ("/api/public/metrics", {"view": "traces", "dimensions": dims("model")}, "Invalid dimension 'model'"),
        ("/api/public/metrics", {"view": "observations", "dimensions": dims("toolNames")}, "not supported"),
        ("/api/public/v2/metrics", {"view": "traces"}, "view 'traces'"),
        ("/api/public/v2/metrics", {"view": "observations", "dimensions": dims("traceId")}, "traceId"),
    ],
)
async def test_bad_queries_are_400s_naming_the_field(
    http: aiohttp.ClientSession, project: NewKey, path: str, query: Any, named: str
) -> None:
    params = {}
    if query is not None:
        params["query"] = (
            query if isinstance(query, str) else orjson.dumps({**WINDOW, "metrics": COUNT, **query}).decode()
        )
    status, doc = await get(http, project, path, **params)
    assert status == 400 and doc["error"] == "bad_request" and named in doc["message"], doc
    async with http.get(f"{API}{path}", params=params) as r:
        assert r.status == 401  # the key comes first


def test_whatever_a_client_sends_is_a_400_or_an_answer_on_18_16(project: NewKey) -> None:
    """The unit test's random query objects through the api, on the legacy dialect: the SQL it
    builds runs there too (a 503 would be the store refusing it), or the query is a 400."""

    async def seeded() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            await seed(http, project)

    asyncio.run(seeded())
    auth = basic_auth(project)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(query=_QUERIES, v2=st.booleans())
    def each(query: Any, v2: bool) -> None:
        path = "/api/public/v2/metrics" if v2 else "/api/public/metrics"
        r = requests.get(f"{API}{path}", params={"query": json.dumps(query)}, headers=auth, timeout=15)
        assert r.status_code in (200, 400), (r.status_code, r.text, query)
        assert isinstance(
            r.json()["data" if r.status_code == 200 else "message"], list if r.status_code == 200 else str
        )

    each()
