"""The edge's failures as status codes with retry semantics, inside health's `observe`."""

from __future__ import annotations

from aiohttp import web
from loguru import logger

from health.http import Handler, error
from ingest.auth import AuthUnavailable, Unauthorized
from ingest.encoding import ClientError
from ingest.limits import Overloaded, RateLimited, release_held
from ingest.publisher import PublishError

_CLIENT_ERRORS = {400: "bad_request", 413: "too_large", 415: "unsupported"}


@web.middleware
async def translate(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await _answer(request, handler)
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
        if not request.path.startswith("/api/"):
            raise
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
