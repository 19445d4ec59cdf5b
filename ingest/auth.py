"""API-key authentication: HTTP Basic (public:secret) or Bearer (secret).

Verified keys are cached in this process for a few seconds and in Redis for `ttl_s`, keyed by
a hash of the credentials, so the hot path rarely reaches Postgres. Redis is only a cache: when
it is down, Postgres answers.

Revocation does not wait for those TTLs. `invalidate()` (called by `keys revoke` and the admin
DELETE after the database says the key is revoked) deletes the key's Redis entries, which an
index set per public key lists, and publishes the public key on `REVOKED_CHANNEL`; every api
process subscribes (`Authenticator.start()`) and drops its in-process entries for that key, so
a revoked key is refused everywhere within a round trip to Redis. Pub/sub is chosen over a
Redis revocation check per request because it keeps the hot path at zero round trips for the
in-process hit. When the subscription breaks (Redis down), messages may be missed: the
process clears its whole in-process cache on every (re)subscription, and while unsubscribed
the in-process TTL (`local_ttl_s`, 5 s) bounds how long a revoked key can still pass.
Expiry needs no message: a cached entry never outlives the key's `expires_at`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import time
from datetime import UTC, datetime

import orjson
import redis.asyncio as aioredis
from loguru import logger
from redis.exceptions import RedisError

from sinks.postgres.client import Postgres, PostgresError
from sinks.postgres.keys import KeyMatch, project_for, project_for_secret

REVOKED_CHANNEL = "agenttrace:auth:revoked"
# v2 entries are JSON (project, public key, expiry); the v1 entries of older processes held the
# bare project id. Separate names, so processes of both versions can share one Redis.
_ENTRY = "agenttrace:auth:v2:{}"
_INDEX = "agenttrace:auth:v2:key:{}"


class Unauthorized(Exception):
    pass


class AuthUnavailable(Exception):
    """The key store cannot be reached: the client should retry (503)."""


def parse_credentials(header: str | None) -> tuple[str | None, str]:
    """(public key or None, secret) from an Authorization header; Unauthorized if unusable."""
    if not header:
        raise Unauthorized("missing Authorization header: use HTTP Basic (public key:secret key) or Bearer")
    scheme, _, value = header.strip().partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Unauthorized("malformed Basic credentials") from exc
        public, sep, secret = decoded.partition(":")
        if not sep or not public or not secret:
            raise Unauthorized("Basic credentials must be public_key:secret_key")
        return public, secret
    if scheme == "bearer" and value:
        return None, value
    raise Unauthorized("unsupported Authorization scheme: use Basic or Bearer")


async def invalidate(redis: aioredis.Redis | None, public_key: str) -> bool:
    """Drop a revoked key from every cache: its Redis entries now, in-process ones by message.
    False if Redis could not be reached (in-process caches then expire within their TTL)."""
    if redis is None:
        return False
    try:
        digests = await redis.smembers(_INDEX.format(public_key))
        names = [_ENTRY.format(d.decode() if isinstance(d, bytes) else d) for d in digests]
        await redis.delete(*names, _INDEX.format(public_key))
        await redis.publish(REVOKED_CHANNEL, public_key)
    except (RedisError, OSError) as exc:
        logger.warning("auth cache invalidation failed", public_key=public_key, error=repr(exc))
        return False
    return True


def _remaining_s(expires_at: datetime | None) -> float | None:
    return None if expires_at is None else (expires_at - datetime.now(UTC)).total_seconds()


class Authenticator:
    def __init__(self, pg: Postgres, redis: aioredis.Redis | None, ttl_s: int, local_ttl_s: float = 5.0) -> None:
        self._pg = pg
        self._redis = redis
        self._ttl_s = ttl_s
        self._local_ttl_s = local_ttl_s
        # digest -> (deadline, project or None, public key or None)
        self._local: dict[str, tuple[float, str | None, str | None]] = {}
        # Public keys revoked within the Redis TTL: a lookup that raced the revocation is not cached.
        self._revoked: dict[str, float] = {}
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._redis is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="auth-revocations")

    async def stop(self) -> None:
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def project_id(self, header: str | None) -> str:
        public, secret = parse_credentials(header)
        digest = hashlib.sha256(f"{public or ''}:{secret}".encode()).hexdigest()
        now = time.monotonic()
        hit = self._local.get(digest)
        if hit is not None and hit[0] > now:
            if hit[1] is None:
                raise Unauthorized("invalid API key")
            return hit[1]
        match = await self._from_redis(digest)
        if match is None:
            try:
                match = await (
                    project_for(self._pg, public, secret) if public else project_for_secret(self._pg, secret)
                )
            except PostgresError as exc:
                raise AuthUnavailable(str(exc)) from exc
            if match is not None:
                await self._to_redis(digest, match)
        if match is not None and match.public_key in self._revoked:
            # Revoked while this lookup was in flight: answer it, cache nothing.
            await self._forget_in_redis([digest])
            return match.project_id
        if len(self._local) > 10_000:
            self._local.clear()
        # Unknown keys are remembered briefly too, so a misconfigured client cannot hammer Postgres.
        ttl = self._local_ttl_s if match else 2.0
        remaining = _remaining_s(match.expires_at) if match else None
        if remaining is not None:
            ttl = min(ttl, remaining)
        self._local[digest] = (now + ttl, match.project_id if match else None, match.public_key if match else None)
        if match is None:
            raise Unauthorized("invalid API key")
        return match.project_id

    def forget(self, public_key: str) -> None:
        """Drop a key from the in-process cache (a revocation message)."""
        now = time.monotonic()
        self._revoked = {k: t for k, t in self._revoked.items() if t > now}
        self._revoked[public_key] = now + max(self._ttl_s, self._local_ttl_s)
        gone = [d for d, entry in self._local.items() if entry[2] == public_key]
        for d in gone:
            del self._local[d]
        if gone:
            # Entries this process wrote after the revoker's delete would otherwise live on.
            asyncio.get_running_loop().create_task(self._forget_in_redis(gone))

    async def _forget_in_redis(self, digests: list[str]) -> None:
        if self._redis is None or not digests:
            return
        try:
            await self._redis.delete(*(_ENTRY.format(d) for d in digests))
        except (RedisError, OSError) as exc:
            logger.warning("auth cache unavailable", error=repr(exc))

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(REVOKED_CHANNEL)
                # Messages may have been missed while unsubscribed: trust nothing cached before.
                self._local.clear()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        self.forget(data.decode() if isinstance(data, bytes) else str(data))
            except (RedisError, OSError) as exc:
                logger.warning("auth revocation channel unavailable; retrying", error=repr(exc))
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    # Typed from redis 8.2 on; untyped before it.
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]

    async def _from_redis(self, digest: str) -> KeyMatch | None:
        if self._redis is None or not self._ttl_s:
            return None
        try:
            value = await self._redis.get(_ENTRY.format(digest))
        except (RedisError, OSError) as exc:
            logger.warning("auth cache unavailable", error=repr(exc))
            return None
        if value is None:
            return None
        try:
            doc = orjson.loads(value)
            expires_at = datetime.fromisoformat(doc["expires_at"]) if doc.get("expires_at") else None
            match = KeyMatch(str(doc["project_id"]), str(doc["public_key"]), expires_at)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None  # not an entry of ours: ask Postgres
        remaining = _remaining_s(match.expires_at)
        return None if remaining is not None and remaining <= 0 else match

    async def _to_redis(self, digest: str, match: KeyMatch) -> None:
        if self._redis is None or not self._ttl_s:
            return
        ttl = float(self._ttl_s)
        remaining = _remaining_s(match.expires_at)
        if remaining is not None:
            ttl = min(ttl, remaining)
        if ttl < 1:
            return
        doc = {
            "project_id": match.project_id,
            "public_key": match.public_key,
            "expires_at": match.expires_at.isoformat() if match.expires_at else None,
        }
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(_ENTRY.format(digest), orjson.dumps(doc), ex=int(ttl))
                pipe.sadd(_INDEX.format(match.public_key), digest)
                pipe.expire(_INDEX.format(match.public_key), self._ttl_s)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.warning("auth cache unavailable", error=repr(exc))
