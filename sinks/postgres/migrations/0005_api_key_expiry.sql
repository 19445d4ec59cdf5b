-- Keys may expire: NULL means never. Authentication refuses a key at or after this time.
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS expires_at timestamptz;
