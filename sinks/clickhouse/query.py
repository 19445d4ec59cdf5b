"""SELECTs over the ReplacingMergeTree projections that stay fast as a project grows.

FINAL merges every part of the table at read time; over one project it costs as much as the
project is large, on every page. Instead each read takes the newest version of each id itself:
the inner SELECT is bounded by the sorting key (`project_id` first, then `id`) and, for a time
window, by the monthly partitions; `ORDER BY id, event_ts DESC LIMIT 1 BY id` keeps the newest
row per id (a row moved between partitions is deduplicated too, which FINAL would not do);
filters on mutable columns run after it, on the newest row only. 18.16 and current ClickHouse
both run this SQL.

`Select` collects the pieces and the query parameters; the column names are ours, every value
travels as a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.times import column_of_micros
from sinks.clickhouse.client import IDS_TABLE
from sinks.clickhouse.schema import BY_TRACE, Dialect, by_trace, by_traces_in_ids

MAX_EXECUTION_S = 10  # a read past this fails fast; the edge answers 503 with Retry-After


@dataclass
class Select:
    """One read of `table` for `project`: WHERE pieces before and after the deduplication."""

    table: str
    project: str
    dialect: Dialect
    params: dict[str, Any] = field(default_factory=dict)
    # Immutable in practice (the key, a trace's id): safe to test before deduplicating.
    keys: list[str] = field(default_factory=list)
    # Those on the id, tested before the other columns are read (PREWHERE): 18.16 moves a
    # condition there itself, but not one on a sorting-key column, and read every selected
    # column of every granule the key range gave in each part (a page of 50 traces of a large
    # project: 3.5 MB and 14 ms of CPU, against 0.5 MB and 7 ms).
    by_id: list[str] = field(default_factory=list)
    # Tested before (for partition pruning) and again after deduplicating.
    window: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    # The columns the filters after deduplication read, selected by the inner query too.
    needs: set[str] = field(default_factory=set)
    # A read of a few rows (see single()).
    one_thread: bool = False
    # The ids of traces_listed(ids), for the Reader to send beside the query.
    ids: list[str] | None = None
    # Subqueries of a Distributed table read each shard's local table (see in_trace()).
    local_subqueries: bool = False

    def __post_init__(self) -> None:
        self.params["project"] = self.project

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"

    def time(self, us: int) -> str:
        """A µs instant as a literal comparable with this dialect's time columns."""
        if self.dialect.subsecond_type:
            return f"toDateTime64({self.param(column_of_micros(us, True).strftime('%Y-%m-%d %H:%M:%S.%f'))}, 6, 'UTC')"
        return self.param(us)

    def sub(self, table: str) -> Select:
        """A read of another table for a subquery of this one, numbering its parameters on."""
        return Select(table, self.project, self.dialect, self.params)

    def micros(self, column: str) -> str:
        """A time column as signed µs since the epoch, for arithmetic."""
        return f"toUnixTimestamp64Micro({column})" if self.dialect.subsecond_type else f"toInt64({column})"

    def json_field(self, column: str, key: str) -> str:
        """The text of a top-level key of a JSON object column, as Langfuse's metadata holds
        it: a string's value, anything else's JSON; '' when the key is missing. 18.16 has only
        the simple JSON functions, which find the key at any depth (the first occurrence)."""
        k = self.param(key)
        modern = self.dialect.subsecond_type
        raw, text = (
            ("JSONExtractRaw", "JSONExtractString") if modern else ("visitParamExtractRaw", "visitParamExtractString")
        )
        return f"if(startsWith({raw}({column}, {k}), '\"'), {text}({column}, {k}), {raw}({column}, {k}))"

    def day(self, column: str) -> str:
        """The UTC day of a time column: a Date on DateTime64, days since the epoch on µs."""
        return f"toDate({column})" if self.dialect.subsecond_type else f"intDiv({column}, 86400000000)"

    def where(self, condition: str, *columns: str) -> Select:
        """A condition on the newest row of each id, over `columns`."""
        self.after.append(condition)
        self.needs.update(columns)
        return self

    def single(self) -> Select:
        """A read of one entity or one trace's rows: in one server thread. Splitting such a small
        read across threads only adds their start-up, and with many readers the cores are busy
        anyway: one trace with its observations took ~25% less server CPU (bench/README.md,
        "One trace's reads")."""
        self.one_thread = True
        return self

    def key(self, column: str, value: str) -> Select:
        (self.by_id if column == "id" else self.keys).append(f"{column} = {self.param(value)}")
        return self

    def in_ids(self) -> Select:
        """The rows of the ids sent beside the query as `_ids`."""
        self.by_id.append(f"id IN {IDS_TABLE}")
        return self

    def trace(self, trace_id: str) -> Select:
        """The rows of one trace (scores), found by the trace hash."""
        self.keys.append(by_trace(self.param(trace_id)))
        return self

    def traces_in_ids(self) -> Select:
        """The rows of the traces sent beside the query as `_ids` (scores), found by the trace hash."""
        self.keys.append(by_traces_in_ids())
        return self

    def in_trace(self, trace_id: str) -> Select:
        """One trace's observations: the ids its index lists (migration 0005), read by id.

        In the same query, not a round trip before it: the ids of a key range of the index and
        the PREWHERE read of their granules. In a cluster the subquery reads each shard's local
        index, which holds the entries of that shard's observations (both are sharded by trace):
        a Distributed subquery inside a Distributed read is refused by default.
        """
        trace = self.param(trace_id)
        self.ids_in(f"SELECT id FROM {BY_TRACE} WHERE project_id = %(project)s AND trace_id = {trace}")
        self.keys.append(f"trace_id = {trace}")
        return self

    def ids_in(self, subquery: str, *, negate: bool = False) -> Select:
        """The rows whose id `subquery` lists (`negate`: does not list), tested by id first. In a
        cluster the subquery reads each shard's local tables, which suits a subquery of the
        trace's own rows: a trace's observations and scores share its shard."""
        self.by_id.append(f"id {'NOT IN' if negate else 'IN'} ({subquery})")
        self.local_subqueries = True
        return self

    def traces_listed(self, trace_ids: Sequence[str]) -> Select:
        """The rows of the traces `trace_ids` (sent as `_ids`) in a table sorted by trace (the
        index by trace): a key range each."""
        self.keys.append(f"trace_id IN {IDS_TABLE}")
        self.ids = list(trace_ids)
        return self

    def eq(self, column: str, value: str | None) -> Select:
        if value is not None:
            self.where(f"{column} = {self.param(value)}", column)
        return self

    def any_of(self, column: str, values: Sequence[str]) -> Select:
        if values:
            self.where(f"has({self.param(list(values))}, {column})", column)
        return self

    def all_tags(self, values: Sequence[str]) -> Select:
        if values:
            self.where(f"hasAll(tags, {self.param(list(values))})", "tags")
        return self

    def between(self, column: str, start_us: int | None, end_us: int | None) -> Select:
        """`start <= column < end`, also before deduplicating, so old partitions are skipped.

        The price: a row whose time was moved out of the window by a later version still shows
        as its older version. Times are set once by the SDKs in practice.
        """
        if start_us is not None:
            self.window.append(f"{column} >= {self.time(start_us)}")
            self.needs.add(column)
        if end_us is not None:
            self.window.append(f"{column} < {self.time(end_us)}")
            self.needs.add(column)
        return self

    def _prewhere(self) -> str:
        return f"PREWHERE {' AND '.join(self.by_id)} " if self.by_id else ""

    def latest(self, columns: Sequence[str]) -> str:
        """The newest undeleted row of each id, as a subquery with `columns`."""
        inner = " AND ".join(["project_id = %(project)s", *self.keys, *self.window])
        outer = " AND ".join(["is_deleted = 0", *self.window, *self.after])
        cols = ", ".join(dict.fromkeys(["id", *columns]))
        inner_cols = ", ".join(dict.fromkeys(["id", *columns, *sorted(self.needs), "is_deleted"]))
        return (
            f"(SELECT {cols} FROM (SELECT {inner_cols} FROM {self.table} {self._prewhere()}WHERE {inner} "
            f"ORDER BY id, event_ts DESC LIMIT 1 BY id) WHERE {outer})"
        )

    def newest(self, columns: Sequence[str]) -> str:
        """`latest`, deduplicated by grouping rather than sorting: for a subquery that reads all of
        a project's rows (a trace filter on what its observations add up to), where sorting every
        version is most of the cost (18.16, 1M observations: 655 ms against 1,165). Each id's
        newest row is one argMax of a tuple of its columns: of a tuple, because argMax of a
        Nullable column skips NULLs, and would keep an older version's value where the newest
        has none."""
        if self.window:
            return self.latest(columns)
        inner = " AND ".join(["project_id = %(project)s", *self.keys])
        outer = " AND ".join(["is_deleted = 0", *self.after])
        picked = [*(c for c in dict.fromkeys([*columns, *sorted(self.needs)]) if c != "id"), "is_deleted"]
        elements = ", ".join(f"tupleElement(_newest, {i}) AS {c}" for i, c in enumerate(picked, 1))
        return (
            f"(SELECT {', '.join(dict.fromkeys(['id', *columns]))} FROM (SELECT id, {elements} FROM "
            f"(SELECT id, argMax(tuple({', '.join(picked)}), event_ts) AS _newest FROM {self.table} "
            f"{self._prewhere()}WHERE {inner} GROUP BY id)) WHERE {outer})"
        )

    def candidates(self, column: str, direction: str, n: int) -> str:
        """The `n` first rows by (`column`, id) in `direction` among all stored versions that pass
        every filter: (column, id) of each, for `Reader.traces` to read a page from their ids only.
        Cheap: two columns and the filtered ones, no deduplication."""
        where = " AND ".join(["project_id = %(project)s", *self.keys, *self.window, "is_deleted = 0", *self.after])
        return (
            f"SELECT {column}, id FROM {self.table} {self._prewhere()}WHERE {where} "
            f"ORDER BY {column} {direction}, id {direction} LIMIT {int(n)}{self._settings()}"
        )

    def sql(self, columns: Sequence[str], order: str = "", limit: int | None = None, offset: int = 0) -> str:
        tail = f" ORDER BY {order}" if order else ""
        if limit is not None:
            tail += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        settings = self._settings() + (", max_threads = 1" if self.one_thread else "")
        return f"SELECT {', '.join(columns)} FROM {self.latest(columns)}{tail}{settings}"

    def _settings(self) -> str:
        return SETTINGS + (", distributed_product_mode = 'local'" if self.local_subqueries else "")

    def count(self) -> str:
        if self.after:
            return f"SELECT count() FROM {self.latest([])}{self._settings()}"
        # Without filters on the newest row, only whether it is deleted matters: grouping beats
        # sorting every version (18.16, 200k traces: 285 -> 216 ms median).
        inner = " AND ".join(["project_id = %(project)s", *self.keys, *self.window])
        return (
            f"SELECT count() FROM (SELECT id FROM {self.table} {self._prewhere()}WHERE {inner} "
            f"GROUP BY id HAVING argMax(is_deleted, event_ts) = 0){self._settings()}"
        )


SETTINGS = f" SETTINGS max_execution_time = {MAX_EXECUTION_S}"

# Langfuse's filter operators (the read API's structured filter, the metrics API's filters) as
# SQL over an expression `e` and a parameter `v`: on text, on an array, on a value in a list.
TEXT_MATCH = {
    "contains": "position({e}, {v}) > 0",
    "does not contain": "position({e}, {v}) = 0",
    "starts with": "startsWith({e}, {v})",
    "ends with": "endsWith({e}, {v})",
}
ARRAY_MATCH = {"any of": "hasAny({e}, {v})", "none of": "NOT hasAny({e}, {v})", "all of": "hasAll({e}, {v})"}
OPTION_MATCH = {"any of": "has({v}, {e})", "none of": "NOT has({v}, {e})"}
