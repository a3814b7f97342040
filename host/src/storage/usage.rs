//! What apps use and how long the host keeps what they leave:
//! - bytes of kv entries and documents per app, kept by triggers in every write's
//!   transaction and capped by quotas (migration 0003; a write past a quota fails with
//!   [`StorageError::Quota`](super::StorageError::Quota));
//! - invocations, errors, fuel and wall time per app and UTC day, added with every batch
//!   of invocation records (see [`Db::record_invocations`]);
//! - retention: old invocation records, change events and usage rows are deleted in
//!   batches of [`SWEEP_BATCH`] rows per transaction.

use super::kv::SWEEP_BATCH;
use super::{Db, Dialect, InvocationRecord, StorageResult, now_ms};
use sqlx::Row;
use std::collections::BTreeMap;
use std::time::Duration;

/// Default quota of one app's kv entries: generous (a small-app platform), but bounded.
pub const DEFAULT_MAX_APP_KV_BYTES: u64 = 1024 * 1024 * 1024;
/// Default quota of one app's documents.
pub const DEFAULT_MAX_APP_DOCS_BYTES: u64 = 1024 * 1024 * 1024;
/// Default days invocation records are kept: a week of logs to debug from.
pub const DEFAULT_INVOCATION_RETENTION_DAYS: u32 = 7;
/// Default days dispatched change events are kept: a week to replay or inspect.
pub const DEFAULT_DISPATCHED_EVENT_RETENTION_DAYS: u32 = 7;
/// Default days change events never dispatched are kept: triggers do not exist yet, so
/// no event is dispatched today; a month of history for the first triggers, and a bound.
pub const DEFAULT_UNDISPATCHED_EVENT_RETENTION_DAYS: u32 = 30;
/// Default days of per-day usage kept: a year and a bit, for yearly comparisons.
pub const DEFAULT_USAGE_RETENTION_DAYS: u32 = 400;

/// Bytes one app holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StorageUsage {
    /// kv entries: collection, key and value bytes.
    pub kv_bytes: u64,
    /// Documents: collection, id and body bytes (PostgreSQL: the body as jsonb text).
    pub docs_bytes: u64,
}

/// One app's usage on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DailyUsage {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Invocations that ended that day (stored or not).
    pub invocations: i64,
    /// Of those, how many failed.
    pub errors: i64,
    /// Fuel they used.
    pub fuel_used: i64,
    /// Their wall time, in microseconds.
    pub duration_us: i64,
    /// Invocation records not stored (the queue was full, or the database refused the
    /// record); their usage is counted above all the same.
    pub dropped_records: i64,
    /// The failed ones by error code (`fuel_exhausted`, `timeout`, …).
    pub errors_by_code: BTreeMap<String, i64>,
}

/// Usage to add to one app's day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageDelta {
    /// Invocations.
    pub invocations: i64,
    /// Failed invocations.
    pub errors: i64,
    /// Fuel.
    pub fuel_used: i64,
    /// Wall time, in microseconds.
    pub duration_us: i64,
    /// Records not stored.
    pub dropped_records: i64,
    /// Failed invocations by error code.
    pub error_codes: BTreeMap<String, i64>,
}

/// The code counted for a failed invocation whose record has none.
const UNKNOWN_CODE: &str = "unknown";

impl UsageDelta {
    /// The usage of one invocation.
    pub fn of(record: &InvocationRecord) -> Self {
        Self {
            invocations: 1,
            errors: i64::from(record.status != "ok"),
            fuel_used: record.fuel_used,
            duration_us: record.duration_us,
            dropped_records: 0,
            error_codes: if record.status == "ok" {
                BTreeMap::new()
            } else {
                let code = record.error_code.as_deref().unwrap_or(UNKNOWN_CODE);
                BTreeMap::from([(code.to_owned(), 1)])
            },
        }
    }

    /// Adds `other` (saturating: a counter never wraps).
    pub fn add(&mut self, other: Self) {
        for (code, n) in other.error_codes {
            let count = self.error_codes.entry(code).or_default();
            *count = count.saturating_add(n);
        }
        self.invocations = self.invocations.saturating_add(other.invocations);
        self.errors = self.errors.saturating_add(other.errors);
        self.fuel_used = self.fuel_used.saturating_add(other.fuel_used);
        self.duration_us = self.duration_us.saturating_add(other.duration_us);
        self.dropped_records = self.dropped_records.saturating_add(other.dropped_records);
    }
}

/// Usage to add, by app id and UTC day (ordered, so concurrent writers on PostgreSQL
/// lock the rows in the same order).
pub type UsageByDay = BTreeMap<(String, String), UsageDelta>;

/// The UTC day (`YYYY-MM-DD`) of `ms` since the Unix epoch.
pub fn utc_day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .date_naive()
        .to_string()
}

/// How long the host keeps what apps leave behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Invocation records (with their logs), by start time.
    pub invocations: Duration,
    /// Change events the dispatcher has handled.
    pub dispatched_events: Duration,
    /// Change events never dispatched: kept longer, for triggers that are late, but not
    /// forever.
    pub undispatched_events: Duration,
    /// Rows of per-day usage.
    pub usage: Duration,
}

/// How many rows one pass of [`Db::prune`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Invocation records.
    pub invocations: u64,
    /// Change events (dispatched or not).
    pub change_events: u64,
    /// Per-day usage rows (with the days of email send counts).
    pub usage_days: u64,
    /// Settled deliveries of events to triggers, and old dead letters.
    pub deliveries: u64,
    /// Expired end-user sessions and single-use email tokens.
    pub user_tokens: u64,
}

/// How long dead letters (and resolved ones) are kept (SPEC §6).
pub const DEAD_LETTER_RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// `count` placeholders in parentheses for row `row` of a multi-row statement: `?` on
/// SQLite (numbered parameters cost a name lookup each there), `$n` on PostgreSQL.
pub(super) fn row_placeholders(dialect: Dialect, row: usize, count: usize) -> String {
    let mut sql = String::from("(");
    for column in 1..=count {
        if column > 1 {
            sql.push_str(", ");
        }
        match dialect {
            Dialect::Sqlite => sql.push('?'),
            Dialect::Postgres => sql.push_str(&format!("${}", row * count + column)),
        }
    }
    sql.push(')');
    sql
}

/// Adds `usage` to the per-day rows, on `conn` (inside the records' transaction).
pub(super) async fn add_usage(
    conn: &mut sqlx::AnyConnection,
    dialect: Dialect,
    usage: &UsageByDay,
) -> StorageResult<()> {
    const COLUMNS: usize = 7;
    // Rows per statement: few apps are busy on one day, so one statement nearly always.
    const ROWS: usize = 64;
    let rows: Vec<_> = usage.iter().collect();
    for chunk in rows.chunks(ROWS) {
        let mut sql = String::from(
            "INSERT INTO usage_daily (app_id, day, invocations, errors, fuel_used, duration_us, \
             dropped_records) VALUES ",
        );
        for row in 0..chunk.len() {
            if row > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&row_placeholders(dialect, row, COLUMNS));
        }
        sql.push_str(
            " ON CONFLICT (app_id, day) DO UPDATE SET \
             invocations = usage_daily.invocations + excluded.invocations, \
             errors = usage_daily.errors + excluded.errors, \
             fuel_used = usage_daily.fuel_used + excluded.fuel_used, \
             duration_us = usage_daily.duration_us + excluded.duration_us, \
             dropped_records = usage_daily.dropped_records + excluded.dropped_records",
        );
        let mut query = sqlx::query(&sql);
        for ((app_id, day), delta) in chunk {
            query = query
                .bind(app_id.as_str())
                .bind(day.as_str())
                .bind(delta.invocations)
                .bind(delta.errors)
                .bind(delta.fuel_used)
                .bind(delta.duration_us)
                .bind(delta.dropped_records);
        }
        query.execute(&mut *conn).await?;
    }
    let errors: Vec<(&str, &str, &str, i64)> = usage
        .iter()
        .flat_map(|((app_id, day), delta)| {
            delta
                .error_codes
                .iter()
                .map(move |(code, n)| (app_id.as_str(), day.as_str(), code.as_str(), *n))
        })
        .collect();
    for chunk in errors.chunks(ROWS) {
        let mut sql = String::from("INSERT INTO usage_errors (app_id, day, code, count) VALUES ");
        for row in 0..chunk.len() {
            if row > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&row_placeholders(dialect, row, 4));
        }
        sql.push_str(
            " ON CONFLICT (app_id, day, code) DO UPDATE SET count = usage_errors.count + excluded.count",
        );
        let mut query = sqlx::query(&sql);
        for (app_id, day, code, n) in chunk {
            query = query.bind(*app_id).bind(*day).bind(*code).bind(*n);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

impl Db {
    /// Sets the byte quotas of every app's kv entries and documents (the triggers of
    /// migration 0003 enforce them; one setting per database).
    pub async fn set_storage_quotas(
        &self,
        max_kv_bytes: u64,
        max_docs_bytes: u64,
    ) -> StorageResult<()> {
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        sqlx::query(
            "UPDATE storage_quotas SET max_kv_bytes = $1, max_docs_bytes = $2 WHERE id = 1",
        )
        .bind(clamp(max_kv_bytes))
        .bind(clamp(max_docs_bytes))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The bytes `app_id` holds in kv and docs.
    pub async fn storage_usage(&self, app_id: &str) -> StorageResult<StorageUsage> {
        let row = sqlx::query("SELECT kv_bytes, docs_bytes FROM app_storage WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(&self.pool)
            .await?;
        let bytes = |name: &str| -> StorageResult<u64> {
            let n: i64 = match &row {
                Some(row) => row.try_get(name)?,
                None => 0,
            };
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(StorageUsage {
            kv_bytes: bytes("kv_bytes")?,
            docs_bytes: bytes("docs_bytes")?,
        })
    }

    /// `app_id`'s usage per UTC day from `since_day` (`YYYY-MM-DD`) on, oldest first;
    /// days without invocations have no row.
    pub async fn usage_daily(
        &self,
        app_id: &str,
        since_day: &str,
    ) -> StorageResult<Vec<DailyUsage>> {
        let rows = sqlx::query(
            "SELECT day, invocations, errors, fuel_used, duration_us, dropped_records \
             FROM usage_daily WHERE app_id = $1 AND day >= $2 ORDER BY day",
        )
        .bind(app_id)
        .bind(since_day)
        .fetch_all(&self.pool)
        .await?;
        let mut codes: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for row in
            sqlx::query("SELECT day, code, count FROM usage_errors WHERE app_id = $1 AND day >= $2")
                .bind(app_id)
                .bind(since_day)
                .fetch_all(&self.pool)
                .await?
        {
            codes
                .entry(row.try_get("day")?)
                .or_default()
                .insert(row.try_get("code")?, row.try_get("count")?);
        }
        Ok(rows
            .iter()
            .map(|r| {
                let day: String = r.try_get("day")?;
                Ok(DailyUsage {
                    errors_by_code: codes.remove(&day).unwrap_or_default(),
                    day,
                    invocations: r.try_get("invocations")?,
                    errors: r.try_get("errors")?,
                    fuel_used: r.try_get("fuel_used")?,
                    duration_us: r.try_get("duration_us")?,
                    dropped_records: r.try_get("dropped_records")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Deletes what `retention` no longer keeps, at most [`SWEEP_BATCH`] rows per
    /// transaction: invocation records by start time, change events by creation time
    /// (those not yet dispatched after their own, longer time), deliveries to triggers
    /// once settled as long as dispatched events (dead letters for
    /// [`DEAD_LETTER_RETENTION`]), usage rows by day, expired end-user sessions and
    /// email tokens.
    pub async fn prune(&self, retention: &Retention) -> StorageResult<Pruned> {
        let now = now_ms();
        let before =
            |age: Duration| now.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        let invocations = self
            .delete_in_batches(
                "DELETE FROM invocations WHERE id IN \
                 (SELECT id FROM invocations WHERE started_at < $1 LIMIT $2)",
                before(retention.invocations),
            )
            .await?;
        let dispatched = self
            .delete_in_batches(
                "DELETE FROM change_events WHERE seq IN (SELECT seq FROM change_events \
                 WHERE dispatched_at IS NOT NULL AND created_at < $1 LIMIT $2)",
                before(retention.dispatched_events),
            )
            .await?;
        let undispatched = self
            .delete_in_batches(
                "DELETE FROM change_events WHERE seq IN (SELECT seq FROM change_events \
                 WHERE dispatched_at IS NULL AND created_at < $1 LIMIT $2)",
                before(retention.undispatched_events),
            )
            .await?;
        // Delivered (or failed handler) deliveries go with dispatched events.
        let mut deliveries = self
            .delete_in_batches(
                "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries \
                 WHERE status IN ('done', 'failed') AND updated_at < $1 LIMIT $2)",
                before(retention.dispatched_events),
            )
            .await?;
        deliveries += self
            .delete_in_batches(
                "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries \
                 WHERE status IN ('dead', 'resolved') AND updated_at < $1 LIMIT $2)",
                before(DEAD_LETTER_RETENTION),
            )
            .await?;
        let oldest_day = utc_day(before(retention.usage));
        let mut usage_days = 0;
        for table in ["usage_daily", "usage_errors", "email_daily"] {
            usage_days += sqlx::query(&format!("DELETE FROM {table} WHERE day < $1"))
                .bind(&oldest_day)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        let mut user_tokens = self
            .delete_in_batches(
                "DELETE FROM end_user_sessions WHERE token_hash IN (SELECT token_hash \
                 FROM end_user_sessions WHERE expires_at < $1 LIMIT $2)",
                now,
            )
            .await?;
        user_tokens += self
            .delete_in_batches(
                "DELETE FROM end_user_tokens WHERE token_hash IN (SELECT token_hash \
                 FROM end_user_tokens WHERE expires_at < $1 LIMIT $2)",
                now,
            )
            .await?;
        Ok(Pruned {
            invocations,
            change_events: dispatched + undispatched,
            usage_days,
            deliveries,
            user_tokens,
        })
    }

    /// Runs `delete` (a DELETE of at most `$2` rows older than `$1`) until a batch
    /// deletes fewer than [`SWEEP_BATCH`] rows; returns how many in all.
    async fn delete_in_batches(&self, delete: &str, before: i64) -> StorageResult<u64> {
        let mut deleted = 0;
        loop {
            let batch = sqlx::query(delete)
                .bind(before)
                .bind(i64::from(SWEEP_BATCH))
                .execute(&self.pool)
                .await?
                .rows_affected();
            deleted += batch;
            if batch < u64::from(SWEEP_BATCH) {
                return Ok(deleted);
            }
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::utc_day;

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(86_400_000 - 1), "1970-01-01");
        assert_eq!(utc_day(1_700_000_000_000), "2023-11-14");
    }
}
