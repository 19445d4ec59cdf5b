-- Langfuse's prompt management (/api/public/v2/prompts): numbered versions of a named prompt
-- per project. A label names at most one version of a prompt (`latest` the newest, which the
-- api keeps); tags are the same on every version of a prompt. Not events: like keys and
-- models, prompts are configuration the api writes and reads directly.
CREATE TABLE IF NOT EXISTS prompts (
    project_id text NOT NULL,
    name text NOT NULL,
    version integer NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    type text NOT NULL CHECK (type IN ('text', 'chat')),
    prompt jsonb NOT NULL,
    config jsonb NOT NULL DEFAULT '{}',
    labels text[] NOT NULL DEFAULT '{}',
    tags text[] NOT NULL DEFAULT '{}',
    commit_message text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- Every read names the project and usually the prompt: the key's prefix finds its versions.
    PRIMARY KEY (project_id, name, version)
);
