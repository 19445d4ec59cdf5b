-- Langfuse's annotation queues (/api/public/annotation-queues): lists of traces, observations
-- and sessions for people to review and score with the queue's score configs, and who is
-- assigned to a queue. Configuration-like data the api writes and reads directly.
CREATE TABLE IF NOT EXISTS annotation_queues (
    project_id text NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    name text NOT NULL,
    description text,
    score_config_ids text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, id)
);
-- A queue's name is unique in its project (Langfuse answers 409 for a second).
CREATE UNIQUE INDEX IF NOT EXISTS annotation_queues_name ON annotation_queues (project_id, name);
CREATE TABLE IF NOT EXISTS annotation_queue_items (
    project_id text NOT NULL,
    queue_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    object_type text NOT NULL CHECK (object_type IN ('TRACE', 'OBSERVATION', 'SESSION')),
    object_id text NOT NULL,
    status text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'COMPLETED')),
    completed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, id),
    FOREIGN KEY (project_id, queue_id) REFERENCES annotation_queues (project_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS annotation_queue_items_by_queue
    ON annotation_queue_items (project_id, queue_id, created_at);
CREATE TABLE IF NOT EXISTS annotation_queue_assignments (
    project_id text NOT NULL,
    queue_id uuid NOT NULL,
    user_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, queue_id, user_id),
    FOREIGN KEY (project_id, queue_id) REFERENCES annotation_queues (project_id, id) ON DELETE CASCADE
);
