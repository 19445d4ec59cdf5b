"""What the api stores and reads in Postgres itself, beside the event log (prompts, score
configs, ...): the store's refusals as the client's 400, 404 or 413, its outage as 503, and the
form of the answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from aiohttp import web

from ingest.auth import AuthUnavailable
from ingest.encoding import ClientError
from sinks.postgres.client import PostgresError, Refused

T = TypeVar("T")


class NotFound(ClientError):
    status = 404


class Conflict(ClientError):
    status = 409


class TooLarge(ClientError):
    status = 413


def refusal(exc: Refused) -> ClientError:
    kind = {404: NotFound, 409: Conflict, 413: TooLarge}.get(exc.status, ClientError)
    return kind(str(exc))


def checked(check: Callable[..., T], *args: Any) -> T:
    """`check(*args)`, its refusal as the client's error."""
    try:
        return check(*args)
    except Refused as exc:
        raise refusal(exc) from None


async def stored(pending: Awaitable[T], what: str = "the request") -> T:
    """The store's answer; its refusals as the client's 400, 404 or 413, its outage as 503."""
    try:
        return await pending
    except Refused as exc:
        raise refusal(exc) from None
    except PostgresError as exc:
        if exc.permanent:  # text Postgres cannot hold (e.g. a lone surrogate)
            raise ClientError(f"{what} was refused: {exc}") from None
        raise AuthUnavailable(str(exc)) from exc


def iso(t: datetime) -> str:
    """A stored time as Langfuse's answers give it: UTC, milliseconds, `Z`."""
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_answer(doc: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc), content_type="application/json")
