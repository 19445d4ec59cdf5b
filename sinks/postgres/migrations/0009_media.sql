-- Media the Langfuse SDKs upload (images, audio, files in inputs and outputs): the SDK replaces
-- the bytes in the event with a reference `@@@langfuseMedia:...|id=<id>|...@@@` and uploads them
-- through POST /api/public/media. A medium is its content's sha256 within a project (id: the hash's
-- first 22 url-safe base64 characters, as the SDKs compute it); uploaded_at is NULL until its
-- bytes are all in media_chunks and match the hash.
-- secret: the per-medium key of its upload and download URLs (signed, expiring; the SDKs fetch
-- them without credentials, as they would a bucket's presigned URLs).
CREATE TABLE IF NOT EXISTS media (
    project_id text NOT NULL,
    id text NOT NULL,
    sha256_hash text NOT NULL,
    content_type text NOT NULL,
    content_length bigint NOT NULL,
    secret text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    uploaded_at timestamptz,
    upload_http_status integer,
    PRIMARY KEY (project_id, id)
);
-- The bytes in slices, so that neither an upload nor a download holds a medium whole in memory.
CREATE TABLE IF NOT EXISTS media_chunks (
    project_id text NOT NULL,
    media_id text NOT NULL,
    seq integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (project_id, media_id, seq)
);
-- Which trace, observation and field named each medium: a deleted trace takes the media only it
-- named with it.
CREATE TABLE IF NOT EXISTS media_links (
    project_id text NOT NULL,
    trace_id text NOT NULL,
    observation_id text NOT NULL DEFAULT '',
    field text NOT NULL,
    media_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, trace_id, observation_id, field, media_id)
);
CREATE INDEX IF NOT EXISTS media_links_media ON media_links (project_id, media_id);
