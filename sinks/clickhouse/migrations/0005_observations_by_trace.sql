-- Which observations each trace has, sorted by trace, for reading one trace (or a page of
-- them) without scanning the project. `observations` is sorted by (project_id, id), so a read
-- by trace scanned the project's trace_hash column (migration 0003): ~9 MB and ~120 ms of
-- 18.16's CPU per trace at 2.2M observations, p99 ~1 s with 50 readers. Here the trace is a key
-- range; readers then take the observations by id (PREWHERE id IN ...) and still test trace_id
-- there, so an id listed under another trace too is never shown under the wrong one.
-- Kept by a materialized view, so every writer (the stage, replay, the journal's repair, a
-- deletion's INSERT ... SELECT, an older worker during an upgrade) fills it with no change of
-- its own; a row per observation row written, merged away by ReplacingMergeTree.
-- start_time: retention (sinks/retention.py) removes a row with its observation's version of
-- the same start_time; the purge removes a deleted trace's rows (sinks/purge.py).
CREATE TABLE IF NOT EXISTS {db}.observations_by_trace
(
    project_id {lc},
    trace_id String,
    id String,
    start_time {ts}
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM({start_time_partition})
ORDER BY (project_id, trace_id, id)
SETTINGS index_granularity = 1024;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.observations_by_trace_view
TO {db}.observations_by_trace
AS SELECT project_id, trace_id, id, start_time FROM {db}.observations WHERE trace_id != '';
-- After the view, so that no row written meanwhile is missed (one written during both is
-- listed twice, which the merges and the readers' DISTINCT absorb).
INSERT INTO {db}.observations_by_trace
SELECT project_id, trace_id, id, start_time FROM {db}.observations WHERE trace_id != '';
