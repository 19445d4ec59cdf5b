"""HTTP middleware shared by the API and the worker's probe server: request ids, metrics, access
logs, and the translation of failures into status codes with retry semantics."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from loguru import logger

from ingest.auth import AuthUnavailable, Unauthorized
from ingest.encoding import ClientError
from ingest.limits import Overloaded, RateLimited
from ingest.metrics import HTTP_REQUEST_BYTES, HTTP_REQUESTS, HTTP_RESPONSE_BYTES, HTTP_SECONDS
from ingest.publisher import PublishError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# Probes and scrapes are frequent and uninteresting in logs.
_QUIET_PATHS = frozenset({"/metrics", "/livez", "/readyz", "/health", "/version"})
_CLIENT_ERRORS = {400: "bad_request", 413: "too_large", 415: "unsupported"}


def error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"error": kind, "message": message}),
        content_type="application/json",
        headers=headers,
    )


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    request["request_id"] = request_id
    start = time.perf_counter()
    try:
        response = await _translate(request, handler)
    except web.HTTPException as exc:
        response = exc  # aiohttp's own answers, e.g. 405 or 413 from client_max_size
    except Exception:
        logger.exception("unhandled error", request_id=request_id, path=request.path)
        response = error(500, "internal", "internal error; it has been logged")
    response.headers["X-Request-ID"] = request_id
    elapsed = time.perf_counter() - start
    route = request.match_info.route.resource
    path = route.canonical if route is not None else "unmatched"
    status = response.status
    HTTP_REQUESTS.labels(request.method, path, str(status)).inc()
    HTTP_SECONDS.labels(request.method, path).observe(elapsed)
    HTTP_REQUEST_BYTES.labels(request.method, path).observe(request.content_length or 0)
    body = getattr(response, "body", None)
    HTTP_RESPONSE_BYTES.labels(request.method, path).observe(len(body) if isinstance(body, (bytes, bytearray)) else 0)
    if path not in _QUIET_PATHS or status >= 500:
        extra = request.get("log", {})
        log = logger.warning if status >= 500 else logger.info
        log(
            request.get("log_msg", "request"),
            request_id=request_id,
            project_id=request.get("project_id"),
            method=request.method,
            path=path,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
            **extra,
        )
    if isinstance(response, web.HTTPException):
        raise response
    return response


async def _translate(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Unauthorized as exc:
        return error(401, "unauthorized", str(exc), {"WWW-Authenticate": 'Basic realm="agenttrace"'})
    except ClientError as exc:
        return error(exc.status, _CLIENT_ERRORS.get(exc.status, "bad_request"), exc.message)
    except RateLimited as exc:
        return error(
            429,
            "rate_limited",
            str(exc),
            {
                "Retry-After": str(exc.reset_s),
                "X-RateLimit-Limit": str(exc.limit),
                "X-RateLimit-Remaining": str(exc.remaining),
                "X-RateLimit-Reset": str(exc.reset_s),
            },
        )
    except Overloaded as exc:
        return error(503, "overloaded", str(exc), {"Retry-After": str(exc.retry_after_s)})
    except (PublishError, AuthUnavailable) as exc:
        logger.warning("dependency unavailable", request_id=request["request_id"], error=str(exc))
        return error(503, "unavailable", "the event log is unavailable; retry later", {"Retry-After": "5"})
