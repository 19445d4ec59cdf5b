"""Reads of the ClickHouse projection for the public API: rows as dicts, times as µs.

Every read is scoped to one project and sees the newest version of each row (see query.py for
why that is not FINAL). Raises ClickHouseError when the store failed or the query ran past
its time limit.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.fold import OBSERVATION, SCORE, TRACE
from pipeline.times import micros_of_column
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.memo import Memo
from sinks.clickhouse.metric_views import VIEWS, MetricsQuery, keys_sum
from sinks.clickhouse.metrics import MetricsSql
from sinks.clickhouse.query import ARRAY_MATCH, OPTION_MATCH, SETTINGS, TEXT_MATCH, Select
from sinks.clickhouse.schema import BY_TRACE, Dialect, dialect_for

TRACE_COLUMNS = (
    "id", "timestamp", "name", "user_id", "session_id", "release", "version", "environment", "tags",
    "public", "metadata", "input", "output", "created_at", "updated_at",
)  # fmt: skip
OBSERVATION_COLUMNS = (
    "id", "trace_id", "type", "parent_observation_id", "name", "start_time", "end_time",
    "completion_start_time", "level", "status_message", "version", "environment", "metadata", "input",
    "output", "provided_model_name", "model_parameters", "usage_details", "cost_details", "total_cost",
    "prompt_name", "prompt_version", "created_at", "updated_at", "usage_pricing_model_id",
    "usage_pricing_tier_name",
)  # fmt: skip
SCORE_COLUMNS = (
    "id", "trace_id", "observation_id", "session_id", "dataset_run_id", "name", "value", "string_value",
    "data_type", "source", "comment", "config_id", "environment", "metadata", "timestamp", "created_at",
    "updated_at",
)  # fmt: skip
# What a trace list needs of each trace's observations and scores: ids, extent and cost.
SUMMARY_COLUMNS = ("id", "trace_id", "start_time", "end_time", "total_cost")
TIME_COLUMNS = frozenset({"timestamp", "start_time", "end_time", "completion_start_time", "created_at", "updated_at"})
TRACE_ORDER = frozenset({"id", "timestamp", "name", "user_id", "release", "version", "public", "session_id"})

# Reads by id go to the projections themselves. Whole copies sorted for them (filled by
# materialized views) cut single reads 2-3x on 18.16, but doubled every insert's work in
# ClickHouse, had no cluster form, and escaped deletion's mutations. A trace's observations
# are found through a narrow index instead (ids only, migration 0005), whose view has a cluster
# form and which the purge and retention keep.
TRACES_BY_ID = TRACE
# A page of traces is read from the ids of the newest `CANDIDATES_PER_ROW` x (offset + limit)
# stored rows (see Reader.traces); past this many candidates, from the whole project.
CANDIDATES_PER_ROW = 2
CANDIDATE_SLACK = 10
MAX_CANDIDATES = 20_000

REFRESH_SLOTS = 2

Row = dict[str, Any]
# A condition of Langfuse's structured filter (ingest/filters.py): (column, operator, value),
# over the table's own columns, `trace.<column>` over the observation's trace, and `root`.
Condition = tuple[str, str, Any]


@dataclass(frozen=True)
class TraceFilter:
    user_id: str | None = None
    name: str | None = None
    session_id: str | None = None
    release: str | None = None
    version: str | None = None
    tags: tuple[str, ...] = ()  # all of them
    environments: tuple[str, ...] = ()  # any of them
    from_us: int | None = None
    to_us: int | None = None
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class ObservationFilter:
    trace_id: str | None = None
    type: str | None = None
    name: str | None = None
    user_id: str | None = None  # the trace's user
    session_id: str | None = None  # the trace's session
    parent_observation_id: str | None = None
    root: bool | None = None  # without a parent observation, or with one
    level: str | None = None
    version: str | None = None
    environments: tuple[str, ...] = ()
    from_us: int | None = None
    to_us: int | None = None
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class ScoreFilter:
    trace_id: str | None = None
    observation_ids: tuple[str, ...] = ()
    session_id: str | None = None
    name: str | None = None
    source: str | None = None
    data_types: tuple[str, ...] = ()
    config_id: str | None = None
    user_id: str | None = None  # the trace's user
    score_ids: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()
    from_us: int | None = None
    to_us: int | None = None
    dataset_run_ids: tuple[str, ...] = ()
    trace_tags: tuple[str, ...] = ()  # the trace has all of them
    # On the numeric value: (operator, number) comparisons, and values it is one of.
    value_compare: tuple[tuple[str, float], ...] = ()
    values: tuple[float, ...] = ()
    string_values: tuple[str, ...] = ()  # a categorical score's value is one of them
    nothing: bool = False  # a filter no stored score can match (an annotation queue's)


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int = 0


@dataclass(frozen=True)
class Cursor:
    """The last row of the previous page, in (start_time, trace_id, id) descending order."""

    start_us: int
    trace_id: str
    id: str


@dataclass
class Listing:
    rows: list[Row]
    total: int
    extra: dict[str, Any] = field(default_factory=dict)


class Reader:
    """`cache` (on in the API, off by default) lets concurrent and repeated reads of the same
    list share one query: the counts of a list for 15 s (then refreshed in the background, served
    up to 30 s old), a page of traces for 1 s (up to 3 s), daily metrics for 10 s (up to 60 s)."""

    def __init__(self, client: ClickHouse, *, cache: bool = False) -> None:
        self._ch = client
        on = 1.0 if cache else 0.0
        # A count reads every trace id of the project (~0.2 s of 18.16 per 200k, seconds under
        # load): refreshed every 15 s rather than 5, a few filters' counts no longer kept the
        # server busy; still at most 30 s old, as before.
        # At most this many background refreshes at once (each up to ~3 queries), so the rest
        # of the api's pool of 12 stays for requests the cache does not answer.
        slots = asyncio.Semaphore(REFRESH_SLOTS)
        self._counts = Memo(15 * on, 30 * on, refresh_slots=slots)
        self._pages = Memo(1 * on, 3 * on, refresh_slots=slots)
        self._daily = Memo(10 * on, 60 * on, refresh_slots=slots)

    async def shared(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        """Something built from a page's reads (the answer's JSON), shared like the page."""
        return await self._pages.get(("shared", key), compute)

    @property
    def dialect(self) -> Dialect:
        return dialect_for(self._ch.version)

    def select(self, table: str, project_id: str) -> Select:
        return Select(table, project_id, self.dialect)

    async def rows(self, q: Select, columns: Sequence[str], operation: str, **tail: Any) -> list[Row]:
        rows = await self._ch.fetch(q.sql(columns, **tail), q.params, operation=operation, ids=q.ids)
        return [_decoded(dict(zip(columns, row, strict=True))) for row in rows]

    async def count(self, q: Select, operation: str) -> int:
        rows = await self._ch.fetch(q.count(), q.params, operation=operation, ids=q.ids)
        return int(rows[0][0])

    # --- traces -------------------------------------------------------------------------------

    async def trace(self, project_id: str, trace_id: str) -> tuple[Row | None, list[Row], list[Row]]:
        """One trace with its observations (by start) and scores (by time); None when absent."""
        traces, observations, scores = await asyncio.gather(
            self.rows(self.select(TRACES_BY_ID, project_id).key("id", trace_id).single(), TRACE_COLUMNS, "read_trace"),
            self.rows(
                self.select(OBSERVATION, project_id).in_trace(trace_id).single(),
                OBSERVATION_COLUMNS,
                "read_trace_observations",
                order="start_time, id",
            ),
            self.rows(
                self.select(SCORE, project_id).trace(trace_id).single(),
                SCORE_COLUMNS,
                "read_trace_scores",
                order="timestamp, id",
            ),
        )
        return (traces[0] if traces else None), observations, scores

    def _traces(self, project_id: str, f: TraceFilter, table: str = TRACE, *, summed: bool = True) -> Select:
        """The traces `f` selects; `summed` false leaves out its conditions on what a trace's
        observations and scores add up to (for ids that already passed them)."""
        q = self.select(table, project_id).between("timestamp", f.from_us, f.to_us).all_tags(f.tags)
        q.eq("user_id", f.user_id).eq("name", f.name).eq("session_id", f.session_id)
        q.eq("release", f.release).eq("version", f.version).any_of("environment", f.environments)
        return _conditions(q, f.conditions if summed else tuple(c for c in f.conditions if not _summed(c)))

    async def traces(self, project_id: str, f: TraceFilter, order: tuple[str, bool], page: Page) -> Listing:
        """A page of traces, ordered by (column, descending), and the number of matches."""
        column, desc = order
        if column not in TRACE_ORDER:
            raise ValueError(f"cannot order by {column!r}")
        q = self._traces(project_id, f)

        async def listing() -> Listing:
            rows, total = await asyncio.gather(
                self._trace_page(project_id, f, column, desc, page),
                self._counts.get(("traces", project_id, f), lambda: self.count(q, "count_traces")),
            )
            return Listing(rows, total)

        return await self._pages.get(("traces", project_id, f, order, page), listing)

    async def _trace_page(self, project_id: str, f: TraceFilter, column: str, desc: bool, page: Page) -> list[Row]:
        """The page, read from candidate ids rather than by deduplicating the whole project.

        Candidates: the first n stored rows (any version) by (column, id) that pass the filters,
        a cheap sorted read of two columns. The page is then the newest version of those ids
        only, filtered, sorted, cut. It is the true page when the candidates were all the
        matching rows (fewer than n), or when its last row sorts no later than the n-th
        candidate: each row of the true page then has a version among the candidates, as the
        newest version of a matching trace passes the same filters. Otherwise (many stale
        versions on top) n grows fourfold, and past MAX_CANDIDATES the whole project is read.
        """
        direction = "DESC" if desc else "ASC"
        order = f"{column} {direction}, id {direction}"
        wanted = page.offset + page.limit
        n = CANDIDATES_PER_ROW * wanted + CANDIDATE_SLACK
        at = TRACE_COLUMNS.index(column)
        while n <= MAX_CANDIDATES:
            cq = self._traces(project_id, f)
            candidates = await self._ch.fetch(
                cq.candidates(column, direction, n), cq.params, operation="read_trace_candidates"
            )
            if not candidates:
                return []
            # The candidates passed the conditions on what their traces add up to, which depend on
            # the id alone: evaluated again here, each would read the project's rows once more.
            pq = self._traces(project_id, f, TRACES_BY_ID, summed=False)
            pq.in_ids()
            rows = await self._ch.fetch(
                pq.sql(TRACE_COLUMNS, order=order, limit=page.limit, offset=page.offset),
                pq.params,
                operation="read_traces",
                ids=list(dict.fromkeys(r[1] for r in candidates)),
            )
            complete = len(candidates) < n
            if not complete and len(rows) == page.limit:
                last, bound = (rows[-1][at], rows[-1][0]), (candidates[-1][0], candidates[-1][1])
                complete = last >= bound if desc else last <= bound
            if complete:
                return [_decoded(dict(zip(TRACE_COLUMNS, r, strict=True))) for r in rows]
            n *= 4
        q = self._traces(project_id, f)
        return await self.rows(q, TRACE_COLUMNS, "read_traces", order=order, limit=page.limit, offset=page.offset)

    async def trace_summaries(self, project_id: str, trace_ids: Sequence[str]) -> tuple[list[Row], list[Row]]:
        """The observations (ids, extent, cost) and score ids of these traces."""
        if not trace_ids:
            return [], []
        key = ("summaries", project_id, tuple(trace_ids))
        return await self._pages.get(key, lambda: self._trace_summaries(project_id, trace_ids))

    async def _trace_summaries(self, project_id: str, trace_ids: Sequence[str]) -> tuple[list[Row], list[Row]]:
        # From the index by trace alone: it keeps each version's extent and cost (migration 0005).
        observations = self.select(BY_TRACE, project_id).traces_listed(trace_ids)
        scores = self.select(SCORE, project_id).traces_in_ids()
        o_rows, s_rows = await asyncio.gather(
            self.rows(observations, SUMMARY_COLUMNS, "read_trace_summaries"),
            self._ch.fetch(scores.sql(("id", "trace_id")), scores.params, operation="read_trace_scores", ids=trace_ids),
        )
        return o_rows, [{"id": r[0], "trace_id": r[1]} for r in s_rows]

    # --- observations -------------------------------------------------------------------------

    def _observations(self, project_id: str, f: ObservationFilter) -> Select:
        # One trace's observations: by their ids (the index by trace), not the project's traces.
        q = self.select(OBSERVATION, project_id).between("start_time", f.from_us, f.to_us)
        if f.trace_id is not None:
            q.in_trace(f.trace_id)
        q.eq("type", f.type).eq("name", f.name).eq("parent_observation_id", f.parent_observation_id)
        q.eq("level", f.level).eq("version", f.version).any_of("environment", f.environments)
        if f.root is not None:
            _conditions(q, (("root", "=", f.root),))
        of_trace = [(c[len("trace.") :], op, v) for c, op, v in f.conditions if c.startswith("trace.")]
        own = tuple(c for c in f.conditions if not c[0].startswith("trace."))
        of_trace += [(c, "=", v) for c, v in (("user_id", f.user_id), ("session_id", f.session_id)) if v is not None]
        if of_trace:
            traces = _conditions(q.sub(TRACE), tuple(of_trace))
            q.where(f"trace_id IN (SELECT id FROM {traces.latest([])})", "trace_id")
        return _conditions(q, own)

    async def observations(self, project_id: str, f: ObservationFilter, page: Page) -> Listing:
        q = self._observations(project_id, f)
        rows, total = await asyncio.gather(
            self.rows(
                q,
                OBSERVATION_COLUMNS,
                "read_observations",
                order="start_time DESC, id DESC",
                limit=page.limit,
                offset=page.offset,
            ),
            self.count(q, "count_observations"),
        )
        return Listing(rows, total)

    async def observations_after(
        self, project_id: str, f: ObservationFilter, cursor: Cursor | None, limit: int
    ) -> list[Row]:
        """Up to `limit` observations after `cursor`, newest start first (v2 cursor paging)."""
        q = self._observations(project_id, f)
        if cursor is not None:
            t, tr, i = q.time(cursor.start_us), q.param(cursor.trace_id), q.param(cursor.id)
            q.where(
                f"(start_time < {t} OR (start_time = {t} AND (trace_id < {tr} OR (trace_id = {tr} AND id < {i}))))",
                "start_time",
                "trace_id",
            )
        return await self.rows(
            q, OBSERVATION_COLUMNS, "read_observations_v2", order="start_time DESC, trace_id DESC, id DESC", limit=limit
        )

    async def observation(self, project_id: str, observation_id: str) -> Row | None:
        rows = await self.rows(
            self.select(OBSERVATION, project_id).key("id", observation_id).single(),
            OBSERVATION_COLUMNS,
            "read_observation",
        )
        return rows[0] if rows else None

    async def trace_context(self, project_id: str, trace_ids: Sequence[str]) -> dict[str, Row]:
        """user, session, tags, environment, name, release and public of these traces, by id."""
        if not trace_ids:
            return {}
        q = self.select(TRACES_BY_ID, project_id)
        q.in_ids()
        columns = ("id", "user_id", "session_id", "tags", "environment", "name", "release", "public")
        rows = await self._ch.fetch(q.sql(columns), q.params, operation="read_trace_context", ids=trace_ids)
        return {r[0]: dict(zip(columns, r, strict=True)) for r in rows}

    # --- sessions -----------------------------------------------------------------------------

    async def sessions(
        self, project_id: str, from_us: int | None, to_us: int | None, environments: Sequence[str], page: Page
    ) -> Listing:
        """Sessions (the session ids of traces) with their first trace's time, newest first."""
        q = self.select(TRACE, project_id).any_of("environment", environments)
        q.where("session_id != ''", "session_id")
        having = []
        if from_us is not None:
            having.append(f"created_at >= {q.time(from_us)}")
        if to_us is not None:
            having.append(f"created_at < {q.time(to_us)}")
        grouped = (
            f"SELECT session_id, min(timestamp) AS created_at, any(environment) AS environment "
            f"FROM {q.latest(['session_id', 'timestamp', 'environment'])} GROUP BY session_id"
            + (f" HAVING {' AND '.join(having)}" if having else "")
        )
        page_sql = (
            f"{grouped} ORDER BY created_at DESC, session_id DESC LIMIT {page.limit} OFFSET {page.offset}{SETTINGS}"
        )
        rows, total = await asyncio.gather(
            self._ch.fetch(page_sql, q.params, operation="read_sessions"),
            self._ch.fetch(f"SELECT count() FROM ({grouped}){SETTINGS}", q.params, operation="count_sessions"),
        )
        return Listing(
            [{"id": r[0], "created_at": micros_of_column(r[1]), "environment": r[2]} for r in rows], int(total[0][0])
        )

    async def session_traces(self, project_id: str, session_id: str) -> list[Row]:
        q = self.select(TRACE, project_id).eq("session_id", session_id)
        return await self.rows(q, TRACE_COLUMNS, "read_session", order="timestamp, id", limit=1000)

    # --- scores -------------------------------------------------------------------------------

    def _scores(self, project_id: str, f: ScoreFilter) -> Select:
        q = self.select(SCORE, project_id).between("timestamp", f.from_us, f.to_us)
        if f.trace_id is not None:
            q.trace(f.trace_id)
        q.any_of("observation_id", f.observation_ids).any_of("id", f.score_ids).eq("session_id", f.session_id)
        q.eq("name", f.name).eq("source", f.source).any_of("data_type", f.data_types).eq("config_id", f.config_id)
        q.any_of("environment", f.environments).any_of("dataset_run_id", f.dataset_run_ids)
        q.any_of("string_value", f.string_values)
        on_value: list[Condition] = [("value", op, v) for op, v in f.value_compare]
        if f.values:
            on_value.append(("value", "any of", f.values))
        _conditions(q, tuple(on_value))
        if f.nothing:
            q.where("0")
        if f.user_id is not None or f.trace_tags:
            traces = q.sub(TRACE).eq("user_id", f.user_id).all_tags(f.trace_tags)
            q.where(f"trace_id IN (SELECT id FROM {traces.latest([])})", "trace_id")
        return q

    async def scores(self, project_id: str, f: ScoreFilter, page: Page) -> Listing:
        q = self._scores(project_id, f)
        rows, total = await asyncio.gather(
            self.rows(
                q, SCORE_COLUMNS, "read_scores", order="timestamp DESC, id DESC", limit=page.limit, offset=page.offset
            ),
            self.count(q, "count_scores"),
        )
        return Listing(rows, total)

    async def score(self, project_id: str, score_id: str) -> Row | None:
        rows = await self.rows(self.select(SCORE, project_id).key("id", score_id).single(), SCORE_COLUMNS, "read_score")
        return rows[0] if rows else None

    # --- daily metrics ------------------------------------------------------------------------

    async def daily(self, project_id: str, f: TraceFilter, page: Page) -> Listing:
        """Per UTC day with traces, newest first: trace count, and per model the observations'
        count, traces, tokens and cost (observations by their own start day)."""
        return await self._daily.get(("daily", project_id, f, page), lambda: self._daily_uncached(project_id, f, page))

    async def _daily_uncached(self, project_id: str, f: TraceFilter, page: Page) -> Listing:
        traces = self._traces(project_id, f)
        day = traces.day("timestamp")
        # Every day at once (a few hundred rows at most), paged here: one deduplication of the
        # project's traces, not one for the page and another for the count of days.
        days_sql = (
            f"SELECT {day} AS day, count() AS n FROM {traces.latest(['timestamp'])} GROUP BY day "
            f"ORDER BY day DESC{SETTINGS}"
        )
        obs = traces.sub(OBSERVATION)
        obs.where(f"trace_id IN (SELECT id FROM {traces.latest(['timestamp'])})", "trace_id")
        start_day = obs.day("start_time")
        columns = ["trace_id", "start_time", "provided_model_name", "total_cost", "usage_details"]
        # The usage of every day too, at the same time as the days, not after them for the
        # page's days only: the deduplication reads the project's observations either way, and
        # the answer then waits for the longer query, not for both (18.16, 1M observations).
        usage_sql = (
            f"SELECT {start_day} AS day, provided_model_name, count(), uniqExact(trace_id), "
            # Langfuse's input (output): every usage type so named, cached input too.
            f"sum(ifNull(total_cost, 0)), {_summed_keys('usage_details', 'input')}, "
            f"{_summed_keys('usage_details', 'output')}, sum(total_tokens) "
            f"FROM {obs.latest([*columns, 'total_tokens'])} GROUP BY day, provided_model_name "
            f"ORDER BY day, provided_model_name{SETTINGS}"
        )
        all_days, usage = await asyncio.gather(
            self._ch.fetch(days_sql, traces.params, operation="read_daily_traces"),
            self._ch.fetch(usage_sql, obs.params, operation="read_daily_usage"),
        )
        days = all_days[page.offset : page.offset + page.limit]
        listing = Listing([{"day": d, "traces": int(n), "usage": []} for d, n in days], len(all_days))
        by_key = {row["day"]: row for row in listing.rows}
        for d, model, n, n_traces, cost, inp, out, tot in usage:
            if d not in by_key:  # another page's day, or a day without traces of the filter
                continue
            by_key[d]["usage"].append(
                {
                    "model": model or None,
                    "observations": int(n),
                    "traces": int(n_traces),
                    "cost": float(cost),
                    "input": int(inp),
                    "output": int(out),
                    "total": int(tot),
                }
            )
        return listing

    # --- metrics API --------------------------------------------------------------------------

    async def metrics(self, project_id: str, query: MetricsQuery) -> list[Row]:
        """Langfuse's metrics query over one view, as its rows answer it (metrics.py)."""
        table = VIEWS[query.view].table
        m = MetricsSql(query, self.select(table, project_id), "use_query_condition_cache" in self._ch.settings)
        return m.decode(await self._ch.fetch(m.sql, m.params, operation="read_metrics"))


def _decoded(row: Row) -> Row:
    for column in TIME_COLUMNS & row.keys():
        if row[column] is not None:
            row[column] = micros_of_column(row[column])
    return row


_COMPARE = {"=": "=", "<>": "!=", "!=": "!=", ">": ">", "<": "<", ">=": ">=", "<=": "<="}


def _summed_keys(column: str, word: str) -> str:
    """The sum over a trace's rows of keys_sum (every type whose name holds `word`)."""
    return f"sum({keys_sum(column, word)})"


# A trace condition on a figure summed up from its observations (ingest/filters.py).
OF_OBSERVATIONS = "observations."
_LEVELS = ("ERROR", "WARNING", "DEFAULT", "DEBUG")  # by severity, the highest first
# Each figure: the table whose columns it reads (the index by trace holds a row's extent and
# cost, sorted by trace; the observations the rest), those columns, its aggregate over the
# trace's newest rows (`{s}`/`{e}`: the start and end in µs), and a trace's value without any
# observation (Langfuse's public API answers 0 latency and cost; None: no value, no match).
_SUMMED_UP: dict[str, tuple[str, tuple[str, ...], str, float | None]] = {
    "latency": (
        BY_TRACE,
        ("start_time", "end_time"),
        "greatest(0, if(count(end_time) > 0, max({e}), max({s})) - min({s})) / 1000000",
        0,
    ),
    "total_cost": (BY_TRACE, ("total_cost",), "sum(ifNull(total_cost, 0))", 0),
    # Every usage or cost type whose name holds input (output), cached input too, as Langfuse
    # sums them: read from the map's JSON text by a regex, which 18.16 runs as well.
    "input_tokens": (OBSERVATION, ("usage_details",), _summed_keys("usage_details", "input"), 0),
    "output_tokens": (OBSERVATION, ("usage_details",), _summed_keys("usage_details", "output"), 0),
    "total_tokens": (OBSERVATION, ("total_tokens",), "sum(total_tokens)", 0),
    "input_cost": (OBSERVATION, ("cost_details",), _summed_keys("cost_details", "input"), 0),
    "output_cost": (OBSERVATION, ("cost_details",), _summed_keys("cost_details", "output"), 0),
    "level": (
        OBSERVATION,
        ("level",),
        "multiIf(" + ", ".join(f"countIf(level = '{lv}') > 0, '{lv}'" for lv in _LEVELS[:-1]) + ", 'DEBUG')",
        None,
    ),
    **{f"{lv.lower()}_count": (OBSERVATION, ("level",), f"countIf(level = '{lv}')", 0) for lv in _LEVELS},
}
_HOLDS = {"=": operator.eq, ">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le}


def _summed_up(q: Select, figure: str, op: str, value: Any) -> None:
    """Traces whose figure summed up from their observations' newest rows holds to the condition
    (Langfuse's aggregated trace filters): the ids of the traces it holds for, or, when a trace
    without observations holds to it too (`totalCost < 0.01`), all but those it fails for."""
    table, columns, aggregate, empty = _SUMMED_UP[figure]
    sub = q.sub(table)
    e = aggregate.format(s=sub.micros("start_time"), e=sub.micros("end_time"))
    if op in OPTION_MATCH:
        having = OPTION_MATCH[op].format(e=e, v=q.param(list(value)))
    elif op in TEXT_MATCH:
        having = TEXT_MATCH[op].format(e=e, v=q.param(value))
    else:
        having = f"{e} {_COMPARE[op]} {q.param(value)}"
    negate = empty is not None and op in _HOLDS and _HOLDS[op](empty, value)
    rows = sub.newest(["trace_id", *columns])
    q.ids_in(
        f"SELECT trace_id FROM {rows} GROUP BY trace_id HAVING {'NOT ' if negate else ''}({having})", negate=negate
    )


# A trace condition on its scores of one name (ingest/filters.py).
OF_SCORES = "scores."


def _scored(q: Select, figure: str, op: str, name: str, value: Any) -> None:
    """Traces by their scores named `name` (Langfuse's scores_avg, score_categories and
    score_booleans): the average of the numeric ones compared with `value`; a categorical one
    among `value` (`none of`: no such one); the boolean one equal to `value` (`<>`: none
    equal, so traces without that score too, as Langfuse documents)."""
    sub = q.sub(SCORE)
    sub.where(f"name = {q.param(name)}", "name")
    negate = op in ("none of", "<>")
    if figure == "avg":
        sub.where("data_type = 'NUMERIC'", "data_type")
        rows = sub.newest(["trace_id", "value"])
        traces = f"SELECT trace_id FROM {rows} GROUP BY trace_id HAVING avg(value) {_COMPARE[op]} {q.param(value)}"
    else:
        if figure == "categories":
            sub.where("data_type = 'CATEGORICAL'", "data_type")
            sub.where(f"has({q.param(list(value))}, string_value)", "string_value")
        else:
            sub.where("data_type = 'BOOLEAN'", "data_type")
            sub.where(f"value = {1 if value else 0}", "value")
        traces = f"SELECT trace_id FROM {sub.newest(['trace_id'])}"
    q.ids_in(traces, negate=negate)


_TIME_COLUMNS = frozenset({"timestamp", "start_time", "end_time"})


def _summed(condition: Condition) -> bool:
    """A condition on what a trace's observations or scores add up to: it holds for an id."""
    return condition[0].startswith((OF_OBSERVATIONS, OF_SCORES))


def _conditions(q: Select, conditions: tuple[Condition, ...]) -> Select:
    """Langfuse's filter conditions on the newest row of each id (see ingest/filters.py)."""
    for column, op, value in conditions:
        if column == "root":  # a root observation has no parent observation
            empty = value if op == "=" else not value
            q.where(f"parent_observation_id {'=' if empty else '!='} ''", "parent_observation_id")
        elif column == "tags":
            q.where(ARRAY_MATCH[op].format(e="tags", v=q.param(list(value))), "tags")
        elif column == "metadata":  # Langfuse's stringObject: a key's value
            key, text = value
            e = q.json_field("metadata", key)
            q.where(f"{e} = {q.param(text)}" if op == "=" else TEXT_MATCH[op].format(e=e, v=q.param(text)), "metadata")
        elif column.startswith(OF_OBSERVATIONS):
            _summed_up(q, column[len(OF_OBSERVATIONS) :], op, value)
        elif column.startswith(OF_SCORES):
            _scored(q, column[len(OF_SCORES) :], op, *value)
        elif column == "latency":  # seconds; none for an observation that has not ended
            e = f"({q.micros('end_time')} - {q.micros('start_time')}) / 1000000"
            q.where(f"{e} {_COMPARE[op]} {q.param(value)}", "end_time", "start_time")
        elif op in OPTION_MATCH:
            q.where(OPTION_MATCH[op].format(e=column, v=q.param(list(value))), column)
        elif op in TEXT_MATCH:
            q.where(TEXT_MATCH[op].format(e=column, v=q.param(value)), column)
        else:
            literal = q.time(value) if column in _TIME_COLUMNS else q.param(value)
            q.where(f"{column} {_COMPARE[op]} {literal}", column)
    return q
