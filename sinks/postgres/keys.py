"""Projects and API keys. Secrets are shown once, at creation, and stored only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass

from sinks.postgres.client import Postgres

PUBLIC_PREFIX, SECRET_PREFIX = "pk-at-", "sk-at-"
_PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,99}$")


@dataclass(frozen=True)
class NewKey:
    project_id: str
    public_key: str
    secret_key: str

    def __repr__(self) -> str:
        return f"NewKey(project_id={self.project_id!r}, public_key={self.public_key!r}, secret_key='***')"


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def secrets_match(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), bytes(stored_hash))


def validate_project_name(name: str) -> str:
    name = name.strip()
    if not _PROJECT_NAME.match(name):
        raise ValueError("project name: 1-100 letters, digits, space, '_', '.', '-'")
    return name


async def create_key(pg: Postgres, project_name: str) -> NewKey:
    """A new key for the project of that name, creating the project if it does not exist."""
    name = validate_project_name(project_name)
    rows = await pg.fetch(
        "INSERT INTO projects (id, name) VALUES (%s, %s) "
        "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        (f"proj-{uuid.uuid4().hex[:20]}", name),
        operation="upsert_project",
    )
    project_id = rows[0][0]
    public_key = PUBLIC_PREFIX + str(uuid.uuid4())
    secret_key = SECRET_PREFIX + secrets.token_urlsafe(32)
    await pg.execute(
        "INSERT INTO api_keys (project_id, public_key, secret_hash, display_secret) VALUES (%s, %s, %s, %s)",
        (project_id, public_key, hash_secret(secret_key), f"{SECRET_PREFIX}...{secret_key[-4:]}"),
        operation="insert_api_key",
    )
    return NewKey(project_id, public_key, secret_key)


async def project_for(pg: Postgres, public_key: str, secret_key: str) -> str | None:
    """The project a key pair belongs to, or None if unknown, revoked or the secret is wrong."""
    rows = await pg.fetch(
        "SELECT project_id, secret_hash FROM api_keys WHERE public_key = %s AND revoked_at IS NULL",
        (public_key,),
        operation="select_api_key",
    )
    if not rows or not secrets_match(secret_key, rows[0][1]):
        return None
    return rows[0][0]


async def project_for_secret(pg: Postgres, secret_key: str) -> str | None:
    """Bearer tokens carry only the secret: find its key by the secret's hash."""
    rows = await pg.fetch(
        "SELECT project_id FROM api_keys WHERE secret_hash = %s AND revoked_at IS NULL",
        (hash_secret(secret_key),),
        operation="select_api_key",
    )
    return rows[0][0] if rows else None


async def project_name(pg: Postgres, project_id: str) -> str | None:
    rows = await pg.fetch("SELECT name FROM projects WHERE id = %s", (project_id,), operation="select_project")
    return rows[0][0] if rows else None


async def project_id_of(pg: Postgres, name: str) -> str | None:
    rows = await pg.fetch("SELECT id FROM projects WHERE name = %s", (name,), operation="project_by_name")
    return rows[0][0] if rows else None
