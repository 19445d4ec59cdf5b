"""The ClickHouse fold against the real server, with cold caches: what a restarted or newly
assigned worker sees. Entities it has not written are looked up, and only the stored ones
are read back; either way the row ends with every field of every event."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from pipeline.envelope import Envelope
from pipeline.tombstones import TRACE_DELETE
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.journal import HOUR_US, JournalExpiry, JournalRepair
from sinks.clickhouse.schema import JOURNAL, dialect_for
from sinks.clickhouse.writer import ClickHouseWriter
from sinks.postgres.keys import NewKey
from tests.support import envelope, rows

pytestmark = pytest.mark.stack


def writer(ch: ClickHouse) -> ClickHouseWriter:
    return ClickHouseWriter(ch, dialect_for(ch.version))  # a new one: nothing cached


async def test_a_create_after_its_update_merges_through_a_cold_cache(ch: ClickHouse, project: NewKey) -> None:
    pid, gen = project.project_id, f"gen-{uuid.uuid4()}"
    new = [
        envelope(
            pid,
            "generation-create",
            {"id": f"gen-{uuid.uuid4()}", "traceId": "t", "name": "other"},
            "2026-11-20T10:00:00Z",
        )
        for _ in range(50)
    ]  # looked up, and not found
    update = envelope(
        pid,
        "generation-update",
        {"id": gen, "traceId": "t", "output": "done", "usage": {"input": 5, "output": 2}},
        "2026-11-20T10:00:05Z",
    )
    create = envelope(
        pid,
        "generation-create",
        {"id": gen, "traceId": "t", "name": "llm", "model": "gpt-4o", "startTime": "2026-11-20T10:00:01Z"},
        "2026-11-20T10:00:01Z",
    )
    merged = [
        {
            "id": gen,
            "type": "GENERATION",
            "name": "llm",
            "provided_model_name": "gpt-4o",
            "output": '"done"',
            "total_tokens": 7,
        }
    ]
    sql = (
        f"SELECT id, type, name, provided_model_name, output, total_tokens FROM observations FINAL "
        f"WHERE project_id = '{pid}' AND id = '{gen}'"
    )
    assert await writer(ch).write([update, *new]) == []
    assert await writer(ch).write([create]) == []
    assert await rows(ch, sql) == merged
    assert await writer(ch).write([update, create]) == []  # a redelivery through another cold cache
    assert await rows(ch, sql) == merged
    count = await rows(ch, f"SELECT count() AS n FROM observations FINAL WHERE project_id = '{pid}'")
    assert count == [{"n": 51}]


class Recording:
    """The real client, noting the operation of every read."""

    def __init__(self, ch: ClickHouse) -> None:
        self._ch = ch
        self.reads: list[tuple[str, int]] = []  # operation, ids sent

    async def fetch(self, sql: str, *, operation: str = "", ids: list[str] | None = None) -> Any:
        self.reads.append((operation, len(ids or ())))
        return await self._ch.fetch(sql, operation=operation, ids=ids)

    async def insert(self, *args: Any, **kwargs: Any) -> Any:
        return await self._ch.insert(*args, **kwargs)

    def looked_up(self, table: str) -> list[int]:
        return [n for operation, n in self.reads if operation == f"load_{table}"]


def recording_writer(ch: ClickHouse) -> tuple[ClickHouseWriter, Recording]:
    recording = Recording(ch)
    return ClickHouseWriter(recording, dialect_for(ch.version)), recording  # type: ignore[arg-type]


def spans(pid: str, trace: str, ids: list[str], ts: str) -> list[Envelope]:
    """Generations as the OTLP mapping makes them from spans (creates, source otlp)."""
    out = []
    for id_ in ids:
        env = envelope(pid, "generation-create", {"id": id_, "traceId": trace, "name": "chat", "model": "gpt-4o"}, ts)
        env.source = "otlp"
        out.append(env)
    return out


async def test_observations_that_cannot_be_stored_yet_are_not_looked_up(ch: ClickHouse, project: NewKey) -> None:
    """In a large project a lookup costs ClickHouse a compressed block per id and part: the
    creates of a new trace's observations and OpenTelemetry spans skip it. What can be stored,
    a create under a stored trace or an update, is still looked up, and merges."""
    pid, trace = project.project_id, f"t-{uuid.uuid4()}"
    gens = [f"gen-{uuid.uuid4()}" for _ in range(20)]
    ts = "2026-11-20T10:00:00Z"
    new_trace = [envelope(pid, "trace-create", {"id": trace, "name": "run"}, ts)] + [
        envelope(pid, "generation-create", {"id": g, "traceId": trace, "name": "llm"}, ts) for g in gens
    ]
    w, seen = recording_writer(ch)
    assert await w.write(new_trace) == []
    assert seen.looked_up("traces") == [1] and seen.looked_up("observations") == []

    # A cold writer: the trace is stored now, so a create under it may be too (a redelivery).
    w, seen = recording_writer(ch)
    late = envelope(pid, "generation-create", {"id": gens[0], "traceId": trace, "model": "gpt-4o"}, ts)
    assert await w.write([late]) == []
    assert seen.looked_up("observations") == [1]
    # Spans are never looked up, under a stored trace or not; an update always is.
    w, seen = recording_writer(ch)
    more = [f"span-{uuid.uuid4().hex[:16]}" for _ in range(5)]
    update = envelope(pid, "generation-update", {"id": gens[1], "traceId": trace, "output": "done"}, ts)
    assert await w.write([*spans(pid, trace, more, ts), update]) == []
    assert seen.looked_up("observations") == [1]
    sql = (
        f"SELECT id, name, provided_model_name, output FROM observations FINAL "
        f"WHERE project_id = '{pid}' AND id IN ('{gens[0]}', '{gens[1]}') ORDER BY id"
    )
    expected = [
        {"id": gens[0], "name": "llm", "provided_model_name": "gpt-4o", "output": None},
        {"id": gens[1], "name": "llm", "provided_model_name": "", "output": '"done"'},
    ]
    assert await rows(ch, sql) == sorted(expected, key=lambda r: r["id"])


async def test_a_span_exported_again_is_one_row(ch: ClickHouse, project: NewKey) -> None:
    """An exporter's retry after a lost answer: the same span folded again by a writer that
    did not look for it writes the same row, which the table's merge keeps once."""
    pid, trace, span = project.project_id, f"t-{uuid.uuid4()}", uuid.uuid4().hex[:16]
    for _ in range(2):
        w, seen = recording_writer(ch)
        assert await w.write(spans(pid, trace, [span], "2026-11-20T10:00:00Z")) == []
        assert seen.looked_up("observations") == []
    sql = f"SELECT id, name, provided_model_name, event_ts FROM observations FINAL WHERE project_id = '{pid}'"
    found = await rows(ch, sql)
    assert [(r["id"], r["name"], r["provided_model_name"]) for r in found] == [(span, "chat", "gpt-4o")]
    versions = await rows(ch, f"SELECT event_ts FROM observations WHERE project_id = '{pid}'")
    assert {r["event_ts"] for r in versions} == {found[0]["event_ts"]}  # both rows alike, not a newer one


async def test_spans_are_not_kept_for_updates_and_their_retry_writes_the_same_row(
    ch: ClickHouse, project: NewKey
) -> None:
    """A span is exported once, whole: the writer keeps its trace's state and a batch create's
    (whose update may follow) but not the span's, so the same writer folds a retry from nothing
    and writes the row it wrote before."""
    pid, trace, span, gen = project.project_id, f"t-{uuid.uuid4()}", uuid.uuid4().hex[:16], f"gen-{uuid.uuid4()}"
    ts = "2026-11-20T10:00:00Z"
    create = envelope(pid, "generation-create", {"id": gen, "traceId": trace, "name": "llm"}, ts)
    w, seen = recording_writer(ch)
    for _ in range(2):
        assert await w.write([*spans(pid, trace, [span], ts), create]) == []
        assert seen.looked_up("observations") == []
        cached = {key[0] + ":" + key[2] for key in w._cache}
        assert {f"traces:{trace}", f"observations:{gen}"} <= cached and f"observations:{span}" not in cached
    found = await rows(ch, f"SELECT id, event_ts FROM observations FINAL WHERE project_id = '{pid}' AND id = '{span}'")
    assert len(found) == 1
    versions = await rows(ch, f"SELECT event_ts FROM observations WHERE project_id = '{pid}' AND id = '{span}'")
    assert {r["event_ts"] for r in versions} == {found[0]["event_ts"]}


async def test_a_span_of_a_deleted_trace_stays_deleted_without_its_tombstone(ch: ClickHouse, project: NewKey) -> None:
    """A retry weeks after the deletion, when the tombstone has expired but the rows are not
    purged yet: the span's trace is stored deleted, so the span is looked up, and not revived."""
    pid, trace, span = project.project_id, f"t-{uuid.uuid4()}", uuid.uuid4().hex[:16]
    ts = "2026-11-20T10:00:00Z"
    exported = spans(pid, trace, [span], ts)
    w = writer(ch)
    assert await w.write(exported) == []
    assert await w.write([envelope(pid, TRACE_DELETE, {"traceId": trace}, ts)]) == []
    w, seen = recording_writer(ch)  # knows no tombstone
    assert await w.write(spans(pid, trace, [span], ts)) == []
    assert seen.looked_up("observations") == [1]
    live = f"SELECT id FROM observations FINAL WHERE project_id = '{pid}' AND is_deleted = 0"
    assert await rows(ch, live) == []


async def test_an_update_naming_no_trace_reaches_a_create_that_skipped_the_lookup(
    ch: ClickHouse, project: NewKey
) -> None:
    """The update (keyed by its own id, folded by another process) was written first; the
    create then names a trace the store does not hold and is not looked up, and still finds
    the update's fields, in the journal."""
    pid, gen, trace = project.project_id, f"gen-{uuid.uuid4()}", f"t-{uuid.uuid4()}"
    update = envelope(pid, "generation-update", {"id": gen, "output": "done"}, "2026-11-20T10:00:05Z")
    create = envelope(pid, "generation-create", {"id": gen, "traceId": trace, "name": "llm"}, "2026-11-20T10:00:01Z")
    assert await writer(ch).write([update]) == []
    w, seen = recording_writer(ch)
    assert await w.write([create]) == []
    assert seen.looked_up("observations") == []
    sql = f"SELECT name, output, trace_id FROM observations FINAL WHERE project_id = '{pid}' AND id = '{gen}'"
    assert await rows(ch, sql) == [{"name": "llm", "output": '"done"', "trace_id": trace}]


def _spans(pid: str, trace: str, root: str, child: str, other_trace: str, other_root: str) -> list[Envelope]:
    """A trace's root span and its child; another trace, with an input of its own, and its root."""
    created = [
        envelope(pid, "generation-create", {"id": root, "traceId": trace, "name": "chat"}, "2026-11-20T10:00:01Z"),
        envelope(
            pid,
            "generation-create",
            {"id": child, "traceId": trace, "parentObservationId": root, "name": "tool"},
            "2026-11-20T10:00:01Z",
        ),
        envelope(pid, "trace-create", {"id": other_trace, "input": "own"}, "2026-11-20T10:00:01Z"),
        envelope(pid, "generation-create", {"id": other_root, "traceId": other_trace}, "2026-11-20T10:00:01Z"),
    ]
    for env in created:
        env.source = "otlp"
    return created


@pytest.mark.parametrize("one_writer", [False, True], ids=["journal", "cached"])
async def test_a_root_spans_content_from_logs_is_its_traces_too(
    ch: ClickHouse, project: NewKey, one_writer: bool
) -> None:
    """GenAI content from log records (ingest/otlp/logs.py) is an update naming no trace,
    folded before the span: merged by the span's writer, through the journal or from its
    cache, a root span's input and output are its trace's, as a root's own attributes are;
    a child's are not, and a trace's own input stays."""
    pid, trace, root, child = project.project_id, uuid.uuid4().hex, uuid.uuid4().hex[:16], uuid.uuid4().hex[:16]
    other_trace, other_root = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    updates = []
    for span, words in ((root, "root"), (child, "child"), (other_root, "other")):
        update = envelope(
            pid, "span-update", {"id": span, "input": [words], "output": f"{words}!"}, "2026-11-20T10:00:00Z"
        )
        update.source = "otlp_logs"
        updates.append(update)
    first = writer(ch)
    assert await first.write(updates) == []
    created = [
        envelope(pid, "trace-create", {"id": trace, "name": "chat"}, "2026-11-20T10:00:01Z"),
        *_spans(pid, trace, root, child, other_trace, other_root),
    ]
    created[0].source = "otlp"
    assert await (first if one_writer else writer(ch)).write(created) == []
    sql = f"SELECT id, input, output FROM traces FINAL WHERE project_id = '{pid}' ORDER BY id"
    found = {r["id"]: (r["input"], r["output"]) for r in await rows(ch, sql)}
    assert found[trace] == ('["root"]', '"root!"')
    assert found[other_trace] == ('"own"', '"other!"')  # the trace's own input wins
    sql = f"SELECT id, input, trace_id FROM observations FINAL WHERE project_id = '{pid}' AND id = '{child}'"
    assert await rows(ch, sql) == [{"id": child, "input": '["child"]', "trace_id": trace}]


@pytest.mark.parametrize("one_writer", [False, True], ids=["stored", "cached"])
async def test_a_root_spans_content_from_logs_after_it_is_its_traces_too(
    ch: ClickHouse, project: NewKey, one_writer: bool
) -> None:
    """The same content folded after its spans were stored (the logs exported last): the
    update's writer, which holds the trace (its partition, CONTEXT_TRACE), gives a root's
    input and output to its trace, from its cache or the stored row; a child's stay its own,
    a trace's own input wins, and a redelivery writes nothing new."""
    pid, trace, root, child = project.project_id, uuid.uuid4().hex, uuid.uuid4().hex[:16], uuid.uuid4().hex[:16]
    other_trace, other_root = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    created = _spans(pid, trace, root, child, other_trace, other_root)
    first = writer(ch)
    assert await first.write(created) == []
    updates = []
    for span, words, of in ((root, "root", trace), (child, "child", trace), (other_root, "other", other_trace)):
        body = {"id": span, "contextTraceId": of, "input": [words], "output": f"{words}!"}
        update = envelope(pid, "span-update", body, "2026-11-20T10:00:00Z")
        update.source = "otlp_logs"
        updates.append(update)
    later = first if one_writer else writer(ch)
    assert await later.write(updates) == []
    sql = f"SELECT id, input, output, event_ts FROM traces FINAL WHERE project_id = '{pid}' ORDER BY id"
    found = {r["id"]: r for r in await rows(ch, sql)}
    assert (found[trace]["input"], found[trace]["output"]) == ('["root"]', '"root!"')
    assert (found[other_trace]["input"], found[other_trace]["output"]) == ('"own"', '"other!"')
    sql = f"SELECT id, input, trace_id FROM observations FINAL WHERE project_id = '{pid}' AND id = '{child}'"
    assert await rows(ch, sql) == [{"id": child, "input": '["child"]', "trace_id": trace}]
    count = f"SELECT count() AS n FROM traces WHERE project_id = '{pid}'"
    written = (await rows(ch, count))[0]["n"]
    assert await writer(ch).write(updates) == []  # a redelivery, by a writer reading the store
    assert (await rows(ch, count))[0]["n"] <= written  # merges may only have joined rows


# The partition of the concurrent tests' rows, which their forced merges rewrite: a month no
# other test writes, so that a merge stays small on a database holding benchmark runs.
MERGED_MONTH = 200102


class HeldInserts:
    """The real client, whose inserts wait for `release`: lets a test hold one writer between
    reading (nothing stored) and inserting while another writer does both. With `merge`, the
    server merges the observations' parts after each insert into them, before the writer goes
    on: what a background merge may do at any moment."""

    def __init__(self, ch: ClickHouse, *, merge: bool = False) -> None:
        self._ch = ch
        self._merge = merge
        self.release = asyncio.Event()
        self.read = asyncio.Event()

    async def fetch(self, *args: Any, **kwargs: Any) -> Any:
        found = await self._ch.fetch(*args, **kwargs)
        self.read.set()
        return found

    async def insert(self, table: str, *args: Any, **kwargs: Any) -> Any:
        await self.release.wait()
        done = await self._ch.insert(table, *args, **kwargs)
        if self._merge and table == "observations":
            await merged_into_one_part(self._ch)
        return done


class BlindAfterInsert(HeldInserts):
    """A writer on this client reads nothing in its check after the insert (the reads of
    `_reconcile`): what a replica that has not received the other writer's row yet shows."""

    async def fetch(self, *args: Any, **kwargs: Any) -> Any:
        if str(kwargs.get("operation", "")).startswith("reconcile_"):
            return []
        return await super().fetch(*args, **kwargs)


async def merged_into_one_part(ch: ClickHouse) -> None:
    """OPTIMIZE returns without merging while a background merge holds the parts: until one."""
    parts = (
        "SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'observations' "
        f"AND partition = '{MERGED_MONTH}' AND active"
    )
    for _ in range(100):
        await ch.execute(f"OPTIMIZE TABLE observations PARTITION {MERGED_MONTH} FINAL")
        if (await ch.fetch(parts))[0][0] == 1:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the parts of the month did not merge")


def concurrent_create(pid: str, gen: str) -> Envelope:
    return envelope(
        pid,
        "generation-create",
        {"id": gen, "traceId": "t", "name": "llm", "model": "gpt-4o", "startTime": "2001-02-03T10:00:01Z"},
        "2001-02-03T10:00:01Z",
    )


async def fold_at_once(ch: ClickHouse, held: list[Envelope], other: list[Envelope], *, merge: bool) -> None:
    """One writer reads for `held` (nothing stored) and waits to insert; meanwhile another
    writer folds `other` whole (reads nothing, inserts, reconciles); then the first goes on."""
    slow = HeldInserts(ch, merge=merge)
    held_writer = ClickHouseWriter(slow, dialect_for(ch.version))  # type: ignore[arg-type]
    pending = asyncio.create_task(held_writer.write(held))
    await asyncio.wait_for(slow.read.wait(), 10)
    assert await writer(ch).write(other) == []
    slow.release.set()
    assert await pending == []


@pytest.mark.parametrize("merge", [False, True], ids=["parts", "merged"])
@pytest.mark.parametrize("held", ["create", "update"])
async def test_an_update_and_its_create_folded_at_once_by_two_writers_merge(
    ch: ClickHouse, project: NewKey, held: str, merge: bool
) -> None:
    """Issue 15 (10): an update without traceId is keyed by its own id, so another process than
    its create's may fold it; both read no stored row. Whichever inserts first, and whether or
    not the server merges the two rows into one before the later writer looks, the row read
    back holds the fields of both. (A background merge between the later insert and its check
    lost the create's fields once in CI, when writers counted the rows of an id.)"""
    pid, gen = project.project_id, f"gen-{uuid.uuid4()}"
    create = concurrent_create(pid, gen)
    update = envelope(
        pid,
        "generation-update",
        {"id": gen, "output": "done", "usage": {"input": 5, "output": 2}},
        "2001-02-03T10:00:05Z",
    )
    first, second = (create, update) if held == "create" else (update, create)
    await fold_at_once(ch, [first], [second], merge=merge)
    sql = (
        f"SELECT id, type, name, provided_model_name, output, total_tokens FROM observations FINAL "
        f"WHERE project_id = '{pid}' AND id = '{gen}'"
    )
    merged = {"id": gen, "type": "GENERATION", "name": "llm", "provided_model_name": "gpt-4o", "output": '"done"'}
    assert await rows(ch, sql) == [{**merged, "total_tokens": 7}]


@pytest.mark.parametrize("merge", [False, True], ids=["parts", "merged"])
@pytest.mark.parametrize("held", ["create alone", "both"])
async def test_a_writer_of_both_events_and_one_of_the_create_alone_merge(
    ch: ClickHouse, project: NewKey, held: str, merge: bool
) -> None:
    """One writer folds the update and the create (a redelivery, or both partitions owned), the
    other only the create: the first row holds everything but at revision 0, the second only
    the create at the create's time, and outranks it in reads. Either order, the fields of
    the update are read back."""
    pid, gen = project.project_id, f"gen-{uuid.uuid4()}"
    create = concurrent_create(pid, gen)
    update = envelope(pid, "generation-update", {"id": gen, "output": "done"}, "2001-02-03T10:00:05Z")
    first, second = ([create], [update, create]) if held == "create alone" else ([update, create], [create])
    await fold_at_once(ch, first, second, merge=merge)
    sql = (
        f"SELECT name, provided_model_name, output FROM observations FINAL WHERE project_id = '{pid}' AND id = '{gen}'"
    )
    assert await rows(ch, sql) == [{"name": "llm", "provided_model_name": "gpt-4o", "output": '"done"'}]


async def test_only_new_observations_whose_events_name_no_trace_are_journaled(ch: ClickHouse, project: NewKey) -> None:
    """The journal holds the copies a concurrent writer may need, and nothing else: an update
    without traceId of an observation not stored yet, at revision 0 in observations (below any
    row a fold with a trace writes). Not a create with its trace, not an update of a stored one."""
    pid = project.project_id
    lone, anchored = f"gen-{uuid.uuid4()}", f"gen-{uuid.uuid4()}"
    update = envelope(pid, "generation-update", {"id": lone, "output": "x"}, "2026-11-20T10:00:05Z")
    create = envelope(pid, "generation-create", {"id": anchored, "traceId": "t", "name": "a"}, "2026-11-20T10:00:01Z")
    assert await writer(ch).write([update, create]) == []
    journal = await rows(ch, f"SELECT id, output, event_ts FROM observation_journal WHERE project_id = '{pid}'")
    assert [(r["id"], r["output"]) for r in journal] == [(lone, '"x"')]
    assert journal[0]["event_ts"] > 1_700_000_000_000_000  # the writer's clock: its hour expires it
    stored = await rows(ch, f"SELECT id, event_ts FROM observations WHERE project_id = '{pid}' AND id = '{lone}'")
    assert stored == [{"id": lone, "event_ts": 0}]  # its own copy, read back, is nothing to merge
    later = envelope(pid, "generation-update", {"id": anchored, "output": "y"}, "2026-11-20T10:00:09Z")
    assert await writer(ch).write([later]) == []  # stored: no copy
    assert len(await rows(ch, f"SELECT id FROM observation_journal WHERE project_id = '{pid}'")) == 1


async def test_the_journal_keeps_recent_hours_and_drops_older_ones(ch: ClickHouse, project: NewKey) -> None:
    pid, hour = project.project_id, HOUR_US
    now = (time.time_ns() // 1000 // hour) * hour + hour // 2
    ages = {"old": 5, "older than kept": 3, "kept": 2, "recent": 0}
    await ch.insert(
        JOURNAL,
        ("project_id", "id", "event_ts"),
        [(pid, name, now - age * hour) for name, age in ages.items()],
    )
    expiry = JournalExpiry(ch, keep_hours=2)
    dropped = await expiry.run_once(now_us=now)
    assert {now // hour - 5, now // hour - 3} <= set(dropped) and now // hour - 2 not in dropped
    left = await rows(ch, f"SELECT id FROM {JOURNAL} WHERE project_id = '{pid}' ORDER BY id")
    assert [r["id"] for r in left] == ["kept", "recent"]
    assert not set(await expiry.run_once(now_us=now)) & {now // hour - 5, now // hour - 3}


async def test_the_repair_merges_writers_that_missed_each_other(ch: ClickHouse, project: NewKey) -> None:
    """What a cluster's replication lag, or a writer dying between its insert and its check, can
    leave: both rows stored, neither merged, reads showing the create's alone. The repair over
    the journal writes the merge, once."""
    pid, gen = project.project_id, f"gen-{uuid.uuid4()}"
    update = envelope(pid, "generation-update", {"id": gen, "output": "done"}, "2001-02-03T10:00:05Z")
    slow = BlindAfterInsert(ch)
    blind = ClickHouseWriter(slow, dialect_for(ch.version))  # type: ignore[arg-type]
    # Both read nothing; the create's writer inserts and finds no copy; the update's goes in
    # at revision 0 and never looks.
    pending = asyncio.create_task(blind.write([update]))
    await asyncio.wait_for(slow.read.wait(), 10)
    assert await writer(ch).write([concurrent_create(pid, gen)]) == []
    slow.release.set()
    assert await pending == []
    sql = f"SELECT name, output FROM observations FINAL WHERE project_id = '{pid}' AND id = '{gen}'"
    assert await rows(ch, sql) == [{"name": "llm", "output": None}]
    now = time.time_ns() // 1000
    assert await JournalRepair(writer(ch), settle_s=0).run_once(now_us=now) >= 1
    assert await rows(ch, sql) == [{"name": "llm", "output": '"done"'}]
    count = f"SELECT count() AS n FROM observations WHERE project_id = '{pid}' AND id = '{gen}'"
    assert await rows(ch, count) == [{"n": 3}]
    await JournalRepair(writer(ch), settle_s=0).run_once(now_us=now)  # the same copies again
    assert await rows(ch, count) == [{"n": 3}]
