-- Scoped admin tokens (issue 15): a token's scope is `api_tokens.scopes` (`read`,
-- `deploy` or `admin`), `app_id` limits it to one app (NULL: every app), and
-- `expires_at` (ms since the Unix epoch) ends it (NULL: never).
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
