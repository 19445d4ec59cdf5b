"""What every HTTP server of AgentTrace serves alike: request ids, the guide's HTTP metrics,
access logs, and a JSON error body. The API and the workers' probe servers install `observe`
as their outermost middleware; failures a component can translate it translates inside it.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from loguru import logger
from prometheus_client import Counter, Histogram

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Around the guide's SLOs: 50 ms (p50), 500 ms (p99) and 2 s (critical) are bucket edges.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
SIZE_BUCKETS = (100, 1_000, 10_000, 100_000, 1_000_000, 5_000_000, 10_000_000)

HTTP_REQUESTS = Counter("http_requests_total", "Total HTTP requests", ["method", "path", "status"])
HTTP_SECONDS = Histogram(
    "http_request_duration_seconds", "Request latency", ["method", "path"], buckets=LATENCY_BUCKETS
)
HTTP_REQUEST_BYTES = Histogram(
    "http_request_size_bytes", "Request body sizes", ["method", "path"], buckets=SIZE_BUCKETS
)
HTTP_RESPONSE_BYTES = Histogram(
    "http_response_size_bytes", "Response body sizes", ["method", "path"], buckets=SIZE_BUCKETS
)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# Probes and scrapes are frequent and uninteresting in logs.
_QUIET_PATHS = frozenset(
    {"/metrics", "/livez", "/readyz", "/health", "/version", "/api/public/health", "/api/public/ready"}
)


# The methods counted by name; any other (a parser that takes every token) as OTHER, so no
# client can mint series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_Series = tuple[Any, Any, Any, Any]
# Each (method, path, status)'s series, found once: `labels()` is a locked lookup that cost
# ~1 µs a metric, four a request. Bounded: methods, routes and statuses are few.
_series: dict[tuple[str, str, int], _Series] = {}


def _series_of(method: str, path: str, status: int) -> _Series:
    key = (method, path, status)
    found = _series.get(key)
    if found is None:
        if method not in _METHODS:
            method = "OTHER"
        found = (
            HTTP_REQUESTS.labels(method, path, str(status)),
            HTTP_SECONDS.labels(method, path),
            HTTP_REQUEST_BYTES.labels(method, path),
            HTTP_RESPONSE_BYTES.labels(method, path),
        )
        if len(_series) < 10_000:
            _series[key] = found
    return found


# nginx's code for a client that closed the connection before the answer; never sent.
CLIENT_GONE = 499


class ClientGone(Exception):
    """The client hung up before its request was read: counted as 499 and logged at info."""


def error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"error": kind, "message": message}),
        content_type="application/json",
        headers=headers,
    )


def _client_gone(request: web.Request, exc: Exception) -> bool:
    if isinstance(exc, ClientGone):
        return True
    transport = request.transport
    return isinstance(exc, ConnectionResetError) and (transport is None or transport.is_closing())


def request_id_from(incoming: str | None) -> str:
    """The client's X-Request-ID when it is a sane token, else a new one; for every transport."""
    return incoming if incoming and _REQUEST_ID.match(incoming) else uuid.uuid4().hex


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request_id_from(request.headers.get("X-Request-ID"))
    request["request_id"] = request_id
    start = time.perf_counter()
    response: web.StreamResponse
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc  # aiohttp's own answers, e.g. 405 or 413 from client_max_size
    except Exception as exc:
        if _client_gone(request, exc):
            # Nobody is left to answer; not an error of ours, so not a 500 either.
            request["log_msg"] = "client disconnected"
            request["log"] = {**request.get("log", {}), "error": str(exc) or type(exc).__name__}
            response = web.Response(status=CLIENT_GONE)
        else:
            logger.exception("unhandled error", request_id=request_id, path=request.path)
            response = error(500, "internal", "internal error; it has been logged")
    response.headers["X-Request-ID"] = request_id
    elapsed = time.perf_counter() - start
    route = request.match_info.route.resource
    path = route.canonical if route is not None else "unmatched"
    status = response.status
    requests, seconds, request_bytes, response_bytes = _series_of(request.method, path, status)
    requests.inc()
    seconds.observe(elapsed)
    request_bytes.observe(request.content_length or 0)
    body = getattr(response, "body", None)
    # A streamed answer (already written) has no body but may have declared its length.
    response_bytes.observe(len(body) if isinstance(body, (bytes, bytearray)) else response.content_length or 0)
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
