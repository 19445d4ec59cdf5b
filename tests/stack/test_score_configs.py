"""/api/public/score-configs against the running api and Postgres, and scores that name a config:
checked against it in the batch API and the scores API alike, stored with its name and data type
when they hold to it, refused (the rest of the request kept) when they do not."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey, create_key
from tests.support import API, basic_auth, eventually, rows

pytestmark = pytest.mark.stack

URL = f"{API}/api/public/score-configs"


async def call(http: aiohttp.ClientSession, key: NewKey, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with http.request(method, url, headers=basic_auth(key), **kwargs) as r:
        return r.status, await r.json()


async def create(http: aiohttp.ClientSession, key: NewKey, **doc: Any) -> dict[str, Any]:
    status, body = await call(http, key, "POST", URL, json=doc)
    assert status == 200, body
    return body  # type: ignore[no-any-return]


async def test_configs_are_created_read_listed_and_updated(
    http: aiohttp.ClientSession, project: NewKey, pg: Postgres
) -> None:
    numeric = await create(http, project, name="accuracy", dataType="NUMERIC", minValue=0, maxValue=10)
    assert {k: numeric[k] for k in ("name", "dataType", "minValue", "maxValue", "isArchived", "projectId")} == {
        "name": "accuracy",
        "dataType": "NUMERIC",
        "minValue": 0.0,
        "maxValue": 10.0,
        "isArchived": False,
        "projectId": project.project_id,
    }
    boolean = await create(http, project, name="helpful", dataType="BOOLEAN", description="yes or no")
    assert boolean["categories"] == [{"label": "True", "value": 1.0}, {"label": "False", "value": 0.0}]
    tone = [{"label": "rude", "value": 0}, {"label": "polite", "value": 1}]
    categorical = await create(http, project, name="tone", dataType="CATEGORICAL", categories=tone)
    assert categorical["categories"] == [{"label": "rude", "value": 0.0}, {"label": "polite", "value": 1.0}]

    status, got = await call(http, project, "GET", f"{URL}/{numeric['id']}")
    assert status == 200 and got == numeric
    status, page = await call(http, project, "GET", URL, params={"limit": "2"})
    assert status == 200 and [c["name"] for c in page["data"]] == ["tone", "helpful"]  # newest first
    assert page["meta"] == {"page": 1, "limit": 2, "totalItems": 3, "totalPages": 2}
    status, page = await call(http, project, "GET", URL, params={"limit": "2", "page": "2"})
    assert [c["name"] for c in page["data"]] == ["accuracy"]

    status, updated = await call(
        http, project, "PATCH", f"{URL}/{numeric['id']}", json={"maxValue": 5, "description": "0 to 5"}
    )
    assert status == 200, updated
    assert (updated["minValue"], updated["maxValue"], updated["description"]) == (0.0, 5.0, "0 to 5")
    status, body = await call(http, project, "PATCH", f"{URL}/{numeric['id']}", json={"minValue": 7})
    assert status == 400 and "greater" in body["message"]  # the whole config is checked, not the field
    status, body = await call(http, project, "PATCH", f"{URL}/{boolean['id']}", json={"categories": tone})
    assert status == 400
    status, archived = await call(http, project, "PATCH", f"{URL}/{categorical['id']}", json={"isArchived": True})
    assert status == 200 and archived["isArchived"] is True and archived["categories"] == categorical["categories"]

    other = await create_key(pg, f"test-{uuid.uuid4().hex[:12]}")
    for key, ident in ((other, numeric["id"]), (project, str(uuid.uuid4())), (project, "not-a-uuid")):
        status, body = await call(http, key, "GET", f"{URL}/{ident}")
        assert status == 404, body
        status, body = await call(http, key, "PATCH", f"{URL}/{ident}", json={"isArchived": True})
        assert status == 404, body
    assert (await call(http, other, "GET", URL))[1]["data"] == []


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"dataType": "NUMERIC"},
        {"name": "", "dataType": "NUMERIC"},
        {"name": "x" * 36, "dataType": "NUMERIC"},
        {"name": "n", "dataType": "DATE"},
        {"name": "n", "dataType": "NUMERIC", "minValue": 3, "maxValue": 1},
        {"name": "n", "dataType": "NUMERIC", "minValue": "0"},
        {"name": "n", "dataType": "NUMERIC", "categories": [{"label": "a", "value": 1}]},
        {"name": "n", "dataType": "CATEGORICAL"},
        {"name": "n", "dataType": "CATEGORICAL", "categories": []},
        {
            "name": "n",
            "dataType": "CATEGORICAL",
            "categories": [{"label": "a", "value": 1}, {"label": "a", "value": 2}],
        },
        {
            "name": "n",
            "dataType": "CATEGORICAL",
            "categories": [{"label": "a", "value": 1}, {"label": "b", "value": 1}],
        },
        {"name": "n", "dataType": "CATEGORICAL", "categories": [{"label": "a"}]},
        {"name": "n", "dataType": "CATEGORICAL", "categories": [{"label": "a", "value": 1}], "maxValue": 3},
        {"name": "n", "dataType": "BOOLEAN", "categories": [{"label": "a", "value": 1}]},
        {"name": "n", "dataType": "NUMERIC", "description": 5},
        {"name": "a/b", "dataType": "NUMERIC"},
        {"name": "n", "dataType": "CATEGORICAL", "categories": [{"label": f"c{i}", "value": i} for i in range(101)]},
        {"name": "n", "dataType": "CATEGORICAL", "categories": [{"label": "c" * 201, "value": 1}]},
        {"name": "n", "dataType": "TEXT", "categories": [{"label": "a", "value": 1}]},
        {"name": "n", "dataType": "TEXT", "maxValue": 1},
    ],
)
async def test_bad_configs_are_refused(http: aiohttp.ClientSession, project: NewKey, doc: Any) -> None:
    status, body = await call(http, project, "POST", URL, json=doc)
    assert status == 400, body
    assert body["message"]
    assert (await call(http, project, "GET", URL))[1]["meta"]["totalItems"] == 0


async def test_scores_that_name_a_config_hold_to_it(
    http: aiohttp.ClientSession, project: NewKey, ch: ClickHouse
) -> None:
    numeric = await create(http, project, name="accuracy", dataType="NUMERIC", minValue=0, maxValue=10)
    boolean = await create(http, project, name="helpful", dataType="BOOLEAN")
    tone = [{"label": "rude", "value": 0}, {"label": "polite", "value": 1}]
    categorical = await create(http, project, name="tone", dataType="CATEGORICAL", categories=tone)
    retired = await create(http, project, name="old", dataType="NUMERIC")
    text = await create(http, project, name="critique (v2)", dataType="TEXT")
    await call(http, project, "PATCH", f"{URL}/{retired['id']}", json={"isArchived": True})
    trace = str(uuid.uuid4())

    def score(name: str, value: Any, config: str, **more: Any) -> dict[str, Any]:
        body = {"id": str(uuid.uuid4()), "traceId": trace, "name": name, "value": value, "configId": config, **more}
        return {"id": str(uuid.uuid4()), "type": "score-create", "timestamp": "2026-12-06T10:00:00Z", "body": body}

    kept = [
        score("whatever", 7.5, numeric["id"]),  # takes the config's name
        score("helpful", 1, boolean["id"]),
        score("tone", "polite", categorical["id"], dataType="CATEGORICAL"),
        score("plain", 99, "", comment="no config named: not checked"),
        score("critique", "too long", text["id"]),
        score("blank", 5, ""),  # an empty configId names no config, as in Langfuse
    ]
    kept[3]["body"].pop("configId")
    bad = [
        (score("accuracy", 11, numeric["id"]), 400),
        (score("accuracy", "high", numeric["id"]), 400),
        (score("helpful", 2, boolean["id"]), 400),
        (score("tone", "nice", categorical["id"]), 400),
        (score("tone", "rude", categorical["id"], dataType="NUMERIC"), 400),
        (score("old", 1, retired["id"]), 400),
        (score("gone", 1, str(uuid.uuid4())), 404),
        (score("gone", 1, "not-a-uuid"), 404),
        (score("critique", 3, text["id"]), 400),
    ]
    expected = {e["id"]: status for e, status in bad}
    batch = [
        {"id": str(uuid.uuid4()), "type": "trace-create", "timestamp": "2026-12-06T10:00:00Z", "body": {"id": trace}}
    ]
    refused = [e for e, _ in bad]
    batch += [e for pair in zip(kept, refused, strict=False) for e in pair] + refused[len(kept) :]
    async with http.post(f"{API}/api/public/ingestion", json={"batch": batch}, headers=basic_auth(project)) as r:
        assert r.status == 207
        answer = await r.json()
    assert {e["id"]: e["status"] for e in answer["errors"]} == expected, answer["errors"]
    assert all(e["message"] for e in answer["errors"])
    assert {s["id"] for s in answer["successes"]} == {batch[0]["id"], *(e["id"] for e in kept)}

    found = await eventually(
        lambda: rows(
            ch,
            f"SELECT id, name, data_type, value, string_value, config_id FROM scores FINAL "
            f"WHERE project_id = '{project.project_id}' ORDER BY name",
        ),
        lambda r: len(r) == 6,
        timeout_s=30,
    )
    assert [(s["name"], s["data_type"], s["value"], s["string_value"], s["config_id"]) for s in found] == [
        ("accuracy", "NUMERIC", 7.5, "", numeric["id"]),
        ("blank", "NUMERIC", 5.0, "", ""),
        ("critique (v2)", "TEXT", 0.0, "too long", text["id"]),
        ("helpful", "BOOLEAN", 1.0, "True", boolean["id"]),
        ("plain", "NUMERIC", 99.0, "", ""),
        ("tone", "CATEGORICAL", 1.0, "polite", categorical["id"]),
    ]

    # The scores API: one score answers 404 or 400 itself; a list keeps the valid ones (207).
    scores_url = f"{API}/api/public/scores"
    one = {"traceId": trace, "name": "accuracy", "value": 3, "configId": str(uuid.uuid4())}
    assert (await call(http, project, "POST", scores_url, json=one))[0] == 404
    status, body = await call(http, project, "POST", scores_url, json=dict(one, configId=numeric["id"], value=-1))
    assert status == 400 and "within" in body["message"]
    status, body = await call(http, project, "POST", scores_url, json=dict(one, configId=numeric["id"]))
    assert status == 200 and body["id"]
    listed = [dict(one, configId=numeric["id"], value=v) for v in (1, 20, 2)]
    status, body = await call(http, project, "POST", scores_url, json=listed)
    assert status == 207 and (body["accepted"], body["rejected"]) == (2, 1), body
