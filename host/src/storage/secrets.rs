//! The secrets table: sealed values by (app, name), and the host's own settings.
//!
//! The store only ever sees sealed values (see [`crate::vault`]); the encryption layer
//! is [`crate::services::secrets::Vault`], over any [`SecretStore`].

use super::{Db, StorageResult, now_ms};
use crate::vault::Sealed;
use sqlx::Row;

/// A secret's name and when it was last set (ms since the Unix epoch); never its value.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SecretName {
    /// The name.
    pub name: String,
    /// Last set, ms since the Unix epoch.
    pub updated_at: i64,
}

/// Where sealed secrets are kept. [`Db`] is the store of the server; tests may wrap it.
#[allow(async_fn_in_trait)] // used through generics inside this crate only
pub trait SecretStore {
    /// The sealed value of `name`.
    async fn secret_get(&self, app_id: &str, name: &str) -> StorageResult<Option<Sealed>>;
    /// Stores `sealed` as `name`, replacing what was there.
    async fn secret_put(&self, app_id: &str, name: &str, sealed: &Sealed) -> StorageResult<()>;
    /// Removes `name`; answers whether it existed.
    async fn secret_delete(&self, app_id: &str, name: &str) -> StorageResult<bool>;
    /// The app's secret names in name order.
    async fn secret_names(&self, app_id: &str) -> StorageResult<Vec<SecretName>>;
    /// How many secrets the app keeps.
    async fn secret_count(&self, app_id: &str) -> StorageResult<u64>;
}

fn sealed(row: &sqlx::any::AnyRow) -> StorageResult<Sealed> {
    Ok(Sealed {
        key_id: row.try_get("key_id")?,
        sealed: row.try_get("sealed")?,
    })
}

impl SecretStore for Db {
    async fn secret_get(&self, app_id: &str, name: &str) -> StorageResult<Option<Sealed>> {
        let row = sqlx::query("SELECT key_id, sealed FROM secrets WHERE app_id = $1 AND name = $2")
            .bind(app_id)
            .bind(name)
            .fetch_optional(&mut self.acquire().await?)
            .await?;
        row.as_ref().map(sealed).transpose()
    }

    async fn secret_put(&self, app_id: &str, name: &str, sealed: &Sealed) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO secrets (app_id, name, key_id, sealed, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (app_id, name) DO UPDATE SET key_id = excluded.key_id, \
             sealed = excluded.sealed, updated_at = excluded.updated_at",
        )
        .bind(app_id)
        .bind(name)
        .bind(&sealed.key_id)
        .bind(&sealed.sealed)
        .bind(now_ms())
        .execute(&mut self.acquire().await?)
        .await?;
        Ok(())
    }

    async fn secret_delete(&self, app_id: &str, name: &str) -> StorageResult<bool> {
        let done = sqlx::query("DELETE FROM secrets WHERE app_id = $1 AND name = $2")
            .bind(app_id)
            .bind(name)
            .execute(&mut self.acquire().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn secret_names(&self, app_id: &str) -> StorageResult<Vec<SecretName>> {
        let rows =
            sqlx::query("SELECT name, updated_at FROM secrets WHERE app_id = $1 ORDER BY name")
                .bind(app_id)
                .fetch_all(&mut self.acquire().await?)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(SecretName {
                    name: row.try_get("name")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    async fn secret_count(&self, app_id: &str) -> StorageResult<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM secrets WHERE app_id = $1")
            .bind(app_id)
            .fetch_one(&mut self.acquire().await?)
            .await?;
        Ok(u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0))
    }
}

impl Db {
    /// Up to `limit` secrets sealed with another key than `key_id` (for rekeying).
    pub async fn secrets_sealed_with_other_key(
        &self,
        key_id: &str,
        limit: u32,
    ) -> StorageResult<Vec<(String, String, Sealed)>> {
        let rows = sqlx::query(
            "SELECT app_id, name, key_id, sealed FROM secrets WHERE key_id <> $1 \
             ORDER BY app_id, name LIMIT $2",
        )
        .bind(key_id)
        .bind(i64::from(limit))
        .fetch_all(&mut self.acquire().await?)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("app_id")?, row.try_get("name")?, sealed(row)?)))
            .collect()
    }

    /// Replaces the sealed value of a secret if it is still `old` (a concurrent `set`
    /// wins); answers whether it was replaced.
    pub async fn secret_reseal(
        &self,
        app_id: &str,
        name: &str,
        old: &Sealed,
        new: &Sealed,
    ) -> StorageResult<bool> {
        let done = sqlx::query(
            "UPDATE secrets SET key_id = $1, sealed = $2 \
             WHERE app_id = $3 AND name = $4 AND sealed = $5",
        )
        .bind(&new.key_id)
        .bind(&new.sealed)
        .bind(app_id)
        .bind(name)
        .bind(&old.sealed)
        .execute(&mut self.acquire().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The host setting `name`.
    pub async fn host_setting(&self, name: &str) -> StorageResult<Option<String>> {
        let row = sqlx::query("SELECT value FROM host_settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut self.acquire().await?)
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    /// Sets the host setting `name` to `value`.
    pub async fn set_host_setting(&self, name: &str, value: &str) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO host_settings (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&mut self.acquire().await?)
        .await?;
        Ok(())
    }
}
