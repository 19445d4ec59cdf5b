"""The `comments` table (migration 0014): Langfuse's comments on traces, observations, sessions
and prompt versions, per project. Comments are added and read; the public API edits none."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sinks.postgres.client import Postgres, Refused, is_uuid

OBJECT_TYPES = ("TRACE", "OBSERVATION", "SESSION", "PROMPT")
# Langfuse's limit on a comment's content.
MAX_CONTENT = 5_000
MAX_ID = 1_000
_COLUMNS = "id::text, object_type, object_id, content, author_user_id, created_at, updated_at"


class CommentError(Refused):
    """What a client sent cannot be stored or read as asked: `status` 400 or 404."""


@dataclass(frozen=True)
class NewComment:
    object_type: str
    object_id: str
    content: str
    author_user_id: str | None


@dataclass(frozen=True)
class Comment:
    id: str
    object_type: str
    object_id: str
    content: str
    author_user_id: str | None
    created_at: datetime
    updated_at: datetime


def _text(doc: dict[str, Any], key: str, limit: int, *, required: bool = True) -> str | None:
    v = doc.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str) or not 0 < len(v) <= limit or "\x00" in v:
        raise CommentError(f"{key} must be a string of 1 to {limit} characters")
    return v


def object_type(v: object) -> str:
    if v not in OBJECT_TYPES:
        raise CommentError(f"objectType must be one of {', '.join(OBJECT_TYPES)}")
    return str(v)


def parse_new(doc: object) -> NewComment:
    """A CreateCommentRequest, validated; its projectId is the key's whatever it says, as in
    Langfuse."""
    if not isinstance(doc, dict):
        raise CommentError("the body must be a comment object")
    if not isinstance(doc.get("projectId"), str):
        raise CommentError("projectId must be a string")
    content = doc.get("content")
    content = content.strip() if isinstance(content, str) else content
    return NewComment(
        object_type=object_type(doc.get("objectType")),
        object_id=str(_text(doc, "objectId", MAX_ID)),
        content=str(_text({"content": content}, "content", MAX_CONTENT)),
        author_user_id=_text(doc, "authorUserId", MAX_ID, required=False),
    )


class CommentTable:
    def __init__(self, pg: Postgres) -> None:
        self._pg = pg

    async def create(self, project_id: str, new: NewComment) -> Comment:
        rows = await self._pg.fetch(
            "INSERT INTO comments (project_id, object_type, object_id, content, author_user_id)"
            f" VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (project_id, new.object_type, new.object_id, new.content, new.author_user_id),
            operation="pg_comment_create",
        )
        return _comment(rows[0])

    async def described(self, project_id: str, kind: str, object_id: str) -> bool:
        """Whether the session or prompt version a comment is about exists in the project (the
        stages project sessions here; prompts are the api's)."""
        if kind == "SESSION":
            sql = "SELECT 1 FROM sessions WHERE project_id = %s AND session_id = %s AND trace_count > 0"
        elif kind == "PROMPT" and is_uuid(object_id):
            sql = "SELECT 1 FROM prompts WHERE project_id = %s AND id = %s::uuid"
        else:
            return False
        return bool(await self._pg.fetch(sql, (project_id, object_id), operation="pg_comment_object"))

    async def get(self, project_id: str, comment_id: str) -> Comment:
        rows = (
            await self._pg.fetch(
                f"SELECT {_COLUMNS} FROM comments WHERE project_id = %s AND id = %s::uuid",
                (project_id, comment_id),
                operation="pg_comment_get",
            )
            if is_uuid(comment_id)
            else []
        )
        if not rows:
            raise CommentError("Comment not found within authorized project", status=404)
        return _comment(rows[0])

    async def page(
        self,
        project_id: str,
        *,
        object_type: str | None,
        object_id: str | None,
        author_user_id: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Comment], int]:
        where, args = ["project_id = %s"], [project_id]
        for column, value in (
            ("object_type", object_type),
            ("object_id", object_id),
            ("author_user_id", author_user_id),
        ):
            if value is not None:
                where.append(f"{column} = %s")
                args.append(value)
        matching = " AND ".join(where)
        rows = await self._pg.fetch(
            f"SELECT {_COLUMNS} FROM comments WHERE {matching} ORDER BY created_at, id LIMIT %s OFFSET %s",
            (*args, limit, offset),
            operation="pg_comment_list",
        )
        ((total,),) = await self._pg.fetch(
            f"SELECT count(*) FROM comments WHERE {matching}", tuple(args), operation="pg_comment_count"
        )
        return [_comment(r) for r in rows], int(total)


def _comment(row: tuple[Any, ...]) -> Comment:
    id_, kind, object_id, content, author, created, updated = row
    return Comment(id_, kind, object_id, content, author, created, updated)
