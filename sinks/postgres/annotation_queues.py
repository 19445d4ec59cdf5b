"""The annotation queue tables (migration 0015): Langfuse's annotation queues, per project.

A queue names the score configs its reviewers score with; its items are traces, observations
or sessions to review, PENDING until COMPLETED; its assignments name who reviews. Items name
their object by id (it may not be stored yet, as with Langfuse's own queues fed from the UI).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sinks.postgres.client import Postgres, Refused, is_uuid

OBJECT_TYPES = ("TRACE", "OBSERVATION", "SESSION")
STATUSES = ("PENDING", "COMPLETED")
MAX_NAME = 255
MAX_DESCRIPTION = 10_000
MAX_ID = 1_000
MAX_CONFIGS = 100
_QUEUE = "id::text, name, description, score_config_ids, created_at, updated_at"
_ITEM = "id::text, queue_id::text, object_id, object_type, status, completed_at, created_at, updated_at"


class QueueError(Refused):
    """What a client sent cannot be stored or read as asked: `status` 400, 404 or 409."""


@dataclass(frozen=True)
class NewQueue:
    name: str
    description: str | None
    score_config_ids: list[str]


@dataclass(frozen=True)
class Queue:
    id: str
    name: str
    description: str | None
    score_config_ids: list[str]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class QueueItem:
    id: str
    queue_id: str
    object_id: str
    object_type: str
    status: str
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime


def _text(v: object, what: str, limit: int) -> str:
    if not isinstance(v, str) or not 0 < len(v) <= limit or "\x00" in v:
        raise QueueError(f"{what} must be a string of 1 to {limit} characters")
    return v


def status(v: object) -> str:
    if v not in STATUSES:
        raise QueueError(f"status must be one of {', '.join(STATUSES)}")
    return str(v)


def parse_queue(doc: object) -> NewQueue:
    if not isinstance(doc, dict):
        raise QueueError("the body must be an annotation queue object")
    description = doc.get("description")
    if description is not None:
        description = _text(description, "description", MAX_DESCRIPTION)
    ids = doc.get("scoreConfigIds")
    if not isinstance(ids, list) or len(ids) > MAX_CONFIGS or not all(isinstance(i, str) for i in ids):
        raise QueueError(f"scoreConfigIds must be a list of at most {MAX_CONFIGS} score config ids")
    return NewQueue(_text(doc.get("name"), "name", MAX_NAME), description, list(dict.fromkeys(ids)))


def parse_item(doc: object) -> tuple[str, str, str]:
    """(object type, object id, status) of a CreateAnnotationQueueItemRequest."""
    if not isinstance(doc, dict):
        raise QueueError("the body must be an annotation queue item object")
    kind = doc.get("objectType")
    if kind not in OBJECT_TYPES:
        raise QueueError(f"objectType must be one of {', '.join(OBJECT_TYPES)}")
    given = doc.get("status")
    return str(kind), _text(doc.get("objectId"), "objectId", MAX_ID), "PENDING" if given is None else status(given)


def parse_user(doc: object) -> str:
    if not isinstance(doc, dict):
        raise QueueError("the body must be an object with userId")
    return _text(doc.get("userId"), "userId", MAX_ID)


def _uuid(v: str, what: str) -> str:
    if not is_uuid(v):
        raise QueueError(f"{what} not found within authorized project", status=404)
    return v


class QueueTable:
    def __init__(self, pg: Postgres) -> None:
        self._pg = pg

    async def create(self, project_id: str, new: NewQueue) -> Queue:
        async with self._pg.transaction(operation="pg_queue_create") as tx:
            ids = [i for i in new.score_config_ids if is_uuid(i)]
            found = await tx.fetch(
                "SELECT id::text FROM score_configs WHERE project_id = %s AND id = ANY(%s::uuid[])",
                (project_id, ids),
                operation="pg_queue_configs",
            )
            missing = set(new.score_config_ids) - {r[0] for r in found}
            if missing:
                raise QueueError(f"score configs not found within authorized project: {sorted(missing)}")
            rows = await tx.fetch(
                "INSERT INTO annotation_queues (project_id, name, description, score_config_ids)"
                f" VALUES (%s, %s, %s, %s) ON CONFLICT (project_id, name) DO NOTHING RETURNING {_QUEUE}",
                (project_id, new.name, new.description, new.score_config_ids),
                operation="pg_queue_insert",
            )
            if not rows:
                raise QueueError(f"an annotation queue named {new.name!r} exists", status=409)
        return _queue(rows[0])

    async def get(self, project_id: str, queue_id: str) -> Queue:
        rows = await self._pg.fetch(
            f"SELECT {_QUEUE} FROM annotation_queues WHERE project_id = %s AND id = %s::uuid",
            (project_id, _uuid(queue_id, "Annotation queue")),
            operation="pg_queue_get",
        )
        if not rows:
            raise QueueError("Annotation queue not found within authorized project", status=404)
        return _queue(rows[0])

    async def queues(self, project_id: str, limit: int, offset: int) -> tuple[list[Queue], int]:
        rows = await self._pg.fetch(
            f"SELECT {_QUEUE} FROM annotation_queues WHERE project_id = %s"
            " ORDER BY created_at DESC, id LIMIT %s OFFSET %s",
            (project_id, limit, offset),
            operation="pg_queue_list",
        )
        total = await self._count("annotation_queues WHERE project_id = %s", (project_id,))
        return [_queue(r) for r in rows], total

    async def add_item(self, project_id: str, queue_id: str, kind: str, object_id: str, state: str) -> QueueItem:
        await self.get(project_id, queue_id)
        rows = await self._pg.fetch(
            "INSERT INTO annotation_queue_items (project_id, queue_id, object_type, object_id, status, completed_at)"
            " VALUES (%s, %s::uuid, %s, %s, %s, CASE WHEN %s = 'COMPLETED' THEN now() END)"
            f" RETURNING {_ITEM}",
            (project_id, queue_id, kind, object_id, state, state),
            operation="pg_queue_item_insert",
        )
        return _item(rows[0])

    async def item(self, project_id: str, queue_id: str, item_id: str) -> QueueItem:
        rows = await self._pg.fetch(
            f"SELECT {_ITEM} FROM annotation_queue_items"
            " WHERE project_id = %s AND queue_id = %s::uuid AND id = %s::uuid",
            (project_id, _uuid(queue_id, "Annotation queue"), _uuid(item_id, "Annotation queue item")),
            operation="pg_queue_item_get",
        )
        if not rows:
            raise QueueError("Annotation queue item not found within authorized project", status=404)
        return _item(rows[0])

    async def items(
        self, project_id: str, queue_id: str, state: str | None, limit: int, offset: int
    ) -> tuple[list[QueueItem], int]:
        await self.get(project_id, queue_id)
        matching = "annotation_queue_items WHERE project_id = %s AND queue_id = %s::uuid"
        args: tuple[Any, ...] = (project_id, queue_id)
        if state is not None:
            matching += " AND status = %s"
            args += (state,)
        rows = await self._pg.fetch(
            f"SELECT {_ITEM} FROM {matching} ORDER BY created_at, id LIMIT %s OFFSET %s",
            (*args, limit, offset),
            operation="pg_queue_items",
        )
        return [_item(r) for r in rows], await self._count(matching, args)

    async def set_status(self, project_id: str, queue_id: str, item_id: str, state: str | None) -> QueueItem:
        await self.item(project_id, queue_id, item_id)
        if state is None:
            return await self.item(project_id, queue_id, item_id)
        rows = await self._pg.fetch(
            "UPDATE annotation_queue_items SET status = %s, updated_at = now(),"
            " completed_at = CASE WHEN %s = 'COMPLETED' THEN coalesce(completed_at, now()) END"
            f" WHERE project_id = %s AND queue_id = %s::uuid AND id = %s::uuid RETURNING {_ITEM}",
            (state, state, project_id, queue_id, item_id),
            operation="pg_queue_item_update",
        )
        if not rows:
            raise QueueError("Annotation queue item not found within authorized project", status=404)
        return _item(rows[0])

    async def remove_item(self, project_id: str, queue_id: str, item_id: str) -> None:
        await self.item(project_id, queue_id, item_id)
        await self._pg.execute(
            "DELETE FROM annotation_queue_items WHERE project_id = %s AND queue_id = %s::uuid AND id = %s::uuid",
            (project_id, queue_id, item_id),
            operation="pg_queue_item_delete",
        )

    async def assign(self, project_id: str, queue_id: str, user_id: str) -> None:
        await self.get(project_id, queue_id)
        await self._pg.execute(
            "INSERT INTO annotation_queue_assignments (project_id, queue_id, user_id) VALUES (%s, %s::uuid, %s)"
            " ON CONFLICT DO NOTHING",
            (project_id, queue_id, user_id),
            operation="pg_queue_assign",
        )

    async def unassign(self, project_id: str, queue_id: str, user_id: str) -> None:
        await self.get(project_id, queue_id)
        await self._pg.execute(
            "DELETE FROM annotation_queue_assignments WHERE project_id = %s AND queue_id = %s::uuid AND user_id = %s",
            (project_id, queue_id, user_id),
            operation="pg_queue_unassign",
        )

    async def _count(self, matching: str, args: tuple[Any, ...]) -> int:
        ((total,),) = await self._pg.fetch(f"SELECT count(*) FROM {matching}", args, operation="pg_queue_count")
        return int(total)


def _queue(row: tuple[Any, ...]) -> Queue:
    id_, name, description, configs, created, updated = row
    return Queue(id_, name, description, list(configs), created, updated)


def _item(row: tuple[Any, ...]) -> QueueItem:
    return QueueItem(*row)
