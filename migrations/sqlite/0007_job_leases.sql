-- Background jobs (issue 14 ground work): the lease of a job that one node of a cluster
-- runs at a time (retention, the kv sweep; later the event dispatcher's single-runner
-- work). A node runs the job while it holds an unexpired lease, renewing it each run.
CREATE TABLE job_leases (
    name        TEXT PRIMARY KEY,
    -- The node holding it (a random id per process).
    holder      TEXT NOT NULL,
    -- Milliseconds since the Unix epoch; past it, any node may take the lease.
    expires_at  BIGINT NOT NULL
);
