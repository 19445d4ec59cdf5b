"""The rows of a metrics query as Langfuse answers them: dimensions by name, `time_dimension` as
ISO 8601, each metric as `<aggregation>_<measure>`, 64-bit integers as strings (ClickHouse's JSON
hands them so to Langfuse), NaN as null; and the gaps of a time series filled with zeros, as
Langfuse's WITH FILL does (18.16 has no WITH FILL).
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sinks.clickhouse.metric_views import VIEWS, Dimension, MetricsQuery, View

_SECONDS = {"minute": 60, "hour": 3600}


def answer(q: MetricsQuery, rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """The rows of MetricsSql(q) in Langfuse's shape, cut to the row limit."""
    return _Answer(q, VIEWS[q.view]).rows(rows)


class _Answer:
    def __init__(self, q: MetricsQuery, view: View) -> None:
        self.q = q
        self.view = view

    def rows(self, rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """A time series without a custom order has its gaps filled (Langfuse's WITH FILL)."""
        q = self.q
        out = []
        for row in rows:
            doc: dict[str, Any] = {}
            for i, name in enumerate(q.dimensions):
                doc[name] = _dimension_value(self.view.dimensions[name], row[i])
            at = len(q.dimensions)
            if q.granularity:
                doc["time_dimension"] = self._bucket_text(int(row[at]))
                at += 1
            for i, (name, kind) in enumerate(self._metric_kinds()):
                doc[name] = _metric_value(kind, row[at + i])
            out.append(doc)
        if q.granularity and not q.order:
            out = self._filled(out)
        return out[: q.limit]

    def _metric_kinds(self) -> list[tuple[str, str]]:
        """(answer field, int | float | histogram) of each metric."""
        if not self.q.metrics:
            return [("count", "int")]
        kinds = []
        for m in self.q.metrics:
            measure = self.view.measures[m.measure]
            if m.aggregation == "histogram":
                kind = "histogram"
            elif m.aggregation in ("count", "uniq") or (m.aggregation in ("sum", "min", "max") and measure.integral):
                kind = "int"
            else:
                kind = "float"
            kinds.append((m.alias, kind))
        return kinds

    def _bucket_text(self, value: int) -> str:
        if self.q.granularity in _SECONDS:
            return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (date(1970, 1, 1) + timedelta(days=value)).isoformat()

    def _filled(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Zero rows for the buckets from the window's first up to (not including) its last's
        that have no row, merged in time order; at most `limit` rows are made."""
        present = {r["time_dimension"] for r in rows}
        blank = {name: _blank(self.view.dimensions[name]) for name in self.q.dimensions}
        zeros = {name: {"int": "0", "float": 0, "histogram": []}[kind] for name, kind in self._metric_kinds()}
        filled: list[dict[str, Any]] = []
        pending = iter(rows)
        nxt = next(pending, None)
        for bucket in self._buckets():
            while nxt is not None and nxt["time_dimension"] <= bucket and len(filled) < self.q.limit:
                filled.append(nxt)
                nxt = next(pending, None)
            if len(filled) >= self.q.limit:
                return filled
            if bucket not in present:
                filled.append({**blank, "time_dimension": bucket, **zeros})
        while nxt is not None and len(filled) < self.q.limit:
            filled.append(nxt)
            nxt = next(pending, None)
        return filled

    def _buckets(self) -> Iterator[str]:
        g = self.q.granularity
        start = datetime.fromtimestamp(self.q.from_us / 1e6, UTC)
        end = datetime.fromtimestamp(self.q.to_us / 1e6, UTC)
        if g in _SECONDS:
            step = _SECONDS[g]
            t, stop = int(start.timestamp()) // step * step, int(end.timestamp()) // step * step
            while t < stop:
                yield self._bucket_text(t)
                t += step
            return
        d, last = _day_bucket(g, start.date()), _day_bucket(g, end.date())
        while d < last:
            yield d.isoformat()
            if g == "day":
                d += timedelta(days=1)
            elif g == "week":
                d += timedelta(days=7)
            else:
                d += timedelta(days=calendar.monthrange(d.year, d.month)[1])


def _day_bucket(granularity: str | None, d: date) -> date:
    if granularity == "week":
        return d - timedelta(days=d.weekday())
    if granularity == "month":
        return d.replace(day=1)
    return d


def _dimension_value(d: Dimension, value: Any) -> Any:
    if value is None:
        return None
    if d.kind == "array":
        return list(value)
    if d.kind == "number":
        return _number(value)
    if d.kind == "boolean":
        return bool(value)
    return value


def _blank(d: Dimension) -> Any:
    """What ClickHouse's WITH FILL puts in a dimension of a filled row: the type's default."""
    if d.nullable:
        return None
    return {"array": [], "number": 0, "boolean": False}.get(d.kind, "")


def _metric_value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "int":
        return str(int(value))
    if kind == "histogram":
        return [[_number(x) for x in bin_] for bin_ in value]
    return _number(value)


def _number(value: Any) -> float | None:
    """A float for JSON: NaN and infinities (the average of nothing) as null, as ClickHouse's JSON."""
    x = float(value)
    return x if math.isfinite(x) else None
