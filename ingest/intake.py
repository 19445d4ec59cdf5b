"""What every ingestion route shares: authenticate, read the body within limits, envelope the
events and append them to Kafka, counting what was accepted."""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from ingest.auth import Authenticator
from ingest.config import EdgeConfig
from ingest.encoding import BodyTooLarge, ClientError, DecodeError, decompress
from ingest.limits import InflightBytes, RateLimiter
from ingest.metrics import OBSERVATIONS_INGESTED, SCORES_CREATED, TRACES_INGESTED
from ingest.publisher import EventPublisher
from pipeline.envelope import Envelope
from pipeline.events import OBSERVATION_TYPES


class EventTooLarge(ClientError):
    """One event's envelope is larger than Kafka takes (413): retrying cannot help."""

    status = 413


@dataclass(frozen=True)
class Accepted:
    """What one request appended, for its log line: counts and the first trace it touched."""

    events: int
    observations: int
    trace_id: str | None
    # Positions (in the events given) of events left out for being larger than max_event_bytes.
    too_large: tuple[int, ...] = ()

    def log_fields(self) -> dict[str, Any]:
        return {"events": self.events, "observations_count": self.observations, "trace_id": self.trace_id}


@dataclass(frozen=True)
class Caller:
    project_id: str
    request_id: str
    sdk_name: str
    sdk_version: str


class Intake:
    def __init__(
        self,
        config: EdgeConfig,
        auth: Authenticator,
        publisher: EventPublisher,
        inflight: InflightBytes,
        rate_limiter: RateLimiter,
    ) -> None:
        self.config = config
        self._auth = auth
        self._publisher = publisher
        self._inflight = inflight
        self._rate = rate_limiter

    async def caller(self, request: web.Request) -> Caller:
        caller = await self.authenticate(
            request.headers.get("Authorization"),
            request["request_id"],
            request.headers.get("x-langfuse-sdk-name", "") or request.headers.get("User-Agent", ""),
            request.headers.get("x-langfuse-sdk-version", ""),
        )
        request["project_id"] = caller.project_id
        return caller

    async def authenticate(
        self, authorization: str | None, request_id: str, sdk_name: str, sdk_version: str = ""
    ) -> Caller:
        """The caller behind an Authorization value (HTTP header or gRPC metadata): Unauthorized
        when unusable or unknown, AuthUnavailable when the key store cannot answer."""
        project_id = await self._auth.project_id(authorization)
        return Caller(project_id, request_id, sdk_name[:100], sdk_version)

    def reserve(self, n: int) -> AbstractAsyncContextManager[None]:
        """Count `n` request bytes as in flight while inside; Overloaded past the bound."""
        return self._inflight.hold(n)

    async def body(self, request: web.Request) -> bytes:
        """The decompressed body; 413 past the limit, 503 when too many bytes are in flight."""
        limit = self.config.max_body_bytes
        declared = request.content_length
        if declared is not None and declared > limit:
            raise BodyTooLarge(f"body exceeds {limit} bytes")  # before reading any of it
        # A chunked body's size is unknown until read: reserve the most it may be.
        async with self._inflight.hold(limit if declared is None else declared):
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:  # chunked, past client_max_size
                raise BodyTooLarge(f"body exceeds {limit} bytes") from None
        return decompress(raw, request.headers.get("Content-Encoding"), limit)

    async def json(self, request: web.Request) -> Any:
        """The decompressed body parsed as JSON; DecodeError (400) when it is not JSON."""
        try:
            return orjson.loads(await self.body(request))
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"malformed JSON: {exc}") from None

    async def check_rate(self, caller: Caller, events: int) -> dict[str, str]:
        """Count `events` against the project's limit (RateLimited past it); the X-RateLimit-*
        headers for the answer, empty when no limit is configured."""
        window = await self._rate.consume(caller.project_id, events)
        if window is None:
            return {}
        remaining, reset_s = window
        return {
            "X-RateLimit-Limit": str(self._rate.per_minute),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(reset_s),
        }

    async def publish(
        self,
        caller: Caller,
        events: Iterable[tuple[str, str, int, dict[str, Any]]],
        source: str,
        *,
        partial: bool = False,
    ) -> Accepted:
        """Envelope (event id, type, event time µs, body) tuples and append them.

        An event past max_event_bytes fails the request with 413 (EventTooLarge) before anything
        is sent; with `partial`, it is left out instead and named in Accepted.too_large, for
        routes that answer per event.
        """
        now = time.time_ns() // 1000
        limit = self.config.max_event_bytes
        records = []
        too_large: list[int] = []
        counts = {"trace": 0, "observation": 0, "score": 0}
        trace_id: str | None = None
        for position, (event_id, etype, ts, body) in enumerate(events):
            env = Envelope(
                id=event_id,
                project_id=caller.project_id,
                type=etype,
                ts=ts or now,
                received_at=now,
                body=body,
                request_id=caller.request_id,
                sdk_name=caller.sdk_name,
                sdk_version=caller.sdk_version,
                source=source,
            )
            value = env.encode()
            if len(value) > limit:
                if not partial:
                    raise EventTooLarge(f"event {event_id!r} is {len(value)} bytes; the limit is {limit}")
                too_large.append(position)
                continue
            records.append((env.key(), value))
            if trace_id is None:
                found = body.get("id") if etype == "trace-create" else body.get("traceId")
                trace_id = str(found) if found else None
            if etype == "trace-create":
                counts["trace"] += 1
            elif etype in OBSERVATION_TYPES:
                counts["observation"] += 1
            elif etype == "score-create":
                counts["score"] += 1
        await self._publisher.publish(records)
        TRACES_INGESTED.labels(source).inc(counts["trace"])
        OBSERVATIONS_INGESTED.labels(source).inc(counts["observation"])
        SCORES_CREATED.labels(source).inc(counts["score"])
        return Accepted(len(records), counts["observation"], trace_id, tuple(too_large))
