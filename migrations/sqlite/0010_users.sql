-- End users of apps (issue 15): accounts, sessions, single-use tokens, settings.
--
-- `email` is the address as normalised (trimmed, Unicode NFC, lowercase) and unique per
-- app. `password_hash` is a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), so
-- the parameters travel with the hash and can be raised later (rehash at next login);
-- NULL for nobody (never: every account has a password). `roles` and `data` are JSON
-- text. `failed_logins` / `locked_until` drive the per-account login backoff.
CREATE TABLE end_users (
    app_id          TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    id              TEXT NOT NULL,
    email           TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    email_verified  BIGINT NOT NULL DEFAULT 0,
    roles           TEXT NOT NULL,
    data            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    failed_logins   BIGINT NOT NULL DEFAULT 0,
    locked_until    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, id),
    UNIQUE (app_id, email)
);

-- Sessions: only the sha256 of the token is kept. Fixed expiry (no sliding).
CREATE TABLE end_user_sessions (
    token_hash  TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    FOREIGN KEY (app_id, user_id) REFERENCES end_users(app_id, id) ON DELETE CASCADE
);
CREATE INDEX end_user_sessions_user ON end_user_sessions (app_id, user_id);
CREATE INDEX end_user_sessions_expiry ON end_user_sessions (expires_at);

-- Single-use tokens sent by email: `verify` (24 h), `reset` (1 h), `invite` (7 days).
-- Only the sha256 is kept. A verify/reset token names its user and the email it was sent
-- to (a token sent before an email change does not verify the new address); an invite
-- names the email and the roles of the account it creates.
CREATE TABLE end_user_tokens (
    token_hash  TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    user_id     TEXT,
    email       TEXT NOT NULL,
    roles       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX end_user_tokens_expiry ON end_user_tokens (expires_at);

-- Per-app settings: the URL template of links in verification, reset and invitation
-- emails (`{token}` and `{action}` are replaced), and the app-wide window of failed
-- logins (per-app backoff).
CREATE TABLE end_user_settings (
    app_id              TEXT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    link_template       TEXT,
    failure_window      BIGINT NOT NULL DEFAULT 0,
    failures            BIGINT NOT NULL DEFAULT 0
);
