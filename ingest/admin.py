"""POST /api/admin/projects/{name}/keys: create a project's API key over HTTP.

The same code path as `agenttrace keys create` (sinks.postgres.keys.create_key): the project is
created if it does not exist, and the answer (201 with project_id, public_key, secret_key) is
the only place the secret is ever shown. The route is protected by
`Authorization: Bearer <AGENTTRACE_ADMIN_TOKEN>`, compared in constant time; 401 without it or
with a wrong one. Without a configured token the route answers 404, as if it did not exist.
"""

from __future__ import annotations

import hashlib
import hmac

import orjson
from aiohttp import web
from loguru import logger

from health.http import error
from ingest.encoding import ClientError
from ingest.metrics import API_KEYS_CREATED
from sinks.postgres.client import Postgres, PostgresError
from sinks.postgres.keys import NewKey, create_key, validate_project_name

PATH = "/api/admin/projects/{name}/keys"


class Admin:
    def __init__(self, pg: Postgres, token: str | None) -> None:
        self._pg = pg
        self._token = _digest(token) if token else None

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def authorized(self, header: str | None) -> bool:
        if self._token is None:
            return False
        scheme, _, value = (header or "").strip().partition(" ")
        given = value.strip() if scheme.lower() == "bearer" else ""
        # Digests have one length, so the comparison leaks neither the token nor its length.
        return bool(given) and hmac.compare_digest(_digest(given), self._token)

    async def create_key(self, project_name: str) -> NewKey:
        key = await create_key(self._pg, project_name)
        API_KEYS_CREATED.inc()
        return key


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create_project_key(request: web.Request) -> web.Response:
    admin: Admin | None = request.app.get("admin")
    if admin is None or not admin.enabled:
        raise web.HTTPNotFound()
    if not admin.authorized(request.headers.get("Authorization")):
        return error(
            401,
            "unauthorized",
            "a valid admin token is required: Authorization: Bearer <AGENTTRACE_ADMIN_TOKEN>",
            {"WWW-Authenticate": 'Bearer realm="agenttrace-admin"'},
        )
    try:
        name = validate_project_name(request.match_info["name"])
    except ValueError as exc:
        raise ClientError(str(exc)) from None
    try:
        key = await admin.create_key(name)
    except PostgresError as exc:
        logger.warning("key store unavailable", request_id=request["request_id"], error=str(exc))
        return error(503, "unavailable", "the key store is unavailable; retry later", {"Retry-After": "5"})
    request["project_id"] = key.project_id
    request["log_msg"] = "api key created"
    request["log"] = {"public_key": key.public_key}
    doc = {"project_id": key.project_id, "public_key": key.public_key, "secret_key": key.secret_key}
    return web.Response(
        status=201, body=orjson.dumps(doc), content_type="application/json", headers={"Cache-Control": "no-store"}
    )
