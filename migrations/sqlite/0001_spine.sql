CREATE TABLE apps (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    limits      TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    token_hash  TEXT NOT NULL UNIQUE,
    scopes      TEXT NOT NULL,
    app_id      TEXT REFERENCES apps(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE artifacts (
    sha256      TEXT PRIMARY KEY,
    bytes       BLOB NOT NULL,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE functions (
    id              TEXT PRIMARY KEY,
    app_id          TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    active_version  BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (app_id, name)
);

CREATE TABLE function_versions (
    function_id  TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
    version      BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    sha256       TEXT NOT NULL REFERENCES artifacts(sha256),
    size         BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (function_id, version)
);

CREATE TABLE routes (
    id           TEXT PRIMARY KEY,
    app_id       TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    function_id  TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    UNIQUE (app_id, method, path)
);

CREATE TABLE invocations (
    id             TEXT PRIMARY KEY,
    app_id         TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    function_name  TEXT NOT NULL,
    version        BIGINT NOT NULL,
    trigger_kind   TEXT NOT NULL,
    status         TEXT NOT NULL,
    http_status    BIGINT NOT NULL,
    error_code     TEXT,
    error_message  TEXT,
    fuel_used      BIGINT NOT NULL,
    duration_us    BIGINT NOT NULL,
    peak_memory    BIGINT NOT NULL,
    started_at     BIGINT NOT NULL,
    logs           TEXT NOT NULL
);
CREATE INDEX invocations_by_app ON invocations (app_id, started_at);

CREATE TABLE kv_entries (
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    collection  TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    version     BIGINT NOT NULL,
    expires_at  BIGINT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, collection, key)
);
CREATE INDEX kv_entries_expiry ON kv_entries (expires_at) WHERE expires_at IS NOT NULL;
