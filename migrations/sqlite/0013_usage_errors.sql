-- Failed invocations per app, UTC day and error code, added with every batch of
-- invocation records (next to usage_daily's totals), so usage answers "errors by code"
-- exactly after old records are pruned.
CREATE TABLE usage_errors (
    app_id  TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    day     TEXT NOT NULL,
    code    TEXT NOT NULL,
    count   BIGINT NOT NULL,
    PRIMARY KEY (app_id, day, code)
);

-- What the records kept so far say (older days were pruned with their records).
INSERT INTO usage_errors (app_id, day, code, count)
SELECT app_id, strftime('%Y-%m-%d', started_at / 1000, 'unixepoch'), COALESCE(error_code, 'unknown'), COUNT(*)
FROM invocations WHERE status <> 'ok'
GROUP BY 1, 2, 3;
