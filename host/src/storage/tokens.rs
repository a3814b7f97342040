//! Admin API tokens, stored as sha256 hashes.

use super::{Db, StorageResult, new_id, now_ms};
use sqlx::Row;

/// A token's identity (never the token itself).
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// Name of the token (`admin` for the bootstrap token).
    pub name: String,
    /// sha256 of the token, hex.
    pub token_hash: String,
    /// Space-separated scopes.
    pub scopes: String,
}

impl Db {
    /// Stores (or replaces) the token called `name`.
    pub async fn put_token(&self, name: &str, token_hash: &str, scopes: &str) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, scopes, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash, scopes = excluded.scopes",
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

    /// The token with this hash.
    pub async fn token_by_hash(&self, token_hash: &str) -> StorageResult<Option<TokenRecord>> {
        let row =
            sqlx::query("SELECT name, token_hash, scopes FROM api_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row
            .map(|r| -> Result<_, sqlx::Error> {
                Ok(TokenRecord {
                    name: r.try_get("name")?,
                    token_hash: r.try_get("token_hash")?,
                    scopes: r.try_get("scopes")?,
                })
            })
            .transpose()?)
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
