"""Query parameters of the read API, parsed as Langfuse does; a malformed one is a 400 naming it.

Arrays arrive repeated from Python SDKs (`tags=a&tags=b`) and comma-joined from the JS SDK's
fetch* calls (`tags=a,b`), so list parameters take every value and split each on commas.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable
from datetime import datetime

import orjson
from aiohttp import web

from ingest.encoding import ClientError
from pipeline.times import micros_from_datetime

MAX_LIMIT = 100

OBSERVATION_TYPES = frozenset(
    {"GENERATION", "SPAN", "EVENT", "AGENT", "TOOL", "CHAIN", "RETRIEVER", "EVALUATOR", "EMBEDDING", "GUARDRAIL"}
)
LEVELS = frozenset({"DEBUG", "DEFAULT", "WARNING", "ERROR"})
SCORE_SOURCES = frozenset({"ANNOTATION", "API", "EVAL"})
SCORE_TYPES = frozenset({"NUMERIC", "BOOLEAN", "CATEGORICAL", "CORRECTION", "TEXT"})


class Params:
    def __init__(self, request: web.Request) -> None:
        self._q = request.query

    def text(self, name: str) -> str | None:
        """A string parameter; absent and empty are the same."""
        value = self._q.get(name)
        return value or None

    def items(self, name: str, split: bool = True) -> tuple[str, ...]:
        values: Iterable[str] = self._q.getall(name, [])
        if split:
            values = (part for v in values for part in v.split(","))
        return tuple(dict.fromkeys(v.strip() for v in values if v.strip()))

    def flag(self, name: str) -> bool | None:
        """A boolean parameter, `true` or `false`; None when absent."""
        raw = self.text(name)
        if raw is None:
            return None
        if raw.lower() not in ("true", "false"):
            raise ClientError(f"invalid {name}: {raw!r} is not true or false")
        return raw.lower() == "true"

    def number(self, name: str) -> float | None:
        """A finite number parameter; None when absent."""
        raw = self.text(name)
        return None if raw is None else finite(name, raw)

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self._q.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ClientError(f"invalid {name}: {raw!r} is not an integer") from None
        if not low <= value <= high:
            raise ClientError(f"invalid {name}: {value} is outside {low}..{high}")
        return value

    def page(self, max_limit: int = MAX_LIMIT) -> tuple[int, int]:
        """(page, limit): page from 1, limit 1..max_limit (default 50)."""
        return self.integer("page", 1, 1, 1_000_000), self.integer("limit", 50, 1, max_limit)

    def time(self, name: str) -> int | None:
        """An ISO 8601 datetime with Z or an offset, as µs since the epoch."""
        raw = self.text(name)
        return None if raw is None else self.from_iso(name, raw)

    @staticmethod
    def from_iso(name: str, raw: str) -> int:
        # An unescaped '+' of an offset arrives as a space.
        text = raw.replace(" ", "+") if raw.count(" ") == 1 and "T" in raw else raw
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ClientError(f"invalid {name}: {raw!r} is not an ISO 8601 datetime") from None
        if parsed.tzinfo is None:
            raise ClientError(f"invalid {name}: {raw!r} has no timezone (Z or an offset)")
        # Before the epoch nothing was recorded; 18.16 keeps times as unsigned µs.
        return max(0, micros_from_datetime(parsed))

    def choice(self, name: str, allowed: frozenset[str]) -> str | None:
        value = self.text(name)
        if value is not None and value.upper() not in allowed:
            raise ClientError(f"invalid {name}: {value!r} is not one of {', '.join(sorted(allowed))}")
        return None if value is None else value.upper()

    def choices(self, name: str, allowed: frozenset[str]) -> tuple[str, ...]:
        values = tuple(v.upper() for v in self.items(name))
        for v in values:
            if v not in allowed:
                raise ClientError(f"invalid {name}: {v!r} is not one of {', '.join(sorted(allowed))}")
        return values

    def groups(self, name: str, known: frozenset[str], default: frozenset[str]) -> frozenset[str]:
        """Comma-separated field groups; unknown names are dropped, none given means `default`."""
        given = frozenset(self.items(name)) & known
        return given or default


def finite(name: str, raw: str) -> float:
    """`raw` as a finite number; a 400 naming the parameter otherwise."""
    try:
        value = float(raw)
    except ValueError:
        raise ClientError(f"invalid {name}: {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ClientError(f"invalid {name}: {raw!r} is not a finite number")
    return value


def encode_cursor(doc: dict[str, object]) -> str:
    return base64.b64encode(orjson.dumps(doc)).decode()


def decode_cursor(raw: str | None) -> dict[str, object] | None:
    if raw is None:
        return None
    try:
        doc = orjson.loads(
            base64.b64decode(raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4), validate=True)
        )
    except (binascii.Error, ValueError):
        raise ClientError("invalid cursor: Invalid cursor format") from None
    if not isinstance(doc, dict):
        raise ClientError("invalid cursor: Invalid cursor format")
    return doc
