-- The Postgres projections of the event log (sinks/postgres/writer.py explains the design):
-- aggregates people query (sessions, users, usage_daily), the per-entity states they are
-- derived from (trace_links, generation_usage), and the per-event idempotency record.

-- Every event folded into the projections, once: a redelivered or replayed event conflicts
-- here and is skipped, in the same transaction that changes the aggregates.
-- received_at is the edge's receive time: rows older than the writer's horizon are pruned, and
-- events older than it are never folded again, so a pruned record cannot let one count twice.
CREATE TABLE IF NOT EXISTS projected_events (
    project_id   text NOT NULL,
    event_id     text NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (project_id, event_id)
);
-- Rows arrive roughly in time order, so a BRIN index keeps pruning cheap.
CREATE INDEX IF NOT EXISTS projected_events_received_idx ON projected_events USING brin (received_at);

-- Where each trace is counted: its session and user (last writer wins by event time, µs) and
-- the extent of its activity (event times of the trace and its observations, µs).
CREATE TABLE IF NOT EXISTS trace_links (
    project_id  text NOT NULL,
    trace_id    text NOT NULL,
    session_id  text NOT NULL DEFAULT '',
    session_ts  bigint NOT NULL DEFAULT -1,
    user_id     text NOT NULL DEFAULT '',
    user_ts     bigint NOT NULL DEFAULT -1,
    first_seen  bigint NOT NULL DEFAULT 0,
    last_seen   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, trace_id)
);

-- What each generation contributes to usage_daily now: its folded state (model, start time,
-- token and cost fields with their versions) and the bucket and amounts it was counted with,
-- so that a later event moves or corrects the contribution instead of adding to it.
CREATE TABLE IF NOT EXISTS generation_usage (
    project_id     text NOT NULL,
    observation_id text NOT NULL,
    state          jsonb NOT NULL DEFAULT '{}',
    day            date,
    model          text NOT NULL DEFAULT '',
    events         bigint NOT NULL DEFAULT 0,
    input_tokens   bigint NOT NULL DEFAULT 0,
    output_tokens  bigint NOT NULL DEFAULT 0,
    total_tokens   bigint NOT NULL DEFAULT 0,
    cost           numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, observation_id)
);

CREATE TABLE IF NOT EXISTS sessions (
    project_id  text NOT NULL,
    session_id  text NOT NULL,
    -- Extremes of the activity of every trace ever attributed to the session.
    first_seen  timestamptz,
    last_seen   timestamptz,
    trace_count bigint NOT NULL DEFAULT 0,
    -- The user of the session's most recently attributed trace.
    user_id     text NOT NULL DEFAULT '',
    user_ts     bigint NOT NULL DEFAULT -1,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, session_id)
);
CREATE INDEX IF NOT EXISTS sessions_recent_idx ON sessions (project_id, last_seen DESC);

CREATE TABLE IF NOT EXISTS users (
    project_id  text NOT NULL,
    user_id     text NOT NULL,
    first_seen  timestamptz,
    last_seen   timestamptz,
    trace_count bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX IF NOT EXISTS users_recent_idx ON users (project_id, last_seen DESC);

-- The usage ledger: per project, UTC day of the generation's start time, and model.
CREATE TABLE IF NOT EXISTS usage_daily (
    project_id    text NOT NULL,
    day           date NOT NULL,
    model         text NOT NULL,
    observations  bigint NOT NULL DEFAULT 0,
    events        bigint NOT NULL DEFAULT 0,
    input_tokens  bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    total_tokens  bigint NOT NULL DEFAULT 0,
    cost          numeric NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, day, model)
);
