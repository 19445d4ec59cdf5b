-- Deleted traces (issue 13). The edge writes a row before it appends the `trace-delete` event,
-- and both stages skip every event of a trace named here: a late span, a client's retry, a
-- replay of the log from before the deletion, a dead letter requeued. A tombstone expires only
-- after the topic's retention, when no copy of the trace's events is left to resurrect it.
-- purged_at: when the ClickHouse rows were removed physically (ALTER ... DELETE mutations).
CREATE TABLE IF NOT EXISTS trace_tombstones (
    project_id text NOT NULL,
    trace_id text NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    purged_at timestamptz,
    PRIMARY KEY (project_id, trace_id)
);
-- The workers' incremental refresh reads the newest tombstones; the purge job the unpurged ones.
CREATE INDEX IF NOT EXISTS trace_tombstones_deleted_at ON trace_tombstones (deleted_at);
CREATE INDEX IF NOT EXISTS trace_tombstones_unpurged ON trace_tombstones (deleted_at) WHERE purged_at IS NULL;

-- Per-project retention in days (NULL: kept for ever), enforced by the worker's retention job
-- (sinks/retention.py); `agenttrace projects retention` and PUT /api/admin/projects/{name} set it.
ALTER TABLE projects ADD COLUMN IF NOT EXISTS retention_days integer;
