-- Projections of the event log. One row per entity after merges: ReplacingMergeTree keeps the
-- row with the highest event_ts, so read with FINAL. event_ts is the row's version: the µs of
-- the newest event folded into it, raised past the version of the row it was folded from, so
-- the latest fold always wins (sinks/clickhouse/writer.py).
-- Placeholders are filled per dialect (schema.py): {ts} is DateTime64(6, 'UTC') on a current
-- ClickHouse and UInt64 microseconds since the epoch on 18.16, which has no sub-second type.

-- index_granularity 1024, not the default 8192: the writer's probes and the read API find
-- rows by (project_id, id), and each lookup reads a whole granule of every column it selects
-- from every part; 1024-row granules made those lookups 1.5-2.3x cheaper on 18.16 (bench/README.md,
-- "Granules"). Tables created before this setting keep 8192-row granules, which only costs
-- speed; IF NOT EXISTS leaves them, `agenttrace migrate --rebuild-granules` copies them.

CREATE TABLE IF NOT EXISTS {db}.traces
(
    project_id {lc},
    id String,
    timestamp {ts},
    name String,
    user_id String,
    session_id String,
    release String,
    version String,
    environment {lc},
    tags Array(String),
    public UInt8,
    metadata String,
    input Nullable(String){zstd},
    output Nullable(String){zstd},
    field_versions String,
    created_at {ts},
    updated_at {ts},
    event_ts UInt64,
    is_deleted UInt8{trace_indexes}
)
ENGINE = ReplacingMergeTree(event_ts)
PARTITION BY toYYYYMM({timestamp_partition})
ORDER BY (project_id, id)
SETTINGS index_granularity = 1024;

CREATE TABLE IF NOT EXISTS {db}.observations
(
    project_id {lc},
    id String,
    trace_id String,
    type {lc},
    parent_observation_id String,
    name String,
    start_time {ts},
    end_time Nullable({ts}),
    completion_start_time Nullable({ts}),
    level {lc},
    status_message String,
    version String,
    environment {lc},
    metadata String,
    input Nullable(String){zstd},
    output Nullable(String){zstd},
    provided_model_name String,
    model_parameters String,
    usage_details String,
    input_tokens UInt64,
    output_tokens UInt64,
    total_tokens UInt64,
    cost_details String,
    total_cost Nullable(Float64),
    prompt_name String,
    prompt_version String,
    field_versions String,
    created_at {ts},
    updated_at {ts},
    event_ts UInt64,
    is_deleted UInt8{observation_indexes}
)
ENGINE = ReplacingMergeTree(event_ts)
PARTITION BY toYYYYMM({start_time_partition})
ORDER BY (project_id, id)
SETTINGS index_granularity = 1024;

CREATE TABLE IF NOT EXISTS {db}.scores
(
    project_id {lc},
    id String,
    trace_id String,
    observation_id String,
    session_id String,
    dataset_run_id String,
    name String,
    value Float64,
    string_value String,
    data_type {lc},
    source {lc},
    comment String,
    config_id String,
    environment {lc},
    metadata String,
    timestamp {ts},
    field_versions String,
    created_at {ts},
    updated_at {ts},
    event_ts UInt64,
    is_deleted UInt8{score_indexes}
)
ENGINE = ReplacingMergeTree(event_ts)
PARTITION BY toYYYYMM({timestamp_partition})
ORDER BY (project_id, id)
SETTINGS index_granularity = 1024;
