//! Apps (tenants).

use super::{Db, StorageResult, conflict_or, new_id, now_ms};
use picloud_runtime::LimitOverrides;
use sqlx::Row;
use sqlx::any::AnyRow;

/// One app.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AppRecord {
    /// Internal id.
    #[serde(skip)]
    pub id: String,
    /// Unique name, used in URLs.
    pub name: String,
    /// Per-app overrides of the host's limits.
    pub limits: LimitOverrides,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

fn app(row: &AnyRow) -> StorageResult<AppRecord> {
    let limits: String = row.try_get("limits")?;
    Ok(AppRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        limits: serde_json::from_str(&limits).unwrap_or_default(),
        created_at: row.try_get("created_at")?,
    })
}

impl Db {
    /// Creates an app; [`Conflict`](super::StorageError::Conflict) if the name is taken.
    pub async fn create_app(
        &self,
        name: &str,
        limits: &LimitOverrides,
    ) -> StorageResult<AppRecord> {
        let record = AppRecord {
            id: new_id(),
            name: name.to_owned(),
            limits: *limits,
            created_at: now_ms(),
        };
        sqlx::query("INSERT INTO apps (id, name, limits, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&record.id)
            .bind(&record.name)
            .bind(serde_json::to_string(limits).expect("limits serialise"))
            .bind(record.created_at)
            .execute(&self.pool)
            .await
            .map_err(conflict_or)?;
        Ok(record)
    }

    /// All apps by name.
    pub async fn list_apps(&self) -> StorageResult<Vec<AppRecord>> {
        let rows = sqlx::query("SELECT id, name, limits, created_at FROM apps ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(app).collect()
    }

    /// The app called `name`.
    pub async fn get_app(&self, name: &str) -> StorageResult<Option<AppRecord>> {
        let row = sqlx::query("SELECT id, name, limits, created_at FROM apps WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(app).transpose()
    }

    /// Replaces the limit overrides of an app; false when there is no such app.
    pub async fn set_app_limits(&self, name: &str, limits: &LimitOverrides) -> StorageResult<bool> {
        let done = sqlx::query("UPDATE apps SET limits = $1 WHERE name = $2")
            .bind(serde_json::to_string(limits).expect("limits serialise"))
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes an app and everything it owns; false when there is no such app.
    pub async fn delete_app(&self, name: &str) -> StorageResult<bool> {
        // Declared docs indexes are partial indexes of the shared docs table: drop them
        // first (their rows, like all the app's data, go with the app by cascade). The
        // app's blob directory, if any, is removed by the orphan sweeper.
        let app = sqlx::query("SELECT id FROM apps WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = app {
            let id: String = sqlx::Row::try_get(&row, "id")?;
            self.docs_drop_app_indexes(&id).await?;
        }
        let done = sqlx::query("DELETE FROM apps WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
