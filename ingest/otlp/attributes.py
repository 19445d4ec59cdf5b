"""OTLP attribute values as plain Python, and the coercions the mapping tables apply to them.

`AnyValue` becomes str, bool, int, float, list, dict or None; bytes become lowercase hex.
A coercion returns `SKIP` when a value cannot serve its target (a non-numeric token count, an
unknown observation type), so the next source in precedence order gets its turn. Coercions
never raise: whatever a client sends, the span maps.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any, Final

import orjson

from pipeline.times import MAX_US, MIN_US, to_micros

SKIP: Final[Any] = object()


# Events are serialized with orjson, which refuses more than 254 levels of nesting; values are
# kept well within that, counting the levels of the event around them.
MAX_DEPTH: Final = 128
TOO_DEEP: Final = f"[nested deeper than {MAX_DEPTH} levels]"
# A decimal number as text (number_text): longer ones stay text.
_NUMBER: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_NUMBER_TEXT: Final = 32


def any_value(v: Any, depth: int = 0) -> Any:
    """An `opentelemetry.proto.common.v1.AnyValue` as a Python value (None when unset).

    Arrays and key-value lists nested deeper than MAX_DEPTH are replaced by TOO_DEEP.
    """
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        return v.double_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "array_value":
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        return [any_value(x, depth + 1) for x in v.array_value.values]
    if kind == "kvlist_value":
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        return {kv.key: any_value(kv.value, depth + 1) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return None


def flat(attributes: Iterable[Any]) -> list[Any]:
    """Repeated `KeyValue` as one list, each key followed by its converted value: as wire.py
    reads them already (a list), or laid out so from upb's messages (OTLP/JSON)."""
    if type(attributes) is list:
        return attributes
    return [x for kv in attributes for x in (kv.key, any_value(kv.value))]


def attributes_dict(attributes: Iterable[Any]) -> dict[str, Any]:
    """Repeated `KeyValue` as a dict; a repeated key keeps its last value."""
    pairs = iter(flat(attributes))
    return dict(zip(pairs, pairs, strict=False))  # one iterator twice: key, then its value


# --- coercions ----------------------------------------------------------------------------


def json_text(value: Any) -> Any:
    """A string holding a JSON object, array or string is parsed; anything else is kept."""
    if type(value) is str and value:
        first = value[0]
        if first in " \t\r\n":
            stripped = value.lstrip()
            first = stripped[:1]
        if first in ("{", "[", '"'):
            try:
                parsed = orjson.loads(value)
            except orjson.JSONDecodeError:
                return value
            # Only a string with that many brackets can nest too deep; then measure.
            if value.count("[") + value.count("{") > MAX_DEPTH and _deeper_than(parsed):
                return value
            return parsed
    return value


def _deeper_than(obj: Any, limit: int = MAX_DEPTH) -> bool:
    stack = [(obj, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if type(node) is dict:
            stack.extend((child, depth + 1) for child in node.values())
        elif type(node) is list:
            stack.extend((child, depth + 1) for child in node)
    return False


def json_object(value: Any) -> Any:
    """A dict, or a string holding a JSON object."""
    if type(value) is str:
        value = json_text(value)
    return value if type(value) is dict else SKIP


def text(value: Any) -> Any:
    """A non-empty string; numbers are written out, other values are skipped."""
    if type(value) is str:
        return value if value else SKIP
    if type(value) in (int, float):
        return str(value)
    return SKIP


MAX_COUNT: Final = (1 << 63) - 1


def count(value: Any) -> Any:
    """A token count: a non-negative int64 from an int, a float or a numeric string.

    Booleans are not counts; fractions are truncated.
    """
    t = type(value)
    if t is int:
        n = value
    elif t is float:
        if not math.isfinite(value):
            return SKIP
        n = int(value)
    elif t is str:
        try:
            n = int(value)
        except ValueError:
            try:
                f = float(value)
            except ValueError:
                return SKIP
            if not math.isfinite(f):
                return SKIP
            n = int(f)
    else:
        return SKIP
    return n if 0 <= n <= MAX_COUNT else SKIP


def amount(value: Any) -> Any:
    """A cost as a finite float or int."""
    t = type(value)
    if t is int:
        return value
    if t is float:
        return value if math.isfinite(value) else SKIP
    if t is str:
        try:
            f = float(value)
        except ValueError:
            return SKIP
        return f if math.isfinite(f) else SKIP
    return SKIP


def _map_of(coerce_value: Callable[[Any], Any], doc: str) -> Callable[[Any], Any]:
    def coerce_map(value: Any) -> Any:
        obj = json_object(value)
        if obj is SKIP:
            return SKIP
        out = {}
        for k, v in obj.items():
            x = coerce_value(v)
            if x is not SKIP:
                out[k] = x
        return out

    coerce_map.__doc__ = doc
    return coerce_map


counts_map: Final = _map_of(
    count, "A usage object (dict or JSON) with its counts coerced; keys without a count dropped."
)
amounts_map: Final = _map_of(
    amount, "A cost object (dict or JSON) with its amounts coerced; keys without an amount dropped."
)


def flag(value: Any) -> Any:
    if type(value) is bool:
        return value
    if type(value) is str:
        low = value.strip().lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
    return SKIP


def tag_list(value: Any) -> Any:
    """Tags from an array, a JSON array string, or a comma-separated string."""
    if type(value) is str:
        if value.lstrip().startswith("["):
            value = json_text(value)
        else:
            tags = [t.strip() for t in value.split(",")]
            return [t for t in tags if t] or SKIP
    if type(value) is list:
        return [t if type(t) is str else orjson.dumps(t).decode() for t in value] or SKIP
    return SKIP


def number_text(value: Any) -> Any:
    """A value as given, except a string that is a decimal number: that number."""
    if type(value) is str and 0 < len(value) <= _NUMBER_TEXT and _NUMBER.fullmatch(value):
        if "." not in value and "e" not in value and "E" not in value:
            return int(value)
        number = float(value)
        return number if math.isfinite(number) else value
    return value


def prompt_version(value: Any) -> Any:
    n = count(value)
    return n if n is not SKIP else text(value)


def timestamp(value: Any) -> Any:
    """µs from an ISO 8601 string (also JSON-quoted, as older SDKs send it) or unix nanoseconds,
    within what the stores hold."""
    t = type(value)
    us: int | None = None
    if t is str:
        try:
            us = to_micros(value.strip().strip('"'))
        except (ValueError, OverflowError):
            return SKIP
    elif t is int:
        us = value // 1000
    return us if us is not None and MIN_US <= us < MAX_US else SKIP


def one_of(mapping: dict[str, str], fold: Any = str.lower) -> Any:
    """A coercion to a closed vocabulary, case-insensitively."""

    def coerce(value: Any) -> Any:
        if type(value) is str:
            return mapping.get(fold(value.strip()), SKIP)
        return SKIP

    return coerce
