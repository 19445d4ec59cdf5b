"""GET /api/public/projects: what Langfuse SDKs' auth_check() reads."""

from __future__ import annotations

import aiohttp
import pytest

from sinks.postgres.keys import NewKey
from tests.support import API, basic_auth

pytestmark = pytest.mark.stack

PROJECTS = f"{API}/api/public/projects"


async def test_a_key_sees_its_own_project(http: aiohttp.ClientSession, project: NewKey) -> None:
    for headers in (basic_auth(project), {"Authorization": f"Bearer {project.secret_key}"}):
        async with http.get(PROJECTS, headers=headers) as r:
            assert r.status == 200
            [found] = (await r.json())["data"]
        assert found["id"] == project.project_id
        assert found["name"].startswith("test-")
        assert found["organization"]["id"] and found["metadata"] == {}


async def test_projects_need_a_key(http: aiohttp.ClientSession) -> None:
    async with http.get(PROJECTS, headers={"Authorization": "Basic bm90OmtleQ=="}) as r:
        assert r.status == 401
