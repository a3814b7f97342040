-- Hardening (issue 11): per-app byte quotas of kv and docs, usage per app and UTC day,
-- indexes for retention.

-- Bytes each app holds in kv entries (collection + key + value) and documents
-- (collection + id + body as jsonb text), kept by the triggers below inside every
-- write's own transaction, so they are exact whoever writes (a guest, the sweeper, a
-- cascade).
CREATE TABLE app_storage (
    app_id      TEXT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    kv_bytes    BIGINT NOT NULL DEFAULT 0,
    docs_bytes  BIGINT NOT NULL DEFAULT 0
);

-- The quotas the triggers enforce: one row, written by the server at start.
CREATE TABLE storage_quotas (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    max_kv_bytes    BIGINT NOT NULL,
    max_docs_bytes  BIGINT NOT NULL
);
INSERT INTO storage_quotas (id, max_kv_bytes, max_docs_bytes) VALUES (1, 1073741824, 1073741824);

INSERT INTO app_storage (app_id, kv_bytes, docs_bytes)
SELECT id,
    (SELECT COALESCE(SUM(octet_length(collection) + octet_length(key) + octet_length(value)), 0)
        FROM kv_entries WHERE app_id = apps.id)::BIGINT,
    (SELECT COALESCE(SUM(octet_length(collection) + octet_length(id) + octet_length(body::text)), 0)
        FROM docs WHERE app_id = apps.id)::BIGINT
FROM apps;

CREATE FUNCTION picloud_app_storage_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO app_storage (app_id) VALUES (NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER app_storage_row AFTER INSERT ON apps
    FOR EACH ROW EXECUTE FUNCTION picloud_app_storage_row();

-- A write that grows an app's bytes past its quota fails (and rolls back with its
-- transaction); shrinking writes and deletions always pass.
CREATE FUNCTION picloud_kv_bytes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta BIGINT := 0;
    app TEXT;
    total BIGINT;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        delta := delta - (octet_length(OLD.collection) + octet_length(OLD.key) + octet_length(OLD.value));
        app := OLD.app_id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        delta := delta + (octet_length(NEW.collection) + octet_length(NEW.key) + octet_length(NEW.value));
        app := NEW.app_id;
    END IF;
    UPDATE app_storage SET kv_bytes = kv_bytes + delta WHERE app_id = app
        RETURNING kv_bytes INTO total;
    IF delta > 0 AND total > (SELECT max_kv_bytes FROM storage_quotas WHERE id = 1) THEN
        RAISE EXCEPTION 'picloud: storage quota exceeded on kv';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER kv_bytes AFTER INSERT OR UPDATE OR DELETE ON kv_entries
    FOR EACH ROW EXECUTE FUNCTION picloud_kv_bytes();

CREATE FUNCTION picloud_docs_bytes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta BIGINT := 0;
    app TEXT;
    total BIGINT;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        delta := delta - (octet_length(OLD.collection) + octet_length(OLD.id) + octet_length(OLD.body::text));
        app := OLD.app_id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        delta := delta + (octet_length(NEW.collection) + octet_length(NEW.id) + octet_length(NEW.body::text));
        app := NEW.app_id;
    END IF;
    UPDATE app_storage SET docs_bytes = docs_bytes + delta WHERE app_id = app
        RETURNING docs_bytes INTO total;
    IF delta > 0 AND total > (SELECT max_docs_bytes FROM storage_quotas WHERE id = 1) THEN
        RAISE EXCEPTION 'picloud: storage quota exceeded on docs';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER docs_bytes AFTER INSERT OR UPDATE OR DELETE ON docs
    FOR EACH ROW EXECUTE FUNCTION picloud_docs_bytes();

-- Usage per app and UTC day, updated with each batch of invocation records (and with
-- the usage of records dropped under load, which are counted in dropped_records).
CREATE TABLE usage_daily (
    app_id           TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    day              TEXT NOT NULL,
    invocations      BIGINT NOT NULL,
    errors           BIGINT NOT NULL,
    fuel_used        BIGINT NOT NULL,
    duration_us      BIGINT NOT NULL,
    dropped_records  BIGINT NOT NULL,
    PRIMARY KEY (app_id, day)
);

INSERT INTO usage_daily (app_id, day, invocations, errors, fuel_used, duration_us, dropped_records)
SELECT app_id, to_char(to_timestamp(started_at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD'), COUNT(*),
    SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), SUM(fuel_used), SUM(duration_us), 0
FROM invocations GROUP BY 1, 2;

-- Retention deletes by age.
CREATE INDEX invocations_by_start ON invocations (started_at);
CREATE INDEX change_events_by_time ON change_events (created_at);
