-- A 32-bit hash of the trace id, for finding a trace's observations and scores. Both tables are
-- sorted by (project_id, id), so a read by trace scans the project's trace_id column; 18.16
-- has no skipping indexes. Scanning 4 fixed bytes per row first, and comparing trace_id only
-- where the hash matched, made one trace's observations ~2x and a page's summaries (50 traces)
-- ~6x cheaper on 18.16 over 1M rows (bench/README.md, "Trace hash"). Parts written before this
-- migration compute it on read until they merge. murmurHash2_32 gives the same values on 18.16
-- and current servers; readers always compare trace_id too, so collisions cost nothing.
-- DEFAULT, not MATERIALIZED: a Distributed table computes the column and sends it to the
-- shards, whose tables refuse a value for a MATERIALIZED one (18.16). Writers never set it.
ALTER TABLE {db}.observations ADD COLUMN {if_not_exists}trace_hash UInt32 DEFAULT murmurHash2_32(trace_id);
ALTER TABLE {db}.scores ADD COLUMN {if_not_exists}trace_hash UInt32 DEFAULT murmurHash2_32(trace_id);
