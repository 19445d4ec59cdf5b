-- Langfuse's score configs (/api/public/score-configs): the shape a score of a name takes (its
-- data type, a numeric range, or categories). A score that names one (configId) is checked
-- against it at the edge. Configuration the api writes and reads directly, like prompts; never
-- deleted, only archived, as in Langfuse (scores keep pointing at them).
CREATE TABLE IF NOT EXISTS score_configs (
    project_id text NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    name text NOT NULL,
    data_type text NOT NULL CHECK (data_type IN ('NUMERIC', 'CATEGORICAL', 'BOOLEAN', 'TEXT')),
    is_archived boolean NOT NULL DEFAULT false,
    min_value double precision,
    max_value double precision,
    categories jsonb,
    description text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, id)
);
-- The list's order: newest first, within the project.
CREATE INDEX IF NOT EXISTS score_configs_by_created ON score_configs (project_id, created_at DESC);
