-- Each plugin's labels again, as one array of 'kind:value' with a GIN index. A search's
-- label filters become `labels @> ARRAY[...]`: an index condition PostgreSQL can combine
-- with the full-text index in one bitmap, estimated from the array's own statistics.
-- Matched through plugin_labels (`GROUP BY plugin_id HAVING COUNT(*) = n`), the planner
-- guessed 12 plugins where 9,969 matched at 100,000 and looped over the plugins one
-- index lookup at a time (94 ms). plugin_labels stays: SQLite searches it, and listings
-- read it; the store writes both in the transaction that refreshes a plugin.
ALTER TABLE plugins ADD COLUMN labels TEXT[] NOT NULL DEFAULT '{}';
UPDATE plugins p SET labels = l.labels
FROM (
    SELECT plugin_id, array_agg(kind || ':' || value ORDER BY kind, value) AS labels
    FROM plugin_labels GROUP BY plugin_id
) AS l
WHERE l.plugin_id = p.id;
-- Both GIN indexes of the catalog are written through (no pending list). With a pending
-- list, every search also scans up to 4 MB of entries not yet merged until a vacuum
-- merges them; a catalog is read far more often than published to.
CREATE INDEX plugins_labels ON plugins USING GIN (labels) WITH (fastupdate = off);
ALTER INDEX plugins_search SET (fastupdate = off);
SELECT gin_clean_pending_list('plugins_search');
