-- Email (issue 13): an app's sender address, its sends per UTC day, and its inbound
-- webhooks. Inbound messages themselves go to the change-event outbox
-- (`change_events`, source `email`).

-- The From address of an app's messages, set by an operator; an app without a row sends
-- from the server's --email-from.
CREATE TABLE app_email (
    app_id        TEXT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    from_address  TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Messages an app sent per UTC day, counted exactly: a send reserves one in its row
-- before it leaves (refused at the daily cap) and gives it back when it failed.
CREATE TABLE email_daily (
    app_id  TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    day     TEXT NOT NULL,
    sent    BIGINT NOT NULL,
    PRIMARY KEY (app_id, day)
);

-- Inbound email webhooks: POST /api/v1/email-inbound/{app}/{name}, signed with the
-- trigger's HMAC key. The key is sealed like a secret (host/src/vault.rs): `sealed` is
-- the base64 of nonce || ciphertext || tag, `key_id` names the master key.
CREATE TABLE email_triggers (
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    sealed      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);
CREATE INDEX email_triggers_by_key ON email_triggers (key_id);
