"""GET /api/public/projects: the project an API key belongs to, answered as Langfuse does.

Langfuse SDKs call it from `auth_check()`, which their quickstarts run at start-up (the 5.x
SDK raises when it fails), and to build trace URLs. A key belongs to exactly one project;
there are no organizations here, so the project stands in for its own.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from ingest.auth import AuthUnavailable
from ingest.intake import Intake
from sinks.postgres.client import Postgres, PostgresError
from sinks.postgres.keys import project_name

PATH = "/api/public/projects"


async def get_projects(request: web.Request) -> web.Response:
    intake: Intake = request.app["intake"]
    pg: Postgres = request.app["postgres"]
    caller = await intake.caller(request)
    try:
        name = await project_name(pg, caller.project_id)
    except PostgresError as exc:
        raise AuthUnavailable(str(exc)) from exc  # the key store: 503, retry later
    name = name or caller.project_id
    project = {
        "id": caller.project_id,
        "name": name,
        "organization": {"id": caller.project_id, "name": name},
        "metadata": {},
    }
    return web.Response(body=orjson.dumps({"data": [project]}), content_type="application/json")
