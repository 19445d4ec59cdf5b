CREATE TABLE IF NOT EXISTS projects (
    id          text PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Only a SHA-256 of the secret is stored: secrets are 256-bit random, so a slow hash adds
-- nothing but latency on every request.
CREATE TABLE IF NOT EXISTS api_keys (
    id              bigserial PRIMARY KEY,
    project_id      text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    public_key      text NOT NULL UNIQUE,
    secret_hash     bytea NOT NULL,
    display_secret  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);
CREATE INDEX IF NOT EXISTS api_keys_project_idx ON api_keys (project_id);
-- Bearer tokens carry only the secret; its hash finds the key.
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_secret_hash_idx ON api_keys (secret_hash);

CREATE TABLE IF NOT EXISTS dead_letters (
    id          bigserial PRIMARY KEY,
    stage       text NOT NULL,
    event_id    text NOT NULL DEFAULT '',
    project_id  text NOT NULL DEFAULT '',
    event_type  text NOT NULL DEFAULT '',
    request_id  text NOT NULL DEFAULT '',
    reason      text NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    requeued_at timestamptz
);
CREATE INDEX IF NOT EXISTS dead_letters_project_idx ON dead_letters (project_id, created_at);
