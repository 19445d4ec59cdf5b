"""The edge's failures as status codes with retry semantics, inside health's `observe`; and
the quiet answer to gRPC clients that dial the HTTP port."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from loguru import logger

from health.http import Handler, error
from ingest.auth import AuthUnavailable, Unauthorized
from ingest.encoding import ClientError
from ingest.limits import Overloaded, RateLimited, release_held
from ingest.otlp.decode import encode_status, response_content_type
from ingest.publisher import PublishError

_CLIENT_ERRORS = {400: "bad_request", 404: "not_found", 409: "conflict", 413: "too_large", 415: "unsupported"}
_OTHER_SIGNALS = ("/v1/metrics",)
# OTLP/HTTP's paths (and the signals we refuse under them): their errors are OTLP Status bodies.
_OTLP_PATHS = ("/v1/", "/api/public/otel/")
# An error's headers that outlive its re-encoding (the rest are the body's).
_BODY_HEADERS = frozenset({"content-type", "content-length"})


@web.middleware
async def translate(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await _answer(request, handler)
        if response.status >= 400 and request.path.startswith(_OTLP_PATHS):
            response = _as_otlp_status(request, response)
        if response.status in (413, 503) and request.content_length and not request.content.is_eof():
            # Refused before its body was read: close rather than read and discard megabytes
            # to keep the connection alive for a client that is sending too much anyway.
            response.force_close()
        return response
    finally:
        # The request's bytes count against the in-flight budget until its answer is built.
        release_held(request)


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as exc:
        if not request.path.startswith("/api/"):
            raise
        allow = ", ".join(sorted(exc.allowed_methods))
        return error(405, "method_not_allowed", f"{request.method} is not allowed here; use {allow}", {"Allow": allow})
    except web.HTTPNotFound:
        if not request.path.startswith(("/api/", "/v1/")):
            raise
        if request.path.endswith(_OTHER_SIGNALS):
            # OpenTelemetry SDKs (traceloop's, for one) export metrics to the same base URL as
            # traces and logs: say why they are refused, once, in the exporter's error log.
            return error(
                404,
                "not_found",
                f"no endpoint at {request.path}: this server takes OpenTelemetry traces and logs only"
                " (of logs, the GenAI content)",
            )
        return error(404, "not_found", f"no endpoint at {request.path}")
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


def _as_otlp_status(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """An error answer re-encoded as OTLP/HTTP requires: a google.rpc.Status in the request's
    encoding, with the same status and headers (Retry-After, WWW-Authenticate, X-RateLimit-*)."""
    if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
        return response
    try:
        message = str(orjson.loads(response.body)["message"])
    except (orjson.JSONDecodeError, TypeError, KeyError):
        message = response.reason or str(response.status)
    content_type = request.headers.get("Content-Type")
    headers = {k: v for k, v in response.headers.items() if k.lower() not in _BODY_HEADERS}
    return web.Response(
        status=response.status,
        body=encode_status(response.status, message, content_type),
        content_type=response_content_type(content_type),
        headers=headers,
    )


def is_http2_preface(exc: object) -> bool:
    """Whether aiohttp failed on an HTTP/2 connection preface (`PRI * HTTP/2.0`), as a gRPC
    client sends it: llhttp pauses on "PRI/Upgrade", the pure-Python parser finds the URL '*'."""
    if not isinstance(exc, BadHttpMessage):
        return False
    return "PRI/Upgrade" in str(exc) or (bool(exc.args) and str(exc.args[0]).strip() == "*")


class PrefaceQuietLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger (RequestHandler(logger=...)), minus the ERROR and traceback it
    writes when a gRPC client reaches the HTTP/1.1 port. That client has already got a 400 and
    fails fast ("Trying to connect an http1.x server"); one debug line is enough."""

    def __init__(self, inner: logging.Logger) -> None:
        super().__init__(inner, {})

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if is_http2_preface(exc_info):
            self.logger.debug("HTTP/2 client (gRPC?) on the HTTP/1.1 port; OTLP/gRPC has a port of its own")
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)
