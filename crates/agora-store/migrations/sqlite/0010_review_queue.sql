-- The verdict of each plugin's latest version (the outcome of that version's newest
-- verification run; NULL until its first run), kept by the store in the transaction that
-- records a run or changes which version is latest, so search can show and filter on it
-- without a join. And the review queue's index: the runs with one outcome, newest first.
ALTER TABLE plugins ADD COLUMN latest_verification TEXT;
UPDATE plugins SET latest_verification = (
    SELECT r.outcome FROM verifications r JOIN versions v ON v.id = r.version_id
    WHERE v.plugin_id = plugins.id AND v.version = plugins.latest_version
    ORDER BY r.id DESC LIMIT 1
);
CREATE INDEX verifications_outcome ON verifications (outcome, id);
