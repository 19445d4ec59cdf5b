-- A long trace's generation states are one large jsonb value, rewritten whole whenever a batch
-- changes one of them; compressing it with pglz was the Postgres server's largest single cost
-- (perf: 18% of its CPU under the benchmarks' load). lz4 compresses several times faster.
-- Values already stored keep pglz until rewritten. PostgreSQL 14 and later, built with lz4
-- (Debian's and the official images are); elsewhere pglz stays.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE trace_states ALTER COLUMN generations SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'lz4 is not available here: trace_states.generations stays compressed with pglz';
END $$;
