//! Invocation records: what ran, how it ended, what it cost, what it logged.

use super::usage::{UsageByDay, UsageDelta, add_usage, row_placeholders, utc_day};
use super::{Db, StorageResult};
use picloud_runtime::LogLine;
use sqlx::Row;
use sqlx::any::AnyRow;

/// One finished invocation.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InvocationRecord {
    /// Invocation id (uuid v7).
    pub id: String,
    /// App name.
    pub app: String,
    /// Function name.
    pub function: String,
    /// Version that ran.
    pub version: i64,
    /// `http`, `invoke`, …
    pub trigger: String,
    /// `ok` or `error`.
    pub status: String,
    /// HTTP status answered.
    pub http_status: i64,
    /// Stable error code when it failed.
    pub error_code: Option<String>,
    /// Error message when it failed.
    pub error_message: Option<String>,
    /// Fuel consumed.
    pub fuel_used: i64,
    /// Wall time in microseconds.
    pub duration_us: i64,
    /// Peak linear memory in bytes.
    pub peak_memory: i64,
    /// Milliseconds since the Unix epoch.
    pub started_at: i64,
    /// Log lines.
    pub logs: Vec<LogLine>,
}

/// Which invocations to list.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct InvocationFilter {
    /// Only this function.
    pub function: Option<String>,
    /// Only `ok` or only `error`.
    pub status: Option<String>,
    /// Only invocations older than this id (paging backwards).
    pub before: Option<String>,
    /// At most this many (default 50, at most 1000).
    pub limit: Option<i64>,
}

fn invocation(row: &AnyRow, app: &str) -> StorageResult<InvocationRecord> {
    let logs: String = row.try_get("logs")?;
    Ok(InvocationRecord {
        id: row.try_get("id")?,
        app: app.to_owned(),
        function: row.try_get("function_name")?,
        version: row.try_get("version")?,
        trigger: row.try_get("trigger_kind")?,
        status: row.try_get("status")?,
        http_status: row.try_get("http_status")?,
        error_code: row.try_get("error_code")?,
        error_message: row.try_get("error_message")?,
        fuel_used: row.try_get("fuel_used")?,
        duration_us: row.try_get("duration_us")?,
        peak_memory: row.try_get("peak_memory")?,
        started_at: row.try_get("started_at")?,
        logs: serde_json::from_str(&logs).unwrap_or_default(),
    })
}

impl Db {
    /// Stores a batch of finished invocations (app ids given alongside) with their
    /// usage; see [`Db::record_invocations`].
    pub async fn insert_invocations(
        &self,
        batch: &[(String, InvocationRecord)],
    ) -> StorageResult<usize> {
        self.record_invocations(batch, &UsageByDay::new()).await
    }

    /// Stores a batch of finished invocations (app ids given alongside) and adds their
    /// usage, plus `dropped` (the usage of records that were never queued), to the
    /// per-day usage, all in one transaction. When that fails, one bad record (its app
    /// was deleted meanwhile, or the database refuses it) loses only itself: the batch
    /// is stored record by record, and a record that still fails keeps its usage
    /// (counted as a dropped record) while its app exists. Returns how many records
    /// were stored.
    pub async fn record_invocations(
        &self,
        batch: &[(String, InvocationRecord)],
        dropped: &UsageByDay,
    ) -> StorageResult<usize> {
        let usage = batch_usage(batch, dropped);
        let error = match self.store_records(batch, &usage).await {
            Ok(()) => return Ok(batch.len()),
            Err(e) => e,
        };
        tracing::warn!(error = %error, records = batch.len(), "a batch of invocation records failed; storing them one by one");
        let mut stored = 0;
        for item in batch {
            let (app_id, record) = item;
            let key = (app_id.clone(), utc_day(record.started_at));
            let delta = UsageDelta::of(record);
            let one = UsageByDay::from([(key.clone(), delta.clone())]);
            match self.store_records(std::slice::from_ref(item), &one).await {
                Ok(()) => stored += 1,
                Err(e) => {
                    tracing::warn!(error = %e, invocation = %record.id, "an invocation record was not stored");
                    let lost = UsageDelta {
                        dropped_records: 1,
                        ..delta
                    };
                    // Fails too when the app is gone: then nothing is left to count.
                    let _ = self
                        .store_records(&[], &UsageByDay::from([(key, lost)]))
                        .await;
                }
            }
        }
        for (key, delta) in dropped {
            let one = UsageByDay::from([(key.clone(), delta.clone())]);
            if let Err(e) = self.store_records(&[], &one).await {
                tracing::debug!(error = %e, app_id = %key.0, "usage of dropped records not stored (the app is gone)");
            }
        }
        Ok(stored)
    }

    /// One transaction: the records and the usage.
    async fn store_records(
        &self,
        batch: &[(String, InvocationRecord)],
        usage: &UsageByDay,
    ) -> StorageResult<()> {
        // Many rows per statement: with SQLite every statement is a round trip to the
        // connection's thread, so one per row cost a thread switch per invocation.
        const ROWS: usize = 64;
        const COLUMNS: usize = 14;
        let mut tx = self.pool.begin().await?;
        for chunk in batch.chunks(ROWS) {
            let mut sql = String::from(
                "INSERT INTO invocations (id, app_id, function_name, version, trigger_kind, status, http_status, \
                 error_code, error_message, fuel_used, duration_us, peak_memory, started_at, logs) VALUES ",
            );
            for row in 0..chunk.len() {
                if row > 0 {
                    sql.push_str(", ");
                }
                // Anonymous `?` on SQLite: sqlx looks up the name of every numbered
                // parameter, and SQLite finds a name by a linear scan, so 896 `$N`
                // cost ~400k steps per statement (9 % of the server's CPU under load).
                sql.push_str(&row_placeholders(self.dialect, row, COLUMNS));
            }
            sql.push_str(" ON CONFLICT (id) DO NOTHING");
            let mut query = sqlx::query(&sql);
            for (app_id, r) in chunk {
                query = query
                    .bind(&r.id)
                    .bind(app_id)
                    .bind(&r.function)
                    .bind(r.version)
                    .bind(&r.trigger)
                    .bind(&r.status)
                    .bind(r.http_status)
                    .bind(r.error_code.as_deref())
                    .bind(r.error_message.as_deref())
                    .bind(r.fuel_used)
                    .bind(r.duration_us)
                    .bind(r.peak_memory)
                    .bind(r.started_at)
                    .bind(serde_json::to_string(&r.logs).expect("log lines serialise"));
            }
            query.execute(&mut *tx).await?;
        }
        add_usage(&mut tx, self.dialect, usage).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The app's invocations, newest first.
    pub async fn list_invocations(
        &self,
        app_id: &str,
        app: &str,
        filter: &InvocationFilter,
    ) -> StorageResult<Vec<InvocationRecord>> {
        // Placeholders are numbered by hand: `$n` is what both SQLite and PostgreSQL accept.
        let mut sql = String::from(
            "SELECT id, function_name, version, trigger_kind, status, http_status, error_code, error_message, \
             fuel_used, duration_us, peak_memory, started_at, logs FROM invocations WHERE app_id = $1",
        );
        let mut args = vec![app_id];
        for (condition, value) in [
            ("function_name =", &filter.function),
            ("status =", &filter.status),
            ("id <", &filter.before),
        ] {
            if let Some(value) = value {
                args.push(value);
                sql.push_str(&format!(" AND {condition} ${}", args.len()));
            }
        }
        sql.push_str(&format!(
            " ORDER BY id DESC LIMIT {}",
            filter.limit.unwrap_or(50).clamp(1, 1000)
        ));
        let query = args.into_iter().fold(sqlx::query(&sql), |q, a| q.bind(a));
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(|r| invocation(r, app)).collect()
    }
}

/// The usage of `batch` and of the `dropped` records, by app and UTC day: what
/// [`Db::record_invocations`] adds to `usage_daily`.
pub fn batch_usage(batch: &[(String, InvocationRecord)], dropped: &UsageByDay) -> UsageByDay {
    let mut usage = dropped.clone();
    for (app_id, record) in batch {
        usage
            .entry((app_id.clone(), utc_day(record.started_at)))
            .or_default()
            .add(UsageDelta::of(record));
    }
    usage
}
