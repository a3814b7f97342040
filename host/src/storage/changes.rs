//! The change-event outbox: every kv, docs and files write inserts one row here in the
//! write's own transaction, so an event exists exactly when its write committed; so does
//! every inbound email a webhook accepted (source `email`, op `receive`) and every
//! durable pubsub message (source `pubsub`, op `publish`). The
//! event dispatcher (`crate::events`) takes rows in `seq` order, stamps `dispatched_at`
//! and queues their deliveries to triggers (`storage::triggers`).

use super::{Conn, Db, StorageResult, now_ms};
use sqlx::Row;

/// Which SDK interface wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `picloud:sdk/kv`.
    Kv,
    /// `picloud:sdk/docs`.
    Docs,
    /// `picloud:sdk/files`.
    Files,
    /// An inbound email (`POST /api/v1/email-inbound/{app}/{trigger}`).
    Email,
    /// A message of `pubsub::publish_durable` (op `publish`, collection = the topic).
    Pubsub,
    /// An end-user account write (op `create`, `update` or `delete`; key = the user id).
    Users,
}

impl Source {
    /// The name stored in `change_events.source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kv => "kv",
            Self::Docs => "docs",
            Self::Files => "files",
            Self::Email => "email",
            Self::Pubsub => "pubsub",
            Self::Users => "users",
        }
    }
}

/// One write, as recorded: `op` is `set`, `increment` or `delete` for kv (and `expire`
/// when the sweeper removes an entry past its TTL); `insert`,
/// `replace`, `patch` or `delete` for docs; `put` or `delete` for files (whose
/// collection is empty and key is the path). `value` is the new value as JSON text (the
/// document, or the file's metadata), absent for deletions.
pub struct Change<'a> {
    /// The interface that wrote.
    pub source: Source,
    /// What it did.
    pub op: &'a str,
    /// The collection (empty for files).
    pub collection: &'a str,
    /// The key, document id or file path.
    pub key: &'a str,
    /// The new value as JSON text; none for deletions.
    pub value: Option<&'a str>,
}

/// A recorded change event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChangeEvent {
    /// Position in the outbox; increases with every write.
    pub seq: i64,
    /// `kv`, `docs`, `files` or `email`.
    pub source: String,
    /// See [`Change`].
    pub op: String,
    /// The collection (empty for files).
    pub collection: String,
    /// The key, document id or file path.
    pub key: String,
    /// The new value as JSON text; none for deletions.
    pub value: Option<String>,
    /// When it was written (ms since the Unix epoch).
    pub created_at: i64,
}

/// Inserts the event of `change` for app `app_id` on `conn`, which must be inside the
/// write's transaction; answers its `seq`.
pub(super) async fn record(
    conn: &mut Conn,
    app_id: &str,
    change: Change<'_>,
) -> StorageResult<i64> {
    let depth = conn.depth;
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO change_events (app_id, source, op, collection, key, value, created_at, depth) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq",
    )
    .bind(app_id)
    .bind(change.source.as_str())
    .bind(change.op)
    .bind(change.collection)
    .bind(change.key)
    .bind(change.value)
    .bind(now_ms())
    .bind(depth)
    .fetch_one(&mut *conn)
    .await?;
    conn.recorded_event();
    Ok(seq)
}

impl Db {
    /// The change events of `app_id` after `after_seq`, oldest first, at most `limit`.
    pub async fn change_events(
        &self,
        app_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> StorageResult<Vec<ChangeEvent>> {
        let rows = sqlx::query(
            "SELECT seq, source, op, collection, key, value, created_at FROM change_events \
             WHERE app_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(app_id)
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ChangeEvent {
                    seq: r.try_get("seq")?,
                    source: r.try_get("source")?,
                    op: r.try_get("op")?,
                    collection: r.try_get("collection")?,
                    key: r.try_get("key")?,
                    value: r.try_get("value")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }
}
