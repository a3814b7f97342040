//! End users of apps: accounts, sessions, single-use email tokens and per-app settings
//! (migration `0010_users`). The rules (password hashing, backoff, expiry) live in
//! `services::users`; this module keeps rows.
//!
//! Account writes record a change event (source `users`, op `create`, `update` or
//! `delete`, key = the user id, value = the user as the SDK shows it: never a hash).

use super::changes::{self, Change, Source};
use super::{Db, StorageResult, conflict_or, now_ms};
use sqlx::Row;

/// Sessions one user keeps; a login beyond them ends the oldest.
pub const MAX_SESSIONS_PER_USER: i64 = 100;

/// An account as stored.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// The id (uuid v7).
    pub id: String,
    /// The normalised email.
    pub email: String,
    /// The PHC string of the password's argon2id hash.
    pub password_hash: String,
    /// Whether the email was verified.
    pub email_verified: bool,
    /// The roles.
    pub roles: Vec<String>,
    /// App-defined profile data, a JSON object as text.
    pub data: String,
    /// Created, ms since the Unix epoch.
    pub created_at: i64,
    /// Failed logins since the last successful one.
    pub failed_logins: i64,
    /// Logins are refused until then (ms since the Unix epoch; 0: not locked).
    pub locked_until: i64,
}

impl UserRow {
    /// The user as the SDK, the API and change events show it (no hash, no counters).
    pub fn public(&self) -> serde_json::Value {
        let data: serde_json::Value =
            serde_json::from_str(&self.data).unwrap_or(serde_json::Value::Null);
        serde_json::json!({
            "id": self.id,
            "email": self.email,
            "email_verified": self.email_verified,
            "roles": self.roles,
            "data": data,
            "created": self.created_at,
        })
    }
}

/// A single-use token as stored (see [`Db::user_token_take`]).
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// `verify`, `reset` or `invite`.
    pub kind: String,
    /// The user a `verify` or `reset` token is for.
    pub user_id: Option<String>,
    /// The email it was sent to.
    pub email: String,
    /// The roles of the account an invite creates.
    pub roles: Vec<String>,
}

const USER_COLUMNS: &str = "id, email, password_hash, email_verified, roles, data, created_at, \
                            failed_logins, locked_until";

fn user_row(row: &sqlx::any::AnyRow) -> StorageResult<UserRow> {
    let roles: String = row.try_get("roles")?;
    Ok(UserRow {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        email_verified: row.try_get::<i64, _>("email_verified")? != 0,
        roles: serde_json::from_str(&roles).unwrap_or_default(),
        data: row.try_get("data")?,
        created_at: row.try_get("created_at")?,
        failed_logins: row.try_get("failed_logins")?,
        locked_until: row.try_get("locked_until")?,
    })
}

fn roles_json(roles: &[String]) -> String {
    serde_json::to_string(roles).unwrap_or_else(|_| "[]".into())
}

impl Db {
    /// Inserts `user` and its `create` event; a taken email answers `Conflict`.
    pub async fn user_insert(&self, app_id: &str, user: &UserRow) -> StorageResult<()> {
        let mut tx = self.acquire().await?;
        tx.begin().await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO end_users (app_id, id, email, password_hash, email_verified, roles, \
             data, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(app_id)
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(i64::from(user.email_verified))
        .bind(roles_json(&user.roles))
        .bind(&user.data)
        .bind(now)
        .execute(&mut tx)
        .await
        .map_err(conflict_or)?;
        record(&mut tx, app_id, "create", user).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user `id` of `app_id`.
    pub async fn user_get(&self, app_id: &str, id: &str) -> StorageResult<Option<UserRow>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM end_users WHERE app_id = $1 AND id = $2"
        ))
        .bind(app_id)
        .bind(id)
        .fetch_optional(&mut self.acquire().await?)
        .await?;
        row.as_ref().map(user_row).transpose()
    }

    /// The user of `app_id` with the (normalised) `email`.
    pub async fn user_by_email(&self, app_id: &str, email: &str) -> StorageResult<Option<UserRow>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM end_users WHERE app_id = $1 AND email = $2"
        ))
        .bind(app_id)
        .bind(email)
        .fetch_optional(&mut self.acquire().await?)
        .await?;
        row.as_ref().map(user_row).transpose()
    }

    /// Writes `user`'s email, hash, verification, roles and data and its `update` event;
    /// with `end_sessions`, every session of the user ends in the same transaction. A
    /// taken email answers `Conflict`; a missing user `false`.
    pub async fn user_update(
        &self,
        app_id: &str,
        user: &UserRow,
        end_sessions: bool,
    ) -> StorageResult<bool> {
        let mut tx = self.acquire().await?;
        tx.begin().await?;
        let done = sqlx::query(
            "UPDATE end_users SET email = $3, password_hash = $4, email_verified = $5, \
             roles = $6, data = $7, updated_at = $8 WHERE app_id = $1 AND id = $2",
        )
        .bind(app_id)
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(i64::from(user.email_verified))
        .bind(roles_json(&user.roles))
        .bind(&user.data)
        .bind(now_ms())
        .execute(&mut tx)
        .await
        .map_err(conflict_or)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if end_sessions {
            sqlx::query("DELETE FROM end_user_sessions WHERE app_id = $1 AND user_id = $2")
                .bind(app_id)
                .bind(&user.id)
                .execute(&mut tx)
                .await?;
        }
        record(&mut tx, app_id, "update", user).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes user `id` (its sessions and tokens too) and records its `delete` event;
    /// answers whether it existed.
    pub async fn user_delete(&self, app_id: &str, id: &str) -> StorageResult<bool> {
        let mut tx = self.acquire().await?;
        tx.begin().await?;
        let done = sqlx::query("DELETE FROM end_users WHERE app_id = $1 AND id = $2")
            .bind(app_id)
            .bind(id)
            .execute(&mut tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM end_user_tokens WHERE app_id = $1 AND user_id = $2")
            .bind(app_id)
            .bind(id)
            .execute(&mut tx)
            .await?;
        let change = Change {
            source: Source::Users,
            op: "delete",
            collection: "",
            key: id,
            value: None,
        };
        changes::record(&mut tx, app_id, change).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Up to `limit` users of `app_id` with ids after `after`, in id (creation) order.
    pub async fn user_list(
        &self,
        app_id: &str,
        after: &str,
        limit: u32,
    ) -> StorageResult<Vec<UserRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM end_users WHERE app_id = $1 AND id > $2 \
             ORDER BY id LIMIT $3"
        ))
        .bind(app_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&mut self.acquire().await?)
        .await?;
        rows.iter().map(user_row).collect()
    }

    /// Counts a failed login of user `id`; answers the failures since its last success.
    pub async fn user_login_failed(&self, app_id: &str, id: &str) -> StorageResult<i64> {
        let failures: Option<i64> = sqlx::query_scalar(
            "UPDATE end_users SET failed_logins = failed_logins + 1 \
             WHERE app_id = $1 AND id = $2 RETURNING failed_logins",
        )
        .bind(app_id)
        .bind(id)
        .fetch_optional(&mut self.acquire().await?)
        .await?;
        Ok(failures.unwrap_or(0))
    }

    /// Refuses logins of user `id` until `until` (ms since the Unix epoch).
    pub async fn user_lock(&self, app_id: &str, id: &str, until: i64) -> StorageResult<()> {
        sqlx::query("UPDATE end_users SET locked_until = $3 WHERE app_id = $1 AND id = $2")
            .bind(app_id)
            .bind(id)
            .bind(until)
            .execute(&mut self.acquire().await?)
            .await?;
        Ok(())
    }

    /// A successful login of user `id`: its failures are forgotten, its hash replaced
    /// by `rehashed` when given, and session `token_hash` starts (ending the oldest
    /// beyond [`MAX_SESSIONS_PER_USER`]).
    pub async fn user_login_succeeded(
        &self,
        app_id: &str,
        id: &str,
        rehashed: Option<&str>,
        token_hash: &str,
        expires_at: i64,
    ) -> StorageResult<()> {
        let mut tx = self.acquire().await?;
        tx.begin().await?;
        sqlx::query(
            "UPDATE end_users SET failed_logins = 0, locked_until = 0, \
             password_hash = COALESCE($3, password_hash) WHERE app_id = $1 AND id = $2",
        )
        .bind(app_id)
        .bind(id)
        .bind(rehashed)
        .execute(&mut tx)
        .await?;
        sqlx::query(
            "INSERT INTO end_user_sessions (token_hash, app_id, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(app_id)
        .bind(id)
        .bind(now_ms())
        .bind(expires_at)
        .execute(&mut tx)
        .await?;
        sqlx::query(
            "DELETE FROM end_user_sessions WHERE app_id = $1 AND user_id = $2 AND token_hash \
             NOT IN (SELECT token_hash FROM end_user_sessions WHERE app_id = $1 AND user_id = $2 \
             ORDER BY created_at DESC, token_hash LIMIT $3)",
        )
        .bind(app_id)
        .bind(id)
        .bind(MAX_SESSIONS_PER_USER)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user of the live session `token_hash` of `app_id`, and when the session
    /// expires (ms since the Unix epoch).
    pub async fn user_of_session(
        &self,
        app_id: &str,
        token_hash: &str,
    ) -> StorageResult<Option<(UserRow, i64)>> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.password_hash, u.email_verified, u.roles, u.data, \
             u.created_at, u.failed_logins, u.locked_until, s.expires_at \
             FROM end_user_sessions s JOIN end_users u ON u.app_id = s.app_id AND u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.app_id = $2 AND s.expires_at > $3",
        )
        .bind(token_hash)
        .bind(app_id)
        .bind(now_ms())
        .fetch_optional(&mut self.acquire().await?)
        .await?;
        row.as_ref()
            .map(|r| Ok((user_row(r)?, r.try_get("expires_at")?)))
            .transpose()
    }

    /// Ends session `token_hash` of `app_id`; answers whether it existed.
    pub async fn user_session_end(&self, app_id: &str, token_hash: &str) -> StorageResult<bool> {
        let done =
            sqlx::query("DELETE FROM end_user_sessions WHERE token_hash = $1 AND app_id = $2")
                .bind(token_hash)
                .bind(app_id)
                .execute(&mut self.acquire().await?)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a single-use token of `kind` valid until `expires_at`.
    #[allow(clippy::too_many_arguments)]
    pub async fn user_token_insert(
        &self,
        app_id: &str,
        token_hash: &str,
        kind: &str,
        user_id: Option<&str>,
        email: &str,
        roles: &[String],
        expires_at: i64,
    ) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO end_user_tokens (token_hash, app_id, kind, user_id, email, roles, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(token_hash)
        .bind(app_id)
        .bind(kind)
        .bind(user_id)
        .bind(email)
        .bind(roles_json(roles))
        .bind(now_ms())
        .bind(expires_at)
        .execute(&mut self.acquire().await?)
        .await?;
        Ok(())
    }

    /// Takes (deletes and answers) the live token `token_hash` of `kind` of `app_id`:
    /// a token is used once, even by two calls at the same time.
    pub async fn user_token_take(
        &self,
        app_id: &str,
        token_hash: &str,
        kind: &str,
    ) -> StorageResult<Option<TokenRow>> {
        let row = sqlx::query(
            "DELETE FROM end_user_tokens WHERE token_hash = $1 AND app_id = $2 AND kind = $3 \
             RETURNING kind, user_id, email, roles, expires_at",
        )
        .bind(token_hash)
        .bind(app_id)
        .bind(kind)
        .fetch_optional(&mut self.acquire().await?)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let expires_at: i64 = row.try_get("expires_at")?;
        if expires_at <= now_ms() {
            return Ok(None);
        }
        let roles: String = row.try_get("roles")?;
        Ok(Some(TokenRow {
            kind: row.try_get("kind")?,
            user_id: row.try_get("user_id")?,
            email: row.try_get("email")?,
            roles: serde_json::from_str(&roles).unwrap_or_default(),
        }))
    }

    /// The URL template of the links in `app_id`'s user emails.
    pub async fn user_link_template(&self, app_id: &str) -> StorageResult<Option<String>> {
        let template: Option<Option<String>> =
            sqlx::query_scalar("SELECT link_template FROM end_user_settings WHERE app_id = $1")
                .bind(app_id)
                .fetch_optional(&mut self.acquire().await?)
                .await?;
        Ok(template.flatten())
    }

    /// Sets (or with `None` clears) the URL template of `app_id`'s user emails.
    pub async fn set_user_link_template(
        &self,
        app_id: &str,
        template: Option<&str>,
    ) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO end_user_settings (app_id, link_template) VALUES ($1, $2) \
             ON CONFLICT (app_id) DO UPDATE SET link_template = excluded.link_template",
        )
        .bind(app_id)
        .bind(template)
        .execute(&mut self.acquire().await?)
        .await?;
        Ok(())
    }

    /// Counts a failed login of `app_id` in the window starting at `window` (ms; a
    /// newer window starts the count again); answers the failures in that window.
    pub async fn user_app_login_failed(&self, app_id: &str, window: i64) -> StorageResult<i64> {
        let failures: i64 = sqlx::query_scalar(
            "INSERT INTO end_user_settings (app_id, failure_window, failures) VALUES ($1, $2, 1) \
             ON CONFLICT (app_id) DO UPDATE SET \
             failures = CASE WHEN end_user_settings.failure_window = excluded.failure_window \
                        THEN end_user_settings.failures + 1 ELSE 1 END, \
             failure_window = excluded.failure_window \
             RETURNING failures",
        )
        .bind(app_id)
        .bind(window)
        .fetch_one(&mut self.acquire().await?)
        .await?;
        Ok(failures)
    }

    /// The failed logins of `app_id` in the window starting at `window`.
    pub async fn user_app_login_failures(&self, app_id: &str, window: i64) -> StorageResult<i64> {
        let failures: Option<i64> = sqlx::query_scalar(
            "SELECT failures FROM end_user_settings WHERE app_id = $1 AND failure_window = $2",
        )
        .bind(app_id)
        .bind(window)
        .fetch_optional(&mut self.acquire().await?)
        .await?;
        Ok(failures.unwrap_or(0))
    }
}

async fn record(
    conn: &mut super::Conn,
    app_id: &str,
    op: &str,
    user: &UserRow,
) -> StorageResult<()> {
    let value = user.public().to_string();
    let change = Change {
        source: Source::Users,
        op,
        collection: "",
        key: &user.id,
        value: Some(&value),
    };
    changes::record(conn, app_id, change).await?;
    Ok(())
}
