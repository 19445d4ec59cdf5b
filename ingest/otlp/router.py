"""A ranked router from attribute keys to slots, compiled from declarative rows.

A row sends an attribute key to a *slot* `(group, field)` with a *rank*. When several keys of
one span feed a slot, the lowest rank wins whatever their order; a value its coercion cannot
use (`SKIP`) leaves the slot to the next source. Keys no row claims are returned unchanged as
metadata. Rows come in three kinds:

- exact: `(key, group, field, rank, coercion)`;
- prefixed: `(prefix, group, rank, coercion)`, the rest of the key names the field;
- indexed: `(prefix, group, field, rank, key prefix to drop, item keys kept, item shape)` for
  flattened lists such as `gen_ai.prompt.0.role`, which become `[{"role": ...}, ...]` in index
  order; with a set of item keys, the others stay metadata (None keeps all). Dotted item keys
  nest: `gen_ai.completion.0.tool_calls.0.name` is `[{"tool_calls": [{"name": ...}]}]`. The
  shape (or None) rewrites each nested item, for a convention whose items wrap their parts.

Exact rows win over prefixed ones. Prefix resolutions are cached, up to a bound, because
the same keys come back span after span; each span then costs one dict lookup per attribute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from ingest.otlp.attributes import SKIP, flat

Coerce = Callable[[Any], Any] | None
Slot = tuple[str, str]
Rule = tuple[Slot, int, Coerce]
Shape = Callable[[dict[str, Any]], dict[str, Any]] | None
IndexedRow = tuple[str, str, str, int, str, frozenset[str] | None, Shape]

WHOLE: Final = "*"  # the field of a dict group given whole, merged over its keys by the caller

_MAX_CACHED: Final = 8192


class _Indexed:
    __slots__ = ("index", "key", "rank", "slot")

    def __init__(self, slot: Slot, rank: int, index: int, key: str) -> None:
        self.slot, self.rank, self.index, self.key = slot, rank, index, key


_UNMAPPED: Final[tuple[Rule, ...]] = ()


class Router:
    def __init__(
        self,
        exact: Iterable[tuple[str, str, str, int, Coerce]],
        prefixed: Iterable[tuple[str, str, int, Coerce]] = (),
        indexed: Iterable[IndexedRow] = (),
    ) -> None:
        self._routes: dict[str, tuple[Rule, ...] | _Indexed] = {}
        for key, group, fld, rank, fn in exact:
            self._routes[key] = (*self._routes.get(key, ()), ((group, fld), rank, fn))  # type: ignore[misc]
        self._prefixed = tuple(prefixed)
        self._indexed = tuple(indexed)
        # A list's slot and rank name its row (no two rows share both).
        self._shapes = {((group, fld), rank): shape for _, group, fld, rank, _, _, shape in self._indexed}
        self._prefixes = tuple(row[0] for row in self._prefixed + self._indexed)
        self._max_routes = len(self._routes) + _MAX_CACHED

    def read(self, attributes: Iterable[Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        """Route OTLP `KeyValue`s: `(groups[group][field] = value, unclaimed metadata)`."""
        slots: dict[Slot, tuple[int, Any]] = {}
        metadata: dict[str, Any] = {}
        lists: dict[tuple[Slot, int], dict[int, dict[str, Any]]] | None = None
        routes = self._routes
        pairs = flat(attributes)
        for i in range(0, len(pairs) - 1, 2):
            key: str = pairs[i]
            value = pairs[i + 1]
            route = routes.get(key)
            if route is None:
                route = self._resolve(key)
            if route is _UNMAPPED:
                metadata[key] = value
            elif type(route) is _Indexed:
                if lists is None:
                    lists = {}
                items = lists.setdefault((route.slot, route.rank), {})
                items.setdefault(route.index, {})[route.key] = value
            else:
                claimed = False
                for slot, rank, fn in route:  # type: ignore[union-attr]
                    held = slots.get(slot)
                    if held is not None and held[0] <= rank:
                        claimed = True  # a better source already holds the slot
                        continue
                    v = fn(value) if fn is not None else value
                    if v is not SKIP:
                        slots[slot] = (rank, v)
                        claimed = True
                if not claimed:  # unusable for its target (a non-numeric count, say): keep it
                    metadata[key] = value
        if lists:
            for (slot, rank), items in lists.items():
                held = slots.get(slot)
                if held is None or held[0] > rank:
                    nested = [_nested(items[i]) for i in sorted(items)]
                    shape = self._shapes[(slot, rank)]
                    slots[slot] = (rank, nested if shape is None else [shape(item) for item in nested])

        groups: dict[str, dict[str, Any]] = {}
        for (group, fld), (_, value) in slots.items():
            g = groups.get(group)
            if g is None:
                groups[group] = g = {}
            g[fld] = value
        return groups, metadata

    def _resolve(self, key: str) -> tuple[Rule, ...] | _Indexed:
        route: tuple[Rule, ...] | _Indexed = _UNMAPPED
        if key.startswith(self._prefixes):
            route = self._resolve_prefixed(key)
        if len(self._routes) < self._max_routes:  # bounded: keys are client-chosen
            self._routes[key] = route
        return route

    def _resolve_prefixed(self, key: str) -> tuple[Rule, ...] | _Indexed:
        for prefix, group, fld, rank, drop, keep, _ in self._indexed:
            if key.startswith(prefix):
                index, _, rest = key[len(prefix) :].partition(".")
                if index.isascii() and index.isdigit() and rest:
                    if drop and rest.startswith(drop):
                        rest = rest[len(drop) :]
                    if keep is None or rest in keep:
                        return _Indexed((group, fld), rank, int(index), rest)
                return _UNMAPPED
        for prefix, group, rank, fn in self._prefixed:
            if key.startswith(prefix) and len(key) > len(prefix):
                return (((group, key[len(prefix) :]), rank, fn),)
        return _UNMAPPED


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    """An item's dotted keys as nested objects, numbered levels as lists in index order. A key
    that would overwrite a value (`a` and `a.b`) stays flat."""
    if not any("." in key for key in flat):
        return flat
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *path, last = key.split(".")
        node = out
        for step in path:
            child = node.setdefault(step, {})
            if type(child) is not dict:
                node = out
                last = key
                break
            node = child
        if last in node and type(node[last]) is dict:
            out[key] = value
        else:
            node[last] = value
    return _lists(out)


def _lists(node: Any) -> Any:
    if type(node) is not dict:
        return node
    items = {k: _lists(v) for k, v in node.items()}
    if items and all(k.isascii() and k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items
