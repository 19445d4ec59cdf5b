"""Langfuse's metrics API: the query object's checks (ingest/read_metrics.py) and the SQL
(sinks/clickhouse/metrics.py) run on an embedded current ClickHouse (chDB, the modern dialect;
tests/stack/test_metrics_api.py runs it on 18.16).

Each entity has stale versions and deleted neighbours, another project shares its names: only
the newest undeleted rows of the caller's project may count.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from chdb import session as chdb_session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.encoding import ClientError
from ingest.read_metrics import _FILTER_TYPES, parse
from sinks.clickhouse.metric_views import AGGREGATIONS, VIEWS, VIEWS_V2
from sinks.clickhouse.reader import Reader
from tests.unit.test_clickhouse_reader import DAY, T0, ChdbClient, _literal, _ts

HOUR = 3_600_000_000
S = 1_000_000
FROM, TO = "2026-11-26T10:00:00Z", "2026-11-28T12:00:00Z"  # T0 - 1 day .. T0 + 1 day 2 h


def _insert(s: chdb_session.Session, table: str, project: str, id_: str, version: int, **cols: Any) -> None:
    names = ["project_id", "id", "created_at", "updated_at", "event_ts", *cols]
    values = [_literal(project), _literal(id_), f"'{_ts(T0)}'", f"'{_ts(T0)}'", str(version)]
    for v in cols.values():
        values.append(f"'{_ts(v.us)}'" if isinstance(v, _At) else _literal(v))
    s.query(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(values)})")


class _At:
    def __init__(self, us: int) -> None:
        self.us = us


@pytest.fixture(scope="module")
def reader(chdb: chdb_session.Session) -> Iterator[Reader]:
    s = chdb
    s.query("USE agenttrace")

    def trace(id_: str, at: int, version: int = 1, project: str = "p", **cols: Any) -> None:
        _insert(s, "traces", project, id_, version, timestamp=_At(at), **cols)

    def obs(id_: str, trace_id: str, at: int, version: int = 1, project: str = "p", **cols: Any) -> None:
        _insert(s, "observations", project, id_, version, trace_id=trace_id, start_time=_At(at), **cols)

    def score(id_: str, trace_id: str, version: int = 1, project: str = "p", **cols: Any) -> None:
        cols.setdefault("timestamp", _At(T0))
        _insert(s, "scores", project, id_, version, trace_id=trace_id, **cols)

    trace("t1", T0, 1, name="old", user_id="u1")
    trace("t1", T0, 2, name="chat", user_id="u1", session_id="s1", tags=["a", "b"], release="r1", metadata='{"k":"v"}')
    trace("t2", T0 + HOUR, name="chat", user_id="u2", tags=["a"])
    trace("t3", T0 + DAY, name="embed", environment="dev")
    trace("t4", T0, 1, name="chat", user_id="u9")
    trace("t4", T0, 2, is_deleted=1, name="chat", user_id="u9")
    trace("t9", T0, project="other", name="chat", user_id="u1")
    gen: dict[str, Any] = {"type": "GENERATION", "name": "llm", "provided_model_name": "gpt"}
    obs(
        "o1", "t1", T0, **gen, end_time=_At(T0 + 2 * S), completion_start_time=_At(T0 + S // 2),
        input_tokens=6, output_tokens=5, total_tokens=15, total_cost=0.5,
        usage_details='{"input":6,"input_cached_tokens":4,"output":5,"total":15}',
        cost_details='{"input":0.15,"input_cached_tokens":0.05,"output":0.3,"total":0.5}',
    )  # fmt: skip
    obs("o2", "t1", T0 + S // 10, type="SPAN", name="tool", end_time=_At(T0 + S))
    obs("o3", "t2", T0 + HOUR, 1, **gen, end_time=_At(T0 + HOUR + S), total_tokens=99, total_cost=9.0)
    obs("o3", "t2", T0 + HOUR, 2, **gen, end_time=_At(T0 + HOUR + 4 * S), total_tokens=30, total_cost=1.0)
    obs("o4", "t4", T0, 1, **gen, total_tokens=1000)
    obs("o4", "t4", T0, 2, **gen, total_tokens=1000, is_deleted=1)
    obs("o9", "t9", T0, project="other", **gen, total_tokens=7)
    score("s1", "t1", name="quality", value=0.5, data_type="NUMERIC", observation_id="o1")
    score("s2", "t2", name="quality", value=1.0, data_type="NUMERIC")
    score("s3", "t1", name="label", string_value="good", data_type="CATEGORICAL")
    score("s4", "t1", name="ok", value=1.0, data_type="BOOLEAN", observation_id="o1")
    score("s5", "t1", 1, name="quality", value=100.0, data_type="NUMERIC")
    score("s5", "t1", 2, name="quality", value=100.0, data_type="NUMERIC", is_deleted=1)
    score("s9", "t9", project="other", name="quality", value=7.0, data_type="NUMERIC")
    client = ChdbClient(s)
    # chDB 4.4 has the query condition cache, on by default, as current servers do.
    client.settings = frozenset({"use_query_condition_cache"})
    yield Reader(client)  # type: ignore[arg-type]


async def run(reader: Reader, project: str = "p", v2: bool = False, **query: Any) -> list[dict[str, Any]]:
    query.setdefault("fromTimestamp", FROM)
    query.setdefault("toTimestamp", TO)
    query.setdefault("metrics", [{"measure": "count", "aggregation": "count"}])
    return await reader.metrics(project, parse(orjson.dumps(query).decode(), v2=v2))


def dims(*fields: str) -> list[dict[str, str]]:
    return [{"field": f} for f in fields]


def agg(*answer_fields: str) -> list[dict[str, str]]:
    """The metrics whose answer fields are these (`sum_totalCost`: totalCost summed)."""
    return [dict(zip(("aggregation", "measure"), f.split("_", 1), strict=True)) for f in answer_fields]


async def test_traces_count_by_name_newest_undeleted_rows_of_the_project(reader: Reader) -> None:
    rows = await run(reader, view="traces", dimensions=dims("name"))
    # 64-bit counts are strings, as ClickHouse's JSON hands them to Langfuse; most first.
    assert rows == [{"name": "chat", "count_count": "2"}, {"name": "embed", "count_count": "1"}]
    assert await run(reader, "other", view="traces") == [{"count_count": "1"}]
    users = await run(reader, view="traces", metrics=agg("count_uniqueUserIds"), dimensions=dims("name"))
    assert users == [{"name": "chat", "count_uniqueUserIds": "2"}, {"name": "embed", "count_uniqueUserIds": "0"}]


async def test_trace_measures_from_their_observations_and_scores(reader: Reader) -> None:
    rows = await run(
        reader,
        view="traces",
        dimensions=dims("name", "userId"),
        metrics=agg("sum_totalCost", "max_latency", "sum_observationsCount", "sum_totalTokens"),
        orderBy=[{"field": "userId", "direction": "asc"}],
    )
    # t3 has no observation: joined as Langfuse joins (inner), it drops out of these measures.
    assert rows == [
        {
            "name": "chat", "userId": "u1", "sum_totalCost": 0.5, "max_latency": "2000",
            "sum_observationsCount": "2", "sum_totalTokens": "15",
        },
        {
            "name": "chat", "userId": "u2", "sum_totalCost": 1.0, "max_latency": "4000",
            "sum_observationsCount": "1", "sum_totalTokens": "30",
        },
    ]  # fmt: skip
    scored = await run(reader, view="traces", metrics=agg("sum_scoresCount"))
    assert scored == [{"sum_scoresCount": "4"}]  # t1: s1 s3 s4 (s5 deleted), t2: s2


async def test_observations_by_model_with_trace_fields_and_filters(reader: Reader) -> None:
    rows = await run(
        reader,
        view="observations",
        dimensions=dims("providedModelName"),
        metrics=agg("sum_totalTokens", "avg_latency", "sum_inputCost", "max_timeToFirstToken"),
        orderBy=[{"field": "sum_totalTokens", "direction": "desc"}],
    )
    assert rows == [
        {
            "providedModelName": "gpt", "sum_totalTokens": "45", "avg_latency": 3000.0,
            "sum_inputCost": 0.2, "max_timeToFirstToken": "500",
        },
        {
            "providedModelName": None, "sum_totalTokens": "0", "avg_latency": 900.0,
            "sum_inputCost": 0.0, "max_timeToFirstToken": None,
        },
    ]  # fmt: skip
    # Input and output as Langfuse sums them: every type so named, the cached input too
    # (the cost's 0.2 above is 0.15 of input and 0.05 of cached input).
    usage = await run(reader, view="observations", metrics=agg("sum_inputTokens", "sum_outputTokens"))
    assert usage == [{"sum_inputTokens": "10", "sum_outputTokens": "5"}]
    by_user = await run(
        reader,
        view="observations",
        dimensions=dims("userId", "traceName", "tags"),
        filters=[
            {"column": "traceName", "operator": "=", "value": "chat", "type": "string"},
            {"column": "type", "operator": "any of", "value": ["GENERATION"], "type": "stringOptions"},
            {"column": "tags", "operator": "all of", "value": ["a"], "type": "arrayOptions"},
        ],
        orderBy=[{"field": "userId", "direction": "desc"}],
    )
    assert by_user == [
        {"userId": "u2", "traceName": "chat", "tags": ["a"], "count_count": "1"},
        {"userId": "u1", "traceName": "chat", "tags": ["a", "b"], "count_count": "1"},
    ]
    scored = await run(reader, view="observations", metrics=agg("sum_countScores"))
    assert scored == [{"sum_countScores": "2"}]  # o1: s1 and s4


async def test_scores_views(reader: Reader) -> None:
    numeric = await run(
        reader,
        view="scores-numeric",
        dimensions=dims("name"),
        metrics=agg("avg_value", "count_count"),
        orderBy=[{"field": "name", "direction": "asc"}],
    )
    assert numeric == [
        {"name": "ok", "avg_value": 1.0, "count_count": "1"},  # a boolean score is numeric too
        {"name": "quality", "avg_value": 0.75, "count_count": "2"},
    ]
    categorical = await run(reader, view="scores-categorical", dimensions=dims("stringValue", "traceName", "userId"))
    assert categorical == [{"stringValue": "good", "traceName": "chat", "userId": "u1", "count_count": "1"}]
    joined = await run(
        reader,
        view="scores-numeric",
        dimensions=dims("observationName", "observationModelName"),
        filters=[{"column": "value", "operator": ">=", "value": 0.5, "type": "number"}],
    )
    assert joined == [{"observationName": "llm", "observationModelName": "gpt", "count_count": "2"}]
    boolean = await run(reader, view="scores-boolean", dimensions=dims("booleanValue"))
    assert boolean == [{"booleanValue": True, "count_count": "1"}]


async def test_time_series_buckets_and_filled_gaps(reader: Reader) -> None:
    rows = await run(reader, view="traces", timeDimension={"granularity": "day"})
    # Langfuse's WITH FILL: every day from the window's first up to its last (exclusive) has a row.
    assert rows == [
        {"time_dimension": "2026-11-26", "count_count": "0"},
        {"time_dimension": "2026-11-27", "count_count": "2"},
        {"time_dimension": "2026-11-28", "count_count": "1"},
    ]
    hourly = await run(
        reader,
        view="traces",
        dimensions=dims("name"),
        timeDimension={"granularity": "hour"},
        fromTimestamp="2026-11-27T09:30:00Z",
        toTimestamp="2026-11-27T12:00:00Z",
    )
    assert hourly == [
        {"name": "", "time_dimension": "2026-11-27T09:00:00Z", "count_count": "0"},
        {"name": "chat", "time_dimension": "2026-11-27T10:00:00Z", "count_count": "1"},
        {"name": "chat", "time_dimension": "2026-11-27T11:00:00Z", "count_count": "1"},
    ]
    # A custom order is not filled; the row limit cuts the answer.
    ordered = await run(
        reader,
        view="traces",
        timeDimension={"granularity": "week"},
        orderBy=[{"field": "count_count", "direction": "desc"}],
        config={"row_limit": 1},
    )
    assert ordered == [{"time_dimension": "2026-11-23", "count_count": "3"}]
    monthly = await run(
        reader, view="traces", timeDimension={"granularity": "month"}, toTimestamp="2027-02-01T00:00:00Z"
    )
    assert [r["time_dimension"] for r in monthly] == ["2026-11-01", "2026-12-01", "2027-01-01"]
    assert len(await run(reader, view="traces", timeDimension={"granularity": "minute"}, config={"row_limit": 7})) == 7


async def test_aggregations_histogram_and_empty_windows(reader: Reader) -> None:
    rows = await run(
        reader,
        view="observations",
        metrics=agg("histogram_latency", "p50_latency", "min_latency", "uniq_latency"),
        config={"bins": 2},
    )
    (row,) = rows
    assert row["min_latency"] == "900" and row["uniq_latency"] == "3" and row["p50_latency"] == 2000.0
    assert 1 <= len(row["histogram_latency"]) <= 2
    assert all(len(b) == 3 and b[0] <= b[1] for b in row["histogram_latency"])
    assert sum(b[2] for b in row["histogram_latency"]) == 3
    empty = await run(
        reader,
        view="observations",
        metrics=agg("avg_latency"),
        fromTimestamp="2020-01-01T00:00:00Z",
        toTimestamp="2020-01-02T00:00:00Z",
    )
    assert empty == [{"avg_latency": None}]  # the average of nothing (NaN) is null, as in ClickHouse's JSON
    assert await run(reader, view="traces", metrics=[]) == [{"count": "3"}]


async def test_filter_values_are_parameters_and_times_bound_the_window(reader: Reader) -> None:
    hostile = "chat' OR 1=1 --"
    rows = await run(
        reader, view="traces", filters=[{"column": "name", "operator": "=", "value": hostile, "type": "string"}]
    )
    assert rows == [{"count_count": "0"}]
    after = await run(
        reader,
        view="traces",
        filters=[{"column": "timestamp", "operator": ">", "value": "2026-11-27T10:30:00Z", "type": "datetime"}],
    )
    assert after == [{"count_count": "2"}]
    meta = await run(
        reader,
        view="traces",
        filters=[{"column": "metadata", "operator": "=", "key": "k", "value": "v", "type": "stringObject"}],
    )
    assert meta == [{"count_count": "1"}]
    nulls = await run(
        reader,
        view="traces",
        dimensions=dims("sessionId"),
        filters=[{"column": "userId", "operator": "is not null", "value": "", "type": "null"}],
        orderBy=[{"field": "sessionId", "direction": "asc"}],
    )
    assert nulls == [{"sessionId": "s1", "count_count": "1"}, {"sessionId": None, "count_count": "1"}]
    # The window's end is inclusive, as Langfuse's.
    edge = await run(reader, view="traces", fromTimestamp="2026-11-27T10:30:00Z", toTimestamp="2026-11-27T11:00:00Z")
    assert edge == [{"count_count": "1"}]


def _filtered(view: str, column: str, operator: str, value: Any, kind: str) -> dict[str, Any]:
    return {"view": view, "filters": [{"column": column, "operator": operator, "value": value, "type": kind}]}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("not json", "Invalid JSON"),
        ("[]", "a JSON object"),
        ('{"view": "traces"}', "fromTimestamp is required"),
        ('{"view": "sessions", "metrics": []}', "view 'sessions' is not one of"),
        ({"view": "traces", "fromTimestamp": "2026-01-02T00:00:00"}, "fromTimestamp"),
        ({"view": "traces", "fromTimestamp": TO, "toTimestamp": FROM}, "fromTimestamp must be before toTimestamp"),
        ({"view": "traces", "metrics": None}, "metrics must be an array"),
        ({"view": "traces", "metrics": [{"measure": "nope", "aggregation": "sum"}]}, "Invalid metric 'nope'"),
        ({"view": "traces", "metrics": [{"measure": "count", "aggregation": "median"}]}, "aggregation 'median'"),
        ({"view": "traces", "dimensions": [{"field": "type"}]}, "Invalid dimension 'type' for view traces"),
        ({"view": "traces", "dimensions": [{"field": 3}]}, "needs a string 'field'"),
        ({"view": "observations", "dimensions": [{"field": "toolNames"}]}, "not supported by this server"),
        ({"view": "observations", "metrics": [{"measure": "toolCalls", "aggregation": "sum"}]}, "not supported"),
        ({"view": "traces", "timeDimension": {"granularity": "year"}}, "granularity must be one of"),
        ({"view": "traces", "config": {"row_limit": 5000}}, "config.row_limit"),
        ({"view": "traces", "config": {"bins": 0}}, "config.bins"),
        ({"view": "traces", "orderBy": [{"field": "sum_count", "direction": "asc"}]}, "Invalid orderBy field"),
        ({"view": "traces", "orderBy": [{"field": "time_dimension", "direction": "asc"}]}, "none asked for"),
        (
            {"view": "traces", "metrics": [{"measure": "count", "aggregation": "count"}],
             "orderBy": [{"field": "count_count", "direction": "up"}]},
            "direction",
        ),
        (_filtered("traces", "x", "=", "", "string"), "'x'"),
        (_filtered("traces", "name", ">", "", "string"), "'>'"),
        (_filtered("traces", "name", "=", 1, "string"), "string"),
        (_filtered("traces", "tags", "=", "a", "string"), "tags"),
        (_filtered("traces", "metadata", "=", "v", "string"), "key"),
        (_filtered("traces", "name", "any of", [], "stringOptions"), "list"),
        (_filtered("traces", "timestamp", ">", "soon", "datetime"), "ISO"),
        (_filtered("scores-numeric", "value", "=", "1", "number"), "number"),
    ],
)  # fmt: skip
def test_invalid_queries_are_refused_naming_the_field(query: Any, message: str) -> None:
    if isinstance(query, dict):
        query = orjson.dumps({"fromTimestamp": FROM, "toTimestamp": TO, "metrics": [], **query}).decode()
    with pytest.raises(ClientError) as refused:
        parse(query)
    assert message in refused.value.message


def test_v2_refuses_the_traces_view_and_high_cardinality_groupings() -> None:
    base = {"fromTimestamp": FROM, "toTimestamp": TO, "metrics": []}
    with pytest.raises(ClientError, match="view 'traces'"):
        parse(orjson.dumps({**base, "view": "traces"}).decode(), v2=True)
    with pytest.raises(ClientError, match="userId"):
        parse(orjson.dumps({**base, "view": "observations", "dimensions": dims("userId")}).decode(), v2=True)
    q = parse(
        orjson.dumps(
            {
                **base,
                "view": "observations",
                "filters": [{"column": "userId", "operator": "=", "value": "u", "type": "string"}],
            }
        ).decode(),
        v2=True,
    )
    assert q.limit == 100 and parse(orjson.dumps({**base, "view": "traces"}).decode()).limit == 1000


def test_auto_granularity_aims_at_about_fifty_buckets() -> None:
    def granularity(to: str) -> str | None:
        doc = {"view": "traces", "fromTimestamp": "2026-01-01T00:00:00Z", "toTimestamp": to, "metrics": []}
        return parse(orjson.dumps({**doc, "timeDimension": {"granularity": "auto"}}).decode()).granularity

    assert granularity("2026-01-01T01:00:00Z") == "minute"
    assert granularity("2026-01-02T00:00:00Z") == "hour"
    assert granularity("2026-01-20T00:00:00Z") == "day"
    assert granularity("2026-06-01T00:00:00Z") == "week"
    assert granularity("2028-01-01T00:00:00Z") == "month"


@pytest.mark.parametrize(("view", "v2"), [*((v, False) for v in sorted(VIEWS)), *((v, True) for v in sorted(VIEWS_V2))])
async def test_every_declared_field_runs_and_sends_values_only_as_parameters(
    reader: Reader, view: str, v2: bool
) -> None:
    """Each dimension, measure and filter column of a view in one query: it runs, and its SQL has
    no '%' but the driver's parameters (a literal one breaks the driver's substitution)."""
    declared = VIEWS[view]
    if v2:
        fields = [n for n, d in declared.dimensions.items() if not d.high_cardinality]
        measures = list(declared.measures)
    else:
        fields = [n for n in declared.dimensions if n not in declared.v2_dimensions]
        measures = [n for n in declared.measures if n not in declared.v2_measures]
    client = reader._ch
    assert isinstance(client, ChdbClient)
    rows = await run(
        reader,
        v2=v2,
        view=view,
        dimensions=dims(*fields),
        metrics=[
            {"measure": m, "aggregation": a}
            for m in measures
            for a in (("count", "uniq") if declared.measures[m].text else ("sum", "p90", "uniq"))
        ],
        filters=[{"column": name, "operator": "is not null", "value": "", "type": "null"} for name in fields],
        timeDimension={"granularity": "auto"},
    )
    assert isinstance(rows, list)
    assert "%" not in re.sub(r"%\(p?\w+\)s", "", client.statements["read_metrics"])


async def test_a_query_matching_nothing_leaves_the_next_its_rows(reader: Reader) -> None:
    """With ClickHouse 26.9's query condition cache on (chDB 4.4), a query whose filters matched
    nothing made the next query of the window that joins the trace answer no rows at all; the
    metrics queries turn the cache off where the server has it (ClickHouse.settings)."""
    plain = {"v2": True, "view": "observations", "dimensions": dims("isRootObservation")}
    plain["metrics"] = agg("uniq_traceId", "uniq_uniqueUserIds")
    before = await run(reader, **plain)
    declared = VIEWS["observations"]
    fields = [n for n, d in declared.dimensions.items() if not d.high_cardinality]
    await run(
        reader,
        v2=True,
        view="observations",
        dimensions=dims(*fields),
        metrics=[{"measure": m, "aggregation": "uniq"} for m in declared.measures],
        filters=[{"column": name, "operator": "is not null", "value": "", "type": "null"} for name in fields],
        timeDimension={"granularity": "auto"},
    )
    assert await run(reader, **plain) == before != []


async def test_v2_observation_fields(reader: Reader) -> None:
    rows = await run(
        reader,
        v2=True,
        view="observations",
        dimensions=dims("isRootObservation"),
        metrics=agg("uniq_traceId", "uniq_uniqueUserIds", "count_uniqueUserIds"),
    )
    assert rows == [
        {"isRootObservation": True, "uniq_traceId": "2", "uniq_uniqueUserIds": "2", "count_uniqueUserIds": "3"}
    ]
    for refused, message in (
        ({"dimensions": dims("isRootObservation")}, "Invalid dimension 'isRootObservation'"),
        ({"metrics": [{"measure": "traceId", "aggregation": "uniq"}]}, "Invalid metric 'traceId'"),
    ):
        with pytest.raises(ClientError, match=message):
            parse(
                orjson.dumps(
                    {"view": "observations", "fromTimestamp": FROM, "toTimestamp": TO, "metrics": [], **refused}
                ).decode()
            )
    with pytest.raises(ClientError, match="use count or uniq"):
        doc = {"view": "observations", "fromTimestamp": FROM, "toTimestamp": TO}
        parse(orjson.dumps({**doc, "metrics": [{"measure": "traceId", "aggregation": "sum"}]}).decode(), v2=True)


_NAMES = sorted({n for v in VIEWS.values() for n in (*v.dimensions, *v.measures, *v.unsupported, v.time)})
_ANY = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8),
    st.lists(st.text(max_size=4), max_size=3), st.sampled_from([FROM, TO, "1999-01-01T00:00:00+05:00"]),
)  # fmt: skip
# Mostly names a view has, now and then one it lacks or a value of another type.
_FIELDS = st.sampled_from([*_NAMES, "time_dimension", "metadata", "count_count", "sum_value", "p50_latency", 3])
_OPERATORS = st.sampled_from(sorted({o for ops in _FILTER_TYPES.values() for o in ops}))
_FILTER_VALUES = st.one_of(
    _ANY, st.just(""), st.sampled_from(["chat", "u1", "a"]), st.lists(st.sampled_from(["a", "b", "chat"]), max_size=2)
)


def _items(**keys: Any) -> Any:
    return st.lists(st.fixed_dictionaries(keys), max_size=3)


_QUERIES = st.fixed_dictionaries(
    {
        "view": st.sampled_from([*sorted(VIEWS), "sessions"]),
        "fromTimestamp": st.sampled_from([FROM, "2026-11-27T10:59:00+01:00"]),
        "toTimestamp": st.sampled_from([TO, "2999-01-01T00:00:00Z"]),
        "metrics": _items(measure=_FIELDS, aggregation=st.sampled_from([*sorted(AGGREGATIONS), "median"])),
    },
    optional={
        "dimensions": _items(field=_FIELDS),
        "filters": _items(
            column=_FIELDS,
            operator=_OPERATORS,
            type=st.sampled_from(sorted(_FILTER_TYPES)),
            value=_FILTER_VALUES,
            key=st.sampled_from(["k", "", "x' OR '1"]),
        ),
        "timeDimension": st.one_of(
            _ANY, st.fixed_dictionaries({"granularity": st.sampled_from(["auto", "hour", "year"])})
        ),
        "orderBy": _items(field=_FIELDS, direction=st.sampled_from(["asc", "desc", "up"])),
        "config": st.one_of(_ANY, st.fixed_dictionaries({}, optional={"bins": _ANY, "row_limit": _ANY})),
        "junk": _ANY,
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(query=_QUERIES, v2=st.booleans())
def test_whatever_a_client_sends_is_a_400_or_runs(reader: Reader, query: dict[str, Any], v2: bool) -> None:
    """No query object makes anything but a ClientError (400) or SQL that runs: never a 5xx."""
    try:
        parsed = parse(json.dumps(query), v2=v2)  # stdlib: big integers and NaN as a client may send them
    except ClientError:
        return
    rows = asyncio.run(reader.metrics("p", parsed))
    assert isinstance(rows, list) and len(rows) <= parsed.limit
