"""The `prompts` table (migration 0011): Langfuse's prompt management, per project.

A prompt is a name with numbered versions, each a text or a list of chat messages with a
config. A label names at most one version of a prompt: setting it on one takes it from the
others, and `latest` follows the newest version. Tags are the prompt's, the same on every
version. A new version of a name is numbered under a transaction-scoped advisory lock on the
name, so concurrent creates get consecutive versions instead of a key conflict.

A prompt's text may include another's (`@@@langfusePrompt:name=N|label=L@@@` or `|version=V`):
`resolve` replaces those references with the referenced text prompts, as Langfuse serves them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from sinks.postgres.client import Postgres, Refused, Transaction

LATEST = "latest"
PRODUCTION = "production"
MAX_NAME = 255
MAX_LABEL = 36
MAX_LIST = 50
_LABEL = re.compile(r"[a-z0-9_.\-]+")
# In JSON text: the reference may not leave its string (no unescaped quote inside).
_REFERENCE = re.compile(r'@@@langfusePrompt:((?:[^"\\]|\\.)*?)@@@')
# How deep references may nest (Langfuse's limit too); deeper is a cycle or a mistake.
MAX_DEPTH = 5
# References replaced in one read: each distinct one costs a query.
MAX_REFERENCES = 100
# A version's prompt and config, encoded: far above any real prompt, and small enough that a
# burst of reads of the largest stays within the api's memory budget.
MAX_PROMPT_BYTES = 1024 * 1024
# pg_advisory_xact_lock's first key: 7261 the migrations', 7262 the purge's.
_NAME_LOCK = 7263
_COLUMNS = (
    "name, version, id::text, type, prompt::text, config::text, labels, tags, commit_message, created_at, updated_at"
)


class PromptError(Refused):
    """What a client sent cannot be stored or read as asked: `status` 400, 404 or 413."""


@dataclass(frozen=True)
class NewPrompt:
    name: str
    type: str
    prompt: bytes  # JSON, as stored
    config: bytes
    labels: list[str]
    tags: list[str] | None
    commit_message: str | None


@dataclass
class PromptVersion:
    """A stored version; its prompt and config as their JSON text, never parsed (a read of a
    large prompt holds its text, not its objects too; references are resolved in the text)."""

    name: str
    version: int
    id: str
    type: str
    prompt_json: str
    config_json: str
    labels: list[str]
    tags: list[str]
    commit_message: str | None
    created_at: datetime
    updated_at: datetime
    resolution_graph: dict[str, Any] | None = field(default=None)


@dataclass(frozen=True)
class PromptMeta:
    name: str
    type: str
    versions: list[int]
    labels: list[str]
    tags: list[str]
    last_updated_at: datetime
    last_config_json: str


def check_name(name: object) -> str:
    """Langfuse's rules: at most 255 characters, no `|` (the reference syntax's separator), and
    `/` only between folder names."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        raise PromptError(f"name must be a non-empty string of at most {MAX_NAME} characters")
    if "|" in name or "\x00" in name or name.startswith("/") or name.endswith("/") or "//" in name:
        raise PromptError("name must not contain '|' or NUL, nor start, end or repeat '/'")
    return name


def check_labels(labels: object, what: str = "labels") -> list[str]:
    if labels is None:
        return []
    if not isinstance(labels, list) or len(labels) > MAX_LIST:
        raise PromptError(f"{what} must be a list of at most {MAX_LIST} labels")
    for label in labels:
        if not isinstance(label, str) or len(label) > MAX_LABEL or not _LABEL.fullmatch(label):
            raise PromptError(
                f"each of {what} must be 1 to {MAX_LABEL} characters of lowercase letters, digits, '_', '-' or '.'"
            )
    return sorted(set(labels))


def parse_new(doc: object) -> NewPrompt:
    """A CreatePromptRequest (text or chat), validated."""
    if not isinstance(doc, dict):
        raise PromptError("the body must be a prompt object")
    name = check_name(doc.get("name"))
    prompt = doc.get("prompt")
    kind = doc.get("type")
    if kind is None:
        kind = "chat" if isinstance(prompt, list) else "text"
    if kind == "text":
        if not isinstance(prompt, str):
            raise PromptError("a text prompt's prompt must be a string")
    elif kind == "chat":
        prompt = _chat_messages(prompt)
    else:
        raise PromptError("type must be 'text' or 'chat'")
    config = doc.get("config")
    labels = check_labels(doc.get("labels"))
    tags = doc.get("tags")
    if tags is not None and (
        not isinstance(tags, list)
        or len(tags) > MAX_LIST
        or not all(isinstance(t, str) and 0 < len(t) <= MAX_NAME and "\x00" not in t for t in tags)
    ):
        raise PromptError(f"tags must be a list of at most {MAX_LIST} non-empty strings")
    message = doc.get("commitMessage")
    if message is not None and (not isinstance(message, str) or "\x00" in message):
        raise PromptError("commitMessage must be a string")
    try:  # what the store writes must encode (orjson's depth limit is below its parser's)
        encoded, encoded_config = orjson.dumps(prompt), orjson.dumps({} if config is None else config)
    except orjson.JSONEncodeError:
        raise PromptError("the prompt or its config is nested too deeply") from None
    if len(encoded) + len(encoded_config) > MAX_PROMPT_BYTES:
        raise PromptError(f"a prompt and its config may take at most {MAX_PROMPT_BYTES} bytes as JSON", status=413)
    return NewPrompt(
        name=name,
        type=kind,
        prompt=encoded,
        config=encoded_config,
        # `latest` is kept by the store, whatever a client says.
        labels=[label for label in labels if label != LATEST],
        tags=None if tags is None else sorted(set(tags)),
        commit_message=message,
    )


def _chat_messages(prompt: object) -> list[dict[str, Any]]:
    if not isinstance(prompt, list):
        raise PromptError("a chat prompt's prompt must be a list of messages")
    out: list[dict[str, Any]] = []
    for n, message in enumerate(prompt):
        if not isinstance(message, dict):
            raise PromptError(f"message {n} must be an object")
        kind = message.get("type")
        if kind == "placeholder":
            if not isinstance(message.get("name"), str) or not message["name"]:
                raise PromptError(f"placeholder {n} needs a name")
            out.append({"type": "placeholder", "name": message["name"]})
        elif kind in (None, "chatmessage"):
            role, content = message.get("role"), message.get("content")
            if not isinstance(role, str) or not isinstance(content, str):
                raise PromptError(f"message {n} needs a role and a content, both strings")
            out.append({"role": role, "content": content} | ({"type": kind} if kind else {}))
        else:
            raise PromptError(f"message {n}'s type must be 'chatmessage' or 'placeholder'")
    return out


class PromptTable:
    def __init__(self, pg: Postgres) -> None:
        self._pg = pg

    async def create(self, project_id: str, new: NewPrompt) -> PromptVersion:
        async with self._pg.transaction(operation="pg_prompt_create") as tx:
            await _lock(tx, project_id, new.name)
            rows = await tx.fetch(
                "SELECT version, tags, type FROM prompts WHERE project_id = %s AND name = %s "
                "ORDER BY version DESC LIMIT 1",
                (project_id, new.name),
                operation="pg_prompt_last",
            )
            last, last_tags, last_type = rows[0] if rows else (0, [], None)
            if last_type is not None and last_type != new.type:
                raise PromptError(f"prompt {new.name!r} is a {last_type} prompt; a new version must be one too")
            labels = sorted({*new.labels, LATEST})
            await _take_labels(tx, project_id, new.name, labels)
            tags = new.tags if new.tags is not None else (last_tags or [])
            if new.tags is not None:
                await tx.execute(
                    "UPDATE prompts SET tags = %s, updated_at = now() WHERE project_id = %s AND name = %s",
                    (tags, project_id, new.name),
                    operation="pg_prompt_tags",
                )
            rows = await tx.fetch(
                "INSERT INTO prompts (project_id, name, version, type, prompt, config, labels, tags, commit_message) "
                f"VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s) RETURNING {_COLUMNS}",
                (
                    project_id,
                    new.name,
                    last + 1,
                    new.type,
                    new.prompt.decode(),
                    new.config.decode(),
                    labels,
                    tags,
                    new.commit_message,
                ),
                operation="pg_prompt_insert",
            )
        return _version(rows[0])

    async def get(self, project_id: str, name: str, *, version: int | None, label: str | None) -> PromptVersion:
        """The version asked for, or the one labelled (`production` when neither is given)."""
        arg: object
        if version is not None:
            where, arg = "version = %s", version
        else:
            where, arg = "%s = ANY(labels)", label or PRODUCTION
        rows = await self._pg.fetch(
            f"SELECT {_COLUMNS} FROM prompts WHERE project_id = %s AND name = %s AND {where}",
            (project_id, name, arg),
            operation="pg_prompt_get",
        )
        if not rows:
            asked = f"version {version}" if version is not None else f"label {label or PRODUCTION!r}"
            raise PromptError(f"Prompt not found: {name!r} with {asked}", status=404)
        return _version(rows[0])

    async def ids(self, project_id: str, versions: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """The ids of these (name, version) pairs that exist: what a generation that names its
        prompt links to (Langfuse's promptId)."""
        if not versions:
            return {}
        rows = await self._pg.fetch(
            "SELECT p.name, p.version, p.id::text FROM prompts p "
            "JOIN unnest(%s::text[], %s::int[]) AS asked(name, version) USING (name, version) "
            "WHERE p.project_id = %s",
            ([n for n, _ in versions], [v for _, v in versions], project_id),
            operation="pg_prompt_ids",
        )
        return {(name, version): prompt_id for name, version, prompt_id in rows}

    async def resolve(self, project_id: str, found: PromptVersion) -> PromptVersion:
        """`found` with its references to other prompts replaced by their texts (nested up to
        MAX_DEPTH), and the graph of what it included; unchanged when it has none.

        Done on the stored JSON text, not on objects parsed from it: a reference sits inside a
        JSON string, so the included prompt's text, itself JSON-escaped, goes in its place as it
        is. Parsing a large chat prompt made ~10x its size of objects per read."""
        if "@@@langfusePrompt:" not in found.prompt_json:
            return found
        # An object, not a recursive closure: that is a reference cycle holding the prompt,
        # which the api's rare full collections (cli.tune_gc) freed only megabytes later.
        resolution = _Resolution(self, project_id, found)
        resolved = await resolution.text_of(found.prompt_json, found, 1)
        if resolution.graph:
            found.prompt_json = resolved
            found.resolution_graph = {
                "root": {"id": found.id, "name": found.name, "version": found.version},
                "dependencies": resolution.graph,
            }
        return found

    async def reference(self, project_id: str, spec: str) -> PromptVersion:
        """The version a reference's `name=N|label=L` or `|version=V` names."""
        params = dict(part.split("=", 1) for part in spec.split("|") if "=" in part)
        name, version = params.get("name"), params.get("version")
        if not name:
            raise PromptError(f"the prompt reference {spec!r} names no prompt")
        if version is not None and not (version.isascii() and version.isdigit() and len(version) <= 9):
            raise PromptError(f"the prompt reference {spec!r} has a version that is not a number")
        try:
            return await self.get(
                project_id, name, version=int(version) if version else None, label=params.get("label")
            )
        except PromptError as exc:
            raise PromptError(f"a referenced prompt is missing: {exc}") from None

    async def set_labels(self, project_id: str, name: str, version: int, labels: list[str]) -> PromptVersion:
        """Add `labels` to one version, taking them from the others (Langfuse's PATCH)."""
        async with self._pg.transaction(operation="pg_prompt_labels") as tx:
            await _lock(tx, project_id, name)
            await _take_labels(tx, project_id, name, labels, keep=version)
            rows = await tx.fetch(
                "UPDATE prompts SET labels = ARRAY(SELECT DISTINCT unnest(labels || %s::text[]) ORDER BY 1), "
                f"updated_at = now() WHERE project_id = %s AND name = %s AND version = %s RETURNING {_COLUMNS}",
                (labels, project_id, name, version),
                operation="pg_prompt_label",
            )
        if not rows:
            raise PromptError(f"Prompt not found: {name!r} with version {version}", status=404)
        return _version(rows[0])

    async def delete(self, project_id: str, name: str, *, version: int | None, label: str | None) -> int:
        """Delete the prompt's versions (those of `version`, or labelled `label`); `latest` moves
        to the newest version left. How many were deleted."""
        where = ""
        args: list[object] = []
        if version is not None:
            where, args = " AND version = %s", [version]
        elif label is not None:
            where, args = " AND %s = ANY(labels)", [label]
        async with self._pg.transaction(operation="pg_prompt_delete") as tx:
            await _lock(tx, project_id, name)
            gone = await tx.execute(
                f"DELETE FROM prompts WHERE project_id = %s AND name = %s{where}",
                (project_id, name, *args),
                operation="pg_prompt_delete",
            )
            await tx.execute(
                "UPDATE prompts SET labels = ARRAY(SELECT DISTINCT unnest(labels || %s::text[]) ORDER BY 1) "
                "WHERE project_id = %s AND name = %s AND NOT (%s = ANY(labels)) AND version = "
                "(SELECT max(version) FROM prompts WHERE project_id = %s AND name = %s)",
                ([LATEST], project_id, name, LATEST, project_id, name),
                operation="pg_prompt_relatest",
            )
        return gone

    async def names(
        self,
        project_id: str,
        *,
        name: str | None,
        label: str | None,
        tag: str | None,
        since: datetime | None,
        until: datetime | None,
        offset: int,
        limit: int,
    ) -> tuple[list[PromptMeta], int]:
        """One entry per prompt name with versions matching the filters, by name."""
        where, args = ["project_id = %s"], [project_id]
        for clause, value in (
            ("name = %s", name),
            ("%s = ANY(labels)", label),
            ("%s = ANY(tags)", tag),
            ("updated_at >= %s", since),
            ("updated_at < %s", until),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)  # type: ignore[arg-type]
        matching = f"SELECT * FROM prompts WHERE {' AND '.join(where)}"
        rows = await self._pg.fetch(
            f"WITH m AS ({matching}), "
            "names AS (SELECT name, count(*) OVER () AS total FROM m GROUP BY name ORDER BY name LIMIT %s OFFSET %s), "
            "newest AS (SELECT DISTINCT ON (name) name, type, tags, config::text AS config FROM m "
            "WHERE name IN (SELECT name FROM names) ORDER BY name, version DESC) "
            "SELECT n.name, newest.type, ARRAY(SELECT version FROM m WHERE m.name = n.name ORDER BY 1), "
            "ARRAY(SELECT DISTINCT l FROM m, unnest(m.labels) AS l WHERE m.name = n.name ORDER BY 1), "
            "newest.tags, (SELECT max(updated_at) FROM m WHERE m.name = n.name), newest.config, n.total "
            "FROM names AS n JOIN newest USING (name) ORDER BY n.name",
            (*args, limit, offset),
            operation="pg_prompt_list",
        )
        total = int(rows[0][7]) if rows else await self._count(matching, args)
        return [
            PromptMeta(
                name=r[0],
                type=r[1],
                versions=list(r[2]),
                labels=list(r[3]),
                tags=list(r[4]),
                last_updated_at=r[5],
                last_config_json=r[6],
            )
            for r in rows
        ], total

    async def _count(self, matching: str, args: list[Any]) -> int:
        # A page past the end has no row to carry the total.
        ((n,),) = await self._pg.fetch(
            f"SELECT count(DISTINCT name) FROM ({matching}) AS m", tuple(args), operation="pg_prompt_count"
        )
        return int(n)


class _Resolution:
    """One read's replacement of references, on JSON text: a reference sits inside a JSON
    string, so the included prompt's text, itself JSON-escaped, goes in its place as it is."""

    def __init__(self, table: PromptTable, project_id: str, root: PromptVersion) -> None:
        self.table = table
        self.project_id = project_id
        self.root = root
        self.graph: dict[str, list[dict[str, Any]]] = {}
        self.children: dict[str, PromptVersion] = {}  # by reference: each is read once
        self.replaced = 0

    async def text_of(self, escaped: str, parent: PromptVersion, depth: int) -> str:
        if "@@@langfusePrompt:" not in escaped:
            return escaped
        out, at, size = [], 0, len(escaped)
        for match in _REFERENCE.finditer(escaped):
            self.replaced += 1
            if self.replaced > MAX_REFERENCES:
                raise PromptError(f"a prompt may include at most {MAX_REFERENCES} references when resolved")
            spec = match.group(1)
            child = self.children.get(spec)
            if child is None:
                child = await self.table.reference(self.project_id, orjson.loads(f'"{spec}"'))
                self.children[spec] = child
            if depth >= MAX_DEPTH or child.name == self.root.name:
                raise PromptError(f"prompt references nest deeper than {MAX_DEPTH} or form a cycle")
            if child.type != "text":
                raise PromptError(f"prompt {child.name!r} is a chat prompt and cannot be included in another")
            self.graph.setdefault(parent.id, []).append({"id": child.id, "name": child.name, "version": child.version})
            # A text prompt's JSON is one string: its inside is the text, escaped.
            text = await self.text_of(child.prompt_json[1:-1], child, depth + 1)
            size += len(text)
            if size > MAX_PROMPT_BYTES:  # a prompt naming a large one many times
                raise PromptError(f"the prompt with its references resolved exceeds {MAX_PROMPT_BYTES} characters")
            out += [escaped[at : match.start()], text]
            at = match.end()
        return "".join([*out, escaped[at:]])


async def _lock(tx: Transaction, project_id: str, name: str) -> None:
    await tx.execute(
        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
        (_NAME_LOCK, f"{project_id}\x1f{name}"),
        operation="pg_prompt_lock",
    )


async def _take_labels(tx: Transaction, project_id: str, name: str, labels: list[str], keep: int = 0) -> None:
    """A label names one version: take `labels` from the prompt's versions other than `keep`."""
    if labels:
        await tx.execute(
            "UPDATE prompts SET labels = ARRAY(SELECT unnest(labels) EXCEPT SELECT unnest(%s::text[]) ORDER BY 1), "
            "updated_at = now() WHERE project_id = %s AND name = %s AND version <> %s AND labels && %s::text[]",
            (labels, project_id, name, keep, labels),
            operation="pg_prompt_take_labels",
        )


def _version(row: tuple[Any, ...]) -> PromptVersion:
    name, version, id_, kind, prompt, config, labels, tags, message, created, updated = row
    return PromptVersion(
        name=name,
        version=version,
        id=id_,
        type=kind,
        prompt_json=prompt,
        config_json=config,
        labels=list(labels),
        tags=list(tags),
        commit_message=message,
        created_at=created,
        updated_at=updated,
    )
