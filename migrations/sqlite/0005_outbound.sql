-- Outbound http (issue 13): an app's allow-list of hosts, set by an operator. An app
-- without a row may reach any host the SSRF guard lets through.
CREATE TABLE app_outbound (
    app_id       TEXT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    -- JSON array of host names (`api.example.com`, `*.example.com`) and addresses.
    allow_hosts  TEXT NOT NULL,
    updated_at   BIGINT NOT NULL
);
