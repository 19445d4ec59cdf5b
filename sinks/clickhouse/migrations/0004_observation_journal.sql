-- Observations written by a fold that found no stored row while one of their events named no
-- trace (an update without traceId): Kafka keys such an event by its own id, so another process
-- than its create's may fold it at the same time, and a background merge of the two rows in
-- `observations` can drop the fields of one before either writer sees the other. Rows here are
-- never merged away: a writer that inserted a new observation looks here for its id (writer.py,
-- _reconcile). Partitioned by the hour of writing (event_ts is the writer's clock here); the
-- ClickHouse worker drops hours older than KEEP_HOURS (sinks/clickhouse/journal.py).
-- The columns are the observations' as of this migration; one added to observations later is
-- added here too.
CREATE TABLE IF NOT EXISTS {db}.observation_journal
AS {db}.observations
ENGINE = MergeTree()
PARTITION BY intDiv(event_ts, 3600000000)
ORDER BY (project_id, id)
SETTINGS index_granularity = 1024;
