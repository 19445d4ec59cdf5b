"""/api/public/media: Langfuse's media API, so images, audio and files in inputs and outputs
survive the SDKs' uploads.

The Langfuse SDKs (Python 3.x and later, JS 4.x and later) take base64 media out of an event,
put a reference `@@@langfuseMedia:type=...|id=...|source=...@@@` in its place and upload the bytes:
POST /api/public/media declares the content (its sha256, type, length, and the trace, observation
and field that name it), the SDK PUTs the bytes to the `uploadUrl` it gets back, reports with
PATCH, and reads with GET /api/public/media/{mediaId}, whose `url` serves the bytes. Without this
API the SDKs' references point at nothing: the media are lost.

The bytes live in Postgres (sinks/postgres/media.py) in chunks, at most MAX_MEDIA_BYTES a medium; the
upload and download URLs are signed and expire (the SDKs send no credentials to them, as to a
bucket's presigned URLs). Content already uploaded answers `uploadUrl: null` (Langfuse's "no
upload needed"). A deleted trace takes the media only it named (ingest/deletion.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import tempfile
import time
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

from health.http import error
from ingest.auth import AuthUnavailable
from ingest.encoding import BodyTooLarge, ClientError, DecodeError
from ingest.intake import Intake
from sinks.postgres.client import PostgresError
from sinks.postgres.media import CHUNK_BYTES, MediaTable, Medium, signature

PATH = "/api/public/media"
ITEM_PATH = "/api/public/media/{mediaId}"
UPLOAD_PATH = "/api/public/media/{mediaId}/upload"
CONTENT_PATH = "/api/public/media/{mediaId}/content"
MAX_MEDIA_BYTES = 32 * 1024 * 1024
URL_TTL_S = 3600
FIELDS = frozenset({"input", "output", "metadata"})
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}")
_MAX_ID = 256


def add_routes(app: web.Application) -> None:
    app.router.add_post(PATH, declare)
    app.router.add_get(ITEM_PATH, get_medium)
    app.router.add_patch(ITEM_PATH, patch_medium)
    app.router.add_put(UPLOAD_PATH, upload)
    app.router.add_get(CONTENT_PATH, content, allow_head=False)


def _id(doc: dict[str, Any], name: str, *, required: bool) -> str:
    value = doc.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not _text(value, _MAX_ID):
        raise DecodeError(f"{name} must be a non-empty string of at most {_MAX_ID} characters, without NUL")
    return value


def _sha256(value: object) -> str:
    try:
        digest = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 32:
        raise DecodeError("sha256Hash must be the base64 of the content's SHA-256 digest (32 bytes)")
    return base64.b64encode(digest).decode()


def _signed_url(request: web.Request, path: str, action: str, medium: Medium) -> tuple[str, int]:
    expires = int(time.time()) + URL_TTL_S
    sig = signature(medium.secret, action, medium.project_id, medium.id, expires)
    query = urlencode({"project": medium.project_id, "expires": expires, "signature": sig})
    return f"{_origin(request)}{path.format(mediaId=medium.id)}?{query}", expires


def _origin(request: web.Request) -> str:
    """Where the caller reached the api: behind a proxy that terminates TLS, as it forwards it.
    (A client naming another host only misdirects its own upload.)"""
    scheme = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip() or request.scheme
    host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip() or request.host
    return f"{scheme if scheme in ('http', 'https') else request.scheme}://{host}"


def _medium_id(request: web.Request) -> str:
    medium = request.match_info["mediaId"]
    if not _text(medium, _MAX_ID):
        raise DecodeError(f"mediaId must be at most {_MAX_ID} characters, without NUL")
    return medium


def _ascii_digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _text(value: str, most: int) -> bool:
    # Postgres text cannot hold NUL: refused here, not by the store as a failure of its own.
    return 0 < len(value) <= most and "\x00" not in value


async def _medium_of_signed(request: web.Request, action: str) -> Medium:
    """The medium a signed URL names; 403 when the signature is wrong or expired."""
    q = request.query
    project_id, expires, sig = q.get("project", ""), q.get("expires", ""), q.get("signature", "")
    medium_id = _medium_id(request)
    # ASCII only: str.isdigit() takes other scripts' digits, and compare_digest refuses non-ASCII.
    valid = _text(project_id, _MAX_ID) and _ascii_digits(expires) and len(expires) < 12 and _text(sig, 100)
    if not valid or int(expires) < time.time():
        raise _Forbidden("the URL is incomplete or has expired; ask GET /api/public/media/{mediaId} for a new one")
    try:
        medium = await MediaTable(request.app["postgres"]).get(project_id, medium_id)
    except PostgresError as exc:
        raise AuthUnavailable(str(exc)) from exc
    expected = signature(medium.secret, action, project_id, medium_id, int(expires)) if medium else ""
    if medium is None or not hmac.compare_digest(expected.encode(), sig.encode()):
        raise _Forbidden("the URL's signature does not match")
    return medium


class _Forbidden(ClientError):
    status = 403


async def declare(request: web.Request) -> web.Response:
    intake: Intake = request.app["intake"]
    caller = await intake.caller(request)
    doc = await intake.json(request)
    if not isinstance(doc, dict):
        raise DecodeError("the body must be an object")
    trace_id = _id(doc, "traceId", required=True)
    observation_id = _id(doc, "observationId", required=False)
    field = doc.get("field")
    if not isinstance(field, str) or field not in FIELDS:
        raise DecodeError(f"field must be one of {', '.join(sorted(FIELDS))}")
    content_type = doc.get("contentType")
    if not isinstance(content_type, str) or not _CONTENT_TYPE.fullmatch(content_type):
        raise DecodeError("contentType must be a MIME type, such as image/png")
    length = doc.get("contentLength")
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise DecodeError("contentLength must be a positive integer (bytes)")
    if length > MAX_MEDIA_BYTES:
        raise BodyTooLarge(f"media may be at most {MAX_MEDIA_BYTES} bytes; this one declares {length}")
    sha256_hash = _sha256(doc.get("sha256Hash"))
    try:
        medium = await MediaTable(request.app["postgres"]).register(
            caller.project_id, sha256_hash, content_type, length, (trace_id, observation_id, field)
        )
    except PostgresError as exc:
        raise AuthUnavailable(str(exc)) from exc
    upload_url = None if medium.uploaded else _signed_url(request, UPLOAD_PATH, "upload", medium)[0]
    request["log_msg"] = "media declared"
    request["log"] = {"media_id": medium.id, "trace_id": trace_id, "bytes": length, "uploaded": medium.uploaded}
    return _json({"uploadUrl": upload_url, "mediaId": medium.id})


async def upload(request: web.Request) -> web.Response:
    medium = await _medium_of_signed(request, "upload")
    if request.content_length is not None and request.content_length != medium.content_length:
        raise DecodeError(f"the body is {request.content_length} bytes; {medium.content_length} were declared")
    # Spooled to disk past a chunk and hashed as it arrives: an upload holds little memory and no
    # database connection while the client sends; the chunks go in one transaction at the end.
    with tempfile.SpooledTemporaryFile(max_size=CHUNK_BYTES) as spool:
        digest = hashlib.sha256()
        size = 0
        while size <= medium.content_length:  # one byte past the length tells a longer body
            chunk = await request.content.read(min(CHUNK_BYTES, medium.content_length + 1 - size))
            if not chunk:
                break
            digest.update(chunk)
            spool.write(chunk)
            size += len(chunk)
        if size != medium.content_length:
            raise DecodeError(f"the body is not the {medium.content_length} bytes declared")
        if base64.b64encode(digest.digest()).decode() != medium.sha256_hash:
            raise DecodeError("the body's SHA-256 is not the one declared")
        spool.seek(0)
        chunks = iter(lambda: spool.read(CHUNK_BYTES), b"")
        try:
            stored = await MediaTable(request.app["postgres"]).store(medium.project_id, medium.id, chunks)
        except PostgresError as exc:
            raise AuthUnavailable(str(exc)) from exc
    if not stored:
        return error(404, "not_found", "the media is gone (its traces were deleted)")
    request["project_id"] = medium.project_id
    request["log_msg"] = "media uploaded"
    request["log"] = {"media_id": medium.id, "bytes": medium.content_length}
    return web.Response(status=200)


async def patch_medium(request: web.Request) -> web.Response:
    intake: Intake = request.app["intake"]
    caller = await intake.caller(request)
    doc = await intake.json(request)
    if not isinstance(doc, dict):
        raise DecodeError("the body must be an object")
    status = doc.get("uploadHttpStatus")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 0 <= status < 1000):
        raise DecodeError("uploadHttpStatus must be an HTTP status code")
    try:
        table = MediaTable(request.app["postgres"])
        found = await table.patch(caller.project_id, _medium_id(request), status)
    except PostgresError as exc:
        raise AuthUnavailable(str(exc)) from exc
    if not found:
        return error(404, "not_found", "Media not found")
    return web.Response(status=204)


async def get_medium(request: web.Request) -> web.Response:
    intake: Intake = request.app["intake"]
    caller = await intake.caller(request)
    try:
        medium = await MediaTable(request.app["postgres"]).get(caller.project_id, _medium_id(request))
    except PostgresError as exc:
        raise AuthUnavailable(str(exc)) from exc
    if medium is None:
        return error(404, "not_found", "Media not found")
    if medium.uploaded_at is None:
        return error(404, "not_found", "Media not yet uploaded")
    url, expires = _signed_url(request, CONTENT_PATH, "download", medium)
    return _json(
        {
            "mediaId": medium.id,
            "contentType": medium.content_type,
            "contentLength": medium.content_length,
            "uploadedAt": medium.uploaded_at.isoformat().replace("+00:00", "Z"),
            "url": url,
            "urlExpiry": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
        }
    )


async def content(request: web.Request) -> web.StreamResponse:
    medium = await _medium_of_signed(request, "download")
    if not medium.uploaded:
        return error(404, "not_found", "Media not yet uploaded")
    # Served from the api's origin: never rendered as a page of it, whatever the type says.
    response = web.StreamResponse(
        headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox", "Cache-Control": "private"}
    )
    response.content_type = medium.content_type
    response.content_length = medium.content_length
    chunks = MediaTable(request.app["postgres"]).content(medium.project_id, medium.id)
    try:
        first = await anext(chunks, None)  # before the status line: a store failure is still a 503
    except PostgresError as exc:
        raise AuthUnavailable(str(exc)) from exc
    if first is None:
        return error(404, "not_found", "Media not found")  # deleted since the lookup
    await response.prepare(request)
    await response.write(first)
    async for chunk in chunks:  # a failure now can only cut the body short, as any network error
        await response.write(chunk)
    await response.write_eof()
    return response


def _json(doc: Any) -> web.Response:
    return web.Response(body=orjson.dumps(doc), content_type="application/json")
