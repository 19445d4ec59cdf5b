"""Projects and API keys. Secrets are shown once, at creation, and stored only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sinks.postgres.client import Postgres

PUBLIC_PREFIX, SECRET_PREFIX = "pk-at-", "sk-at-"
_PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,99}$")


@dataclass(frozen=True)
class NewKey:
    project_id: str
    public_key: str
    secret_key: str
    expires_at: datetime | None = None

    def __repr__(self) -> str:
        return f"NewKey(project_id={self.project_id!r}, public_key={self.public_key!r}, secret_key='***')"

    def to_json(self) -> dict[str, str | None]:
        """The one document that shows the secret: the answer to a creation."""
        return {
            "project_id": self.project_id,
            "public_key": self.public_key,
            "secret_key": self.secret_key,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: never its secret, only the masked display form."""

    public_key: str
    display_secret: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def to_json(self) -> dict[str, str | None]:
        return {
            "public_key": self.public_key,
            "display_secret": self.display_secret,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True)
class KeyMatch:
    """What authentication learns from a valid key: its project, its id and until when it holds."""

    project_id: str
    public_key: str
    expires_at: datetime | None


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def secrets_match(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), bytes(stored_hash))


def validate_project_name(name: str) -> str:
    name = name.strip()
    if not _PROJECT_NAME.match(name):
        raise ValueError("project name: 1-100 letters, digits, space, '_', '.', '-'")
    return name


MAX_EXPIRY_DAYS = 3650


def validate_expiry_days(days: int | None) -> int | None:
    if days is not None and not (isinstance(days, int) and not isinstance(days, bool) and 1 <= days <= MAX_EXPIRY_DAYS):
        raise ValueError(f"expiry: a whole number of days, 1-{MAX_EXPIRY_DAYS}")
    return days


async def create_key(pg: Postgres, project_name: str, expires_in_days: int | None = None) -> NewKey:
    """A new key for the project of that name, creating the project if it does not exist."""
    name = validate_project_name(project_name)
    validate_expiry_days(expires_in_days)
    rows = await pg.fetch(
        "INSERT INTO projects (id, name) VALUES (%s, %s) "
        "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        (f"proj-{uuid.uuid4().hex[:20]}", name),
        operation="upsert_project",
    )
    project_id = rows[0][0]
    public_key = PUBLIC_PREFIX + str(uuid.uuid4())
    secret_key = SECRET_PREFIX + secrets.token_urlsafe(32)
    rows = await pg.fetch(
        "INSERT INTO api_keys (project_id, public_key, secret_hash, display_secret, expires_at) "
        "VALUES (%s, %s, %s, %s, now() + make_interval(days => %s)) RETURNING expires_at",
        (project_id, public_key, hash_secret(secret_key), f"{SECRET_PREFIX}...{secret_key[-4:]}", expires_in_days),
        operation="insert_api_key",
    )
    return NewKey(project_id, public_key, secret_key, rows[0][0])


# A key holds while it is neither revoked nor expired; the database clock decides both.
_VALID = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"


async def project_for(pg: Postgres, public_key: str, secret_key: str) -> KeyMatch | None:
    """The key pair's project, or None if unknown, revoked, expired or the secret is wrong."""
    rows = await pg.fetch(
        f"SELECT project_id, secret_hash, expires_at FROM api_keys WHERE public_key = %s AND {_VALID}",
        (public_key,),
        operation="select_api_key",
    )
    if not rows or not secrets_match(secret_key, rows[0][1]):
        return None
    return KeyMatch(rows[0][0], public_key, rows[0][2])


async def project_for_secret(pg: Postgres, secret_key: str) -> KeyMatch | None:
    """Bearer tokens carry only the secret: find its key by the secret's hash."""
    rows = await pg.fetch(
        f"SELECT project_id, public_key, expires_at FROM api_keys WHERE secret_hash = %s AND {_VALID}",
        (hash_secret(secret_key),),
        operation="select_api_key",
    )
    return KeyMatch(*rows[0]) if rows else None


async def list_keys(pg: Postgres, project_name: str) -> list[KeyInfo] | None:
    """A project's keys, newest first, revoked and expired ones included; None if no such project."""
    name = validate_project_name(project_name)
    project = await pg.fetch("SELECT id FROM projects WHERE name = %s", (name,), operation="select_project")
    if not project:
        return None
    rows = await pg.fetch(
        "SELECT public_key, display_secret, created_at, expires_at, revoked_at FROM api_keys "
        "WHERE project_id = %s ORDER BY created_at DESC, id DESC",
        (project[0][0],),
        operation="list_api_keys",
    )
    return [KeyInfo(*r) for r in rows]


async def revoke_key(pg: Postgres, public_key: str, project_name: str | None = None) -> bool:
    """Mark a key revoked (once; revoking again keeps the first time). False if there is no such
    key (in that project, when one is named). The caller invalidates the auth caches."""
    if project_name is None:
        rows = await pg.fetch(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE public_key = %s RETURNING id",
            (public_key,),
            operation="revoke_api_key",
        )
    else:
        rows = await pg.fetch(
            "UPDATE api_keys k SET revoked_at = coalesce(k.revoked_at, now()) FROM projects p "
            "WHERE k.public_key = %s AND k.project_id = p.id AND p.name = %s RETURNING k.id",
            (public_key, validate_project_name(project_name)),
            operation="revoke_api_key",
        )
    return bool(rows)


async def project_name(pg: Postgres, project_id: str) -> str | None:
    rows = await pg.fetch("SELECT name FROM projects WHERE id = %s", (project_id,), operation="select_project")
    return rows[0][0] if rows else None


async def project_id_of(pg: Postgres, name: str) -> str | None:
    rows = await pg.fetch("SELECT id FROM projects WHERE name = %s", (name,), operation="project_by_name")
    return rows[0][0] if rows else None
