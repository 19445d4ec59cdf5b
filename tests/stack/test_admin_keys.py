"""The admin API: POST /api/admin/projects/{name}/keys, protected by AGENTTRACE_ADMIN_TOKEN.

The shared API gets its token from `make up` (ops/stack/app.sh writes .stack/admin-token);
the route's absence without a token is checked on an API started by the test.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey
from tests.edge_process import edge_process
from tests.support import API, basic_auth, sample, scrape

pytestmark = pytest.mark.stack

TOKEN_FILE = Path(__file__).resolve().parents[2] / ".stack" / "admin-token"


@pytest.fixture(scope="module")
def admin_token() -> str:
    # As ops/stack/app.sh: a token already in the environment wins over the stack's file.
    token = os.environ.get("AGENTTRACE_ADMIN_TOKEN") or (TOKEN_FILE.read_text().strip() if TOKEN_FILE.exists() else "")
    assert token, f"no admin token: `make up` writes {TOKEN_FILE} and starts the api with it"
    return token


def keys_url(base: str, project: str) -> str:
    return f"{base}/api/admin/projects/{quote(project, safe='')}/keys"


async def test_admin_creates_a_working_key(http: aiohttp.ClientSession, admin_token: str, pg: Postgres) -> None:
    name = f"admin {uuid.uuid4().hex[:10]}"  # a space, as project names allow
    before = sample(await scrape(http, API), "api_keys_created_total")
    async with http.post(keys_url(API, name), headers={"Authorization": f"Bearer {admin_token}"}) as r:
        assert r.status == 201, await r.text()
        assert r.headers["Cache-Control"] == "no-store"
        doc = await r.json()
    assert set(doc) == {"project_id", "public_key", "secret_key", "expires_at"}
    assert doc["expires_at"] is None
    assert doc["public_key"].startswith("pk-at-") and doc["secret_key"].startswith("sk-at-")
    assert await pg.fetch("SELECT name FROM projects WHERE id = %s", (doc["project_id"],)) == [(name,)]
    assert sample(await scrape(http, API), "api_keys_created_total") == before + 1

    key = NewKey(doc["project_id"], doc["public_key"], doc["secret_key"])
    batch = {
        "batch": [
            {
                "id": str(uuid.uuid4()),
                "type": "trace-create",
                "timestamp": "2026-11-27T10:00:00Z",
                "body": {"id": f"trace-{uuid.uuid4()}"},
            }
        ]
    }
    async with http.post(f"{API}/api/public/ingestion", json=batch, headers=basic_auth(key)) as r:
        assert r.status == 207

    # A second key for the same name joins the existing project.
    async with http.post(keys_url(API, name), headers={"Authorization": f"Bearer {admin_token}"}) as r:
        assert r.status == 201
        again = await r.json()
    assert again["project_id"] == doc["project_id"]
    assert again["public_key"] != doc["public_key"]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Bearer ", "Basic YWRtaW46YWRtaW4=", "Bearer {token}x", "Basic {token}"],
    ids=["missing", "wrong", "empty", "basic", "token-suffix", "token-as-basic"],
)
async def test_admin_refuses_without_the_token(
    http: aiohttp.ClientSession, admin_token: str, pg: Postgres, authorization: str | None
) -> None:
    name = f"admin-denied-{uuid.uuid4().hex[:10]}"
    headers = {} if authorization is None else {"Authorization": authorization.format(token=admin_token)}
    async with http.post(keys_url(API, name), headers=headers) as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await r.json())["error"] == "unauthorized"
    assert await pg.fetch("SELECT id FROM projects WHERE name = %s", (name,)) == []


@pytest.mark.parametrize("name", ["-leading-dash", "x" * 101, "semi;colon"])
async def test_admin_rejects_bad_project_names(http: aiohttp.ClientSession, admin_token: str, name: str) -> None:
    async with http.post(keys_url(API, name), headers={"Authorization": f"Bearer {admin_token}"}) as r:
        assert r.status == 400
        assert "project name" in (await r.json())["message"]


async def test_admin_route_is_absent_without_a_configured_token(http: aiohttp.ClientSession, pg: Postgres) -> None:
    name = f"admin-off-{uuid.uuid4().hex[:10]}"
    async with edge_process({"AGENTTRACE_ADMIN_TOKEN": ""}) as edge:
        for headers in ({}, {"Authorization": "Bearer anything"}):
            async with http.post(keys_url(edge.url, name), headers=headers) as r:
                assert r.status == 404
    assert await pg.fetch("SELECT id FROM projects WHERE name = %s", (name,)) == []
