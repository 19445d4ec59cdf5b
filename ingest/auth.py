"""API-key authentication: HTTP Basic (public:secret) or Bearer (secret).

Verified keys are cached in this process for a few seconds and in Redis for `ttl_s`, keyed by
a hash of the credentials, so the hot path rarely reaches Postgres. Redis is only a cache: when
it is down, Postgres answers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time

import redis.asyncio as aioredis
from loguru import logger
from redis.exceptions import RedisError

from sinks.postgres.client import Postgres, PostgresError
from sinks.postgres.keys import project_for, project_for_secret


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


class Authenticator:
    def __init__(self, pg: Postgres, redis: aioredis.Redis | None, ttl_s: int, local_ttl_s: float = 5.0) -> None:
        self._pg = pg
        self._redis = redis
        self._ttl_s = ttl_s
        self._local_ttl_s = local_ttl_s
        self._local: dict[str, tuple[float, str | None]] = {}

    async def project_id(self, header: str | None) -> str:
        public, secret = parse_credentials(header)
        digest = hashlib.sha256(f"{public or ''}:{secret}".encode()).hexdigest()
        now = time.monotonic()
        hit = self._local.get(digest)
        if hit is not None and hit[0] > now:
            if hit[1] is None:
                raise Unauthorized("invalid API key")
            return hit[1]
        project = await self._from_redis(digest)
        if project is None:
            try:
                project = await (
                    project_for(self._pg, public, secret) if public else project_for_secret(self._pg, secret)
                )
            except PostgresError as exc:
                raise AuthUnavailable(str(exc)) from exc
            if project is not None:
                await self._to_redis(digest, project)
        if len(self._local) > 10_000:
            self._local.clear()
        # Unknown keys are remembered briefly too, so a misconfigured client cannot hammer Postgres.
        self._local[digest] = (now + (self._local_ttl_s if project else 2.0), project)
        if project is None:
            raise Unauthorized("invalid API key")
        return project

    async def _from_redis(self, digest: str) -> str | None:
        if self._redis is None or not self._ttl_s:
            return None
        try:
            value = await self._redis.get(f"agenttrace:auth:{digest}")
        except (RedisError, OSError) as exc:
            logger.warning("auth cache unavailable", error=repr(exc))
            return None
        return value.decode() if isinstance(value, bytes) else value

    async def _to_redis(self, digest: str, project: str) -> None:
        if self._redis is None or not self._ttl_s:
            return
        try:
            await self._redis.set(f"agenttrace:auth:{digest}", project, ex=self._ttl_s)
        except (RedisError, OSError) as exc:
            logger.warning("auth cache unavailable", error=repr(exc))
