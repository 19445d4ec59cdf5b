"""A row's field versions as stored in its `field_versions` column, compactly.

The fold keeps, per field, the event time that last set it (pipeline/fold.py). Written as a JSON
object of name to µs, that column was half of the bytes of an observation row (~440 of a
generation's ~850), which the server compresses on every insert and again on every merge.
Most fields of a row share one version (a span sets all of its fields at once; a create most of
its own), so the text says that version once:

    [base, mask, {"map column": [keys set at base]}, {"name": version of any other}]

`mask` names the fields of `BITS` at `base` (bit i: `BITS[i]`); map keys (`metadata.x`) at base
are listed by column; everything else keeps its name and version. The two trailing parts are
left out when empty. Rows written before hold the object form, which `versions_of` still reads.
"""

from __future__ import annotations

from typing import Final

import orjson

# Append only: the mask of every stored row refers to this order, which is why it is written out
# here rather than taken from the writer's COLUMNS (those may be reordered or dropped).
BITS: Final = (
    "trace_id",
    "parent_observation_id",
    "name",
    "start_time",
    "end_time",
    "completion_start_time",
    "level",
    "status_message",
    "version",
    "provided_model_name",
    "prompt_name",
    "prompt_version",
    "environment",
    "input",
    "output",
    "type",
    "timestamp",
    "user_id",
    "session_id",
    "release",
    "public",
    "observation_id",
    "dataset_run_id",
    "data_type",
    "comment",
    "config_id",
    "source",
    "value",
    "string_value",
)
_BIT_OF: Final = {name: 1 << i for i, name in enumerate(BITS)}


# The rest of the text after the version, by the names of a row whose fields share one version:
# rows of one kind (spans of one instrumentation) name the same fields, so most rows find theirs.
_tails: dict[tuple[str, ...], str] = {}
_MAX_TAILS: Final = 4096


def versions_text(versions: dict[str, int]) -> str:
    """The column's text for these versions; equal dicts give equal texts, in any key order."""
    if not versions:
        return "{}"
    base = _shared(versions)
    if base is not None:
        names = tuple(versions)
        tail = _tails.get(names)
        if tail is None:
            tail = _tail(names)
            if len(_tails) >= _MAX_TAILS:  # bounded: map keys are client-chosen
                _tails.clear()
            _tails[names] = tail
        if tail:
            return f"[{base},{tail}]"
    return _text(versions, _most_common(versions) if base is None else base)


def _tail(names: tuple[str, ...]) -> str:
    """`mask` and the map keys of these names as the text lists them, or "" when one of them
    needs its own entry."""
    mask = 0
    keys: dict[str, list[str]] = {}
    for name in names:
        bit = _BIT_OF.get(name)
        if bit is not None:
            mask |= bit
            continue
        column, dot, key = name.partition(".")
        if not dot:
            return ""
        keys.setdefault(column, []).append(key)
    if not keys:
        return str(mask)
    for listed in keys.values():
        listed.sort()
    return f"{mask},{orjson.dumps(keys, option=orjson.OPT_SORT_KEYS).decode()}"


def _text(versions: dict[str, int], base: int) -> str:
    mask = 0
    keys: dict[str, list[str]] = {}
    others: dict[str, int] = {}
    for name, version in versions.items():
        if version == base:
            bit = _BIT_OF.get(name)
            if bit is not None:
                mask |= bit
                continue
            column, dot, key = name.partition(".")
            if dot:
                listed = keys.get(column)
                if listed is None:
                    keys[column] = [key]
                else:
                    listed.append(key)
                continue
        others[name] = version
    if not keys and not others:
        return f"[{base},{mask}]"
    for listed in keys.values():
        listed.sort()
    doc: list[object] = [base, mask, keys]
    if others:
        doc.append(others)
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


def versions_of(text: str) -> dict[str, int]:
    """The versions a column's text holds, in either form; ValueError for anything else."""
    doc = orjson.loads(text or "{}")
    if type(doc) is dict:
        return doc
    if type(doc) is not list or not 2 <= len(doc) <= 4 or type(doc[0]) is not int or type(doc[1]) is not int:
        raise ValueError(f"not a field versions text: {text[:80]!r}")
    base, mask = doc[0], doc[1]
    out: dict[str, int] = {}
    i = 0
    while mask:
        if mask & 1:
            out[BITS[i]] = base
        mask >>= 1
        i += 1
    if len(doc) > 2:
        for column, listed in doc[2].items():
            for key in listed:
                out[f"{column}.{key}"] = base
    if len(doc) > 3:
        out.update(doc[3])
    return out


def _shared(versions: dict[str, int]) -> int | None:
    """The version every field has, if they all have one (`versions` is not empty)."""
    values = iter(versions.values())
    first = next(values)  # an int, not an optional one: the loop compares tagged integers
    for v in values:
        if v != first:
            return None
    return first


def _most_common(versions: dict[str, int]) -> int:
    """The version most fields have (the newest of those tied)."""
    counts: dict[int, int] = {}
    for v in versions.values():
        counts[v] = counts.get(v, 0) + 1
    best, most = 0, 0
    for v, n in counts.items():
        if n > most or (n == most and v > best):
            best, most = v, n
    return best
