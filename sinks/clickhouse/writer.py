"""The ClickHouse projection: folds a batch of envelopes into rows and inserts them.

Per batch, not per event: for the entities this worker has not seen yet, one SELECT per table
of the stored states (so an update can land on a create from an earlier batch), then one
INSERT per table. States of entities written recently stay in memory while this worker owns
their partitions, which saves most of those reads.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from operator import attrgetter
from typing import Any, Final

import orjson

from pipeline.envelope import LOG_SOURCES, SPAN_SOURCES, Envelope
from pipeline.errors import PoisonEvent
from pipeline.events import UPDATE_TYPES
from pipeline.fold import (
    FIELDS,
    OBSERVATION,
    PART_VERSION,
    SCORE,
    TRACE,
    EntityState,
    add_part,
    apply,
    drop_parts,
    outranks,
    parts_of,
    root_content,
    synthesize_trace,
    table_of,
)
from pipeline.prices import PriceBook, priced
from pipeline.times import column_of_micros, micros_of_column
from pipeline.tombstones import KnownTombstones, Tombstones, split_deletions
from sinks.clickhouse.client import IDS_TABLE, ClickHouse
from sinks.clickhouse.native import Columns
from sinks.clickhouse.schema import JOURNAL, Dialect, by_traces_in_ids
from sinks.clickhouse.versions import versions_of, versions_text
from sinks.metrics import CLICKHOUSE_INSERT_ROWS

TIME_COLUMNS: Final = {
    TRACE: ("timestamp", "created_at", "updated_at"),
    OBSERVATION: ("start_time", "end_time", "completion_start_time", "created_at", "updated_at"),
    SCORE: ("timestamp", "created_at", "updated_at"),
}
MAP_COLUMNS: Final = {
    TRACE: ("metadata",),
    OBSERVATION: ("metadata", "model_parameters", "usage_details", "cost_details"),
    SCORE: ("metadata",),
}
COLUMNS: Final = {
    TRACE: (
        "project_id",
        "id",
        "timestamp",
        "name",
        "user_id",
        "session_id",
        "release",
        "version",
        "environment",
        "tags",
        "public",
        "metadata",
        "input",
        "output",
        "field_versions",
        "created_at",
        "updated_at",
        "event_ts",
        "is_deleted",
    ),
    OBSERVATION: (
        "project_id",
        "id",
        "trace_id",
        "type",
        "parent_observation_id",
        "name",
        "start_time",
        "end_time",
        "completion_start_time",
        "level",
        "status_message",
        "version",
        "environment",
        "metadata",
        "input",
        "output",
        "provided_model_name",
        "model_parameters",
        "usage_details",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cost_details",
        "total_cost",
        "prompt_name",
        "prompt_version",
        "usage_pricing_model_id",
        "usage_pricing_tier_name",
        "field_versions",
        "created_at",
        "updated_at",
        "event_ts",
        "is_deleted",
    ),
    SCORE: (
        "project_id",
        "id",
        "trace_id",
        "observation_id",
        "session_id",
        "dataset_run_id",
        "name",
        "value",
        "string_value",
        "data_type",
        "source",
        "comment",
        "config_id",
        "environment",
        "metadata",
        "timestamp",
        "field_versions",
        "created_at",
        "updated_at",
        "event_ts",
        "is_deleted",
    ),
}
DEFAULTS: Final[dict[str, dict[str, Any]]] = {
    TRACE: {"environment": "default", "tags": [], "public": 0, "input": None, "output": None},
    OBSERVATION: {
        "type": "SPAN",
        "level": "DEFAULT",
        "environment": "default",
        "input": None,
        "output": None,
        "end_time": None,
        "completion_start_time": None,
    },
    SCORE: {"value": 0.0, "data_type": "NUMERIC", "source": "API", "environment": "default"},
}
NULLABLE: Final = frozenset({"input", "output", "end_time", "completion_start_time", "total_cost"})

# Every column with its default.
_ROW_DEFAULTS: Final = {
    t: {c: DEFAULTS[t].get(c, None if c in NULLABLE else "") for c in cols} for t, cols in COLUMNS.items()
}
# The columns a row takes from the state rather than from its values as they are.
_DERIVED: Final = {
    TRACE: ("timestamp",),
    OBSERVATION: (
        "usage_pricing_model_id",
        "usage_pricing_tier_name",
        "usage_details",
        "cost_details",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "total_cost",
        "start_time",
    ),
    SCORE: ("timestamp",),
}
_OWN: Final = ("project_id", "id", "field_versions", "created_at", "updated_at", "event_ts", "is_deleted")
# The maps written from the values as they are (the observations' usage and cost come priced).
_VALUE_MAPS: Final = {t: tuple(c for c in MAP_COLUMNS[t] if c not in _DERIVED[t]) for t in COLUMNS}
_COPIED: Final = {
    t: tuple(c for c in cols if c not in _DERIVED[t] and c not in _OWN and c not in MAP_COLUMNS[t])
    for t, cols in COLUMNS.items()
}
_BY_TS: Final = attrgetter("ts")

Key = tuple[str, str, str]  # table, project_id, id


# Observations per query of the journal repair (ClickHouseWriter.repair).
REPAIR_CHUNK: Final = 1_000


class ClickHouseWriter:
    # Entity states (with their inputs and outputs) are large: 200k of them cost ~700 MB and
    # the garbage collector's time; a batch or two of them catches updates soon after creates.
    def __init__(
        self,
        client: ClickHouse,
        dialect: Dialect,
        *,
        prices: Callable[[], PriceBook] = PriceBook,
        cache_size: int = 20_000,
        tombstones: Tombstones | None = None,
    ) -> None:
        self._ch = client
        self._tombstones: Tombstones = tombstones if tombstones is not None else KnownTombstones()
        self._dialect = dialect
        self._prices = prices
        self._cache: OrderedDict[Key, EntityState] = OrderedDict()
        self._cache_size = cache_size
        for table in (*COLUMNS, JOURNAL):  # every table's series exists before its first insert
            CLICKHOUSE_INSERT_ROWS.labels(table)

    def forget(self) -> None:
        """Partitions moved: another worker may write these entities now."""
        self._cache.clear()

    async def write(self, envelopes: list[Envelope]) -> list[tuple[Envelope, str]]:
        """Fold and insert; return the poison events (with reasons) that were left out.

        Raises ClickHouseError when the store failed; nothing is cached then, so a retry of the
        same batch starts from the stored state again.
        """
        await self._tombstones.refresh()
        envelopes, (deleting, scores) = split_deletions(envelopes, self._tombstones)
        poison = await self._fold(envelopes)
        if deleting:
            await self._delete(deleting)
            self._tombstones.add(deleting)
            gone = set(deleting)
            for key in [k for k, s in self._cache.items() if _trace_key(k, s) in gone]:
                del self._cache[key]
        await self._settle_scores(scores)
        return poison

    async def idle(self) -> None:
        await self._tombstones.refresh()
        await self._settle_scores([])

    async def _settle_scores(self, scores: list[tuple[str, str]]) -> None:
        """Mark deleted the scores this batch deleted, and those deleted through another
        partition that this process learned of since (it may have folded one meanwhile)."""
        learned = self._tombstones.learned_scores()
        taken = len(learned)
        if taken:
            scores = scores + learned[:taken]
        if scores:
            await self._delete_scores(scores)
            self._tombstones.add_scores(scores)
            for project, score in scores:
                self._cache.pop((SCORE, project, score), None)
            del learned[:taken]  # a refresh beside the insert may have added more

    async def _fold(self, envelopes: list[Envelope]) -> list[tuple[Envelope, str]]:
        grouped: dict[Key, list[Envelope]] = {}
        # The observations and scores that name a trace: each makes its trace exist.
        naming: dict[Key, list[tuple[str, Envelope]]] = {}
        # Root spans, by their trace: their input and output are the trace's (root_content).
        roots: dict[Key, Key] = {}
        content: list[Key] = []  # observations that GenAI content from log records updates
        for env in envelopes:
            table = table_of(env.type)
            body = env.body
            id_ = body.get("id")
            if table is None or not id_:
                continue
            # get-then-set, not setdefault: that builds a list for every event, and a trace
            # of 100 spans is named 99 times in a batch.
            key = (table, env.project_id, str(id_))
            events = grouped.get(key)
            if events is None:
                grouped[key] = [env]
            else:
                events.append(env)
            trace_id = body.get("traceId") if table != TRACE else None
            if trace_id:
                trace_key = (TRACE, env.project_id, str(trace_id))
                if table == OBSERVATION and env.source in SPAN_SOURCES and not body.get("parentObservationId"):
                    roots[key] = trace_key
                names = naming.get(trace_key)
                if names is None:
                    naming[trace_key] = [(table, env)]
                else:
                    names.append((table, env))
            elif env.source in LOG_SOURCES:
                content.append(key)
        for key in naming:
            grouped.setdefault(key, [])
        gone: set[Key] = set()  # stored as deleted: an update naming no trace must not revive it
        stored = await self._load([k for k in grouped if k not in self._cache], gone, grouped)
        book = self._prices()  # one book for the batch: a refresh does not split it
        poison: list[tuple[Envelope, str]] = []
        states: dict[Key, EntityState] = {}
        changed: list[Key] = []
        cold: list[Key] = []  # observations no process had stored when this batch read
        # Of those, the ones an event of which named no trace: Kafka keyed it by its own id, so
        # another process may be folding the observation's create right now (_reconcile).
        unanchored: list[Key] = []
        # Traces last, so that only the observations and scores that were not poison name them.
        traces = [k for k in grouped if k[0] == TRACE]
        for key in [k for k in grouped if k[0] != TRACE] + traces:
            if key in gone:
                continue
            events = grouped[key]
            base = self._cache.get(key) or stored.get(key)
            if base is None and key[0] == OBSERVATION:
                cold.append(key)
                if any(not env.body.get("traceId") for env in events):
                    unanchored.append(key)
            state = _copy(base) if base else EntityState(key[1], key[2])
            # Most entities have one event per batch: no sort (and no key function) for those.
            for env in sorted(events, key=_BY_TS) if len(events) > 1 else events:
                try:
                    apply(state, env, key[0])
                except PoisonEvent as exc:
                    poison.append((env, str(exc)))
            if key in naming:
                refused = {id(env) for env, _ in poison}
                for table, env in naming[key]:
                    if id(env) not in refused:
                        synthesize_trace(state, env, table)
                        root = (OBSERVATION, key[1], str(env.body.get("id")))
                        if table == OBSERVATION and roots.get(root) == key and root in states:
                            root_content(state, states[root])
            if not state.last_ts:
                continue  # nothing but poison for an entity not stored yet
            states[key] = state
            if key[0] == OBSERVATION:
                state.derived = self._priced(state, book)
            if base is not None and _same(state, base) and state.derived == base.derived:
                continue  # a redelivery or a replay: the stored row already says all this
            # ReplacingMergeTree keeps the row with the highest version. A fold must outrank the
            # row it was folded from even when it brought no newer event (a create arriving after
            # its update): on a tie FINAL keeps either, across partitions (start_time moved) the
            # older one, and the create's fields were lost.
            state.revision = max(state.last_ts, base.revision + 1 if base else 0)
            changed.append(key)
        if content:
            await self._late_roots(content, roots, states, changed, gone)
        unanchored = [k for k in unanchored if k in states]
        for key in unanchored:
            # Below every row a fold with a trace writes: a merge of the two in the store keeps
            # that one, which this writer then finds and merges its own fields into.
            states[key].revision = 0
        changed_states: dict[str, list[EntityState]] = {TRACE: [], OBSERVATION: [], SCORE: []}
        for key in changed:
            changed_states[key[0]].append(states[key])
        by_table = {table: self._rows(table, group) for table, group in changed_states.items()}
        observations = by_table.pop(OBSERVATION)
        clock = time.time_ns() // 1000
        journal = self._rows(OBSERVATION, [replace(states[k], revision=clock) for k in unanchored])

        async def insert_observations_then_reconcile() -> None:
            await _all([self._insert(OBSERVATION, observations), self._insert(JOURNAL, journal)])
            await self._reconcile([k for k in cold if k in states], unanchored, states, roots)

        await _all([insert_observations_then_reconcile(), *(self._insert(t, r) for t, r in by_table.items())])
        for key, state in states.items():
            if key[0] == OBSERVATION and all(env.source in SPAN_SOURCES for env in grouped[key]):
                # A span is exported once, whole: no update follows for the cache to catch. Kept,
                # it pushed out states that one may follow, and was freed later, cold in memory.
                self._cache.pop(key, None)
                continue
            self._cache[key] = state
            self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return poison

    async def _late_roots(
        self,
        content: list[Key],
        roots: dict[Key, Key],
        states: dict[Key, EntityState],
        changed: list[Key],
        gone: set[Key],
    ) -> None:
        """A root span's content from log records folded after the span (stored, not in this
        batch, where `naming` gives it): its trace's too (root_content). The update went to its
        trace's partition (CONTEXT_TRACE), so this process is the one writing the trace."""
        late: dict[Key, Key] = {}
        for key in content:
            state = states.get(key)
            if state is None or key in roots:
                continue
            trace_id = state.values.get("trace_id")
            if trace_id and not state.values.get("parent_observation_id"):
                late[(TRACE, key[1], str(trace_id))] = key
        found: dict[Key, EntityState] = {}
        unknown = [t for t in late if t not in states and t not in self._cache]
        if unknown:
            await self._lookup(unknown, found, gone)
        for trace_key, root in late.items():
            trace = states.get(trace_key)
            if trace is not None:
                if root_content(trace, states[root]) and trace_key not in changed:
                    trace.revision += 1
                    changed.append(trace_key)
                continue
            base = self._cache.get(trace_key) or found.get(trace_key)
            if base is None:
                continue  # deleted, or not stored (then its root was not either)
            trace = _copy(base)
            if root_content(trace, states[root]):
                trace.revision = base.revision + 1
                states[trace_key] = trace
                changed.append(trace_key)

    async def _insert(self, table: str, rows: Columns) -> None:
        if len(rows):
            await self._ch.insert(table, COLUMNS[OBSERVATION if table == JOURNAL else table], rows)
            CLICKHOUSE_INSERT_ROWS.labels(table).inc(len(rows))

    async def _reconcile(
        self, cold: list[Key], unanchored: list[Key], states: dict[Key, EntityState], roots: dict[Key, Key]
    ) -> None:
        """Merge what another process wrote at the same time into the observations just written.

        An update without traceId is keyed by its own id, so another process than its create's
        may fold it, each reading no stored row; both rows land in `observations`, where a
        background merge keeps one of them (the higher revision) whatever the other held. So:
        - a writer of such an update ("unanchored") writes its row at revision 0, below any row
          a fold with a trace writes, and a copy to the journal (migration 0004), which never
          merges rows away; after its insert it reads every row of those ids in observations,
          where a row written before its own is (or is what a merge of it kept);
        - every writer of a new observation looks for its id in the journal after its insert,
          where an unanchored row written before its own insert is.
        Whichever of the two inserted first, the later one finds the earlier one's fields and
        writes the merge above every revision. One narrow probe of the journal per batch with
        new observations, and a read of observations only for unanchored ones (rare).
        """
        sources: list[str] = []
        reads: list[Awaitable[list[dict[str, Any]]]] = []
        for table, keys in ((JOURNAL, cold), (OBSERVATION, unanchored)):
            wanted: dict[str, list[str]] = {}
            for _, project, id_ in keys:
                wanted.setdefault(project, []).append(id_)
            for project, ids in wanted.items():
                sources.append(table)
                reads.append(self._rows_of(table, project, ids, f"reconcile_{table}"))
        top: dict[Key, int] = {}  # the highest revision found in observations
        stale: list[Key] = []
        for source, found in zip(sources, await asyncio.gather(*reads), strict=True):
            for values in found:
                if values["is_deleted"]:
                    continue  # its trace was deleted meanwhile: nothing of it to bring back
                other = self._state(OBSERVATION, values)
                key = (OBSERVATION, other.project_id, other.id)
                state = states[key]  # its revision is still the one this batch inserted
                before = _copy(state)
                _merge_into(state, other)
                # Worth a row when the other brought fields, or when its row outranks ours in
                # reads without holding all of ours. A row read back compares equal to its
                # state only field by field (its empty maps come back as {}), hence the merges.
                outranks = source == OBSERVATION and other.revision >= state.revision
                if (not _same(state, before) or (outranks and not _covers(other, state))) and key not in stale:
                    stale.append(key)
                if source == OBSERVATION:
                    top[key] = max(top.get(key, 0), other.revision)
        traces: list[EntityState] = []
        for key in stale:
            state = states[key]
            state.derived = self._priced(state)  # the merged usage and model price anew
            # A journal copy's revision is its writer's clock, not a rank: its row is at 0.
            state.revision = max(state.revision, top.get(key, 0)) + 1
            # A root span's content that came apart from it (log records) is its trace's too:
            # above the trace row this batch wrote.
            trace_key = roots.get(key)
            trace = states.get(trace_key) if trace_key is not None else None
            if trace is not None and root_content(trace, state):
                trace.revision += 1
                traces.append(trace)
        await _all(
            [
                self._insert(OBSERVATION, self._rows(OBSERVATION, [states[k] for k in stale])),
                self._insert(TRACE, self._rows(TRACE, traces)),
            ]
        )

    async def _rows_of(self, table: str, project: str, ids: list[str], operation: str) -> list[dict[str, Any]]:
        """Every row, as column -> value, of these observations in `table` (observations or the
        journal), versions and deleted ones included."""
        cols = COLUMNS[OBSERVATION]
        found = await self._ch.fetch(
            f"SELECT {', '.join(cols)} FROM {table} {_by_ids(project)}",
            operation=operation,
            ids=ids,
        )
        return [dict(zip(cols, row, strict=True)) for row in found]

    async def repair(self, since_us: int, until_us: int) -> int:
        """Merge every row of the observations journaled in (since_us, until_us]; return the
        rows written.

        The reconciliation after an insert assumes a writer reads what another inserted just
        before. Where it may not (a cluster's replicas exchange rows after the insert returned;
        a process that died between its insert and its check), the two rows of one observation
        can stay apart, and reads show the one with the higher revision. Run over journal
        copies old enough for every replica to hold them, this finds such observations and
        writes the merge of all their rows above the highest. Idempotent: a merged row holds
        everything, so the next run finds nothing to write.
        """
        journaled = await self._ch.fetch(
            f"SELECT DISTINCT project_id, id FROM {JOURNAL} "
            f"WHERE event_ts > {int(since_us)} AND event_ts <= {int(until_us)}",
            operation="repair_journal_ids",
        )
        by_project: dict[str, list[str]] = {}
        for project, id_ in journaled:
            by_project.setdefault(str(project), []).append(str(id_))
        written = 0
        # In chunks: a client sending only such updates must not make one turn hold them all.
        for project, ids in by_project.items():
            for start in range(0, len(ids), REPAIR_CHUNK):
                written += await self._repair_chunk(project, ids[start : start + REPAIR_CHUNK])
        return written

    async def _repair_chunk(self, project: str, ids: list[str]) -> int:
        by_ids = _by_ids(project)
        # First by the field versions alone (two narrow reads): most copies were merged as they
        # were written, and only the rest are read whole.
        # gather(*[...]): typeshed calls gather(a, b)'s result a tuple, but it is a list, and the
        # compiled module (ops/stack/native.py) checks the type it was told.
        copies_versions, tops = await asyncio.gather(
            *[
                self._ch.fetch(
                    f"SELECT id, field_versions FROM {JOURNAL} {by_ids}", operation="repair_versions", ids=ids
                ),
                self._ch.fetch(
                    f"SELECT id, argMax(field_versions, event_ts), max(is_deleted) FROM {OBSERVATION} {by_ids} "
                    "GROUP BY id",
                    operation="repair_tops",
                    ids=ids,
                ),
            ]
        )
        top_versions = {str(id_): versions_of(v) for id_, v, gone in tops if not gone}
        ids = sorted(
            {
                str(id_)
                for id_, v in copies_versions
                if str(id_) in top_versions and not _versions_cover(top_versions[str(id_)], versions_of(v))
            }
        )
        if not ids:
            return 0
        copies_found, rows_found = await asyncio.gather(
            *[
                self._rows_of(JOURNAL, project, ids, "repair_copies"),
                self._rows_of(OBSERVATION, project, ids, "repair_rows"),
            ]
        )
        copies: dict[str, list[EntityState]] = {}
        for values in copies_found:
            copy = self._state(OBSERVATION, values)
            copies.setdefault(copy.id, []).append(copy)
        stored: dict[str, list[EntityState]] = {}
        deleted: set[str] = set()
        for values in rows_found:
            if values["is_deleted"]:
                deleted.add(str(values["id"]))
            else:
                state = self._state(OBSERVATION, values)
                stored.setdefault(state.id, []).append(state)
        merged_rows: list[EntityState] = []
        for id_, rows in stored.items():
            if id_ in deleted:
                continue
            top = max(rows, key=attrgetter("revision"))
            merged = _copy(top)
            for other in rows + copies.get(id_, []):
                _merge_into(merged, other)
            if _covers(top, merged):
                continue
            merged.derived = self._priced(merged)
            merged.revision = top.revision + 1
            merged_rows.append(merged)
        await self._insert(OBSERVATION, self._rows(OBSERVATION, merged_rows))
        return len(merged_rows)

    async def _delete(self, traces: list[tuple[str, str]]) -> None:
        """Rows marking the traces, their observations and their scores deleted."""
        for table, found, time_column in (
            (TRACE, f"id IN {IDS_TABLE}", "timestamp"),
            (OBSERVATION, by_traces_in_ids(), "start_time"),
            (SCORE, by_traces_in_ids(), "timestamp"),
        ):
            await self._copy_deleted(table, found, time_column, traces)

    async def _delete_scores(self, scores: list[tuple[str, str]]) -> None:
        """Rows marking these scores (found by their own ids) deleted."""
        await self._copy_deleted(SCORE, f"id IN {IDS_TABLE}", "timestamp", scores)

    async def _copy_deleted(self, table: str, found: str, time_column: str, keys: list[tuple[str, str]]) -> None:
        """Server-side, one INSERT ... SELECT per project: the newest row of each entity `found`
        by the keys' ids in each partition it has rows in, again with is_deleted = 1 at a revision
        one above, so that FINAL (which merges within a partition) and the reader's `LIMIT 1 BY
        id` both see the deletion. Rows already deleted are not copied again: a second fold adds
        nothing. The rows go physically with the purge (sinks/purge.py)."""
        by_project: dict[str, list[str]] = {}
        for project, id_ in keys:
            by_project.setdefault(project, []).append(id_)
        cols = COLUMNS[table]
        copied = ", ".join(
            "event_ts + 1" if c == "event_ts" else "toUInt8(1)" if c == "is_deleted" else c for c in cols
        )
        partition = (
            self._dialect.timestamp_partition if time_column == "timestamp" else self._dialect.start_time_partition
        )
        for project, ids in by_project.items():
            await self._ch.execute(
                f"INSERT INTO {table} ({', '.join(cols)}) SELECT {copied} FROM ("
                f"SELECT {', '.join(cols)} FROM {table} "
                f"WHERE project_id = {_quote(project)} AND {found} "
                f"ORDER BY id, event_ts DESC LIMIT 1 BY id, toYYYYMM({partition})"
                ") WHERE is_deleted = 0",
                operation=f"delete_{table}",
                ids=ids,
            )

    async def _load(
        self, keys: list[Key], gone: set[Key], grouped: dict[Key, list[Envelope]]
    ) -> dict[Key, EntityState]:
        """Stored states of `keys`, most of which are usually new entities.

        One read per table and project, with FINAL, which reads the id column of the
        project's granules first (`_by_ids`) and the rest only where an id is stored. In a
        project of millions of observations even that costs a compressed block of ids per
        looked-up id and part (~60 µs of ClickHouse CPU each on 18.16, bench/README.md "The
        writer's probe in a large project"), so observations that cannot be stored are not
        looked up (`_unstored_unless`): those of OpenTelemetry spans, and those only created in
        this batch under a trace that the store does not hold yet. Either way an observation
        folded without its stored state is cold: `_reconcile` still finds what an update naming
        no trace wrote of it meanwhile.
        """
        found: dict[Key, EntityState] = {}
        now: list[Key] = []
        after: dict[Key, list[Key]] = {}  # a trace -> the creates to look up if it is stored
        spans: dict[Key, list[Key]] = {}  # a trace -> the spans to look up if it is stored deleted
        for key in keys:
            if key[0] == OBSERVATION:
                unless = _unstored_unless(key, grouped[key])
                if unless is not None:
                    trace, of_spans = unless
                    if of_spans:
                        spans.setdefault(trace, []).append(key)
                        continue
                    if trace not in self._cache:  # a cached trace is stored
                        after.setdefault(trace, []).append(key)
                        continue
            now.append(key)
        await self._lookup(now, found, gone)
        # A span of a deleted trace whose tombstone has expired (a retry weeks late) stays deleted.
        later = [k for t, ks in after.items() if t in found or t in gone for k in ks]
        await self._lookup(later + [k for t, ks in spans.items() if t in gone for k in ks], found, gone)
        return found

    async def _lookup(self, keys: list[Key], found: dict[Key, EntityState], gone: set[Key]) -> None:
        wanted: dict[tuple[str, str], list[str]] = {}
        for table, project, id_ in keys:
            wanted.setdefault((table, project), []).append(id_)

        async def load(table: str, project: str, ids: list[str]) -> None:
            cols = COLUMNS[table]
            rows = await self._ch.fetch(
                f"SELECT {', '.join(cols)} FROM {table} FINAL {_by_ids(project)}",
                operation=f"load_{table}",
                ids=ids,
            )
            for row in rows:
                values = dict(zip(cols, row, strict=True))
                if values["is_deleted"]:
                    gone.add((table, project, values["id"]))
                    continue
                state = self._state(table, values)
                found[(table, project, state.id)] = state

        await _all([load(table, project, ids) for (table, project), ids in wanted.items()])

    def _row(self, table: str, s: EntityState) -> tuple[Any, ...]:
        """The row of one state, in column order."""
        return next(iter(self._rows(table, [s])))

    def _rows(self, table: str, states: list[EntityState]) -> Columns:
        """The rows of these states, built column by column: a list per column straight from
        the states' values, without a dict and a tuple per row (bench/README.md "Rows built a
        column at a time")."""
        values = [s.values for s in states]
        defaults = _ROW_DEFAULTS[table]
        out: dict[str, list[Any]] = {}
        for column in _COPIED[table]:
            default = defaults[column]
            out[column] = [v.get(column, default) for v in values]
        out["project_id"] = [s.project_id for s in states]
        out["id"] = [s.id for s in states]
        if table == OBSERVATION:
            priced = [s.derived or self._priced(s) for s in states]
            usages = [p[0] for p in priced]
            costs = [p[1] for p in priced]
            out["usage_pricing_model_id"] = [p[2] for p in priced]
            out["usage_pricing_tier_name"] = [p[3] for p in priced]
            out["usage_details"] = [_map_text(u) for u in usages]
            out["cost_details"] = [_map_text(c) for c in costs]
            out["input_tokens"] = [max(0, int(u.get("input", 0))) for u in usages]
            out["output_tokens"] = [max(0, int(u.get("output", 0))) for u in usages]
            out["total_tokens"] = [max(0, int(u.get("total", 0))) for u in usages]
            out["total_cost"] = [c.get("total") for c in costs]
            out["start_time"] = [s.values.get("start_time", s.first_ts) for s in states]
        else:
            out["timestamp"] = [s.values.get("timestamp", s.first_ts) for s in states]
        for column in _VALUE_MAPS[table]:  # most rows have an empty map or two: their text is a constant
            out[column] = [_map_text(v.get(column)) for v in values]
        out["field_versions"] = [versions_text(s.versions) for s in states]
        out["created_at"] = [s.first_ts for s in states]
        out["updated_at"] = [s.last_ts for s in states]
        out["event_ts"] = [s.revision for s in states]
        out["is_deleted"] = [0] * len(states)
        # Only DateTime64 needs a conversion: 18.16's UInt64 takes the µs as they are.
        if self._dialect.subsecond_type:
            for column in TIME_COLUMNS[table]:
                out[column] = [None if t is None else column_of_micros(t, True) for t in out[column]]
        return Columns([out[c] for c in COLUMNS[table]], len(states))

    def _priced(
        self, s: EntityState, book: PriceBook | None = None
    ) -> tuple[dict[str, int], dict[str, float], str, str]:
        """Usage and cost with totals and the costs inferred from the model's price, the id
        of the model definition its model matches (Langfuse links that one, internal_model_id,
        whether or not its prices were needed, as when the client sent the cost), and the name
        of the pricing tier its usage falls in."""
        values = s.values
        usage, cost = values.get("usage_details"), values.get("cost_details")
        name = values.get("provided_model_name")
        if not usage and not cost and not name:
            return {}, {}, "", ""  # what priced() makes of nothing, with no model: skip the lookup
        start = values.get("start_time", s.first_ts)
        model = (book or self._prices()).match(s.project_id, name or "", start)
        usage, cost, tier = priced(
            usage or {}, cost or {}, model, values.get("model_parameters"), values.get("metadata")
        )
        return usage, cost, model.id if model else "", tier

    def _state(self, table: str, row: dict[str, Any]) -> EntityState:
        versions = versions_of(row["field_versions"])
        state = EntityState(
            project_id=row["project_id"],
            id=row["id"],
            versions=versions,
            first_ts=micros_of_column(row["created_at"]),
            last_ts=micros_of_column(row["updated_at"]),
            revision=int(row["event_ts"]),
        )
        maps = MAP_COLUMNS[table]
        settable = {col for col, _ in FIELDS[table].values()} | {"type", "value", "string_value", "tags"}
        for column, value in row.items():
            if column in maps:
                # Only keys some event set: derived ones (a usage total) are recomputed on write.
                loaded = orjson.loads(value or "{}")
                state.values[column] = {k: x for k, x in loaded.items() if f"{column}.{k}" in versions}
            elif column in settable and (column in versions or column == "tags"):
                if column in TIME_COLUMNS[table] and value is not None:
                    value = micros_of_column(value)
                state.values[column] = list(value) if column == "tags" else value
        if table == OBSERVATION:
            # As _priced() derived it when the row was written: compared to see if prices moved.
            state.derived = (
                orjson.loads(row["usage_details"] or "{}"),
                orjson.loads(row["cost_details"] or "{}"),
                row["usage_pricing_model_id"],
                row["usage_pricing_tier_name"],
            )
        return state


async def _all(statements: list[Awaitable[None]]) -> None:
    """Independent statements at once, on the pool's connections: a batch waits for the slowest
    round trip instead of their sum (the workers wait on ClickHouse more than they compute).
    Raises the first failure once every statement has ended, so none runs on unobserved."""
    for outcome in await asyncio.gather(*statements, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


def _unstored_unless(key: Key, events: list[Envelope]) -> tuple[Key, bool] | None:
    """The trace without which an observation cannot be stored, as its events in a batch say,
    and whether they are spans; None when only a lookup can tell.

    - OpenTelemetry spans: a span is exported once, ended and whole, so a stored row of its id
      is an earlier export of the same span (a retry) and folds to the same row. Looked up only
      when their trace is stored deleted.
    - Creates naming one trace: an observation is stored with its trace, in the same batch, so
      under a trace the store does not hold it can only be stored by an update naming no trace
      (which `_reconcile` finds) or by a create that gave its id to another trace (a client's id
      collision, which then resolves by revision instead of merging).
    Updates may follow a create of an earlier batch: they are looked up.
    """
    trace = None
    spans = True
    for env in events:
        named = env.body.get("traceId")
        if env.type in UPDATE_TYPES or not named or (trace is not None and str(named) != trace):
            return None
        trace = str(named)
        if env.source not in SPAN_SOURCES:
            spans = False
    return ((TRACE, key[1], trace), spans) if trace is not None else None


def _merge_into(state: EntityState, other: EntityState) -> None:
    """Field by field, the newer version wins (FIRST_WINS fields: the older; a tie keeps
    `state`'s); tags are a union, an input's parts too (pipeline/fold.py, add_part)."""
    parted = state.versions.get("input") == PART_VERSION
    for vkey, version in other.versions.items():
        column, dot, k = vkey.partition(".")
        if dot and column in other.values and isinstance(other.values[column], dict):
            if k in other.values[column]:
                state.merge_map(column, {k: other.values[column][k]}, version)
        elif vkey in other.values and outranks(vkey, version, state.versions.get(vkey, -2)):
            state.values[vkey] = other.values[vkey]
            state.versions[vkey] = version
    if other.values.get("tags"):
        state.union("tags", list(other.values["tags"]))
    if parted and state.versions.get("input") != PART_VERSION:
        drop_parts(state.versions)
    for key, count, text in parts_of(other):
        add_part(state, key, count, text)
    if other.first_ts:
        state.first_ts = min(state.first_ts, other.first_ts) if state.first_ts else other.first_ts
    state.last_ts = max(state.last_ts, other.last_ts)


def _map_text(m: Any) -> str:
    return orjson.dumps(m).decode() if m else "{}"


def _copy(s: EntityState) -> EntityState:
    values = {
        k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v) for k, v in s.values.items()
    }
    return EntityState(s.project_id, s.id, values, dict(s.versions), s.first_ts, s.last_ts, s.revision)


def _versions_cover(top: dict[str, int], copy: dict[str, int]) -> bool:
    """Whether a row of field versions `top` holds every field of `copy` at least as new."""
    return not any(outranks(k, v, top.get(k, -1)) for k, v in copy.items())


def _covers(a: EntityState, b: EntityState) -> bool:
    """Whether `a` already holds every field of `b` at least as new."""
    merged = _copy(a)
    _merge_into(merged, b)
    return _same(merged, a)


def _same(a: EntityState, b: EntityState) -> bool:
    return (a.values, a.versions, a.first_ts, a.last_ts) == (b.values, b.versions, b.first_ts, b.last_ts)


def _trace_key(key: Key, state: EntityState) -> tuple[str, str]:
    """The (project, trace) a cached entity belongs to."""
    table, project, id_ = key
    return (project, id_) if table == TRACE else (project, str(state.values.get("trace_id") or ""))


def _by_ids(project: str) -> str:
    """The clauses of a read of some entities of a project by id (`ids=` the ids).

    PREWHERE: the id column of the project's granules is read first, and the other columns only
    of granules where an id matched. 18.16 does not move the condition there itself, and read
    them all for every granule of the key range: 2.5x the CPU for stored ids, 20x for new ones
    (bench/README.md "Lookups by id read the ids first").
    """
    return f"PREWHERE id IN {IDS_TABLE} WHERE project_id = {_quote(project)}"


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"
