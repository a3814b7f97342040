//! Email of apps: the From address an operator set, the count of messages sent per UTC
//! day (the daily cap), and the inbound email triggers with their sealed HMAC keys.
//! Inbound messages go to the change-event outbox ([`super::changes`]).

use super::changes::{self, Change, Source};
use super::{Db, StorageResult, conflict_or, now_ms};
use crate::vault::Sealed;
use sqlx::Row;

/// What the email service keeps. [`Db`] is the store of the server.
#[allow(async_fn_in_trait)] // used through generics inside this crate only
pub trait EmailStore {
    /// The From address the operator set for app `app_id`, if any.
    async fn email_from(&self, app_id: &str) -> StorageResult<Option<String>>;
    /// Counts one message of `app_id` on UTC day `day` (`YYYY-MM-DD`) unless the day
    /// holds `limit` already: answers whether it was counted. Exact under concurrency
    /// (one statement) and across nodes (the row is shared).
    async fn email_reserve(&self, app_id: &str, day: &str, limit: u64) -> StorageResult<bool>;
    /// Gives back one message counted by [`EmailStore::email_reserve`] (it did not leave).
    async fn email_release(&self, app_id: &str, day: &str) -> StorageResult<()>;
}

impl EmailStore for Db {
    async fn email_from(&self, app_id: &str) -> StorageResult<Option<String>> {
        let row = sqlx::query("SELECT from_address FROM app_email WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(&mut self.acquire().await?)
            .await?;
        Ok(row.map(|r| r.try_get("from_address")).transpose()?)
    }

    async fn email_reserve(&self, app_id: &str, day: &str, limit: u64) -> StorageResult<bool> {
        if limit == 0 {
            return Ok(false);
        }
        let row = sqlx::query(
            "INSERT INTO email_daily (app_id, day, sent) VALUES ($1, $2, 1) \
             ON CONFLICT (app_id, day) DO UPDATE SET sent = email_daily.sent + 1 \
             WHERE email_daily.sent < $3 RETURNING sent",
        )
        .bind(app_id)
        .bind(day)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_optional(&mut self.acquire().await?)
        .await?;
        Ok(row.is_some())
    }

    async fn email_release(&self, app_id: &str, day: &str) -> StorageResult<()> {
        sqlx::query(
            "UPDATE email_daily SET sent = sent - 1 WHERE app_id = $1 AND day = $2 AND sent > 0",
        )
        .bind(app_id)
        .bind(day)
        .execute(&mut self.acquire().await?)
        .await?;
        Ok(())
    }
}

/// An inbound email trigger as listed: never its key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EmailTrigger {
    /// The trigger's name, the last segment of its webhook URL.
    pub name: String,
    /// When it was created (ms since the Unix epoch).
    pub created_at: i64,
}

impl Db {
    /// Sets (`Some`) or removes (`None`) the From address of app `app_id`.
    pub async fn set_email_from(&self, app_id: &str, from: Option<&str>) -> StorageResult<()> {
        match from {
            Some(from) => {
                sqlx::query(
                    "INSERT INTO app_email (app_id, from_address, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (app_id) DO UPDATE SET from_address = excluded.from_address, \
                     updated_at = excluded.updated_at",
                )
                .bind(app_id)
                .bind(from)
                .bind(now_ms())
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM app_email WHERE app_id = $1")
                    .bind(app_id)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Messages app `app_id` sent on UTC day `day`.
    pub async fn email_sent(&self, app_id: &str, day: &str) -> StorageResult<u64> {
        let row = sqlx::query("SELECT sent FROM email_daily WHERE app_id = $1 AND day = $2")
            .bind(app_id)
            .bind(day)
            .fetch_optional(&self.pool)
            .await?;
        let sent: i64 = match row {
            Some(row) => row.try_get("sent")?,
            None => 0,
        };
        Ok(u64::try_from(sent).unwrap_or(0))
    }

    /// Creates inbound email trigger `name` of app `app_id` with its sealed key;
    /// [`super::StorageError::Conflict`] when it exists.
    pub async fn create_email_trigger(
        &self,
        app_id: &str,
        name: &str,
        sealed: &Sealed,
    ) -> StorageResult<EmailTrigger> {
        let created_at = now_ms();
        sqlx::query(
            "INSERT INTO email_triggers (app_id, name, key_id, sealed, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(app_id)
        .bind(name)
        .bind(&sealed.key_id)
        .bind(&sealed.sealed)
        .bind(created_at)
        .execute(&self.pool)
        .await
        .map_err(conflict_or)?;
        Ok(EmailTrigger {
            name: name.to_owned(),
            created_at,
        })
    }

    /// The sealed key of inbound email trigger `name` of app `app_id`.
    pub async fn email_trigger_key(
        &self,
        app_id: &str,
        name: &str,
    ) -> StorageResult<Option<Sealed>> {
        let row = sqlx::query(
            "SELECT key_id, sealed FROM email_triggers WHERE app_id = $1 AND name = $2",
        )
        .bind(app_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Sealed {
                key_id: r.try_get("key_id")?,
                sealed: r.try_get("sealed")?,
            })
        })
        .transpose()
    }

    /// The inbound email triggers of app `app_id`, by name.
    pub async fn email_triggers(&self, app_id: &str) -> StorageResult<Vec<EmailTrigger>> {
        let rows = sqlx::query(
            "SELECT name, created_at FROM email_triggers WHERE app_id = $1 ORDER BY name",
        )
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EmailTrigger {
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Removes inbound email trigger `name`; answers whether it existed.
    pub async fn delete_email_trigger(&self, app_id: &str, name: &str) -> StorageResult<bool> {
        let done = sqlx::query("DELETE FROM email_triggers WHERE app_id = $1 AND name = $2")
            .bind(app_id)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Up to `limit` trigger keys sealed with another key than `key_id` (for rekeying).
    pub async fn email_triggers_sealed_with_other_key(
        &self,
        key_id: &str,
        limit: u32,
    ) -> StorageResult<Vec<(String, String, Sealed)>> {
        let rows = sqlx::query(
            "SELECT app_id, name, key_id, sealed FROM email_triggers WHERE key_id <> $1 \
             ORDER BY app_id, name LIMIT $2",
        )
        .bind(key_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let sealed = Sealed {
                    key_id: r.try_get("key_id")?,
                    sealed: r.try_get("sealed")?,
                };
                Ok((r.try_get("app_id")?, r.try_get("name")?, sealed))
            })
            .collect()
    }

    /// Replaces a trigger's sealed key if it is still `old`; answers whether it was.
    pub async fn email_trigger_reseal(
        &self,
        app_id: &str,
        name: &str,
        old: &Sealed,
        new: &Sealed,
    ) -> StorageResult<bool> {
        let done = sqlx::query(
            "UPDATE email_triggers SET key_id = $1, sealed = $2 \
             WHERE app_id = $3 AND name = $4 AND sealed = $5",
        )
        .bind(&new.key_id)
        .bind(&new.sealed)
        .bind(app_id)
        .bind(name)
        .bind(&old.sealed)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores an inbound message of trigger `trigger` of app `app_id` in the outbox:
    /// source `email`, op `receive`, the trigger as collection, the message id as key
    /// and `event` (JSON text) as value.
    pub async fn record_inbound_email(
        &self,
        app_id: &str,
        trigger: &str,
        message_id: &str,
        event: &str,
    ) -> StorageResult<()> {
        let mut conn = self.acquire().await?;
        changes::record(
            &mut conn,
            app_id,
            Change {
                source: Source::Email,
                op: "receive",
                collection: trigger,
                key: message_id,
                value: Some(event),
            },
        )
        .await
        .map(|_| ())
    }
}
