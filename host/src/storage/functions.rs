//! Functions, their immutable versions, and the artifacts (wasm bytes) behind them.

use super::{Db, StorageResult, new_id, now_ms};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A function and its active version.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FunctionRecord {
    /// Internal id.
    #[serde(skip)]
    pub id: String,
    /// Name, unique in the app.
    pub name: String,
    /// The version that answers invocations.
    pub active_version: i64,
    /// Kind of the active version.
    pub kind: String,
    /// sha256 of the active version's artifact.
    pub sha256: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// One deployed version of a function.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionRecord {
    /// Version number, from 1.
    pub version: i64,
    /// Kind of artifact.
    pub kind: String,
    /// sha256 of the artifact.
    pub sha256: String,
    /// Size of the artifact in bytes.
    pub size: i64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

const FUNCTION_COLUMNS: &str = "f.id, f.name, f.active_version, f.created_at, v.kind, v.sha256";

fn function(row: &AnyRow) -> StorageResult<FunctionRecord> {
    Ok(FunctionRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        active_version: row.try_get("active_version")?,
        kind: row.try_get("kind")?,
        sha256: row.try_get("sha256")?,
        created_at: row.try_get("created_at")?,
    })
}

fn version(row: &AnyRow) -> StorageResult<VersionRecord> {
    Ok(VersionRecord {
        version: row.try_get("version")?,
        kind: row.try_get("kind")?,
        sha256: row.try_get("sha256")?,
        size: row.try_get("size")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Db {
    /// Stores `bytes` (once per sha256) and makes them the next version of function
    /// `name` of the app, creating the function on its first deploy. Returns the new
    /// version, which becomes the active one.
    pub async fn deploy_function(
        &self,
        app_id: &str,
        name: &str,
        kind: &str,
        sha256: &str,
        bytes: &[u8],
    ) -> StorageResult<VersionRecord> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // Taking the function row first serialises concurrent deploys of one function.
        let function_id: String = sqlx::query(
            "INSERT INTO functions (id, app_id, name, active_version, created_at) VALUES ($1, $2, $3, 0, $4) \
             ON CONFLICT (app_id, name) DO UPDATE SET name = excluded.name RETURNING id",
        )
        .bind(new_id())
        .bind(app_id)
        .bind(name)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        sqlx::query("INSERT INTO artifacts (sha256, bytes, size, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (sha256) DO NOTHING")
            .bind(sha256)
            .bind(bytes)
            .bind(bytes.len() as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let next: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) + 1 AS next FROM function_versions WHERE function_id = $1")
            .bind(&function_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("next")?;
        let record = VersionRecord {
            version: next,
            kind: kind.to_owned(),
            sha256: sha256.to_owned(),
            size: bytes.len() as i64,
            created_at: now,
        };
        sqlx::query("INSERT INTO function_versions (function_id, version, kind, sha256, size, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&function_id)
            .bind(record.version)
            .bind(&record.kind)
            .bind(&record.sha256)
            .bind(record.size)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE functions SET active_version = $1 WHERE id = $2")
            .bind(next)
            .bind(&function_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(record)
    }

    /// The app's functions by name, with their active versions.
    pub async fn list_functions(&self, app_id: &str) -> StorageResult<Vec<FunctionRecord>> {
        let sql = format!(
            "SELECT {FUNCTION_COLUMNS} FROM functions f JOIN function_versions v \
             ON v.function_id = f.id AND v.version = f.active_version WHERE f.app_id = $1 ORDER BY f.name"
        );
        let rows = sqlx::query(&sql).bind(app_id).fetch_all(&self.pool).await?;
        rows.iter().map(function).collect()
    }

    /// The function `name` of the app with its active version.
    pub async fn get_function(
        &self,
        app_id: &str,
        name: &str,
    ) -> StorageResult<Option<FunctionRecord>> {
        let sql = format!(
            "SELECT {FUNCTION_COLUMNS} FROM functions f JOIN function_versions v \
             ON v.function_id = f.id AND v.version = f.active_version WHERE f.app_id = $1 AND f.name = $2"
        );
        let row = sqlx::query(&sql)
            .bind(app_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(function).transpose()
    }

    /// Every version of a function, newest first.
    pub async fn list_versions(&self, function_id: &str) -> StorageResult<Vec<VersionRecord>> {
        let rows = sqlx::query(
            "SELECT version, kind, sha256, size, created_at FROM function_versions WHERE function_id = $1 ORDER BY version DESC",
        )
        .bind(function_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version).collect()
    }

    /// Makes `version` the active one; false when the function has no such version.
    pub async fn activate_version(&self, function_id: &str, version: i64) -> StorageResult<bool> {
        let done = sqlx::query(
            "UPDATE functions SET active_version = $1 WHERE id = $2 \
             AND EXISTS (SELECT 1 FROM function_versions WHERE function_id = $2 AND version = $1)",
        )
        .bind(version)
        .bind(function_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a function, its versions and routes; false when there is none.
    pub async fn delete_function(&self, app_id: &str, name: &str) -> StorageResult<bool> {
        let done = sqlx::query("DELETE FROM functions WHERE app_id = $1 AND name = $2")
            .bind(app_id)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The sha256 of every artifact of `kind` that a version of a function still refers
    /// to (active or not: a rollback may activate any version).
    pub async fn live_artifacts(&self, kind: &str) -> StorageResult<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT sha256 FROM function_versions WHERE kind = $1")
            .bind(kind)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("sha256")?)).collect()
    }

    /// The bytes of an artifact.
    pub async fn artifact(&self, sha256: &str) -> StorageResult<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT bytes FROM artifacts WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("bytes")).transpose()?)
    }
}
