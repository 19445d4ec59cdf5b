-- No row per event or per span (sinks/postgres/writer.py explains the design): each
-- generation's folded usage, and the ids of the events folded into it, move into the row of
-- its trace; the per-event record and the per-generation table go.
--
-- Upgrading drops the per-generation states: to have corrections of older generations replace
-- their usage instead of adding to it, empty sessions, users, usage_daily and trace_states
-- with the stage stopped, then run `agenttrace replay --stage postgres`.

ALTER TABLE trace_links RENAME TO trace_states;
ALTER INDEX trace_links_pkey RENAME TO trace_states_pkey;
-- generation id -> its model, start time, usage and cost with their event-time versions, and
-- the ids of its events: what it is counted with in usage_daily.
ALTER TABLE trace_states ADD COLUMN generations jsonb NOT NULL DEFAULT '{}';

DROP TABLE projected_events;
DROP TABLE generation_usage;
