-- Verification runs of releases: the outcome and the whole report (stages, findings) of
-- each run; the newest run of a version is its current verdict.
CREATE TABLE verifications (
    id INTEGER PRIMARY KEY,
    version_id BIGINT NOT NULL REFERENCES versions (id),
    outcome TEXT NOT NULL CHECK (outcome IN ('verified', 'needs-review', 'rejected')),
    report TEXT NOT NULL,
    checked_at BIGINT NOT NULL
);
CREATE INDEX verifications_version ON verifications (version_id, id);
