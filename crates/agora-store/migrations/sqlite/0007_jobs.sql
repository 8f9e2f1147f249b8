-- Background jobs (verification runs and what follows them): durable, claimed with a
-- lease, retried with backoff. A job whose lease ran out (its worker died or hung) is
-- claimable again, so a stuck job cannot hold the queue.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_after BIGINT NOT NULL,
    lease_until BIGINT,
    worker TEXT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
-- At most one open (queued or running) job per kind and subject.
CREATE UNIQUE INDEX jobs_open ON jobs (kind, subject) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_ready ON jobs (run_after) WHERE state = 'queued';
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE state = 'running';
