"""Keys are listed without secrets, revoked by CLI or HTTP, and expire; a revoked or expired key
is refused (401) by every api process within 2 s, whatever its caches held.

Two api processes take part: the one under test (AGENTTRACE_TEST_API) and one started here,
both with warm in-process and Redis caches when the key is revoked.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import orjson
import pytest

from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey, create_key
from tests.edge_process import EdgeProcess, edge_process
from tests.stack.test_admin_keys import admin_token, keys_url  # noqa: F401 - the fixture is reused
from tests.support import AGENTTRACE, API, basic_auth

pytestmark = pytest.mark.stack

REVOCATION_BOUND_S = 2.0


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(AGENTTRACE), *args], capture_output=True, text=True, timeout=60, env=os.environ.copy())


def batch() -> dict[str, object]:
    trace = {"id": f"trace-{uuid.uuid4()}"}
    return {
        "batch": [{"id": str(uuid.uuid4()), "type": "trace-create", "timestamp": "2026-11-27T10:00:00Z", "body": trace}]
    }


def bearer(key: NewKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.secret_key}"}


async def status(http: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> int:
    async with http.post(f"{base}/api/public/ingestion", json=batch(), headers=headers) as r:
        return r.status


@pytest.fixture(scope="module")
async def second_api() -> AsyncIterator[EdgeProcess]:
    async with edge_process({}) as edge:
        yield edge


async def warm(http: aiohttp.ClientSession, bases: list[str], key: NewKey) -> None:
    """Both credential forms pass on every api, so every cache holds the key."""
    for base in bases:
        for headers in (basic_auth(key), bearer(key)):
            for _ in range(2):
                assert await status(http, base, headers) == 207


async def seconds_until_refused(http: aiohttp.ClientSession, bases: list[str], key: NewKey, since: float) -> float:
    """Poll every api with both credential forms until all answer 401; the time since `since`."""
    pending = {(base, form) for base in bases for form in ("basic", "bearer")}
    while pending:
        for base, form in sorted(pending):
            if await status(http, base, basic_auth(key) if form == "basic" else bearer(key)) == 401:
                pending.discard((base, form))
        elapsed = time.monotonic() - since
        assert elapsed < 10, f"still accepted after {elapsed:.1f}s: {sorted(pending)}"
        await asyncio.sleep(0.05)
    return time.monotonic() - since


async def test_cli_creates_lists_without_secrets_and_revokes(
    http: aiohttp.ClientSession, second_api: EdgeProcess
) -> None:
    name = f"cli-keys-{uuid.uuid4().hex[:10]}"
    created = cli("keys", "create", "--project", name, "--json", "--expires-in-days", "30")
    assert created.returncode == 0, created.stderr
    doc = orjson.loads(created.stdout)
    assert doc["expires_at"] is not None
    key = NewKey(doc["project_id"], doc["public_key"], doc["secret_key"])
    other = orjson.loads(cli("keys", "create", "--project", name, "--json").stdout)

    for args in (("--json",), ()):
        listed = cli("keys", "list", "--project", name, *args)
        assert listed.returncode == 0, listed.stderr
        for secret in (key.secret_key, other["secret_key"]):
            assert secret not in listed.stdout and secret not in listed.stderr
        assert key.public_key in listed.stdout and other["public_key"] in listed.stdout
    rows = orjson.loads(cli("keys", "list", "--project", name, "--json").stdout)
    assert [r["public_key"] for r in rows] == [other["public_key"], key.public_key]  # newest first
    assert all("secret_key" not in r and r["revoked_at"] is None for r in rows)
    assert rows[1]["display_secret"] == f"sk-at-...{key.secret_key[-4:]}"

    bases = [API, second_api.url]
    await warm(http, bases, key)
    start = time.monotonic()
    revoked = cli("keys", "revoke", "--public-key", key.public_key)
    assert revoked.returncode == 0, revoked.stderr
    assert key.secret_key not in revoked.stdout + revoked.stderr
    took = await seconds_until_refused(http, bases, key, time.monotonic())
    print(
        f"revoked by CLI: refused by {len(bases)} apis {took:.3f}s after the CLI returned "
        f"({time.monotonic() - start:.2f}s after it started)"
    )
    assert took < REVOCATION_BOUND_S

    # The other key of the project still works; the listing shows the revocation.
    assert (
        await status(http, API, basic_auth(NewKey(other["project_id"], other["public_key"], other["secret_key"])))
        == 207
    )
    rows = orjson.loads(cli("keys", "list", "--project", name, "--json").stdout)
    assert {r["public_key"]: r["revoked_at"] is not None for r in rows} == {
        key.public_key: True,
        other["public_key"]: False,
    }
    assert cli("keys", "revoke", "--public-key", f"pk-at-{uuid.uuid4()}").returncode == 1
    assert cli("keys", "list", "--project", f"no-such-{uuid.uuid4().hex[:8]}").returncode == 1
    assert cli("keys", "create", "--project", name, "--expires-in-days", "0").returncode == 2


async def test_http_lists_and_revokes(http: aiohttp.ClientSession, admin_token: str, second_api: EdgeProcess) -> None:  # noqa: F811
    auth = {"Authorization": f"Bearer {admin_token}"}
    name = f"http keys {uuid.uuid4().hex[:10]}"
    async with http.post(keys_url(API, name), json={"expiresInDays": 7}, headers=auth) as r:
        assert r.status == 201, await r.text()
        doc = await r.json()
    assert doc["expires_at"] is not None
    key = NewKey(doc["project_id"], doc["public_key"], doc["secret_key"])

    async with http.get(keys_url(API, name), headers=auth) as r:
        assert r.status == 200
        assert r.headers["Cache-Control"] == "no-store"
        text = await r.text()
    assert key.secret_key not in text
    assert [k["public_key"] for k in orjson.loads(text)["data"]] == [key.public_key]

    bases = [API, second_api.url]
    await warm(http, bases, key)
    revoke_url = f"{keys_url(API, name)}/{quote(key.public_key)}"
    async with http.delete(revoke_url, headers={}) as r:
        assert r.status == 401  # the admin token is required here too
    async with http.delete(revoke_url, headers=auth) as r:
        assert r.status == 204
    took = await seconds_until_refused(http, bases, key, time.monotonic())
    print(f"revoked by HTTP: refused by {len(bases)} apis {took:.3f}s after the DELETE answered")
    assert took < REVOCATION_BOUND_S

    async with http.delete(revoke_url, headers=auth) as r:
        assert r.status == 204  # revoking again is harmless and keeps the first time
    async with http.delete(f"{keys_url(API, name)}/pk-at-{uuid.uuid4()}", headers=auth) as r:
        assert r.status == 404
    async with http.get(keys_url(API, f"missing-{uuid.uuid4().hex[:8]}"), headers=auth) as r:
        assert r.status == 404
    for body in ({"expiresInDays": 0}, {"expiresInDays": "7"}, {"expiresInDays": 1.5}, {"other": 1}, [1]):
        async with http.post(keys_url(API, name), json=body, headers=auth) as r:
            assert r.status == 400, body


async def test_an_expired_key_is_refused_even_when_cached(http: aiohttp.ClientSession, pg: Postgres) -> None:
    key = await create_key(pg, f"expiry-{uuid.uuid4().hex[:10]}", expires_in_days=1)
    # Bring the expiry close, before any api has seen the key, then warm every cache.
    await pg.execute(
        "UPDATE api_keys SET expires_at = now() + interval '3 seconds' WHERE public_key = %s", (key.public_key,)
    )
    assert await status(http, API, basic_auth(key)) == 207
    assert await status(http, API, bearer(key)) == 207
    await asyncio.sleep(3.2)
    assert await status(http, API, basic_auth(key)) == 401
    assert await status(http, API, bearer(key)) == 401

    past = await create_key(pg, f"expired-{uuid.uuid4().hex[:10]}", expires_in_days=1)
    await pg.execute(
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE public_key = %s", (past.public_key,)
    )
    assert await status(http, API, basic_auth(past)) == 401
