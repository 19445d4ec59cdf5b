-- Langfuse's datasets (/api/public/v2/datasets, /dataset-items, /dataset-run-items): named
-- datasets of items per project, and runs that link each item to the trace an experiment made
-- of it. Configuration the api writes and reads directly, like prompts; not events.
-- Every key starts with the project: no statement can reach another project's rows.
CREATE TABLE IF NOT EXISTS datasets (
    project_id text NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    description text,
    metadata jsonb,
    input_schema jsonb,
    expected_output_schema jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, id),
    UNIQUE (project_id, name)
);
-- An item's id is the client's (the SDKs make one, and upsert on it): unique in the project,
-- whichever dataset holds it.
CREATE TABLE IF NOT EXISTS dataset_items (
    project_id text NOT NULL,
    id text NOT NULL,
    dataset_id text NOT NULL,
    status text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'ARCHIVED')),
    input jsonb,
    expected_output jsonb,
    metadata jsonb,
    source_trace_id text,
    source_observation_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, id),
    FOREIGN KEY (project_id, dataset_id) REFERENCES datasets (project_id, id) ON DELETE CASCADE
);
-- A dataset's items newest first (the listing's order), and the two source filters.
CREATE INDEX IF NOT EXISTS dataset_items_by_dataset ON dataset_items (project_id, dataset_id, created_at DESC, id);
CREATE INDEX IF NOT EXISTS dataset_items_by_source_trace ON dataset_items (project_id, source_trace_id)
    WHERE source_trace_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS dataset_items_by_source_observation ON dataset_items (project_id, source_observation_id)
    WHERE source_observation_id IS NOT NULL;
-- A run is named within its dataset; the first run item posted with a new name creates it.
-- Its id derives from (project, dataset, name) (Langfuse's stable experiment id), so the
-- primary key keeps a name to one run; a second unique index would let two concurrent first
-- run items of a run race (an upsert settles a conflict on one index only).
CREATE TABLE IF NOT EXISTS dataset_runs (
    project_id text NOT NULL,
    id text NOT NULL,
    dataset_id text NOT NULL,
    name text NOT NULL,
    description text,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, id),
    FOREIGN KEY (project_id, dataset_id) REFERENCES datasets (project_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS dataset_runs_by_name ON dataset_runs (project_id, dataset_id, name);
-- Deleting a run or an item deletes the links that name it.
CREATE TABLE IF NOT EXISTS dataset_run_items (
    project_id text NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    run_id text NOT NULL,
    dataset_item_id text NOT NULL,
    trace_id text NOT NULL,
    observation_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, id),
    FOREIGN KEY (project_id, run_id) REFERENCES dataset_runs (project_id, id) ON DELETE CASCADE,
    FOREIGN KEY (project_id, dataset_item_id) REFERENCES dataset_items (project_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS dataset_run_items_by_run ON dataset_run_items (project_id, run_id, created_at DESC, id);
-- One link of an item to a trace in a run, whether an SDK posted it, its experiment's spans
-- stated it, or both did (the 3.x SDKs do both).
CREATE UNIQUE INDEX IF NOT EXISTS dataset_run_items_once ON dataset_run_items (project_id, run_id, dataset_item_id, trace_id);
CREATE INDEX IF NOT EXISTS dataset_run_items_by_item ON dataset_run_items (project_id, dataset_item_id);
