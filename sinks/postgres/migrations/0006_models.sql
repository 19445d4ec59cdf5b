-- Model prices in Langfuse's shape: a regex over generation model names, an optional start
-- date, and a price per unit for each usage type. project_id NULL: a shipped default, loaded
-- by `agenttrace migrate` from sinks/postgres/default_models.json; a project's own win.
CREATE TABLE IF NOT EXISTS models (
    id                text PRIMARY KEY,
    project_id        text REFERENCES projects(id) ON DELETE CASCADE,
    model_name        text NOT NULL,
    match_pattern     text NOT NULL,
    start_date        timestamptz,
    unit              text NOT NULL DEFAULT 'TOKENS',
    prices            jsonb NOT NULL,
    tokenizer_id      text,
    tokenizer_config  jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS models_project_idx ON models (project_id);
