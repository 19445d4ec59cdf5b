"""The read API's lists against the real stack: filters, pages, the v2 and v3 cursors, another
project's key, and JSON 400/404/405 answers. The data goes in through the batch API."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import orjson
import pytest

from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey, create_key
from tests.stack.test_read_api import TIMEOUT_S, event, ingest
from tests.support import API, basic_auth, eventually, otlp_error

pytestmark = pytest.mark.stack


async def get(http: aiohttp.ClientSession, key: NewKey | None, path: str, **params: Any) -> tuple[int, Any]:
    headers = basic_auth(key) if key is not None else {}
    async with http.get(f"{API}{path}", params=params, headers=headers) as r:
        assert r.content_type == "application/json"
        return r.status, await r.json()


async def seed(http: aiohttp.ClientSession, key: NewKey) -> dict[str, str]:
    """Three traces over two days and two users, with observations and scores; returns the ids."""
    ids = {name: str(uuid.uuid4()) for name in ("t1", "t2", "t3", "span", "gen", "gen2", "event")}
    ts = ("2026-10-01T08:00:00Z", "2026-10-01T09:00:00Z", "2026-10-02T10:00:00Z")
    events = [
        event("trace-create", ts[0], {"id": ids["t1"], "name": "a", "userId": "u1", "sessionId": "s1", "tags": ["x"]}),
        event(
            "trace-create", ts[1], {"id": ids["t2"], "name": "b", "userId": "u1", "sessionId": "s1", "tags": ["x", "y"]}
        ),
        event(
            "trace-create",
            ts[2],
            {"id": ids["t3"], "name": "a", "userId": "u2", "environment": "prod", "release": "r9"},
        ),
        event("span-create", ts[0], {"id": ids["span"], "traceId": ids["t1"], "name": "plan", "startTime": ts[0]}),
        event(
            "generation-create",
            ts[0],
            {
                "id": ids["gen"],
                "traceId": ids["t1"],
                "parentObservationId": ids["span"],
                "name": "llm",
                "model": "m1",
                "startTime": "2026-10-01T08:00:01Z",
                "endTime": "2026-10-01T08:00:03Z",
                "usage": {"input": 10, "output": 5},
                "costDetails": {"total": 0.5},
            },
        ),
        event(
            "generation-create",
            ts[2],
            {
                "id": ids["gen2"],
                "traceId": ids["t3"],
                "name": "llm",
                "model": "m2",
                "startTime": ts[2],
                "usage": {"input": 1, "output": 2},
            },
        ),
        event("event-create", ts[1], {"id": ids["event"], "traceId": ids["t2"], "name": "log", "startTime": ts[1]}),
        event("score-create", ts[0], {"id": f"{ids['t1']}-q", "traceId": ids["t1"], "name": "q", "value": 0.5}),
        event(
            "score-create",
            ts[1],
            {"id": f"{ids['t2']}-ok", "traceId": ids["t2"], "name": "ok", "value": 1, "dataType": "BOOLEAN"},
        ),
        event(
            "score-create",
            ts[2],
            {"id": f"{ids['t3']}-txt", "traceId": ids["t3"], "name": "note", "value": "hi", "dataType": "TEXT"},
        ),
    ]
    await ingest(http, key, *events)
    await eventually(
        lambda: get(http, key, "/api/public/v3/scores"),
        lambda r: r[0] == 200 and len(r[1]["data"]) == 3,
        timeout_s=TIMEOUT_S,
    )
    await eventually(
        lambda: get(http, key, "/api/public/observations"),
        lambda r: r[0] == 200 and r[1]["meta"]["totalItems"] == 4,
        timeout_s=TIMEOUT_S,
    )
    return ids


async def trace_ids(http: aiohttp.ClientSession, key: NewKey, **params: Any) -> list[str]:
    status, doc = await get(http, key, "/api/public/traces", **params)
    assert status == 200, doc
    return [t["id"] for t in doc["data"]]


async def test_trace_list_filters_pages_and_fields(http: aiohttp.ClientSession, project: NewKey) -> None:
    ids = await seed(http, project)
    t1, t2, t3 = ids["t1"], ids["t2"], ids["t3"]
    status, doc = await get(http, project, "/api/public/traces")
    assert status == 200 and [t["id"] for t in doc["data"]] == [t3, t2, t1]  # timestamp.desc
    assert doc["meta"] == {"page": 1, "limit": 50, "totalItems": 3, "totalPages": 1}
    first = {t["id"]: t for t in doc["data"]}[t1]
    assert sorted(first["observations"]) == sorted([ids["span"], ids["gen"]])
    assert first["scores"] == [f"{t1}-q"] and first["latency"] == 3.0 and first["totalCost"] == 0.5
    assert await trace_ids(http, project, userId="u1") == [t2, t1]
    assert await trace_ids(http, project, name="a") == [t3, t1]
    assert await trace_ids(http, project, sessionId="s1", orderBy="timestamp.asc") == [t1, t2]
    assert await trace_ids(http, project, tags="x,y") == [t2]
    async with http.get(f"{API}/api/public/traces?tags=x&tags=y", headers=basic_auth(project)) as r:
        assert [t["id"] for t in (await r.json())["data"]] == [t2]
    assert await trace_ids(http, project, environment="prod,staging") == [t3]
    assert await trace_ids(http, project, release="r9") == [t3]
    between = {"fromTimestamp": "2026-10-01T09:00:00Z", "toTimestamp": "2026-10-02T10:00:00Z"}
    assert await trace_ids(http, project, **between) == [t2]  # from inclusive, to exclusive
    status, doc = await get(http, project, "/api/public/traces", limit="2", page="2")
    assert [t["id"] for t in doc["data"]] == [t1]
    assert doc["meta"] == {"page": 2, "limit": 2, "totalItems": 3, "totalPages": 2}
    status, doc = await get(http, project, "/api/public/traces", fields="core")
    assert all(t["observations"] == [] and t["scores"] == [] and t["latency"] == -1 for t in doc["data"])
    status, doc = await get(http, project, f"/api/public/traces/{t3}")
    assert [s["name"] for s in doc["scores"]] == []  # a TEXT score would break the v1 models


async def test_observation_lists_and_cursor(http: aiohttp.ClientSession, project: NewKey) -> None:
    ids = await seed(http, project)
    status, doc = await get(http, project, "/api/public/observations", type="GENERATION")
    assert status == 200 and [o["id"] for o in doc["data"]] == [ids["gen2"], ids["gen"]]  # startTime desc
    assert doc["data"][1]["usage"] == {"input": 10, "output": 5, "total": 15, "unit": "TOKENS"}
    for params, expected in (
        ({"traceId": ids["t1"]}, {ids["span"], ids["gen"]}),
        ({"parentObservationId": ids["span"]}, {ids["gen"]}),
        ({"userId": "u2"}, {ids["gen2"]}),
        ({"name": "log"}, {ids["event"]}),
        ({"fromStartTime": "2026-10-01T08:00:01Z", "toStartTime": "2026-10-02T00:00:00Z"}, {ids["gen"], ids["event"]}),
    ):
        status, doc = await get(http, project, "/api/public/observations", **params)
        assert {o["id"] for o in doc["data"]} == expected, params
    status, one = await get(http, project, f"/api/public/observations/{ids['gen']}")
    assert status == 200 and one["model"] == "m1" and one["calculatedTotalCost"] == 0.5
    seen, cursor = [], None
    while True:
        params = {"limit": "1", "fields": "core,basic,usage"} | ({"cursor": cursor} if cursor else {})
        status, doc = await get(http, project, "/api/public/v2/observations", **params)
        assert status == 200 and len(doc["data"]) == 1
        seen.append(doc["data"][0]["id"])
        cursor = doc["meta"].get("cursor")
        if cursor is None:
            break
    assert seen == [ids["gen2"], ids["event"], ids["gen"], ids["span"]]
    assert (await get(http, project, "/api/public/v2/observations", cursor="%%%"))[0] == 400


def filter_of(*conditions: tuple[str, str, str, Any]) -> str:
    return orjson.dumps([{"type": t, "column": c, "operator": o, "value": v} for t, c, o, v in conditions]).decode()


async def test_structured_filters_session_and_root_parameters(http: aiohttp.ClientSession, project: NewKey) -> None:
    """Langfuse's `filter` JSON (as its SDKs' get_many(filter=...) send it), and the v2 lists'
    sessionId and isRootObservation: each must narrow the answer, never be ignored."""
    ids = await seed(http, project)
    t1, t2, t3 = ids["t1"], ids["t2"], ids["t3"]

    async def observations(path: str = "/api/public/v2/observations", **params: Any) -> set[str]:
        status, doc = await get(http, project, path, **params)
        assert status == 200, doc
        return {o["id"] for o in doc["data"]}

    assert await observations(filter=filter_of(("string", "name", "=", "llm"))) == {ids["gen"], ids["gen2"]}
    assert await observations(filter=filter_of(("stringOptions", "type", "none of", ["GENERATION"]))) == {
        ids["span"],
        ids["event"],
    }
    both = filter_of(("string", "name", "starts with", "ll"), ("number", "totalTokens", ">", 10))
    assert await observations("/api/public/observations", filter=both) == {ids["gen"]}
    late = filter_of(("datetime", "startTime", ">=", "2026-10-01T08:30:00Z"))
    assert await observations(filter=late) == {ids["gen2"], ids["event"]}
    of_traces = filter_of(("string", "userId", "=", "u1"), ("arrayOptions", "traceTags", "all of", ["x", "y"]))
    assert await observations(filter=of_traces) == {ids["event"]}
    assert await observations(filter=filter_of(("boolean", "isRootObservation", "=", False))) == {ids["gen"]}
    assert await observations(isRootObservation="true") == {ids["span"], ids["gen2"], ids["event"]}
    assert await observations(sessionId="s1") == {ids["span"], ids["gen"], ids["event"]}
    assert await observations("/api/public/observations", sessionId="nope") == set()

    contains = filter_of(("string", "name", "contains", "a"), ("stringOptions", "environment", "any of", ["prod"]))
    assert await trace_ids(http, project, filter=contains) == [t3]
    assert await trace_ids(http, project, filter=filter_of(("arrayOptions", "tags", "any of", ["y"]))) == [t2]
    early = filter_of(("datetime", "timestamp", "<", "2026-10-01T09:00:00Z"))
    assert await trace_ids(http, project, filter=early) == [t1]

    # What cannot be answered is refused, naming it.
    for path, bad, named in (
        ("/api/public/v2/observations", filter_of(("number", "latency", "contains", 1)), "latency"),
        ("/api/public/traces", filter_of(("stringObject", "metadata", "=", "core")), "key"),
        ("/api/public/observations", filter_of(("string", "name", "matches", "x")), "matches"),
        ("/api/public/traces", filter_of(("string", "name", "=", 3)), "name"),
        ("/api/public/traces", "not json", "filter"),
        ("/api/public/v2/scores", filter_of(("string", "name", "=", "q")), "filter"),
    ):
        status, doc = await get(http, project, path, filter=bad)
        assert status == 400 and named in doc["message"], (path, doc)
    assert (await get(http, project, "/api/public/v2/observations", isRootObservation="maybe"))[0] == 400


async def test_metadata_and_latency_filters(http: aiohttp.ClientSession, project: NewKey) -> None:
    """Langfuse's stringObject filter on a metadata key (its value's text) and the number filter
    on an observation's latency in seconds, on 18.16's SQL (chDB runs the current dialect's)."""
    t1, t2 = str(uuid.uuid4()), str(uuid.uuid4())
    at = "2026-10-04T10:00:00Z"
    await ingest(
        http,
        project,
        event("trace-create", at, {"id": t1, "name": "a", "metadata": {"team": "core", "n": 1}}),
        event("trace-create", at, {"id": t2, "name": "b", "metadata": {"team": "core-ops"}}),
        event(
            "span-create",
            at,
            {
                "id": f"{t1}-s",
                "traceId": t1,
                "startTime": at,
                "endTime": "2026-10-04T10:00:02.5Z",
                "metadata": {"n": 1},
            },
        ),
        event(
            "span-create", at, {"id": f"{t2}-s", "traceId": t2, "startTime": at, "endTime": "2026-10-04T10:00:00.5Z"}
        ),
        event("event-create", at, {"id": f"{t2}-e", "traceId": t2, "startTime": at, "metadata": {"team": "core"}}),
    )

    def on(column: str, key: str, op: str, value: str) -> str:
        return orjson.dumps(
            [{"type": "stringObject", "column": column, "key": key, "operator": op, "value": value}]
        ).decode()

    await eventually(lambda: trace_ids(http, project), lambda r: len(r) == 2, timeout_s=TIMEOUT_S)
    assert await trace_ids(http, project, filter=on("metadata", "team", "=", "core")) == [t1]
    assert sorted(await trace_ids(http, project, filter=on("metadata", "team", "starts with", "core"))) == sorted(
        [t1, t2]
    )
    assert await trace_ids(http, project, filter=on("metadata", "n", "=", "1")) == [t1]  # a number as its JSON
    await eventually(
        lambda: get(http, project, "/api/public/v2/observations"), lambda r: len(r[1]["data"]) == 3, timeout_s=TIMEOUT_S
    )
    for path in ("/api/public/v2/observations", "/api/public/observations"):
        _, doc = await get(http, project, path, filter=on("metadata", "team", "=", "core"))
        assert {o["id"] for o in doc["data"]} == {f"{t2}-e"}
        _, doc = await get(http, project, path, filter=filter_of(("number", "latency", ">", 1)))
        assert {o["id"] for o in doc["data"]} == {f"{t1}-s"}  # 2.5 s; the event has no end
        _, doc = await get(http, project, path, filter=filter_of(("number", "latency", "<", 1)))
        assert {o["id"] for o in doc["data"]} == {f"{t2}-s"}
    # A trace's latency: its observations' first start to last end (t2's event has none).
    assert await trace_ids(http, project, filter=filter_of(("number", "latency", ">", 1))) == [t1]
    assert await trace_ids(http, project, filter=filter_of(("number", "latency", "<", 1))) == [t2]


async def test_trace_filters_on_what_its_observations_sum_up_to(http: aiohttp.ClientSession, project: NewKey) -> None:
    """Langfuse's aggregated trace filters (cost, tokens, level and the counts per level),
    on 18.16's SQL; a trace without observations counts as 0 cost, as Langfuse answers it."""
    costly, failed, empty = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    at = "2026-10-05T10:00:00Z"
    usage = {"input": 800, "input_cached_tokens": 100, "output": 100}
    gen = {"traceId": costly, "startTime": at, "model": "own-model", "usageDetails": usage}
    await ingest(
        http,
        project,
        *(event("trace-create", at, {"id": t, "name": "agg"}) for t in (costly, failed, empty)),
        event("generation-create", at, {**gen, "id": f"{costly}-g", "costDetails": {"input": 0.2, "output": 0.05}}),
        event("span-create", at, {"id": f"{failed}-s", "traceId": failed, "startTime": at, "level": "ERROR"}),
        event("span-create", at, {"id": f"{failed}-w", "traceId": failed, "startTime": at, "level": "WARNING"}),
    )
    await eventually(
        lambda: get(http, project, "/api/public/v2/observations"), lambda r: len(r[1]["data"]) == 3, timeout_s=TIMEOUT_S
    )

    async def traces(*conditions: tuple[str, str, str, Any]) -> list[str]:
        found = await trace_ids(http, project, filter=filter_of(("string", "name", "=", "agg"), *conditions))
        return sorted(found)

    assert await traces(("number", "totalCost", ">", 0.2)) == [costly]
    assert await traces(("number", "totalCost", "<", 0.1)) == sorted([failed, empty])
    assert await traces(("number", "totalTokens", "=", 1000)) == [costly]
    # Every type naming input, cached input too, as Langfuse sums them.
    assert await traces(("number", "inputTokens", "=", 900), ("number", "outputTokens", "<", 101)) == [costly]
    assert await traces(("number", "inputCost", ">", 0.1), ("number", "outputCost", "=", 0.05)) == [costly]
    assert await traces(("string", "level", "=", "ERROR")) == [failed]
    assert await traces(("stringOptions", "level", "any of", ["DEFAULT", "DEBUG"])) == [costly]
    assert await traces(("number", "warningCount", ">", 0), ("number", "errorCount", "=", 1)) == [failed]
    assert await traces(("number", "errorCount", "=", 0)) == sorted([costly, empty])


async def test_trace_filters_on_their_scores(http: aiohttp.ClientSession, project: NewKey) -> None:
    """Langfuse's scores_avg (numberObject), score_categories (categoryOptions) and
    score_booleans (booleanObject) on the scores of one name, on 18.16's SQL."""
    good, bad, none = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    at = "2026-10-06T10:00:00Z"

    def score(trace: str, name: str, value: Any, data_type: str) -> dict[str, Any]:
        body = {"id": str(uuid.uuid4()), "traceId": trace, "name": name, "value": value, "dataType": data_type}
        return event("score-create", at, body)

    await ingest(
        http,
        project,
        *(event("trace-create", at, {"id": t, "name": "scored"}) for t in (good, bad, none)),
        score(good, "quality", 0.9, "NUMERIC"),
        score(bad, "quality", 0.1, "NUMERIC"),
        score(good, "tone", "polite", "CATEGORICAL"),
        score(bad, "tone", "rude", "CATEGORICAL"),
        score(good, "correct", 1, "BOOLEAN"),
    )
    await eventually(
        lambda: get(http, project, "/api/public/v2/scores"), lambda r: len(r[1]["data"]) == 5, timeout_s=TIMEOUT_S
    )

    async def traces(kind: str, column: str, key: str, op: str, value: Any) -> list[str]:
        conditions = [
            {"type": "string", "column": "name", "operator": "=", "value": "scored"},
            {"type": kind, "column": column, "key": key, "operator": op, "value": value},
        ]
        return sorted(await trace_ids(http, project, filter=orjson.dumps(conditions).decode()))

    assert await traces("numberObject", "scores_avg", "quality", ">=", 0.5) == [good]
    assert await traces("numberObject", "scores", "quality", "<", 0.5) == [bad]
    assert await traces("categoryOptions", "score_categories", "tone", "any of", ["rude"]) == [bad]
    assert await traces("categoryOptions", "score_categories", "tone", "none of", ["rude"]) == sorted([good, none])
    assert await traces("booleanObject", "score_booleans", "correct", "=", True) == [good]
    assert await traces("booleanObject", "score_booleans", "correct", "<>", True) == sorted([bad, none])
    status, doc = await get(
        http, project, "/api/public/traces",
        filter=orjson.dumps([{"type": "numberObject", "column": "scores_avg", "operator": ">", "value": 1}]).decode(),
    )  # fmt: skip
    assert status == 400 and "key" in doc["message"]


async def test_v2_observations_say_whether_their_trace_is_public(http: aiohttp.ClientSession, project: NewKey) -> None:
    shared, private = str(uuid.uuid4()), str(uuid.uuid4())
    at = "2026-10-03T10:00:00Z"
    await ingest(
        http,
        project,
        event("trace-create", at, {"id": shared, "name": "shared", "public": True}),
        event("trace-create", at, {"id": private, "name": "private"}),
        event("span-create", at, {"id": f"{shared}-s", "traceId": shared, "startTime": at}),
        event("span-create", at, {"id": f"{private}-s", "traceId": private, "startTime": at}),
    )
    _, doc = await eventually(
        lambda: get(http, project, "/api/public/v2/observations"),
        lambda r: r[0] == 200 and len(r[1]["data"]) == 2,
        timeout_s=TIMEOUT_S,
    )
    assert {o["id"]: o["public"] for o in doc["data"]} == {f"{shared}-s": True, f"{private}-s": False}


async def test_score_lists_filter_by_value_id_and_run(http: aiohttp.ClientSession, project: NewKey) -> None:
    ids = await seed(http, project)
    q, ok = f"{ids['t1']}-q", f"{ids['t2']}-ok"

    async def scores(path: str, **params: Any) -> list[str]:
        status, doc = await get(http, project, path, **params)
        assert status == 200, doc
        return sorted(s["id"] for s in doc["data"])

    assert await scores("/api/public/v2/scores", operator=">", value="0.7") == [ok]
    assert await scores("/api/public/scores", operator="<=", value="0.5") == [q]
    assert await scores("/api/public/v2/scores", traceTags="y") == [ok]
    assert await scores("/api/public/v2/scores", queueId="q1") == []
    assert await scores("/api/public/v3/scores", id=f"{q},{ok}") == sorted([q, ok])
    assert await scores("/api/public/v3/scores", dataType="NUMERIC", valueMin="0.4", valueMax="0.6") == [q]
    assert await scores("/api/public/v3/scores", dataType="NUMERIC", valueMin="0.6") == []
    assert await scores("/api/public/v3/scores", dataType="BOOLEAN", value="true") == [ok]
    assert await scores("/api/public/v3/scores", dataType="BOOLEAN", value="false") == []
    assert await scores("/api/public/v3/scores", experimentId="run-1") == []
    for params, named in (
        ({"operator": ">"}, "operator"),
        ({"operator": "~", "value": "1"}, "operator"),
    ):
        status, doc = await get(http, project, "/api/public/v2/scores", **params)
        assert status == 400 and named in doc["message"], doc
    for params, named in (
        ({"value": "1"}, "value"),  # needs one dataType
        ({"dataType": "BOOLEAN", "value": "yes"}, "value"),
        ({"dataType": "BOOLEAN", "valueMin": "0"}, "valueMin"),
        ({"experimentId": "run-1", "traceId": ids["t1"]}, "experimentId"),
    ):
        status, doc = await get(http, project, "/api/public/v3/scores", **params)
        assert status == 400 and named in doc["message"], doc


async def test_sessions_scores_and_daily_metrics(http: aiohttp.ClientSession, project: NewKey) -> None:
    ids = await seed(http, project)
    status, doc = await get(http, project, "/api/public/sessions")
    assert status == 200 and [s["id"] for s in doc["data"]] == ["s1"] and doc["meta"]["totalItems"] == 1
    assert doc["data"][0]["createdAt"] == "2026-10-01T08:00:00.000000Z"
    status, doc = await get(http, project, "/api/public/sessions/s1")
    assert status == 200 and [t["id"] for t in doc["traces"]] == [ids["t1"], ids["t2"]]
    status, doc = await get(http, project, "/api/public/scores")
    assert {s["name"] for s in doc["data"]} == {"q", "ok"}  # v1 leaves the TEXT score out
    assert all(s["trace"]["userId"] == "u1" for s in doc["data"])
    status, doc = await get(http, project, "/api/public/scores", dataType="BOOLEAN")
    assert [(s["value"], s["stringValue"]) for s in doc["data"]] == [(1.0, "True")]
    status, doc = await get(http, project, "/api/public/v2/scores", traceId=ids["t3"])
    assert [(s["dataType"], s["stringValue"]) for s in doc["data"]] == [("TEXT", "hi")]
    status, doc = await get(http, project, "/api/public/scores", userId="u1", name="q")
    assert [s["id"] for s in doc["data"]] == [f"{ids['t1']}-q"]
    assert (await get(http, project, f"/api/public/scores/{ids['t1']}-q"))[1]["value"] == 0.5
    status, doc = await get(http, project, "/api/public/v3/scores", limit="2")
    assert len(doc["data"]) == 2 and doc["meta"]["limit"] == 2
    status, rest = await get(http, project, "/api/public/v3/scores", limit="2", cursor=doc["meta"]["cursor"])
    assert [s["value"] for s in rest["data"]] == [0.5] and "cursor" not in rest["meta"]
    status, doc = await get(http, project, "/api/public/metrics/daily")
    assert status == 200 and [d["date"] for d in doc["data"]] == ["2026-10-02", "2026-10-01"]
    day1 = doc["data"][1]
    assert (day1["countTraces"], day1["countObservations"], day1["totalCost"]) == (2, 3, 0.5)
    usage = {u["model"]: u for u in day1["usage"]}
    assert (usage["m1"]["inputUsage"], usage["m1"]["outputUsage"], usage["m1"]["totalUsage"]) == (10, 5, 15)
    status, doc = await get(http, project, "/api/public/metrics/daily", traceName="a", userId="u2")
    assert [d["date"] for d in doc["data"]] == ["2026-10-02"]


async def test_another_project_sees_nothing(http: aiohttp.ClientSession, project: NewKey, pg: Postgres) -> None:
    ids = await seed(http, project)
    other = await create_key(pg, f"test-{uuid.uuid4().hex[:12]}")
    for path in (
        "/api/public/traces",
        "/api/public/observations",
        "/api/public/sessions",
        "/api/public/scores",
        "/api/public/v2/scores",
        "/api/public/metrics/daily",
    ):
        status, doc = await get(http, other, path)
        assert status == 200 and doc["data"] == [] and doc["meta"]["totalItems"] == 0, path
    assert (await get(http, other, "/api/public/v2/observations"))[1] == {"data": [], "meta": {}}
    for path in (
        f"/api/public/traces/{ids['t1']}",
        f"/api/public/observations/{ids['gen']}",
        "/api/public/sessions/s1",
        f"/api/public/scores/{ids['t1']}-q",
        f"/api/public/v2/scores/{ids['t1']}-q",
    ):
        status, doc = await get(http, other, path)
        assert status == 404 and doc["error"] == "not_found", path


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/api/public/traces", {"limit": "101"}, "limit"),
        ("/api/public/traces", {"page": "zero"}, "page"),
        ("/api/public/traces", {"fromTimestamp": "yesterday"}, "fromTimestamp"),
        ("/api/public/traces", {"toTimestamp": "2026-10-01T00:00:00"}, "toTimestamp"),  # no timezone
        ("/api/public/traces", {"orderBy": "cost.desc"}, "orderBy"),
        ("/api/public/observations", {"type": "BANANA"}, "type"),
        ("/api/public/scores", {"source": "robot"}, "source"),
        ("/api/public/v3/scores", {"fields": "everything"}, "fields"),
    ],
)
async def test_malformed_parameters_are_400(
    http: aiohttp.ClientSession, project: NewKey, path: str, params: dict[str, str], named: str
) -> None:
    status, doc = await get(http, project, path, **params)
    assert status == 400 and named in doc["message"]


async def test_unknown_paths_and_methods_answer_json(http: aiohttp.ClientSession, project: NewKey) -> None:
    status, doc = await get(http, project, "/api/public/no-such-thing")
    assert status == 404 and doc["error"] == "not_found" and "message" in doc
    # OpenTelemetry exporters of other signals, pointed at the traces' base URL: an OTLP Status
    # in the request's encoding (protobuf when it names none), which exporters log.
    for path, content_type in (("/v1/metrics", None), ("/api/public/otel/v1/metrics", "application/json")):
        headers = {**basic_auth(project), **({"Content-Type": content_type} if content_type else {})}
        async with http.post(f"{API}{path}", data=b"\x00", headers=headers) as r:
            assert r.status == 404 and r.content_type == (content_type or "application/x-protobuf"), path
            code, message = await otlp_error(r)
            assert code == 12 and "traces and logs only" in message, path
    async with http.put(f"{API}/api/public/traces", headers=basic_auth(project)) as r:
        assert r.status == 405 and r.headers["Allow"] == "DELETE, GET"
        assert (await r.json())["error"] == "method_not_allowed"
    async with http.get(f"{API}/api/public/traces") as r:
        assert r.status == 401
