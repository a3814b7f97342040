//! Admin API tokens, stored as sha256 hashes, with a scope, an optional app they are
//! limited to and an optional expiry (see `crate::auth`).

use super::{Db, StorageResult, conflict_or, new_id, now_ms};
use sqlx::Row;

/// A token's identity (never the token itself).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenRecord {
    /// Name of the token (`admin` for the bootstrap token).
    pub name: String,
    /// sha256 of the token, hex.
    #[serde(skip)]
    pub token_hash: String,
    /// The scope: `read`, `deploy` or `admin`.
    #[serde(rename = "scope")]
    pub scopes: String,
    /// The app it is limited to (its id); `None`: every app.
    #[serde(skip)]
    pub app_id: Option<String>,
    /// The name of that app (for listings).
    pub app: Option<String>,
    /// Created, ms since the Unix epoch.
    pub created_at: i64,
    /// Refused from then on (ms since the Unix epoch); `None`: never.
    pub expires_at: Option<i64>,
}

const COLUMNS: &str = "t.name, t.token_hash, t.scopes, t.app_id, a.name AS app, t.created_at, \
                       t.expires_at FROM api_tokens t LEFT JOIN apps a ON a.id = t.app_id";

fn record(r: &sqlx::any::AnyRow) -> Result<TokenRecord, sqlx::Error> {
    Ok(TokenRecord {
        name: r.try_get("name")?,
        token_hash: r.try_get("token_hash")?,
        scopes: r.try_get("scopes")?,
        app_id: r.try_get("app_id")?,
        app: r.try_get("app")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

impl Db {
    /// Stores (or replaces) the unlimited token called `name`.
    pub async fn put_token(&self, name: &str, token_hash: &str, scopes: &str) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, scopes, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash, scopes = excluded.scopes, \
             app_id = NULL, expires_at = NULL",
        )
        .bind(new_id())
        .bind(name)
        .bind(token_hash)
        .bind(scopes)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores a new token; a taken name answers `Conflict`.
    pub async fn create_token(
        &self,
        name: &str,
        token_hash: &str,
        scope: &str,
        app_id: Option<&str>,
        expires_at: Option<i64>,
    ) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, scopes, app_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id())
        .bind(name)
        .bind(token_hash)
        .bind(scope)
        .bind(app_id)
        .bind(now_ms())
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(conflict_or)?;
        Ok(())
    }

    /// The token with this hash.
    pub async fn token_by_hash(&self, token_hash: &str) -> StorageResult<Option<TokenRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} WHERE t.token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(record).transpose()?)
    }

    /// Every token, by name (never the tokens themselves).
    pub async fn list_tokens(&self) -> StorageResult<Vec<TokenRecord>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} ORDER BY t.name"))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(record).collect::<Result<_, _>>()?)
    }

    /// Revokes the token called `name`; answers whether it existed.
    pub async fn delete_token(&self, name: &str) -> StorageResult<bool> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// True when a token called `name` exists.
    pub async fn token_exists(&self, name: &str) -> StorageResult<bool> {
        let row = sqlx::query("SELECT 1 AS one FROM api_tokens WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }
}
