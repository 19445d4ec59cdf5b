"""The `media` and `media_links` tables: what the Langfuse SDKs upload beside their events.

A medium is identified by its content's sha256 within a project, so the same image sent twice is
stored once; each trace, observation and field that names it is a link. Its bytes are rows of
CHUNK_BYTES (media_chunks), written in one transaction once an upload is complete and checked,
and read back one at a time: no medium is ever held whole in memory. The upload and download
URLs the api hands out carry an expiry and an HMAC under the medium's own secret: the SDKs call
them without credentials, as they would a bucket's presigned URLs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sinks.postgres.client import Postgres, Transaction

CHUNK_BYTES = 256 * 1024


def media_id(sha256_hash: str) -> str:
    """The id the SDKs compute for content of this sha256 (standard base64): its first 22
    url-safe characters."""
    return sha256_hash.replace("+", "-").replace("/", "_")[:22]


def signature(secret: str, action: str, project_id: str, medium: str, expires: int) -> str:
    mac = hmac.new(secret.encode(), f"{action}\n{project_id}\n{medium}\n{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


@dataclass(frozen=True)
class Medium:
    project_id: str
    id: str
    sha256_hash: str
    content_type: str
    content_length: int
    secret: str
    uploaded_at: datetime | None  # set once every chunk is stored and matched the hash

    @property
    def uploaded(self) -> bool:
        return self.uploaded_at is not None


_COLUMNS = "project_id, id, sha256_hash, content_type, content_length, secret, uploaded_at"
_ONE = f"SELECT {_COLUMNS} FROM media WHERE project_id = %s AND id = %s"


class MediaTable:
    def __init__(self, pg: Postgres) -> None:
        self._pg = pg

    async def register(
        self,
        project_id: str,
        sha256_hash: str,
        content_type: str,
        content_length: int,
        link: tuple[str, str, str],
    ) -> Medium:
        """The medium of this content (created if new) with the link (trace, observation, field)."""
        medium = media_id(sha256_hash)
        async with self._pg.transaction(operation="pg_media_register") as tx:
            # A medium not uploaded yet takes the latest declaration (a retry may correct it).
            await tx.execute(
                "INSERT INTO media (project_id, id, sha256_hash, content_type, content_length, secret)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (project_id, id) DO UPDATE SET"
                " content_type = EXCLUDED.content_type, content_length = EXCLUDED.content_length"
                " WHERE media.uploaded_at IS NULL",
                (project_id, medium, sha256_hash, content_type, content_length, secrets.token_urlsafe(24)),
            )
            await tx.execute(
                "INSERT INTO media_links (project_id, trace_id, observation_id, field, media_id)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (project_id, *link, medium),
            )
            rows = await tx.fetch(_ONE, (project_id, medium))
        return Medium(*rows[0])

    async def get(self, project_id: str, medium: str) -> Medium | None:
        rows = await self._pg.fetch(_ONE, (project_id, medium), operation="pg_media_get")
        return Medium(*rows[0]) if rows else None

    async def store(self, project_id: str, medium: str, chunks: Iterable[bytes]) -> bool:
        """The uploaded bytes, in order, in one transaction; False if the medium is gone (its
        traces deleted meanwhile) or was stored by a concurrent upload of the same content."""
        async with self._pg.transaction(operation="pg_media_store") as tx:
            found = await tx.fetch(
                "SELECT uploaded_at IS NULL FROM media WHERE project_id = %s AND id = %s FOR UPDATE",
                (project_id, medium),
            )
            if not found or not found[0][0]:
                return bool(found)
            await tx.execute("DELETE FROM media_chunks WHERE project_id = %s AND media_id = %s", (project_id, medium))
            for seq, chunk in enumerate(chunks):
                await tx.execute(
                    "INSERT INTO media_chunks (project_id, media_id, seq, data) VALUES (%s, %s, %s, %s)",
                    (project_id, medium, seq, chunk),
                )
            await tx.execute(
                "UPDATE media SET uploaded_at = now() WHERE project_id = %s AND id = %s", (project_id, medium)
            )
        return True

    async def content(self, project_id: str, medium: str) -> AsyncIterator[bytes]:
        """The bytes of an uploaded medium, a chunk per query."""
        seq = 0
        while True:
            rows = await self._pg.fetch(
                "SELECT data FROM media_chunks WHERE project_id = %s AND media_id = %s AND seq = %s",
                (project_id, medium, seq),
                operation="pg_media_content",
            )
            if not rows:
                return
            yield bytes(rows[0][0])
            seq += 1

    async def patch(self, project_id: str, medium: str, http_status: int | None) -> bool:
        """The SDK's report of its upload (Langfuse's PATCH); False if there is no such medium."""
        done = await self._pg.execute(
            "UPDATE media SET upload_http_status = %s WHERE project_id = %s AND id = %s",
            (http_status, project_id, medium),
            operation="pg_media_patch",
        )
        return done > 0

    async def forget_traces(self, project_id: str, trace_ids: Sequence[str]) -> int:
        """Drop the traces' links, and the media no other trace names; how many media went."""
        async with self._pg.transaction(operation="pg_media_forget") as tx:
            return await forget_links(tx, project_id, "trace_id = ANY(%s)", (list(trace_ids),))


async def forget_links(tx: Transaction, project_id: str, condition: str, params: tuple[object, ...]) -> int:
    """Drop the project's links that meet `condition` (SQL on media_links, with `params`), then
    the media they named that no link names any more, chunks included; how many media went."""
    rows = await tx.fetch(
        f"DELETE FROM media_links WHERE project_id = %s AND {condition} RETURNING media_id",
        (project_id, *params),
        operation="pg_media_links_delete",
    )
    if not rows:
        return 0
    gone = await tx.fetch(
        "DELETE FROM media m WHERE m.project_id = %s AND m.id = ANY(%s) AND NOT EXISTS ("
        " SELECT 1 FROM media_links l WHERE l.project_id = m.project_id AND l.media_id = m.id)"
        " RETURNING m.id",
        (project_id, sorted({r[0] for r in rows})),
        operation="pg_media_delete",
    )
    if gone:
        await tx.execute(
            "DELETE FROM media_chunks WHERE project_id = %s AND media_id = ANY(%s)",
            (project_id, [r[0] for r in gone]),
            operation="pg_media_chunks_delete",
        )
    return len(gone)
