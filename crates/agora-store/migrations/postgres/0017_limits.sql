-- Request counts per fixed window (`start`, in seconds since the epoch) and key
-- (`<class>:t:<token digest>` or `<class>:a:<address>`), added to by every replica so
-- rate limits hold across them. Only the current and previous windows matter; older rows
-- are pruned.
CREATE TABLE rate_limit_counts (
    start BIGINT NOT NULL,
    key TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (start, key)
);

-- Failed sign-ins, per (user name, client) pair (`p:<client>:<name>`) and per client
-- (`c:<client>`), shared by every replica. Forgotten a while after the last failure;
-- bounded by the registry, which drops the quietest rows when there are too many.
CREATE TABLE sign_in_failures (
    key TEXT PRIMARY KEY,
    count BIGINT NOT NULL,
    last_at BIGINT NOT NULL
);
CREATE INDEX sign_in_failures_last_at ON sign_in_failures (last_at);
