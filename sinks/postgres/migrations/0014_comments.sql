-- Langfuse's comments (/api/public/comments): notes on a trace, an observation, a session or
-- a prompt version, in the key's project. Configuration-like data the api writes and reads
-- directly; a comment names its object by id and outlives it, as in Langfuse.
CREATE TABLE IF NOT EXISTS comments (
    project_id text NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    object_type text NOT NULL CHECK (object_type IN ('TRACE', 'OBSERVATION', 'SESSION', 'PROMPT')),
    object_id text NOT NULL,
    content text NOT NULL,
    author_user_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, id)
);
-- An object's comments, oldest first, as a reader of a trace lists them.
CREATE INDEX IF NOT EXISTS comments_by_object ON comments (project_id, object_type, object_id, created_at);
