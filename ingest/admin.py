"""The admin API for a project's API keys, protected by AGENTTRACE_ADMIN_TOKEN.

- `POST /api/admin/projects/{name}/keys` creates a key (the project too if it does not exist),
  optionally expiring: a JSON body `{"expiresInDays": N}`. The answer (201 with project_id,
  public_key, secret_key, expires_at) is the only place the secret is ever shown.
- `GET /api/admin/projects/{name}/keys` lists the project's keys without secrets (404 if no
  such project).
- `DELETE /api/admin/projects/{name}/keys/{public_key}` revokes one (204; 404 if the project
  has no such key) and invalidates the auth caches of every api process (ingest/auth.py).

The same code paths as `agenttrace keys create|list|revoke` (sinks.postgres.keys). The routes
want `Authorization: Bearer <AGENTTRACE_ADMIN_TOKEN>`, compared in constant time; 401 without it
or with a wrong one. Without a configured token they answer 404, as if they did not exist.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable

import orjson
import redis.asyncio as aioredis
from aiohttp import web
from loguru import logger

from health.http import error
from ingest.auth import invalidate
from ingest.encoding import ClientError
from ingest.metrics import API_KEYS_CREATED, API_KEYS_REVOKED
from sinks.postgres.client import Postgres, PostgresError
from sinks.postgres.keys import (
    KeyInfo,
    NewKey,
    create_key,
    list_keys,
    revoke_key,
    validate_expiry_days,
    validate_project_name,
)
from sinks.postgres.retention import set_retention, validate_retention_days

PATH = "/api/admin/projects/{name}/keys"
KEY_PATH = "/api/admin/projects/{name}/keys/{public_key}"
PROJECT_PATH = "/api/admin/projects/{name}"


class Admin:
    def __init__(self, pg: Postgres, token: str | None, redis: aioredis.Redis | None = None) -> None:
        self._pg = pg
        self.pg = pg
        self._redis = redis
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

    async def create_key(self, project_name: str, expires_in_days: int | None = None) -> NewKey:
        key = await create_key(self._pg, project_name, expires_in_days)
        API_KEYS_CREATED.inc()
        return key

    async def list_keys(self, project_name: str) -> list[KeyInfo] | None:
        return await list_keys(self._pg, project_name)

    async def revoke_key(self, project_name: str, public_key: str) -> bool:
        if not await revoke_key(self._pg, public_key, project_name):
            return False
        API_KEYS_REVOKED.inc()
        await invalidate(self._redis, public_key)
        return True


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


Handler = Callable[[web.Request, Admin, str], Awaitable[web.Response]]


def _guarded(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Token check, project-name validation and the key store's unavailability, for every route."""

    async def route(request: web.Request) -> web.Response:
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
            return await handler(request, admin, name)
        except PostgresError as exc:
            logger.warning("key store unavailable", request_id=request["request_id"], error=str(exc))
            return error(503, "unavailable", "the key store is unavailable; retry later", {"Retry-After": "5"})

    return route


def _json(status: int, doc: object) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(doc), content_type="application/json", headers={"Cache-Control": "no-store"}
    )


async def _expiry(request: web.Request) -> int | None:
    if not request.can_read_body:
        return None
    try:
        doc = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise ClientError('body: a JSON object, e.g. {"expiresInDays": 90}') from None
    if doc is None:
        return None
    if not isinstance(doc, dict) or set(doc) - {"expiresInDays"}:
        raise ClientError("body: a JSON object with at most expiresInDays")
    try:
        return validate_expiry_days(doc.get("expiresInDays"))
    except ValueError as exc:
        raise ClientError(f"expiresInDays: {exc}") from None


async def _create(request: web.Request, admin: Admin, name: str) -> web.Response:
    days = await _expiry(request)
    key = await admin.create_key(name, days)
    request["project_id"] = key.project_id
    request["log_msg"] = "api key created"
    request["log"] = {"public_key": key.public_key, "expires_in_days": days}
    return _json(201, key.to_json())


async def _list(request: web.Request, admin: Admin, name: str) -> web.Response:
    keys = await admin.list_keys(name)
    if keys is None:
        return error(404, "not_found", f"no project named {name!r}")
    return _json(200, {"data": [k.to_json() for k in keys]})


async def _revoke(request: web.Request, admin: Admin, name: str) -> web.Response:
    public_key = request.match_info["public_key"]
    if not await admin.revoke_key(name, public_key):
        return error(404, "not_found", f"project {name!r} has no key {public_key!r}")
    request["log_msg"] = "api key revoked"
    request["log"] = {"public_key": public_key}
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


async def _update(request: web.Request, admin: Admin, name: str) -> web.Response:
    """PUT /api/admin/projects/{name} with {"retentionDays": N or null}: the project's retention."""
    try:
        doc = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise ClientError('body: a JSON object, e.g. {"retentionDays": 30}') from None
    if not isinstance(doc, dict) or set(doc) != {"retentionDays"}:
        raise ClientError("body: a JSON object with retentionDays")
    try:
        days = validate_retention_days(doc["retentionDays"])
    except ValueError as exc:
        raise ClientError(str(exc)) from None
    project_id = await set_retention(admin.pg, name, days)
    if project_id is None:
        return error(404, "not_found", f"no project named {name!r}")
    request["project_id"] = project_id
    request["log_msg"] = "project retention set"
    request["log"] = {"retention_days": days}
    return _json(200, {"name": name, "projectId": project_id, "retentionDays": days})


create_project_key = _guarded(_create)
update_project = _guarded(_update)
list_project_keys = _guarded(_list)
revoke_project_key = _guarded(_revoke)
