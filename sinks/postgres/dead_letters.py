"""The `dead_letters` table: the searchable copy of what the stages dead-lettered."""

from __future__ import annotations

from typing import Any

import orjson

from pipeline.dead_letters import DeadLetter, StoredLetter
from sinks.postgres.client import Postgres

_COLUMNS = "id, created_at, stage, project_id, event_type, event_id, request_id, reason, requeued_at, payload"


class DeadLetterTable:
    def __init__(self, pg: Postgres) -> None:
        self._pg = pg

    async def record(self, letters: list[DeadLetter]) -> None:
        await self._pg.insert_many(
            "INSERT INTO dead_letters (stage, event_id, project_id, event_type, request_id, reason, payload)",
            "(%s, %s, %s, %s, %s, %s, %s::jsonb)",
            [
                (
                    _text(d.stage),
                    _text(d.event_id),
                    _text(d.project_id),
                    _text(d.event_type),
                    _text(d.request_id),
                    _text(d.reason[:2000]),
                    _jsonb(d.payload),
                )
                for d in letters
            ],
            operation="insert_dead_letters",
        )

    async def newest(self, *, project: str | None = None, limit: int = 50) -> list[StoredLetter]:
        where, params = ("WHERE project_id = %s", [project]) if project else ("", [])
        return await self._select(f"{where} ORDER BY id DESC LIMIT %s", (*params, limit), "list_dead_letters")

    async def by_id(self, ids: list[int]) -> list[StoredLetter]:
        return await self._select("WHERE id = ANY(%s) ORDER BY id", (ids,), "select_dead_letters")

    async def not_requeued(self, *, project: str | None = None) -> list[StoredLetter]:
        where, params = ("AND project_id = %s", (project,)) if project else ("", ())
        return await self._select(f"WHERE requeued_at IS NULL {where} ORDER BY id", params, "select_dead_letters")

    async def mark_requeued(self, ids: list[int]) -> None:
        await self._pg.execute(
            "UPDATE dead_letters SET requeued_at = now() WHERE id = ANY(%s)", (ids,), operation="mark_requeued"
        )

    async def _select(self, rest: str, params: Any, operation: str) -> list[StoredLetter]:
        rows = await self._pg.fetch(f"SELECT {_COLUMNS} FROM dead_letters {rest}", params, operation=operation)
        return [StoredLetter(*r) for r in rows]


def _text(value: str) -> str:
    # Postgres text cannot hold NUL; a poison event may well contain one.
    return value.replace("\x00", "\ufffd")


def _jsonb(payload: bytes) -> str:
    try:
        orjson.loads(payload)
        text = payload.decode()
    except orjson.JSONDecodeError:
        text = orjson.dumps({"raw": payload.decode(errors="replace")}).decode()
    # Nor can jsonb hold \u0000. The table is for people; the topic keeps the exact bytes.
    return text.replace("\\u0000", "\\ufffd")
