"""The read API's SQL on a current ClickHouse: chDB runs the modern dialect's DDL and the
Reader's SELECTs (the stack tests run the same SELECTs on 18.16's legacy dialect).

The newest version of a row wins without FINAL, deleted rows never show, another project's
rows never show, and filters see only the newest version.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest
from chdb import session as chdb_session

from sinks.clickhouse.reader import Cursor, ObservationFilter, Page, Reader, ScoreFilter, TraceFilter
from sinks.clickhouse.schema import MODERN, migrations
from sinks.clickhouse.writer import ClickHouseWriter

DAY = 86_400_000_000
T0 = 1_795_773_600_000_000  # 2026-11-27T10:00:00Z


class ChdbClient:
    """The slice of sinks.clickhouse.client.ClickHouse the Reader uses, over an embedded chDB."""

    version = (24, 8)
    settings: frozenset[str] = frozenset()  # what ClickHouse.start() finds in system.settings

    def __init__(self, session: chdb_session.Session) -> None:
        self._s = session
        self.operations: list[str] = []
        self.statements: dict[str, str] = {}  # operation -> its last SQL

    async def fetch(
        self, sql: str, params: Any = None, *, operation: str = "select", ids: Sequence[str] | None = None
    ) -> list[tuple[Any, ...]]:
        self.operations.append(operation)
        self.statements[operation] = sql
        if ids is not None:
            listed = ", ".join(_literal(i) for i in ids) or "''"
            sql = sql.replace("IN _ids", f"IN ({listed})")
            sql = sql.replace("FROM _ids", f"FROM (SELECT arrayJoin([{listed}]) AS id)")
        sql = re.sub(r"%\((\w+)\)s", lambda m: _literal(params[m.group(1)]), sql)
        doc = orjson.loads(str(self._s.query(sql, "JSONCompact")))
        types = [c["type"] for c in doc["meta"]]
        return [tuple(_value(t, v) for t, v in zip(types, row, strict=True)) for row in doc["data"]]


def _literal(value: Any) -> str:
    if isinstance(value, list | tuple):
        return f"[{', '.join(_literal(v) for v in value)}]"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, date):
        return f"toDate('{value.isoformat()}')"
    return str(value)


def _value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if "DateTime64" in kind:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    if kind.endswith("Date") or kind == "Date":
        return date.fromisoformat(value)
    if "Int" in kind and isinstance(value, str):
        return int(value)
    return value


def _ts(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Any:
    s = chdb_session.Session(str(tmp_path_factory.mktemp("chdb-reader")))
    s.query("CREATE DATABASE IF NOT EXISTS agenttrace")
    for m in migrations():
        for statement in m.statements(MODERN, "agenttrace"):
            s.query(statement)
    s.query("USE agenttrace")

    def trace(project: str, id_: str, at: int, version: int, deleted: int = 0, **cols: Any) -> None:
        names = ["project_id", "id", "timestamp", "created_at", "updated_at", "event_ts", "is_deleted", *cols]
        values = [_literal(project), _literal(id_), *[f"'{_ts(at)}'"] * 3, str(version), str(deleted)]
        values += [_literal(v) for v in cols.values()]
        s.query(f"INSERT INTO traces ({', '.join(names)}) VALUES ({', '.join(values)})")

    def observation(project: str, id_: str, trace_id: str, at: int, version: int, **cols: Any) -> None:
        names = ["project_id", "id", "trace_id", "start_time", "created_at", "updated_at", "event_ts", *cols]
        values = [_literal(project), _literal(id_), _literal(trace_id), *[f"'{_ts(at)}'"] * 3, str(version)]
        values += [_literal(v) for v in cols.values()]
        s.query(f"INSERT INTO observations ({', '.join(names)}) VALUES ({', '.join(values)})")

    # t1 renamed and retagged by a later version; t2 deleted by its newest version; t3 a day later.
    trace("p", "t1", T0, 1, name="old", user_id="u1", tags=["x"], session_id="s1")
    trace("p", "t1", T0, 2, name="new", user_id="u1", tags=["x", "y"], session_id="s1")
    trace("p", "t2", T0 + 1, 1, name="gone", user_id="u1")
    trace("p", "t2", T0 + 1, 2, deleted=1, name="gone", user_id="u1")
    trace("p", "t3", T0 + DAY, 1, name="new", user_id="u2", session_id="s2")
    trace("other", "t9", T0, 1, name="new", user_id="u1", tags=["x", "y"])
    observation("p", "o1", "t1", T0 + 10, 1, type="SPAN", name="plan")
    llm = {"type": "GENERATION", "name": "llm", "provided_model_name": "m"}
    observation("p", "o2", "t1", T0 + 20, 1, **llm, input_tokens=3, usage_details='{"input":3}')
    cached = '{"input":5,"input_cached_tokens":2,"output":1}'
    observation("p", "o2", "t1", T0 + 20, 2, **llm, input_tokens=5, output_tokens=1, usage_details=cached)
    observation("p", "o3", "t3", T0 + DAY, 1, type="EVENT", name="log")
    observation("other", "o9", "t9", T0, 1, type="SPAN")
    s.query(
        "INSERT INTO scores (project_id, id, trace_id, name, value, data_type, source, timestamp, created_at,"
        f" updated_at, event_ts) VALUES ('p', 's1', 't1', 'q', 0.5, 'NUMERIC', 'API', '{_ts(T0)}', '{_ts(T0)}',"
        f" '{_ts(T0)}', 1)"
    )
    yield Reader(ChdbClient(s))  # type: ignore[arg-type]
    s.close()


async def test_the_writers_reads_by_id_run_on_a_current_clickhouse(reader: Reader) -> None:
    """The ClickHouse stage's lookups (FINAL with PREWHERE on the id) find the newest version
    of what is stored, tell deleted entities apart and nothing of another project; its reads
    of every row of some observations (the reconcile) return each version."""
    writer = ClickHouseWriter(reader._ch, MODERN)
    found: dict[tuple[str, str, str], Any] = {}
    gone: set[tuple[str, str, str]] = set()
    keys = [("traces", "p", "t1"), ("traces", "p", "t2"), ("traces", "p", "t9"), ("traces", "p", "none")]
    keys += [("observations", "p", "o2"), ("observations", "p", "o9"), ("observations", "p", "none")]
    await writer._lookup(keys, found, gone)
    assert sorted(found) == [("observations", "p", "o2"), ("traces", "p", "t1")]
    assert found[("traces", "p", "t1")].revision == 2 and found[("observations", "p", "o2")].revision == 2
    assert gone == {("traces", "p", "t2")}
    rows = await writer._rows_of("observations", "p", ["o1", "o2", "o9", "none"], "reconcile_observations")
    assert sorted((r["id"], r["event_ts"]) for r in rows) == [("o1", 1), ("o2", 1), ("o2", 2)]


async def test_newest_version_wins_and_deleted_rows_never_show(reader: Reader) -> None:
    listing = await reader.traces("p", TraceFilter(), ("timestamp", True), Page(10))
    assert [(r["id"], r["name"]) for r in listing.rows] == [("t3", "new"), ("t1", "new")]
    assert listing.total == 2
    assert listing.rows[1]["timestamp"] == T0 and listing.rows[1]["tags"] == ["x", "y"]
    assert (await reader.trace("p", "t2"))[0] is None
    assert (await reader.trace("other", "t1"))[0] is None


async def test_reads_of_one_entity_run_in_one_server_thread(reader: Reader) -> None:
    client = reader._ch
    assert isinstance(client, ChdbClient)
    await reader.trace("p", "t1")
    await reader.observation("p", "o1")
    await reader.score("p", "s1")
    await reader.traces("p", TraceFilter(), ("timestamp", True), Page(10))
    single = (
        "read_trace",
        "read_trace_observations",
        "read_trace_scores",
        "read_observation",
        "read_score",
    )
    for operation in single:
        assert client.statements[operation].endswith(", max_threads = 1"), operation
    # A page reads a whole project's candidates: it keeps the server's threads.
    assert all("max_threads" not in sql for op, sql in client.statements.items() if op not in single)


async def test_trace_pages_from_few_candidates_stay_exact(reader: Reader, monkeypatch: pytest.MonkeyPatch) -> None:
    """With one candidate per row, stale and deleted versions crowd the candidates: the page is
    checked against the last candidate and read again from more until it is exact."""
    import sinks.clickhouse.reader as module

    monkeypatch.setattr(module, "CANDIDATES_PER_ROW", 1)
    monkeypatch.setattr(module, "CANDIDATE_SLACK", 0)

    async def page(order: tuple[str, bool], n: int, offset: int) -> list[str]:
        return [r["id"] for r in (await reader.traces("p", TraceFilter(), order, Page(n, offset))).rows]

    assert await page(("timestamp", False), 1, 0) == ["t1"]
    assert await page(("timestamp", False), 1, 1) == ["t3"]  # t1's two versions fill 2 candidates
    assert await page(("timestamp", True), 1, 1) == ["t1"]  # t2's live version is a candidate
    assert await page(("name", True), 2, 0) == ["t3", "t1"]
    assert await page(("timestamp", True), 1, 2) == []


async def test_filters_see_only_the_newest_version(reader: Reader) -> None:
    async def ids(f: TraceFilter) -> list[str]:
        return [r["id"] for r in (await reader.traces("p", f, ("id", False), Page(10))).rows]

    assert await ids(TraceFilter(name="old")) == []
    assert await ids(TraceFilter(name="new", tags=("x", "y"))) == ["t1"]
    assert await ids(TraceFilter(user_id="u1")) == ["t1"]
    assert await ids(TraceFilter(from_us=T0 + 1, to_us=T0 + 2 * DAY)) == ["t3"]
    assert await ids(TraceFilter(from_us=T0, to_us=T0 + 1)) == ["t1"]


async def test_observations_pages_cursor_and_summaries(reader: Reader) -> None:
    listing = await reader.observations("p", ObservationFilter(trace_id="t1"), Page(1, 1))
    assert [r["id"] for r in listing.rows] == ["o1"] and listing.total == 2
    assert [r["id"] for r in (await reader.observations("p", ObservationFilter(user_id="u2"), Page(10))).rows] == ["o3"]
    first = await reader.observations_after("p", ObservationFilter(), None, 2)
    assert [r["id"] for r in first] == ["o3", "o2"]
    last = first[-1]
    rest = await reader.observations_after("p", ObservationFilter(), Cursor(last["start_time"], "t1", "o2"), 2)
    assert [r["id"] for r in rest] == ["o1"]
    observations, scores = await reader.trace_summaries("p", ["t1"])
    assert sorted(o["id"] for o in observations) == ["o1", "o2"] and scores == [{"id": "s1", "trace_id": "t1"}]


async def test_structured_filter_conditions_on_the_newest_version(reader: Reader) -> None:
    async def obs(*conditions: Any, **kw: Any) -> list[str]:
        f = ObservationFilter(conditions=conditions, **kw)
        return sorted(r["id"] for r in (await reader.observations("p", f, Page(10))).rows)

    assert await obs(("name", "starts with", "ll")) == ["o2"]
    assert await obs(("name", "contains", "o")) == ["o3"]
    assert await obs(("name", "does not contain", "g")) == ["o1", "o2"]
    assert await obs(("type", "none of", ("SPAN", "EVENT"))) == ["o2"]
    assert await obs(("input_tokens", ">", 4)) == ["o2"]  # the newest version's 5, not the 3 before
    assert await obs(("input_tokens", "<", 4)) == ["o1", "o3"]
    assert await obs(("start_time", ">=", T0 + 20)) == ["o2", "o3"]
    assert await obs(("root", "=", True)) == ["o1", "o2", "o3"] and await obs(("root", "<>", True)) == []
    assert await obs(("trace.tags", "all of", ("x", "y")), ("trace.name", "=", "new")) == ["o1", "o2"]
    assert await obs(session_id="s2") == ["o3"]
    traces = await reader.traces(
        "p", TraceFilter(conditions=(("tags", "none of", ("y",)), ("timestamp", ">", T0))), ("id", False), Page(10)
    )
    assert [r["id"] for r in traces.rows] == ["t3"]


async def test_metadata_and_latency_filters_as_langfuse_reads_them(reader: Reader) -> None:
    client = reader._ch
    assert isinstance(client, ChdbClient)
    rows = [  # id, metadata, end (µs after the start; None: not ended)
        ("m1", {"team": "core", "n": 1, "nested": {"team": "x"}}, 2_500_000),
        ("m2", {"team": "core-ops", "cfg": {"k": True}}, 500_000),
        ("m3", {"other": {"team": "core"}}, None),
    ]
    for id_, metadata, end in rows:
        end_sql = "NULL" if end is None else f"'{_ts(T0 + end)}'"
        client._s.query(
            "INSERT INTO observations (project_id, id, trace_id, start_time, end_time, metadata, created_at,"
            f" updated_at, event_ts) VALUES ('m', '{id_}', 'tm', '{_ts(T0)}', {end_sql},"
            f" {_literal(orjson.dumps(metadata).decode())}, '{_ts(T0)}', '{_ts(T0)}', 1)"
        )
        client._s.query(
            "INSERT INTO traces (project_id, id, timestamp, metadata, created_at, updated_at, event_ts) VALUES"
            f" ('m', 't{id_}', '{_ts(T0)}', {_literal(orjson.dumps(metadata).decode())}, '{_ts(T0)}', '{_ts(T0)}', 1)"
        )

    async def obs(*conditions: Any) -> list[str]:
        return sorted(
            r["id"] for r in (await reader.observations("m", ObservationFilter(conditions=conditions), Page(10))).rows
        )

    assert await obs(("metadata", "=", ("team", "core"))) == ["m1"]  # a top-level key only
    assert await obs(("metadata", "starts with", ("team", "core"))) == ["m1", "m2"]
    assert await obs(("metadata", "does not contain", ("team", "ops"))) == ["m1", "m3"]  # m3 has none: ''
    assert await obs(("metadata", "=", ("n", "1"))) == ["m1"]  # a number as its JSON
    assert await obs(("metadata", "contains", ("cfg", '"k":true'))) == ["m2"]
    assert await obs(("latency", ">", 1)) == ["m1"] and await obs(("latency", "<=", 0.5)) == ["m2"]
    traces = await reader.traces(
        "m", TraceFilter(conditions=(("metadata", "=", ("team", "core-ops")),)), ("id", False), Page(10)
    )
    assert [r["id"] for r in traces.rows] == ["tm2"]


async def test_sessions_scores_and_daily(reader: Reader) -> None:
    sessions = await reader.sessions("p", None, None, (), Page(10))
    assert [(s["id"], s["created_at"]) for s in sessions.rows] == [("s2", T0 + DAY), ("s1", T0)]
    assert [t["id"] for t in await reader.session_traces("p", "s1")] == ["t1"]
    scores = await reader.scores("p", ScoreFilter(user_id="u1", data_types=("NUMERIC", "")), Page(10))
    assert [s["id"] for s in scores.rows] == ["s1"] and (await reader.score("other", "s1")) is None
    daily = await reader.daily("p", TraceFilter(), Page(10))
    assert [(d["day"], d["traces"]) for d in daily.rows] == [(date(2026, 11, 28), 1), (date(2026, 11, 27), 1)]
    models = {u["model"]: u for u in daily.rows[1]["usage"]}
    # Langfuse's input: every usage type so named, the cached input too (the newest version's)
    assert (models["m"]["input"], models["m"]["output"]) == (7, 1)
    assert models["m"]["observations"] == 1 and models[None]["observations"] == 1


async def test_reads_by_trace_tell_apart_traces_whose_hashes_collide(reader: Reader) -> None:
    # murmurHash2_32 (migration 0003's trace_hash) maps both ids to 3890938781; 18.16 agrees.
    a, b = "trace-228021", "trace-295823"
    client = reader._ch
    assert isinstance(client, ChdbClient)
    session = client._s
    ((ha, hb),) = await client.fetch(f"SELECT murmurHash2_32('{a}'), murmurHash2_32('{b}')")
    assert ha == hb
    for trace_id, obs in ((a, "oa"), (b, "ob")):
        session.query(
            "INSERT INTO observations (project_id, id, trace_id, start_time, created_at, updated_at, event_ts) "
            f"VALUES ('h', '{obs}', '{trace_id}', '{_ts(T0)}', '{_ts(T0)}', '{_ts(T0)}', 1)"
        )
        session.query(
            "INSERT INTO scores (project_id, id, trace_id, name, timestamp, created_at, updated_at, event_ts) "
            f"VALUES ('h', 's-{obs}', '{trace_id}', 'q', '{_ts(T0)}', '{_ts(T0)}', '{_ts(T0)}', 1)"
        )
    _, observations, scores = await reader.trace("h", a)
    assert [o["id"] for o in observations] == ["oa"] and [s["id"] for s in scores] == ["s-oa"]
    listing = await reader.observations("h", ObservationFilter(trace_id=b), Page(10))
    assert [o["id"] for o in listing.rows] == ["ob"] and listing.total == 1
    assert [s["id"] for s in (await reader.scores("h", ScoreFilter(trace_id=b), Page(10))).rows] == ["s-ob"]
    summaries, score_ids = await reader.trace_summaries("h", [b])
    assert [o["id"] for o in summaries] == ["ob"] and score_ids == [{"id": "s-ob", "trace_id": b}]
    # Observations by their ids under the trace (migration 0005), scores by the trace hash.
    read = "PREWHERE id IN (SELECT id FROM observations_by_trace WHERE"
    assert read in client.statements["read_trace_observations"]
    assert "FROM observations_by_trace WHERE" in client.statements["read_trace_summaries"]
    assert "trace_hash IN (SELECT murmurHash2_32(" in client.statements["read_trace_scores"]


def _bare_traces(client: ChdbClient, project: str, trace_ids: tuple[str, ...]) -> None:
    """Trace rows with nothing but their ids, at T0."""
    for trace_id in trace_ids:
        client._s.query(
            "INSERT INTO traces (project_id, id, timestamp, created_at, updated_at, event_ts) VALUES"
            f" ('{project}', '{trace_id}', '{_ts(T0)}', '{_ts(T0)}', '{_ts(T0)}', 1)"
        )


async def _trace_ids(reader: Reader, project: str, *conditions: Any) -> list[str]:
    """The ids of the traces the conditions select, by id; the count must agree."""
    listing = await reader.traces(project, TraceFilter(conditions=conditions), ("id", False), Page(10))
    assert listing.total == len(listing.rows)
    return [r["id"] for r in listing.rows]


async def test_trace_filters_on_figures_summed_up_from_observations(reader: Reader) -> None:
    client = reader._ch
    assert isinstance(client, ChdbClient)
    # (trace, observation, start and end in s after T0, total cost, input tokens, level, version)
    rows = [
        ("ta", "a1", 0, 2, 0.02, 100, "DEFAULT", 1),
        ("ta", "a2", 1, 4, 0.03, 50, "ERROR", 1),
        ("tb", "b1", 0, None, None, 10, "WARNING", 1),  # not ended, no cost
        ("tb", "b1", 0, 1, 0.5, 10, "DEBUG", 2),  # its newest version: ended, priced, DEBUG
        ("tc", "c1", 0, 0.5, 0.001, 0, "DEFAULT", 1),
    ]
    for trace_id, id_, start, end, cost, tokens, level, version in rows:
        end_sql = "NULL" if end is None else f"'{_ts(T0 + int(end * 1e6))}'"
        client._s.query(
            "INSERT INTO observations (project_id, id, trace_id, start_time, end_time, total_cost, usage_details,"
            f" cost_details, level, created_at, updated_at, event_ts) VALUES ('agg', '{id_}', '{trace_id}',"
            f" '{_ts(T0 + int(start * 1e6))}', {end_sql}, {'NULL' if cost is None else cost},"
            f" {_literal(orjson.dumps({'input': tokens, 'Input_Cached': 1, 'output': 2}).decode())},"
            f" {_literal(orjson.dumps({'input': 1e-5, 'output': 2.5e-6, 'total': cost or 0}).decode())},"
            f" '{level}', '{_ts(T0)}', '{_ts(T0)}', {version})"
        )
    _bare_traces(client, "agg", ("ta", "tb", "tc", "td"))  # td: no observations

    async def ids(*conditions: Any) -> list[str]:
        return await _trace_ids(reader, "agg", *conditions)

    L = "observations."
    assert await ids((L + "latency", ">", 3)) == ["ta"]  # 0 to 4 s
    assert await ids((L + "latency", "<", 1)) == ["tc", "td"]  # 0.5 s, and none: 0 as Langfuse answers
    assert await ids((L + "total_cost", ">=", 0.05)) == ["ta", "tb"]  # b1's newest version: 0.5
    assert await ids((L + "total_cost", "<", 0.01)) == ["tc", "td"]
    assert await ids((L + "total_cost", "=", 0)) == ["td"]
    # Every key naming input, in any case (cached input too): ta 100+1 and 50+1.
    assert await ids((L + "input_tokens", "=", 152)) == ["ta"]
    assert await ids((L + "output_tokens", "=", 4)) == ["ta"]
    assert await ids((L + "input_cost", ">", 1.5e-5)) == ["ta"]  # two observations' 1e-5
    assert await ids((L + "output_cost", "<", 3e-6)) == ["tb", "tc", "td"]
    assert await ids((L + "level", "=", "ERROR")) == ["ta"]
    assert await ids((L + "level", "any of", ("DEBUG", "DEFAULT"))) == ["tb", "tc"]  # not tb's old WARNING
    assert await ids((L + "level", "none of", ("ERROR",))) == ["tb", "tc"]  # td has no level at all
    assert await ids((L + "error_count", ">", 0)) == ["ta"]
    assert await ids((L + "warning_count", "=", 0)) == ["ta", "tb", "tc", "td"]
    assert await ids((L + "total_cost", ">", 0.01), (L + "latency", "<", 2)) == ["tb"]


async def test_trace_filters_on_their_scores_of_one_name(reader: Reader) -> None:
    client = reader._ch
    assert isinstance(client, ChdbClient)
    # (trace, score, name, value, string value, data type, version)
    rows = [
        ("ta", "s1", "quality", 0.9, "", "NUMERIC", 1),
        ("ta", "s2", "quality", 0.5, "", "NUMERIC", 1),  # ta's average: 0.7
        ("tb", "s3", "quality", 0.2, "", "NUMERIC", 1),
        ("tb", "s3", "quality", 0.95, "", "NUMERIC", 2),  # its newest version counts
        ("ta", "s4", "tone", 0, "rude", "CATEGORICAL", 1),
        ("tb", "s5", "tone", 1, "polite", "CATEGORICAL", 1),
        ("ta", "s6", "correct", 1, "True", "BOOLEAN", 1),
        ("tb", "s7", "correct", 0, "False", "BOOLEAN", 1),
    ]
    for trace_id, id_, name, value, text, data_type, version in rows:
        client._s.query(
            "INSERT INTO scores (project_id, id, trace_id, name, value, string_value, data_type, source, timestamp,"
            f" created_at, updated_at, event_ts) VALUES ('sc', '{id_}', '{trace_id}', '{name}', {value}, '{text}',"
            f" '{data_type}', 'API', '{_ts(T0)}', '{_ts(T0)}', '{_ts(T0)}', {version})"
        )
    _bare_traces(client, "sc", ("ta", "tb", "tc"))  # tc: no scores

    async def ids(*conditions: Any) -> list[str]:
        return await _trace_ids(reader, "sc", *conditions)

    assert await ids(("scores.avg", ">", ("quality", 0.8))) == ["tb"]  # 0.95, not its old 0.2
    assert await ids(("scores.avg", "<", ("quality", 0.8))) == ["ta"]  # 0.7; tc has none
    assert await ids(("scores.avg", "=", ("tone", 0))) == []  # categorical: not averaged
    assert await ids(("scores.categories", "any of", ("tone", ("polite", "calm")))) == ["tb"]
    assert await ids(("scores.categories", "none of", ("tone", ("polite",)))) == ["ta", "tc"]
    assert await ids(("scores.booleans", "=", ("correct", True))) == ["ta"]
    assert await ids(("scores.booleans", "<>", ("correct", True))) == ["tb", "tc"]


async def test_summed_up_filters_take_each_observations_newest_version_whole(reader: Reader) -> None:
    client = reader._ch
    assert isinstance(client, ChdbClient)
    # (trace, observation, total cost, deleted, version): the newest version decides, NULL included.
    rows = [
        ("tn", "n1", 0.9, 0, 1),
        ("tn", "n1", None, 0, 2),  # its newest version has no cost: none, not the older 0.9
        ("tx", "x1", 0.2, 0, 1),
        ("tx", "x2", 0.7, 0, 1),
        ("tx", "x2", 0.7, 1, 2),  # deleted: counts no more
        ("tk", "k1", 0.6, 0, 2),
        ("tk", "k1", 0.1, 0, 1),  # an older version read after the newer one
    ]
    for trace_id, id_, cost, deleted, version in rows:
        client._s.query(
            "INSERT INTO observations (project_id, id, trace_id, start_time, total_cost, created_at, updated_at,"
            f" event_ts, is_deleted) VALUES ('agn', '{id_}', '{trace_id}', '{_ts(T0)}',"
            f" {'NULL' if cost is None else cost}, '{_ts(T0)}', '{_ts(T0)}', {version}, {deleted})"
        )
    _bare_traces(client, "agn", ("tn", "tx", "tk"))

    async def ids(*conditions: Any) -> list[str]:
        return await _trace_ids(reader, "agn", *conditions)

    assert await ids(("observations.total_cost", ">", 0.5)) == ["tk"]
    assert await ids(("observations.total_cost", "=", 0)) == ["tn"]
    assert await ids(("observations.total_cost", "<", 0.3)) == ["tn", "tx"]
    # Evaluated once for the page, by the candidates' read; the page reads those ids' rows only.
    assert "FROM observations_by_trace" in client.statements["read_trace_candidates"]
    assert "FROM observations_by_trace" not in client.statements["read_traces"]
