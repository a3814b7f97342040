-- Encrypted secrets of apps (AES-256-GCM; see host/src/vault.rs). `sealed` is the
-- base64 of nonce || ciphertext || tag; `key_id` names the master key that sealed it.
CREATE TABLE secrets (
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    sealed      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);
CREATE INDEX secrets_by_key ON secrets (key_id);

-- Values the host keeps about itself, e.g. the check value of the secrets master key.
CREATE TABLE host_settings (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);
