-- Hardening (issue 11): per-app byte quotas of kv and docs, usage per app and UTC day,
-- indexes for retention.

-- Bytes each app holds in kv entries (collection + key + value) and documents
-- (collection + id + body), kept by the triggers below inside every write's own
-- transaction, so they are exact whoever writes (a guest, the sweeper, a cascade).
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
    (SELECT COALESCE(SUM(length(CAST(collection AS BLOB)) + length(CAST(key AS BLOB))
        + length(CAST(value AS BLOB))), 0) FROM kv_entries WHERE app_id = apps.id),
    (SELECT COALESCE(SUM(length(CAST(collection AS BLOB)) + length(CAST(id AS BLOB))
        + length(CAST(body AS BLOB))), 0) FROM docs WHERE app_id = apps.id)
FROM apps;

CREATE TRIGGER app_storage_row AFTER INSERT ON apps BEGIN
    INSERT INTO app_storage (app_id) VALUES (NEW.id);
END;

-- A write that grows an app's bytes past its quota fails (and rolls back with its
-- transaction); shrinking writes and deletions always pass.
CREATE TRIGGER kv_bytes_insert AFTER INSERT ON kv_entries BEGIN
    UPDATE app_storage SET kv_bytes = kv_bytes + length(CAST(NEW.collection AS BLOB))
        + length(CAST(NEW.key AS BLOB)) + length(CAST(NEW.value AS BLOB))
        WHERE app_id = NEW.app_id;
    SELECT RAISE(ABORT, 'picloud: storage quota exceeded on kv')
        FROM app_storage s, storage_quotas q
        WHERE s.app_id = NEW.app_id AND s.kv_bytes > q.max_kv_bytes;
END;

CREATE TRIGGER kv_bytes_update AFTER UPDATE ON kv_entries BEGIN
    UPDATE app_storage SET kv_bytes = kv_bytes
        + length(CAST(NEW.collection AS BLOB)) + length(CAST(NEW.key AS BLOB)) + length(CAST(NEW.value AS BLOB))
        - length(CAST(OLD.collection AS BLOB)) - length(CAST(OLD.key AS BLOB)) - length(CAST(OLD.value AS BLOB))
        WHERE app_id = NEW.app_id;
    SELECT RAISE(ABORT, 'picloud: storage quota exceeded on kv')
        FROM app_storage s, storage_quotas q
        WHERE s.app_id = NEW.app_id AND s.kv_bytes > q.max_kv_bytes
        AND length(CAST(NEW.value AS BLOB)) > length(CAST(OLD.value AS BLOB));
END;

CREATE TRIGGER kv_bytes_delete AFTER DELETE ON kv_entries BEGIN
    UPDATE app_storage SET kv_bytes = kv_bytes - length(CAST(OLD.collection AS BLOB))
        - length(CAST(OLD.key AS BLOB)) - length(CAST(OLD.value AS BLOB))
        WHERE app_id = OLD.app_id;
END;

CREATE TRIGGER docs_bytes_insert AFTER INSERT ON docs BEGIN
    UPDATE app_storage SET docs_bytes = docs_bytes + length(CAST(NEW.collection AS BLOB))
        + length(CAST(NEW.id AS BLOB)) + length(CAST(NEW.body AS BLOB))
        WHERE app_id = NEW.app_id;
    SELECT RAISE(ABORT, 'picloud: storage quota exceeded on docs')
        FROM app_storage s, storage_quotas q
        WHERE s.app_id = NEW.app_id AND s.docs_bytes > q.max_docs_bytes;
END;

CREATE TRIGGER docs_bytes_update AFTER UPDATE ON docs BEGIN
    UPDATE app_storage SET docs_bytes = docs_bytes
        + length(CAST(NEW.collection AS BLOB)) + length(CAST(NEW.id AS BLOB)) + length(CAST(NEW.body AS BLOB))
        - length(CAST(OLD.collection AS BLOB)) - length(CAST(OLD.id AS BLOB)) - length(CAST(OLD.body AS BLOB))
        WHERE app_id = NEW.app_id;
    SELECT RAISE(ABORT, 'picloud: storage quota exceeded on docs')
        FROM app_storage s, storage_quotas q
        WHERE s.app_id = NEW.app_id AND s.docs_bytes > q.max_docs_bytes
        AND length(CAST(NEW.body AS BLOB)) > length(CAST(OLD.body AS BLOB));
END;

CREATE TRIGGER docs_bytes_delete AFTER DELETE ON docs BEGIN
    UPDATE app_storage SET docs_bytes = docs_bytes - length(CAST(OLD.collection AS BLOB))
        - length(CAST(OLD.id AS BLOB)) - length(CAST(OLD.body AS BLOB))
        WHERE app_id = OLD.app_id;
END;

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
SELECT app_id, strftime('%Y-%m-%d', started_at / 1000, 'unixepoch'), COUNT(*),
    SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), SUM(fuel_used), SUM(duration_us), 0
FROM invocations GROUP BY 1, 2;

-- Retention deletes by age.
CREATE INDEX invocations_by_start ON invocations (started_at);
CREATE INDEX change_events_by_time ON change_events (created_at);
