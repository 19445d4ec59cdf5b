-- Deleted scores (DELETE /api/public/scores/{scoreId}), as trace_tombstones are deleted traces:
-- the edge writes a row before it appends the `score-delete` event, and the ClickHouse stage
-- skips every later event of the score (a client's retry, a replay, a requeued dead letter).
-- Their own table, not trace_tombstones: a score's id may equal a trace's, and a trace's
-- tombstone would hide and purge the whole trace.
CREATE TABLE IF NOT EXISTS score_tombstones (
    project_id text NOT NULL,
    score_id text NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    purged_at timestamptz,
    PRIMARY KEY (project_id, score_id)
);
CREATE INDEX IF NOT EXISTS score_tombstones_deleted_at ON score_tombstones (deleted_at);
CREATE INDEX IF NOT EXISTS score_tombstones_unpurged ON score_tombstones (deleted_at) WHERE purged_at IS NULL;
