"""/api/public/media against the running api: declared, uploaded through the signed URL it
hands out, served back, refused when the upload is not what was declared, and deleted with the
traces that named it."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

import aiohttp
import pytest
from yarl import URL

from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey, create_key
from tests.support import API, basic_auth

pytestmark = pytest.mark.stack


def declaration(content: bytes, trace_id: str, **over: Any) -> dict[str, Any]:
    return {
        "traceId": trace_id,
        "observationId": None,
        "contentType": "image/png",
        "contentLength": len(content),
        "sha256Hash": base64.b64encode(hashlib.sha256(content).digest()).decode(),
        "field": "input",
        **over,
    }


async def declare(http: aiohttp.ClientSession, key: NewKey, doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{API}/api/public/media", json=doc, headers=basic_auth(key)) as r:
        return r.status, await r.json()


async def test_media_upload_download_and_refusals(http: aiohttp.ClientSession, project: NewKey, pg: Postgres) -> None:
    content = b"\x89PNG\r\n\x1a\n" + uuid.uuid4().bytes * 100
    trace_id = str(uuid.uuid4())
    status, doc = await declare(http, project, declaration(content, trace_id))
    assert status == 200, doc
    media_id, url = doc["mediaId"], doc["uploadUrl"]
    sha = base64.b64encode(hashlib.sha256(content).digest()).decode()
    assert media_id == sha.replace("+", "-").replace("/", "_")[:22]  # what the SDKs compute

    # Not uploaded yet: no media to read.
    async with http.get(f"{API}/api/public/media/{media_id}", headers=basic_auth(project)) as r:
        assert r.status == 404
    # The signed URL refuses what was not declared, and a forged or stripped signature.
    signed = URL(url)
    for body, target, want in (
        (content[:-1], signed, 400),  # short
        (content[:-1] + b"x", signed, 400),  # same length, another hash
        (content, signed.update_query(signature="forged"), 403),
        (content, signed.update_query(expires=str(int(signed.query["expires"]) + 1)), 403),
        (content, signed.with_query(None), 403),
        # What a client may put there, refused like any other wrong signature (once 500s).
        (content, signed.update_query(signature="sïgnature"), 403),
        (content, signed.update_query(expires="²"), 403),
    ):
        async with http.put(target, data=body, headers={"Content-Type": "image/png"}) as r:
            assert r.status == want, (target, await r.text())
    async with http.put(url, data=content, headers={"Content-Type": "image/png", "x-amz-checksum-sha256": sha}) as r:
        assert r.status == 200, await r.text()
    async with http.patch(
        f"{API}/api/public/media/{media_id}", json={"uploadHttpStatus": 200}, headers=basic_auth(project)
    ) as r:
        assert r.status == 204

    # The same content again (another trace names it): stored once, no upload needed.
    other_trace = str(uuid.uuid4())
    status, doc = await declare(http, project, declaration(content, other_trace, field="output"))
    assert (status, doc) == (200, {"uploadUrl": None, "mediaId": media_id})

    async with http.get(f"{API}/api/public/media/{media_id}", headers=basic_auth(project)) as r:
        assert r.status == 200
        medium = await r.json()
    assert (medium["contentType"], medium["contentLength"]) == ("image/png", len(content))
    assert medium["uploadedAt"] and medium["urlExpiry"]
    async with http.get(medium["url"]) as r:  # no credentials, as the SDKs fetch it
        assert r.status == 200 and await r.read() == content
        assert r.headers["Content-Type"] == "image/png" and r.headers["X-Content-Type-Options"] == "nosniff"
    # Another project's key sees nothing of it.
    stranger = await create_key(pg, f"test-{uuid.uuid4().hex[:12]}")
    async with http.get(f"{API}/api/public/media/{media_id}", headers=basic_auth(stranger)) as r:
        assert r.status == 404

    # Deleting one trace keeps the medium (the other names it); deleting both removes it.
    for deleted, remains in ((trace_id, 200), (other_trace, 404)):
        async with http.delete(f"{API}/api/public/traces/{deleted}", headers=basic_auth(project)) as r:
            assert r.status == 200
        async with http.get(f"{API}/api/public/media/{media_id}", headers=basic_auth(project)) as r:
            assert r.status == remains, deleted
    async with http.get(medium["url"]) as r:
        assert r.status == 403  # its signing key went with it


@pytest.mark.parametrize(
    ("over", "status", "message"),
    [
        ({"field": "body"}, 400, "field"),
        ({"field": ["input"]}, 400, "field"),
        ({"contentType": "png"}, 400, "contentType"),
        ({"contentLength": 0}, 400, "contentLength"),
        ({"contentLength": 33 * 1024 * 1024}, 413, "at most"),
        ({"traceId": ""}, 400, "traceId"),
        ({"sha256Hash": base64.b64encode(b"short").decode()}, 400, "sha256Hash"),
    ],
)
async def test_bad_declarations_are_refused_with_a_reason(
    http: aiohttp.ClientSession, project: NewKey, over: dict[str, Any], status: int, message: str
) -> None:
    got, doc = await declare(http, project, declaration(b"content", "t", **over))
    assert got == status and message in doc["message"], doc


async def test_media_needs_credentials(http: aiohttp.ClientSession) -> None:
    async with http.post(f"{API}/api/public/media", json=declaration(b"x", "t")) as r:
        assert r.status == 401
