"""POST /api/public/scores: the score API the current Langfuse SDKs call, in both of its
shapes (a list, answered 202 or 207; a single object, answered 200 or 400)."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.postgres.keys import NewKey
from tests.support import API, basic_auth, eventually, rows

pytestmark = pytest.mark.stack

SCORES = f"{API}/api/public/scores"


async def test_a_list_of_scores_is_accepted(http: aiohttp.ClientSession, ch: ClickHouse, project: NewKey) -> None:
    trace_id = f"trace-{uuid.uuid4()}"
    scores = [
        {"id": "s-num", "traceId": trace_id, "name": "accuracy", "value": 0.75, "dataType": "NUMERIC"},
        {
            "id": "s-text",
            "traceId": trace_id,
            "observationId": "obs-1",
            "name": "note",
            "value": "fine",
            "dataType": "TEXT",
            "comment": "by hand",
            "timestamp": "2026-11-27T10:00:00.123456Z",
        },
        {"id": "s-bool", "sessionId": "sess-1", "name": "resolved", "value": 1, "dataType": "BOOLEAN"},
    ]
    async with http.post(SCORES, json=scores, headers=basic_auth(project)) as r:
        assert r.status == 202
        assert await r.json() == {"message": "Accepted"}
    found = await eventually(
        lambda: rows(
            ch,
            f"SELECT id, trace_id, observation_id, session_id, name, value, string_value, data_type, "
            f"comment FROM scores FINAL WHERE project_id = '{project.project_id}' ORDER BY id",
        ),
        lambda r: len(r) == 3,
        timeout_s=60,
    )
    assert found == [
        {
            "id": "s-bool",
            "trace_id": "",
            "observation_id": "",
            "session_id": "sess-1",
            "name": "resolved",
            "value": 1.0,
            "string_value": "True",
            "data_type": "BOOLEAN",
            "comment": "",
        },
        {
            "id": "s-num",
            "trace_id": trace_id,
            "observation_id": "",
            "session_id": "",
            "name": "accuracy",
            "value": 0.75,
            "string_value": "",
            "data_type": "NUMERIC",
            "comment": "",
        },
        {
            "id": "s-text",
            "trace_id": trace_id,
            "observation_id": "obs-1",
            "session_id": "",
            "name": "note",
            "value": 0.0,
            "string_value": "fine",
            "data_type": "TEXT",
            "comment": "by hand",
        },
    ]


async def test_invalid_scores_in_a_list_are_counted_and_the_rest_kept(
    http: aiohttp.ClientSession, ch: ClickHouse, project: NewKey
) -> None:
    scores = [
        {"id": "ok", "traceId": "t-1", "name": "q", "value": 1},
        {"id": "no-subject", "name": "q", "value": 1},
        {"id": "bad-type", "traceId": "t-1", "name": "q", "value": 1, "dataType": "PERCENT"},
        "not an object",
    ]
    async with http.post(SCORES, json=scores, headers=basic_auth(project)) as r:
        assert r.status == 207
        doc = await r.json()
    assert (doc["accepted"], doc["rejected"]) == (1, 3)
    assert [e["message"].split(":")[0] for e in doc["errors"]] == ["score 1", "score 2", "score 3"]
    await eventually(
        lambda: rows(ch, f"SELECT id FROM scores FINAL WHERE project_id = '{project.project_id}'"),
        lambda r: [s["id"] for s in r] == ["ok"],
        timeout_s=60,
    )


async def test_a_single_score_gets_its_id(http: aiohttp.ClientSession, project: NewKey) -> None:
    async with http.post(SCORES, json={"traceId": "t-1", "name": "q", "value": 0.5}, headers=basic_auth(project)) as r:
        assert r.status == 200
        assert uuid.UUID((await r.json())["id"])
    async with http.post(
        SCORES, json={"id": "mine", "traceId": "t-1", "name": "q", "value": 0.5}, headers=basic_auth(project)
    ) as r:
        assert (r.status, await r.json()) == (200, {"id": "mine"})


@pytest.mark.parametrize(
    "body", [b"{not json", b'"a string"', b"42", b'{"traceId": "t-1", "name": "q"}', b'{"name": "q", "value": 1}']
)
async def test_an_unusable_body_or_single_score_gets_400(
    http: aiohttp.ClientSession, project: NewKey, body: bytes
) -> None:
    headers = {**basic_auth(project), "Content-Type": "application/json"}
    async with http.post(SCORES, data=body, headers=headers) as r:
        assert r.status == 400
        assert (await r.json())["message"]


async def test_scores_need_a_key(http: aiohttp.ClientSession) -> None:
    async with http.post(SCORES, json=[]) as r:
        assert r.status == 401
