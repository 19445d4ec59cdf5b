"""What every ingestion route shares: authenticate, read the body within limits, envelope the
events and append them to Kafka, counting what was accepted."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from health.http import ClientGone
from ingest.auth import Authenticator
from ingest.config import EdgeConfig
from ingest.encoding import BodyTooLarge, ClientError, DecodeError, decompress
from ingest.limits import Held, InflightBytes, RateLimiter
from ingest.metrics import OBSERVATIONS_INGESTED, SCORES_CREATED, TRACES_INGESTED
from ingest.publisher import EventPublisher
from ingest.records import pack
from ingest.shape import json_values
from pipeline.envelope import Group

# The deepest event body (itself one level) that encodes: orjson encodes 254 nested levels
# and the envelope takes one. It parses 1,024, so a body it read may not encode.
MAX_DEPTH = 253
# What a JSON value parses into whatever its length: a str, number or container, or a member's
# key and dict slot. bench/hostile.py: 5 MB of 650k tiny metadata members took the api 77 MB
# past idle (~110 bytes a comma); 75k tiny events 64 MB (~170, their checks and answers too).
JSON_VALUE_BYTES = 160


class EventTooLarge(ClientError):
    """One event's envelope is larger than Kafka takes (413): retrying cannot help."""

    status = 413


@dataclass(frozen=True)
class Accepted:
    """What one request appended, for its log line: counts and the first trace it touched."""

    events: int
    observations: int
    trace_id: str | None
    # Events left out, as (position in the events given, HTTP status, reason): 413 for an
    # envelope past max_event_bytes, 400 for a body nested too deeply to encode.
    refused: tuple[tuple[int, int, str], ...] = ()

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

    def hold_answer(self, request: web.Request, n: int) -> None:
        """Count `n` bytes of an answer being built as the request's, in flight until it is
        built; Overloaded (503) past the bound. Reads of large stored documents (prompts)
        would otherwise hold megabytes each, however many clients read at once."""
        self._inflight.hold_for(request).grow(n)

    def reserve(self, n: int) -> AbstractAsyncContextManager[Held]:
        """Count a message of `n` bytes, and what parsing it costs, as in flight while inside;
        Overloaded past the bound (the transports that hand over whole messages, like gRPC)."""
        return self._inflight.hold(n * (1 + self.config.memory_per_body_byte))

    async def body(self, request: web.Request, *, json: bool = False, split: bool = False) -> bytes:
        """The decompressed body; 413 past the limit, 503 when too many bytes are in flight.
        With `json`, weighed by its values too (`_weigh_json`). With `split` (an OTLP export),
        up to max_otlp_body_bytes: one past max_body_bytes is parsed a piece of otlp_piece_bytes
        at a time (otlp/split.py, otlp/json_split.py), so only that much of it is reserved as
        parsed.

        The bytes stay counted until the answer is sent (`hold_budget` releases them): the
        body, its decompressed copy and what is parsed from it live that long, Kafka's
        acknowledgement included.
        """
        config = self.config
        whole = config.max_body_bytes  # parsed whole up to this
        limit = config.max_otlp_body_bytes if split else whole
        declared = request.content_length
        if declared is not None and declared > limit:
            raise BodyTooLarge(f"body exceeds {limit} bytes")  # before reading any of it
        held = self._inflight.hold_for(request)
        parsed = config.memory_per_body_byte
        encoded = bool(request.headers.get("Content-Encoding"))
        # A plain body: what parsing it costs too, reserved before it is read, for as much of it
        # as is parsed whole.
        per_byte = 1 if encoded else 1 + parsed
        read = 0

        def reserve(n: int) -> None:
            nonlocal read
            whole_part = max(0, min(n, whole - read))
            read += n
            held.grow(whole_part * per_byte + (n - whole_part))

        if declared is not None:
            reserve(declared)  # before a byte is read
            raw = await _read(request, limit)
        else:
            # Chunked (OpenTelemetry's Node exporter always sends so): reserved as it arrives.
            # Reserving the most it may be (55 MiB at the defaults, past the 40 MiB budget) made
            # every chunked request refuse, and be refused by, any other in flight.
            raw = await _read(request, limit, reserve)
        data = decompress(raw, request.headers.get("Content-Encoding"), limit)
        del raw  # the compressed copy, when there was one
        size = len(data)
        if encoded:  # the decompressed copy, and what it parses into
            held.grow(size * (1 + parsed) if size <= whole else size + config.otlp_piece_bytes * parsed)
        elif size > whole:  # a plain body past `whole`: the pieces' parse
            held.grow(config.otlp_piece_bytes * parsed)
        if json and size <= whole:  # past it, pieces are parsed one at a time (reserved above)
            self._weigh_json(data, held)
        return data

    def _weigh_json(self, data: bytes, held: Held) -> None:
        """Reserve what parsing `data` takes where its values, not its length, decide that: a
        body of tiny values parses into ~30 times its length. 413 when that is more than one
        request may hold (a body of max_body_bytes and what memory_per_body_byte reserves for it)."""
        reserved = len(data) * self.config.memory_per_body_byte
        if data.count(b",") * JSON_VALUE_BYTES <= reserved:
            return  # the usual body: no more commas, strings' included, than its length covers
        values = json_values(data)
        need = values * JSON_VALUE_BYTES - reserved
        if need <= 0:
            return
        most = self.config.max_body_bytes * (1 + self.config.memory_per_body_byte)
        if held.n + need > most:
            fit = (most - len(data)) // JSON_VALUE_BYTES
            raise BodyTooLarge(
                f"the body holds {values} JSON values, more than one request may at its length"
                f" ({fit}): send fewer or larger values per request"
            )
        held.grow(need)

    async def json(self, request: web.Request) -> Any:
        """The decompressed body parsed as JSON; DecodeError (400) when it is not JSON."""
        try:
            return orjson.loads(await self.body(request, json=True))
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
        """Append (event id, type, event time µs, body) tuples, grouped into records by partition.

        An event past max_event_bytes fails the request with 413 (EventTooLarge), one nested too
        deeply to encode with 400 (DecodeError), before anything is sent; with `partial`, it is
        left out instead and named in Accepted.refused, for routes that answer per event.
        """
        now = time.time_ns() // 1000
        head = Group.opening(caller.project_id, now, caller.request_id, caller.sdk_name, caller.sdk_version, source)
        partitions = await self._publisher.partition_count()
        packed = pack(head, caller.project_id, events, now, self.config.max_event_bytes, partial, MAX_DEPTH, partitions)
        if packed.failed is not None:
            status, message = packed.failed
            raise (EventTooLarge if status == 413 else DecodeError)(message)
        await self._publisher.publish(packed.records, partitions)
        TRACES_INGESTED.labels(source).inc(packed.traces)
        OBSERVATIONS_INGESTED.labels(source).inc(packed.observations)
        SCORES_CREATED.labels(source).inc(packed.scores)
        return Accepted(packed.accepted, packed.observations, packed.trace_id, tuple(packed.refused))


def handing_over(items: list[Any]) -> Iterator[Any]:
    """Each item once, dropped from the list as it is taken: a large request's parsed events
    are freed one by one as they become Kafka records, rather than all held until the answer."""
    for position, item in enumerate(items):
        items[position] = None
        yield item


async def _read(request: web.Request, limit: int, reserve: Callable[[int], None] | None = None) -> bytes:
    """The raw body, at most `limit` bytes (BodyTooLarge past it), each chunk `reserve`d before
    it is kept. Not request.read(): that keeps the body on the request until the answer, Kafka's
    acknowledgement included."""
    buf = bytearray()
    try:
        async for chunk in request.content.iter_any():
            if reserve is not None:
                reserve(len(chunk))
            buf += chunk
            if len(buf) > limit:  # chunked: its size was not declared
                raise BodyTooLarge(f"body exceeds {limit} bytes")
    except ConnectionResetError as exc:  # the client hung up mid-body
        raise ClientGone(str(exc)) from None
    return bytes(buf)
