//! Pub/sub: an app's declared topics (migration 0009), durable messages (recorded in the
//! change-event outbox, where pubsub triggers pick them up) and reading them back for a
//! realtime subscriber that resumes.

use super::changes::{self, Change, Source};
use super::{Db, StorageResult, now_ms};
use sqlx::Row;

/// First key of the PostgreSQL advisory locks that order a topic's durable messages
/// (see [`Db::publish_durable`]).
const TOPIC_ORDER_LOCK: i32 = 8009;

/// A declared topic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TopicRecord {
    /// The topic's name.
    pub name: String,
    /// Whether browsers may subscribe (`GET /rt/{app}/{topic}` with a token).
    pub external: bool,
    /// Whether an end user's session token also subscribes (external topics only).
    pub sessions: bool,
    /// When it was declared (ms since the Unix epoch).
    pub created_at: i64,
}

/// A durable message as kept in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its id: the outbox position (`Last-Event-ID` of a subscriber).
    pub seq: i64,
    /// The message: compact JSON text, one line (as `publish_durable` stored it).
    pub message: String,
}

fn topic_from_row(row: &sqlx::any::AnyRow) -> StorageResult<TopicRecord> {
    Ok(TopicRecord {
        name: row.try_get("name")?,
        external: row.try_get::<i64, _>("external")? != 0,
        sessions: row.try_get::<i64, _>("sessions")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

impl Db {
    /// Declares topic `name` of app `app_id` (or changes whether it is external).
    pub async fn put_topic(
        &self,
        app_id: &str,
        name: &str,
        external: bool,
        sessions: bool,
    ) -> StorageResult<TopicRecord> {
        let row = sqlx::query(
            "INSERT INTO topics (app_id, name, external, sessions, created_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (app_id, name) DO UPDATE SET external = excluded.external, \
             sessions = excluded.sessions RETURNING name, external, sessions, created_at",
        )
        .bind(app_id)
        .bind(name)
        .bind(i64::from(external))
        .bind(i64::from(sessions))
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        topic_from_row(&row)
    }

    /// The declared topics of app `app_id`, by name.
    pub async fn list_topics(&self, app_id: &str) -> StorageResult<Vec<TopicRecord>> {
        let rows = sqlx::query(
            "SELECT name, external, sessions, created_at FROM topics WHERE app_id = $1 ORDER BY name",
        )
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(topic_from_row).collect()
    }

    /// Declared topic `name` of app `app_id`.
    pub async fn get_topic(&self, app_id: &str, name: &str) -> StorageResult<Option<TopicRecord>> {
        let row = sqlx::query(
            "SELECT name, external, sessions, created_at FROM topics WHERE app_id = $1 AND name = $2",
        )
        .bind(app_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(topic_from_row).transpose()
    }

    /// Removes declared topic `name`; true when it existed.
    pub async fn delete_topic(&self, app_id: &str, name: &str) -> StorageResult<bool> {
        let done = sqlx::query("DELETE FROM topics WHERE app_id = $1 AND name = $2")
            .bind(app_id)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// How many topics app `app_id` declared.
    pub async fn count_topics(&self, app_id: &str) -> StorageResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM topics WHERE app_id = $1")
                .bind(app_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Records durable `message` (JSON text) on `topic` of app `app_id` in the outbox
    /// (the dispatcher delivers it to the app's pubsub triggers); answers its id.
    ///
    /// A topic's durable messages commit in the order of their ids, so a subscriber
    /// resuming after id N (`Last-Event-ID`) misses none below N that was not yet
    /// visible when it read N: SQLite has one writer at a time; on PostgreSQL two
    /// publishers could take ids 10 and 11 and commit 11 first, so publishing on a topic
    /// holds a transaction-level advisory lock of the topic from taking its id to the
    /// commit (a topic's publishes queue for one another's short transaction; other
    /// topics', and other writes to the outbox, do not).
    pub async fn publish_durable(
        &self,
        app_id: &str,
        topic: &str,
        message: &str,
    ) -> StorageResult<i64> {
        let mut tx = self.acquire().await?;
        tx.begin().await?;
        if self.dialect() == super::Dialect::Postgres {
            // The two-key form: a key space apart from the single-key locks elsewhere
            // (the fan-out's); a collision of two topics' hashes only orders them too.
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(TOPIC_ORDER_LOCK)
                .bind(format!("{app_id}\u{1f}{topic}"))
                .execute(&mut tx)
                .await?;
        }
        let change = Change {
            source: Source::Pubsub,
            op: "publish",
            collection: topic,
            key: "",
            value: Some(message),
        };
        let seq = changes::record(&mut tx, app_id, change).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Sends `payload` on PostgreSQL notification channel `channel` (every node
    /// listening receives it); nothing on SQLite, whose database one process owns.
    pub async fn notify(&self, channel: &str, payload: &str) -> StorageResult<()> {
        if self.dialect() == super::Dialect::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// The durable messages on `topic` of app `app_id` after id `after` (oldest first,
    /// at most `limit`), as far back as the outbox keeps them.
    pub async fn messages_since(
        &self,
        app_id: &str,
        topic: &str,
        after: i64,
        limit: u32,
    ) -> StorageResult<Vec<StoredMessage>> {
        let rows = sqlx::query(
            "SELECT seq, value FROM change_events \
             WHERE app_id = $1 AND source = 'pubsub' AND collection = $2 AND seq > $3 \
             ORDER BY seq LIMIT $4",
        )
        .bind(app_id)
        .bind(topic)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredMessage {
                    seq: r.try_get("seq")?,
                    message: r.try_get::<Option<String>, _>("value")?.unwrap_or_default(),
                })
            })
            .collect()
    }
}
