-- Each trace's observations, sorted by trace: what reading one trace, or a page of traces,
-- needs without scanning the project. `observations` is sorted by (project_id, id), so a read
-- by trace scanned the project's trace_hash column (migration 0003), a cost growing with the
-- project (one trace's observations: ~26 ms of 18.16's CPU at 5M observations, against ~14
-- through this table). Here the trace is a key range. One trace's read takes the ids from it
-- and the rows by id (PREWHERE id IN ...), still testing trace_id there. A page of traces takes
-- its observations' extent and cost from here alone: the newest row of each id, as from the
-- projections (sinks/clickhouse/query.py), so event_ts and is_deleted are kept too.
-- Kept by a materialized view, so every writer (the stage, replay, the journal's repair, a
-- deletion's INSERT ... SELECT, an older worker during an upgrade) fills it with no change of
-- its own: a row per observation row written, merged like the observations' own.
-- start_time: retention (sinks/retention.py) removes a row with its observation's version of
-- the same start_time; the purge removes a deleted trace's rows (sinks/purge.py).
CREATE TABLE IF NOT EXISTS {db}.observations_by_trace
(
    project_id {lc},
    trace_id String,
    id String,
    start_time {ts},
    end_time Nullable({ts}),
    total_cost Nullable(Float64),
    event_ts UInt64,
    is_deleted UInt8
)
ENGINE = ReplacingMergeTree(event_ts)
PARTITION BY toYYYYMM({start_time_partition})
ORDER BY (project_id, trace_id, id)
SETTINGS index_granularity = 1024;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.observations_by_trace_view
TO {db}.observations_by_trace
AS SELECT project_id, trace_id, id, start_time, end_time, total_cost, event_ts, is_deleted
FROM {db}.observations WHERE trace_id != '';
-- After the view, so that no row written meanwhile is missed (one written during both is
-- there twice, the same version, which merges and readers take as one).
INSERT INTO {db}.observations_by_trace
SELECT project_id, trace_id, id, start_time, end_time, total_cost, event_ts, is_deleted
FROM {db}.observations WHERE trace_id != '';
