//! HTTP routes of an app: `METHOD /path/:param/*rest` → function.

use super::{Db, StorageResult, conflict_or, new_id, now_ms};
use sqlx::Row;
use sqlx::any::AnyRow;

/// One route.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteRecord {
    /// Id, used to delete it.
    pub id: String,
    /// HTTP method in upper case, or `ANY`.
    pub method: String,
    /// Path pattern.
    pub path: String,
    /// Function it calls.
    pub function: String,
    /// `sync` (the answer is the function's) or `async` (202, run from the queue).
    pub dispatch: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

fn route(row: &AnyRow) -> StorageResult<RouteRecord> {
    Ok(RouteRecord {
        id: row.try_get("id")?,
        method: row.try_get("method")?,
        path: row.try_get("path")?,
        function: row.try_get("function")?,
        dispatch: row.try_get("dispatch")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Db {
    /// Binds `method path` of the app to a function (by its id).
    pub async fn create_route(
        &self,
        app_id: &str,
        method: &str,
        path: &str,
        function_id: &str,
        function: &str,
        dispatch: &str,
    ) -> StorageResult<RouteRecord> {
        let record = RouteRecord {
            id: new_id(),
            method: method.to_owned(),
            path: path.to_owned(),
            function: function.to_owned(),
            dispatch: dispatch.to_owned(),
            created_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO routes (id, app_id, method, path, function_id, created_at, dispatch) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&record.id)
        .bind(app_id)
        .bind(method)
        .bind(path)
        .bind(function_id)
        .bind(record.created_at)
        .bind(dispatch)
        .execute(&self.pool)
        .await
        .map_err(conflict_or)?;
        Ok(record)
    }

    /// The app's routes, by path then method.
    pub async fn list_routes(&self, app_id: &str) -> StorageResult<Vec<RouteRecord>> {
        let rows = sqlx::query(
            "SELECT r.id, r.method, r.path, f.name AS function, r.dispatch, r.created_at FROM routes r \
             JOIN functions f ON f.id = r.function_id WHERE r.app_id = $1 ORDER BY r.path, r.method",
        )
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(route).collect()
    }

    /// Removes a route; false when the app has no route with that id.
    pub async fn delete_route(&self, app_id: &str, id: &str) -> StorageResult<bool> {
        let done = sqlx::query("DELETE FROM routes WHERE app_id = $1 AND id = $2")
            .bind(app_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
