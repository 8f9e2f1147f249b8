-- PostgreSQL keeps each plugin's labels a second time, as a GIN-indexed array on the
-- plugin row, for its planner. SQLite needs no such copy: its search reads plugin_labels
-- in one pass driven by the full-text index (see sql/search.rs), so this step is empty
-- and exists to keep both engines' migration numbers in step.
SELECT 1;
