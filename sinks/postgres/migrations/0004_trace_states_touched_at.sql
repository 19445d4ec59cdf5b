-- When a trace's state was last written: states untouched for longer than the writer's horizon
-- (twice the topic's retention by default) are pruned, so the table does not grow without end.
-- No index: one would change on every write and cost the updates their HOT path; the pruner
-- sweeps the table a page range at a time instead.
ALTER TABLE trace_states ADD COLUMN touched_at timestamptz NOT NULL DEFAULT now();
