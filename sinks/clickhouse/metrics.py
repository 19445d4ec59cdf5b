"""The SQL of Langfuse's metrics API (`GET /api/public/metrics`): a checked query over one view
of metric_views.py, grouped by its dimensions and time buckets (metric_rows.py shapes the rows).

One row per entity: the newest undeleted version of each (query.py's `latest`, never FINAL) in
the window, joined to the relations its fields need (ALL INNER JOIN, as Langfuse joins them:
an observation whose trace is outside the window does not count where a trace field is asked
for). 18.16 has neither multiple JOINs in one SELECT nor WITH FILL, so relations nest one
subquery each, and the gaps of a time series are filled here. Every name in the SQL comes from
the view declarations or is one of ours (`d0`, `m0`); every value the client sent is a
parameter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pipeline.fold import OBSERVATION, SCORE, TRACE
from sinks.clickhouse.metric_rows import answer
from sinks.clickhouse.metric_views import (
    OBSERVATION_OF,
    OBSERVATIONS_OF_TRACE,
    SCORES_OF_OBSERVATION,
    SCORES_OF_TRACE,
    TRACE_OF,
    VIEWS,
    Dimension,
    Filter,
    Measure,
    Metric,
    MetricsQuery,
)
from sinks.clickhouse.query import ARRAY_MATCH, OPTION_MATCH, SETTINGS, TEXT_MATCH, Select

QUANTILES = {"p50": "0.5", "p75": "0.75", "p90": "0.9", "p95": "0.95", "p99": "0.99"}
_BUCKETS = {
    "minute": "toStartOfMinute",
    "hour": "toStartOfHour",
    "day": "toDate",
    "week": "toMonday",
    "month": "toStartOfMonth",
}
_STRING_OPS = {"=": "{e} = {v}", **TEXT_MATCH}
_TIME_FN = re.compile(r"\b(US|DT)\((\w+)\)")
# The keys a row of each table offers its relations: the trace's id, the observation's id.
_JOIN_KEYS = {
    TRACE: {"jk_trace": "id"},
    OBSERVATION: {"jk_trace": "trace_id", "jk_obs": "id"},
    SCORE: {"jk_trace": "trace_id", "jk_obs": "observation_id"},
}


class MetricsSql:
    """The SQL of `q` over `base` (a Select of the view's table for the caller's project)."""

    def __init__(self, q: MetricsQuery, base: Select, condition_cache: bool = False) -> None:
        """`condition_cache`: the server has a query condition cache, which this query turns off.
        ClickHouse 26.9's (chDB 4.4) let a query whose filters matched nothing make the next
        query of the window answer no rows at all (tests/unit/test_metrics_query.py)."""
        self.q = q
        self._settings = f"{SETTINGS}, use_query_condition_cache = 0" if condition_cache else SETTINGS
        self.view = VIEWS[q.view]
        self._base = base
        self._subsecond = base.dialect.subsecond_type
        used: list[Dimension | Measure] = [self.view.dimensions[d] for d in q.dimensions]
        used += [self.view.measures[m.measure] for m in q.metrics]
        used += [self.view.dimensions[f.column] for f in q.filters if f.column in self.view.dimensions]
        relations = {x.relation for x in used if x.relation}
        columns = {c for x in used for c in x.columns}
        columns |= {self.view.time} | {"metadata" for f in q.filters if f.kind == "metadata"}
        self.params = base.params
        self.sql = self._select(self._rows(columns, relations))

    # --- SQL ---------------------------------------------------------------------------------

    def _t(self, sql: str) -> str:
        """US()/DT() of time columns in this dialect (µs on 18.16, DateTime64 otherwise)."""

        def one(m: re.Match[str]) -> str:
            fn, column = m.group(1), m.group(2)
            if fn == "US":
                return f"toUnixTimestamp64Micro({column})" if self._subsecond else f"toInt64({column})"
            return (
                f"toDateTime({column}, 'UTC')" if self._subsecond else f"toDateTime(intDiv({column}, 1000000), 'UTC')"
            )

        return _TIME_FN.sub(one, sql)

    def _window(self, s: Select, column: str) -> Select:
        return s.between(column, self.q.from_us, self.q.to_us + 1)

    def _rows(self, columns: set[str], relations: set[str]) -> str:
        view = self.view
        base = self._window(self._base, view.time)
        if view.segment:
            base.where(view.segment, "data_type")
        keys = _JOIN_KEYS[view.table]
        own = sorted(columns | {"id", *keys.values()})
        have = [*own, *keys]
        joins = ", ".join(f"{column} AS {key}" for key, column in keys.items())
        rows = f"(SELECT {', '.join(own)}, {joins} FROM {base.latest(own)})"
        for i, relation in enumerate(sorted(relations)):
            right, added, key = self._relation(relation)
            # Aliased: a current server refuses a join of unnamed subqueries.
            rows = (
                f"(SELECT {', '.join([*have, *added])} FROM {rows} AS l{i} ALL INNER JOIN {right} AS r{i} USING {key})"
            )
            have += added
        return rows

    def _relation(self, name: str) -> tuple[str, list[str], str]:
        """The subquery of a relation, the columns it adds and the key it joins on."""
        s = self._base.sub
        if name == TRACE_OF:
            t = self._window(s(TRACE), "timestamp")
            fields = ("name", "tags", "user_id", "session_id", "release", "version")
            select = ", ".join(f"{c} AS trace_{c}" for c in fields)
            return (
                f"(SELECT id AS jk_trace, {select} FROM {t.latest(fields)})",
                [f"trace_{c}" for c in fields],
                "jk_trace",
            )
        if name == OBSERVATION_OF:
            o = self._window(s(OBSERVATION), "start_time")
            cols = {"name": "obs_name", "provided_model_name": "obs_model", "prompt_name": "obs_prompt_name"}
            cols["prompt_version"] = "obs_prompt_version"
            select = ", ".join(f"{c} AS {a}" for c, a in cols.items())
            return f"(SELECT id AS jk_obs, {select} FROM {o.latest(list(cols))})", list(cols.values()), "jk_obs"
        if name == OBSERVATIONS_OF_TRACE:
            o = self._window(s(OBSERVATION), "start_time")
            latest = o.latest(["trace_id", "start_time", "end_time", "total_cost", "total_tokens"])
            added = ["obs_count", "obs_start_us", "obs_end_us", "obs_cost", "obs_tokens"]
            sql = self._t(
                f"(SELECT trace_id AS jk_trace, count() AS obs_count, min(US(start_time)) AS obs_start_us, "
                f"max(US(end_time)) AS obs_end_us, sum(ifNull(total_cost, 0)) AS obs_cost, "
                f"sum(total_tokens) AS obs_tokens FROM {latest} GROUP BY trace_id)"
            )
            return sql, added, "jk_trace"
        by, key = ("trace_id", "jk_trace") if name == SCORES_OF_TRACE else ("observation_id", "jk_obs")
        assert name in (SCORES_OF_TRACE, SCORES_OF_OBSERVATION), name
        sc = self._window(s(SCORE), "timestamp")
        return (
            f"(SELECT {by} AS {key}, uniqExact(id) AS score_count FROM {sc.latest([by])} GROUP BY {by})",
            ["score_count"],
            key,
        )

    def _dimension_sql(self, d: Dimension) -> str:
        sql = self._t(d.sql)
        return f"nullIf({sql}, '')" if d.nullable else sql

    def _metric_sql(self, metric: Metric, m: Measure) -> str:
        x = self._t(m.sql)
        agg = metric.aggregation
        if m.distinct and agg in ("count", "uniq"):
            return f"uniq({m.distinct})"
        if agg in QUANTILES:
            return f"quantile({QUANTILES[agg]})({x})"
        if agg == "histogram":
            return f"histogram({int(self.q.bins)})(toFloat64({x}))"
        return f"{agg}({x})"

    def _select(self, rows: str) -> str:
        q, view = self.q, self.view
        parts = [f"{self._dimension_sql(view.dimensions[d])} AS d{i}" for i, d in enumerate(q.dimensions)]
        groups = [f"d{i}" for i in range(len(q.dimensions))]
        if q.granularity:
            parts.append(f"toUInt32({_BUCKETS[q.granularity]}({self._t(f'DT({view.time})')})) AS td")
            groups.append("td")
        if q.metrics:
            parts += [f"{self._metric_sql(m, view.measures[m.measure])} AS m{i}" for i, m in enumerate(q.metrics)]
        else:
            parts.append("count() AS m0")
        where = [self._condition(f) for f in q.filters] or ["1"]
        sql = f"SELECT {', '.join(parts)} FROM {rows} WHERE {' AND '.join(where)}"
        if groups:
            sql += f" GROUP BY {', '.join(groups)}"
        order = ", ".join(f"{self._alias(field)} {direction.upper()}" for field, direction in self._order())
        if order:
            sql += f" ORDER BY {order}"
        return f"{sql} LIMIT {int(q.limit)}{self._settings}"

    def _order(self) -> tuple[tuple[str, str], ...]:
        """Langfuse's order: as asked, else by time, else by the first metric (descending), else
        by the first dimension."""
        q = self.q
        if q.order:
            return q.order
        if q.granularity:
            return (("time_dimension", "asc"),)
        if q.metrics:
            return ((q.metrics[0].alias, "desc"),)
        return ((q.dimensions[0], "asc"),) if q.dimensions else ()

    def _alias(self, field: str) -> str:
        if field == "time_dimension":
            return "td"
        if field in self.q.dimensions:
            return f"d{self.q.dimensions.index(field)}"
        return f"m{[m.alias for m in self.q.metrics].index(field)}"

    def _condition(self, f: Filter) -> str:
        b, view = self._base, self.view
        if f.kind == "datetime":
            return f"{view.time} {f.operator} {b.time(f.value)}"
        if f.kind == "metadata":
            e = f"visitParamExtractString(metadata, {b.param(f.key)})"
            return _STRING_OPS[f.operator].format(e=e, v=b.param(f.value))
        d = view.dimensions[f.column]
        e = self._t(d.sql)
        if f.kind == "null":
            empty = {"array": f"empty({e})", "string": f"{e} = ''"}.get(d.kind, "0")
            return empty if f.operator == "is null" else f"NOT ({empty})"
        if f.kind == "string":
            return _STRING_OPS[f.operator].format(e=e, v=b.param(f.value))
        if f.kind == "number":
            return f"{e} {f.operator} {b.param(float(f.value))}"
        if f.kind == "boolean":
            return f"({e}) {'=' if f.operator == '=' else '!='} {int(bool(f.value))}"
        values = list(f.value)
        if f.kind == "array":
            if not values:  # all of nothing holds, none of nothing holds
                return "1"
            return ARRAY_MATCH[f.operator].format(e=e, v=b.param(values))
        # options over a string
        return OPTION_MATCH[f.operator].format(e=e, v=b.param(values))

    def decode(self, rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        return answer(self.q, rows)
