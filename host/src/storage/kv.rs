//! The kv table: JSON text values by (app, collection, key), optional expiry.
//!
//! Expired entries are invisible to every read at once and removed later by
//! [`Db::sweep_expired_kv`]. Writers never lock: `set` is an upsert, `increment` an
//! optimistic compare-and-swap on the row's `version`. Every write records its change
//! event in the same transaction (see [`super::changes`]).

use super::changes::{self, Change, Source};
use super::{Conn, Db, StorageError, StorageResult, now_ms};
use sqlx::Row;

/// Why an increment was refused.
#[derive(Debug, thiserror::Error)]
pub enum IncrementError {
    /// The stored value is not a JSON integer.
    #[error("the value at this key is not an integer")]
    NotInteger,
    /// The result would not fit in a signed 64-bit integer.
    #[error("the result does not fit in a 64-bit integer")]
    Overflow,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sqlx::Error> for IncrementError {
    fn from(e: sqlx::Error) -> Self {
        Self::Storage(e.into())
    }
}

/// How often `increment` retries after losing a race before giving up.
const MAX_CAS_ATTEMPTS: usize = 64;
/// Most rows one sweep or retention transaction removes: each is a short write
/// transaction, so SQLite's one write lock is never held long by the host's cleanup.
pub const SWEEP_BATCH: u32 = 1000;

/// The exclusive upper bound of keys starting with `prefix` (in code-point order, which
/// is byte order for UTF-8), or `None` when there is none.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

impl Db {
    /// The live value at `key`.
    pub async fn kv_get(
        &self,
        app_id: &str,
        collection: &str,
        key: &str,
    ) -> StorageResult<Option<String>> {
        let row = sqlx::query(
            "SELECT value FROM kv_entries WHERE app_id = $1 AND collection = $2 AND key = $3 \
             AND (expires_at IS NULL OR expires_at > $4)",
        )
        .bind(app_id)
        .bind(collection)
        .bind(key)
        .bind(now_ms())
        .fetch_optional(&mut self.acquire().await?)
        .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    /// Stores `value` (JSON text) at `key`, expiring at `expires_at` (ms) if given.
    pub async fn kv_set(
        &self,
        app_id: &str,
        collection: &str,
        key: &str,
        value: &str,
        expires_at: Option<i64>,
    ) -> StorageResult<()> {
        let mut tx = self.acquire().await?;
        tx.begin().await?;
        sqlx::query(
            "INSERT INTO kv_entries (app_id, collection, key, value, version, expires_at, updated_at) \
             VALUES ($1, $2, $3, $4, 1, $5, $6) ON CONFLICT (app_id, collection, key) DO UPDATE SET \
             value = excluded.value, expires_at = excluded.expires_at, updated_at = excluded.updated_at, \
             version = kv_entries.version + 1",
        )
        .bind(app_id)
        .bind(collection)
        .bind(key)
        .bind(value)
        .bind(expires_at)
        .bind(now_ms())
        .execute(&mut tx)
        .await?;
        let change = Change {
            source: Source::Kv,
            op: "set",
            collection,
            key,
            value: Some(value),
        };
        changes::record(&mut tx, app_id, change).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes `key`; true when a live entry was removed.
    pub async fn kv_delete(
        &self,
        app_id: &str,
        collection: &str,
        key: &str,
    ) -> StorageResult<bool> {
        let mut tx = self.acquire().await?;
        tx.begin().await?;
        let row = sqlx::query("DELETE FROM kv_entries WHERE app_id = $1 AND collection = $2 AND key = $3 RETURNING expires_at")
            .bind(app_id)
            .bind(collection)
            .bind(key)
            .fetch_optional(&mut tx)
            .await?;
        let Some(row) = row else { return Ok(false) };
        let expires_at: Option<i64> = row.try_get("expires_at")?;
        let live = expires_at.is_none_or(|at| at > now_ms());
        if live {
            let change = Change {
                source: Source::Kv,
                op: "delete",
                collection,
                key,
                value: None,
            };
            changes::record(&mut tx, app_id, change).await?;
        }
        tx.commit().await?;
        Ok(live)
    }

    /// Up to `limit` live entries whose key starts with `prefix` and sorts after `after`,
    /// in key order.
    pub async fn kv_list(
        &self,
        app_id: &str,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StorageResult<Vec<(String, String)>> {
        let lower = match after {
            Some(after) if after >= prefix => after,
            _ => prefix,
        };
        let upper = prefix_upper_bound(prefix);
        let lower_op = if after.is_some_and(|a| a >= prefix) {
            ">"
        } else {
            ">="
        };
        let upper_clause = if upper.is_some() { " AND key < $6" } else { "" };
        let sql = format!(
            "SELECT key, value FROM kv_entries WHERE app_id = $1 AND collection = $2 AND key {lower_op} $3 \
             AND (expires_at IS NULL OR expires_at > $4){upper_clause} ORDER BY key LIMIT $5"
        );
        let mut query = sqlx::query(&sql)
            .bind(app_id)
            .bind(collection)
            .bind(lower)
            .bind(now_ms())
            .bind(i64::from(limit));
        if let Some(upper) = &upper {
            query = query.bind(upper);
        }
        let rows = query.fetch_all(&mut self.acquire().await?).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect()
    }

    /// Adds `by` to the integer at `key` (missing or expired counts as 0) and returns the
    /// new value. Safe under concurrent writers: every attempt is a compare-and-swap.
    pub async fn kv_increment(
        &self,
        app_id: &str,
        collection: &str,
        key: &str,
        by: i64,
    ) -> Result<i64, IncrementError> {
        let mut conn = self.acquire().await?;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let now = now_ms();
            let row = sqlx::query("SELECT value, version, expires_at FROM kv_entries WHERE app_id = $1 AND collection = $2 AND key = $3")
                .bind(app_id)
                .bind(collection)
                .bind(key)
                .fetch_optional(&mut conn)
                .await?;
            let Some(row) = row else {
                conn.begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO kv_entries (app_id, collection, key, value, version, expires_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 1, NULL, $5) ON CONFLICT (app_id, collection, key) DO NOTHING",
                )
                .bind(app_id)
                .bind(collection)
                .bind(key)
                .bind(by.to_string())
                .bind(now)
                .execute(&mut conn)
                .await?;
                if inserted.rows_affected() == 1 {
                    Self::commit_increment(&mut conn, app_id, collection, key, by).await?;
                    return Ok(by);
                }
                conn.commit().await?;
                continue;
            };
            let version: i64 = row.try_get("version")?;
            let expires_at: Option<i64> = row.try_get("expires_at")?;
            let live = expires_at.is_none_or(|at| at > now);
            let current = if live {
                let value: String = row.try_get("value")?;
                serde_json::from_str::<serde_json::Value>(&value)
                    .ok()
                    .and_then(|v| v.as_i64())
                    .ok_or(IncrementError::NotInteger)?
            } else {
                0
            };
            let next = current.checked_add(by).ok_or(IncrementError::Overflow)?;
            conn.begin().await?;
            let updated = sqlx::query(
                "UPDATE kv_entries SET value = $1, version = version + 1, updated_at = $2, \
                 expires_at = CASE WHEN $3 = 1 THEN expires_at ELSE NULL END \
                 WHERE app_id = $4 AND collection = $5 AND key = $6 AND version = $7",
            )
            .bind(next.to_string())
            .bind(now)
            .bind(i64::from(live))
            .bind(app_id)
            .bind(collection)
            .bind(key)
            .bind(version)
            .execute(&mut conn)
            .await?;
            if updated.rows_affected() == 1 {
                Self::commit_increment(&mut conn, app_id, collection, key, next).await?;
                return Ok(next);
            }
            conn.commit().await?;
        }
        Err(StorageError::Contention("kv increment").into())
    }

    /// Records the change event of a successful increment and commits.
    async fn commit_increment(
        tx: &mut Conn,
        app_id: &str,
        collection: &str,
        key: &str,
        value: i64,
    ) -> StorageResult<()> {
        let value = value.to_string();
        let change = Change {
            source: Source::Kv,
            op: "increment",
            collection,
            key,
            value: Some(&value),
        };
        changes::record(tx, app_id, change).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes expired entries, at most [`SWEEP_BATCH`] per transaction, recording an
    /// `expire` change event for each in the same transaction; returns how many.
    pub async fn sweep_expired_kv(&self) -> StorageResult<u64> {
        let now = now_ms();
        let mut removed = 0;
        loop {
            let batch = self.sweep_expired_kv_batch(now, SWEEP_BATCH).await?;
            removed += batch;
            if batch < u64::from(SWEEP_BATCH) {
                return Ok(removed);
            }
            // Between batches other writers take their turn.
            tokio::task::yield_now().await;
        }
    }

    /// One transaction of the sweep: deletes at most `limit` entries that expired by
    /// `now` (ms), with their `expire` change events; returns how many.
    pub async fn sweep_expired_kv_batch(&self, now: i64, limit: u32) -> StorageResult<u64> {
        let limit = i64::from(limit);
        let removed = match self.dialect {
            // One statement: the rows deleted are exactly the rows recorded.
            super::Dialect::Postgres => sqlx::query(
                "WITH gone AS (DELETE FROM kv_entries WHERE (app_id, collection, key) IN \
                 (SELECT app_id, collection, key FROM kv_entries \
                 WHERE expires_at IS NOT NULL AND expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 RETURNING app_id, collection, key) \
                 INSERT INTO change_events (app_id, source, op, collection, key, value, created_at) \
                 SELECT app_id, 'kv', 'expire', collection, key, NULL, $1 FROM gone",
            )
            .bind(now)
            .bind(limit)
            .execute(&self.pool)
            .await?
            .rows_affected(),
            // The first statement takes SQLite's write lock, so no writer can come between
            // the two, which pick the same rows.
            super::Dialect::Sqlite => {
                let batch = "SELECT rowid FROM kv_entries WHERE expires_at IS NOT NULL \
                             AND expires_at <= $1 ORDER BY expires_at, rowid LIMIT $2";
                let mut tx = self.pool.begin().await?;
                sqlx::query(&format!(
                    "INSERT INTO change_events (app_id, source, op, collection, key, value, created_at) \
                     SELECT app_id, 'kv', 'expire', collection, key, NULL, $1 FROM kv_entries \
                     WHERE rowid IN ({batch})"
                ))
                .bind(now)
                .bind(limit)
                .execute(&mut *tx)
                .await?;
                let done = sqlx::query(&format!(
                    "DELETE FROM kv_entries WHERE rowid IN ({batch})"
                ))
                .bind(now)
                .bind(limit)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                done.rows_affected()
            }
        };
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_upper_bound;

    #[test]
    fn prefix_upper_bound_is_the_next_string_after_every_key_with_the_prefix() {
        assert_eq!(prefix_upper_bound("user:"), Some("user;".into()));
        assert_eq!(prefix_upper_bound("a\u{10FFFF}"), Some("b".into()));
        assert_eq!(prefix_upper_bound("\u{D7FF}"), Some("\u{E000}".into()));
        assert_eq!(prefix_upper_bound(""), None);
    }
}
