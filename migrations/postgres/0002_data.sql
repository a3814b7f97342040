-- Documents, files and the change-event outbox (issue 4).

CREATE TABLE docs (
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    collection  TEXT COLLATE "C" NOT NULL,
    id          TEXT COLLATE "C" NOT NULL,
    body        JSONB NOT NULL,
    version     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, collection, id)
);

-- Declared indexes: one partial expression index each, named `index_name`.
CREATE TABLE doc_indexes (
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    collection  TEXT COLLATE "C" NOT NULL,
    field       TEXT NOT NULL,
    index_name  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, collection, field)
);

-- File metadata; the content is a blob named `blob_id`, on disk or in `file_blobs`.
CREATE TABLE files (
    app_id        TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    path          TEXT COLLATE "C" NOT NULL,
    size          BIGINT NOT NULL,
    content_type  TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    blob_id       TEXT NOT NULL,
    modified      BIGINT NOT NULL,
    PRIMARY KEY (app_id, path)
);

CREATE TABLE file_blobs (
    blob_id  TEXT PRIMARY KEY,
    app_id   TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    content  BYTEA NOT NULL
);

-- The transactional outbox: one row per kv/docs/files write, inserted in the write's
-- own transaction. The trigger dispatcher consumes rows in `seq` order.
CREATE TABLE change_events (
    seq            BIGSERIAL PRIMARY KEY,
    app_id         TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    source         TEXT NOT NULL,
    op             TEXT NOT NULL,
    collection     TEXT NOT NULL,
    key            TEXT NOT NULL,
    value          TEXT,
    created_at     BIGINT NOT NULL,
    dispatched_at  BIGINT
);
CREATE INDEX change_events_pending ON change_events (seq) WHERE dispatched_at IS NULL;
CREATE INDEX change_events_by_app ON change_events (app_id, seq);
