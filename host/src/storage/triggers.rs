//! Triggers and the deliveries of events to them (see migration 0008): the dispatcher's
//! work queue, its retries and dead letters. Every step is one statement or one short
//! transaction that starts by writing, so it takes SQLite's write lock at once and needs
//! no retry on a stale read; on PostgreSQL the claims skip rows another node holds
//! (`FOR UPDATE SKIP LOCKED`), so several nodes share the work.

use super::{Db, Dialect, StorageError, StorageResult, conflict_or, new_id};
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::HashMap;

/// Change events this many triggers deep are dropped (logged), not delivered: a chain of
/// triggers (or a loop of one) ends there (SPEC §6).
pub const MAX_DEPTH: i64 = 8;

/// Largest change value (bytes of JSON) copied into a delivery's event; a larger one is
/// left out (`value` null, `value_omitted` true: the handler reads it if it needs it),
/// so a write is not copied whole into every delivery of every trigger it matches.
pub const MAX_EVENT_VALUE_BYTES: usize = 64 * 1024;

/// A trigger as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TriggerRecord {
    /// Unique in its app.
    pub name: String,
    /// `change`, `pubsub`, `cron` or `dead-letter`.
    pub kind: String,
    /// The function it runs.
    pub function: String,
    /// `change`: the interface written (`kv`, `docs`, `files`, `email`); `pubsub`:
    /// `pubsub`; `dead-letter`: only dead letters of this source (none: all).
    pub source: Option<String>,
    /// `change`: the collection (files: a path prefix; email: the webhook's name); none:
    /// all. `pubsub`: the topic.
    pub collection: Option<String>,
    /// `change`: the operations (none: all).
    pub ops: Option<Vec<String>>,
    /// `cron`: the 5-field UTC schedule.
    pub schedule: Option<String>,
    /// `cron`: when it fires next (ms since the Unix epoch).
    pub next_tick: Option<i64>,
    /// Attempts before an event becomes a dead letter.
    pub max_attempts: i64,
    /// Delay before the first retry, doubling with each further one (±20 % jitter).
    pub backoff_ms: i64,
    /// Creation time (ms since the Unix epoch).
    pub created_at: i64,
}

impl TriggerRecord {
    /// Whether this `change` or `pubsub` trigger wants `event` (a pubsub trigger is
    /// stored with source `pubsub` and its topic as the collection).
    fn matches(&self, event: &Pending) -> bool {
        matches!(self.kind.as_str(), "change" | "pubsub")
            && self.source.as_deref() == Some(event.source.as_str())
            && match (&self.collection, event.source.as_str()) {
                (None, _) => true,
                (Some(prefix), "files") => event.key.starts_with(prefix.as_str()),
                (Some(collection), _) => *collection == event.collection,
            }
            && self.ops.as_ref().is_none_or(|ops| ops.contains(&event.op))
    }
}

fn trigger_from_row(row: &sqlx::any::AnyRow) -> StorageResult<TriggerRecord> {
    let ops: Option<String> = row.try_get("ops")?;
    Ok(TriggerRecord {
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        function: row.try_get("function")?,
        source: row.try_get("source")?,
        collection: row.try_get("collection")?,
        ops: ops.map(|ops| ops.split(',').map(str::to_owned).collect()),
        schedule: row.try_get("schedule")?,
        next_tick: row.try_get("next_tick")?,
        max_attempts: row.try_get("max_attempts")?,
        backoff_ms: row.try_get("backoff_ms")?,
        created_at: row.try_get("created_at")?,
    })
}

const TRIGGER_COLUMNS: &str = "name, kind, function, source, collection, ops, schedule, \
     next_tick, max_attempts, backoff_ms, created_at";

/// A change event taken from the outbox by [`Db::fan_out`].
struct Pending {
    seq: i64,
    app_id: String,
    source: String,
    op: String,
    collection: String,
    key: String,
    value: Option<String>,
    created_at: i64,
    depth: i64,
}

impl Pending {
    /// What a function gets as `ctx.event` (v1 shape: source, op, collection, key,
    /// value), with the event's id (the same on every attempt: handlers can be
    /// idempotent) and the trigger's name. An inbound email's event is the message
    /// (from, to, subject, text, html, …) with the same fields added; a durable pubsub
    /// message's is `{id, source: "pubsub", topic, message, published_at, trigger}`.
    fn event(&self, trigger: &str) -> Value {
        let omitted = self
            .value
            .as_ref()
            .is_some_and(|v| v.len() > MAX_EVENT_VALUE_BYTES);
        let value = self
            .value
            .as_deref()
            .filter(|_| !omitted)
            .map(|v| serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned())));
        let id = self.seq.to_string();
        if self.source == "pubsub" {
            let mut event = json!({
                "id": id,
                "source": "pubsub",
                "topic": self.collection,
                "message": value,
                "published_at": self.created_at,
                "trigger": trigger,
            });
            if omitted {
                event["value_omitted"] = json!(true);
            }
            return event;
        }
        if self.source == "email"
            && let Some(Value::Object(mut message)) = value
        {
            message.insert("id".into(), json!(id));
            message.insert("source".into(), json!("email"));
            message.insert("trigger".into(), json!(trigger));
            message.insert("webhook".into(), json!(self.collection));
            return Value::Object(message);
        }
        if omitted && self.source == "email" {
            return json!({
                "id": id,
                "source": "email",
                "trigger": trigger,
                "webhook": self.collection,
                "message_id": self.key,
                "value_omitted": true,
            });
        }
        let mut event = json!({
            "id": id,
            "source": self.source,
            "op": self.op,
            "collection": self.collection,
            "key": self.key,
            "value": value,
            "at": self.created_at,
            "trigger": trigger,
        });
        if omitted {
            event["value_omitted"] = json!(true);
        }
        event
    }
}

/// A delivery claimed by this node: run its trigger's function with `event`, then report
/// with [`Db::deliveries_done`], [`Db::delivery_retry`] or [`Db::delivery_exhausted`].
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The delivery.
    pub id: i64,
    /// The app.
    pub app_id: String,
    /// The trigger.
    pub trigger_name: String,
    /// `ctx.event`, JSON text.
    pub event: String,
    /// This attempt's number (1 for the first).
    pub attempt: i64,
    /// Whether this delivers a dead letter to a dead-letter trigger (never itself
    /// dead-lettered).
    pub handles_dead_letter: bool,
    /// The trigger-chain depth of its event: the function runs one deeper.
    pub depth: i64,
    /// An async route's request: its function (`trigger_name` is empty).
    pub function: Option<String>,
}

/// An async route's execution as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Execution {
    /// Its id (`execution_id` of the 202).
    pub id: String,
    /// The function.
    pub function: String,
    /// `pending` (queued or running), `done` or `failed`.
    pub status: String,
    /// Attempts started.
    pub attempts: i64,
    /// When the request was accepted (ms since the Unix epoch).
    pub accepted_at: i64,
    /// When it finished.
    pub finished_at: Option<i64>,
    /// The function's answer: `status`, `headers`, `body_base64`.
    pub result: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A delivery as the API shows it (dead letters).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryView {
    /// Its id.
    pub id: i64,
    /// The trigger it was for.
    pub trigger: String,
    /// `pending`, `done`, `dead`, `resolved` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// The event.
    pub event: Value,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When it was created and last changed (ms since the Unix epoch).
    pub created_at: i64,
    /// See `created_at`.
    pub updated_at: i64,
}

impl Db {
    /// Creates trigger `trigger` of app `app_id` ([`StorageError::Conflict`] when the
    /// name is taken).
    pub async fn create_trigger(&self, app_id: &str, trigger: &TriggerRecord) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO triggers (app_id, name, kind, function, source, collection, ops, \
             schedule, next_tick, max_attempts, backoff_ms, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(app_id)
        .bind(&trigger.name)
        .bind(&trigger.kind)
        .bind(&trigger.function)
        .bind(&trigger.source)
        .bind(&trigger.collection)
        .bind(trigger.ops.as_ref().map(|ops| ops.join(",")))
        .bind(&trigger.schedule)
        .bind(trigger.next_tick)
        .bind(trigger.max_attempts)
        .bind(trigger.backoff_ms)
        .bind(trigger.created_at)
        .execute(&self.pool)
        .await
        .map_err(conflict_or)?;
        Ok(())
    }

    /// The triggers of app `app_id`, by name.
    pub async fn list_triggers(&self, app_id: &str) -> StorageResult<Vec<TriggerRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {TRIGGER_COLUMNS} FROM triggers WHERE app_id = $1 ORDER BY name"
        ))
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(trigger_from_row).collect()
    }

    /// Trigger `name` of app `app_id`.
    pub async fn get_trigger(
        &self,
        app_id: &str,
        name: &str,
    ) -> StorageResult<Option<TriggerRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {TRIGGER_COLUMNS} FROM triggers WHERE app_id = $1 AND name = $2"
        ))
        .bind(app_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(trigger_from_row).transpose()
    }

    /// Deletes trigger `name` of app `app_id` with its deliveries (pending ones and dead
    /// letters); answers whether it existed.
    pub async fn delete_trigger(&self, app_id: &str, name: &str) -> StorageResult<bool> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query("DELETE FROM triggers WHERE app_id = $1 AND name = $2")
            .bind(app_id)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // Also without the foreign key's cascade (SQLite enforces it per connection).
        sqlx::query("DELETE FROM deliveries WHERE app_id = $1 AND trigger_name = $2")
            .bind(app_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted == 1)
    }

    /// Takes up to `limit` change events from the outbox (oldest first), stamps them
    /// dispatched and queues one delivery per trigger each matches, in one transaction:
    /// an event is either still in the outbox or has its deliveries. Answers how many
    /// events it took. On PostgreSQL one node fans out at a time (a transaction-level
    /// advisory lock), which keeps deliveries of one key in the order of their writes.
    pub async fn fan_out(&self, now: i64, limit: u32) -> StorageResult<usize> {
        let mut tx = self.pool.begin().await?;
        let lock = match self.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => {
                // Waits for another node's fan-out, then sees the outbox it left.
                sqlx::query("SELECT pg_advisory_xact_lock(8008)")
                    .execute(&mut *tx)
                    .await?;
                " FOR UPDATE"
            }
        };
        let rows = sqlx::query(&format!(
            "UPDATE change_events SET dispatched_at = $1 WHERE seq IN (\
                 SELECT seq FROM change_events WHERE dispatched_at IS NULL \
                 ORDER BY seq LIMIT $2{lock}) \
             RETURNING seq, app_id, source, op, collection, key, value, created_at, depth"
        ))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut events = rows
            .iter()
            .map(|r| {
                Ok(Pending {
                    seq: r.try_get("seq")?,
                    app_id: r.try_get("app_id")?,
                    source: r.try_get("source")?,
                    op: r.try_get("op")?,
                    collection: r.try_get("collection")?,
                    key: r.try_get("key")?,
                    value: r.try_get("value")?,
                    created_at: r.try_get("created_at")?,
                    depth: r.try_get("depth")?,
                })
            })
            .collect::<StorageResult<Vec<_>>>()?;
        events.sort_by_key(|e| e.seq);
        let mut triggers: HashMap<String, Vec<TriggerRecord>> = HashMap::new();
        for event in &events {
            if event.depth >= MAX_DEPTH {
                tracing::warn!(
                    app = %event.app_id,
                    source = %event.source,
                    collection = %event.collection,
                    key = %event.key,
                    depth = event.depth,
                    "dropped a change event {MAX_DEPTH} triggers deep (a trigger chain too long, or a loop)"
                );
                continue;
            }
            if !triggers.contains_key(&event.app_id) {
                let rows = sqlx::query(&format!(
                    "SELECT {TRIGGER_COLUMNS} FROM triggers WHERE app_id = $1 \
                     AND kind IN ('change', 'pubsub')"
                ))
                .bind(&event.app_id)
                .fetch_all(&mut *tx)
                .await?;
                let found = rows
                    .iter()
                    .map(trigger_from_row)
                    .collect::<StorageResult<_>>()?;
                triggers.insert(event.app_id.clone(), found);
            }
            for trigger in triggers[&event.app_id].iter().filter(|t| t.matches(event)) {
                // Writes of one key run in order; pubsub messages (whose key is empty)
                // each on their own, as a message queue's consumers do.
                let order_key = if event.source == "pubsub" {
                    format!("pubsub\u{1f}{}\u{1f}{}", event.collection, event.seq)
                } else {
                    format!(
                        "{}\u{1f}{}\u{1f}{}",
                        event.source, event.collection, event.key
                    )
                };
                let event_json = event.event(&trigger.name).to_string();
                let new = NewDelivery {
                    app_id: &event.app_id,
                    trigger: &trigger.name,
                    order_key: &order_key,
                    event: &event_json,
                    handles_dead_letter: false,
                    depth: event.depth,
                };
                insert_delivery(&mut tx, new, now).await?;
            }
        }
        tx.commit().await?;
        Ok(events.len())
    }

    /// Cron triggers due at `now` (of every app), soonest first, at most `limit`, with
    /// their apps' ids.
    pub async fn due_cron(
        &self,
        now: i64,
        limit: u32,
    ) -> StorageResult<Vec<(String, TriggerRecord)>> {
        let rows = sqlx::query(&format!(
            "SELECT app_id, {TRIGGER_COLUMNS} FROM triggers \
             WHERE kind = 'cron' AND next_tick <= $1 ORDER BY next_tick LIMIT $2"
        ))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("app_id")?, trigger_from_row(r)?)))
            .collect()
    }

    /// Fires the tick `tick` of cron trigger `trigger` of app `app_id`: moves its next
    /// tick to `next` and queues a delivery of `event`, in one transaction, if the tick
    /// is still due (another node may have fired it: then nothing, and `false`).
    pub async fn fire_cron(
        &self,
        app_id: &str,
        trigger: &str,
        tick: i64,
        next: Option<i64>,
        event: &str,
        now: i64,
    ) -> StorageResult<bool> {
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE triggers SET next_tick = $4 WHERE app_id = $1 AND name = $2 \
             AND kind = 'cron' AND next_tick = $3",
        )
        .bind(app_id)
        .bind(trigger)
        .bind(tick)
        .bind(next)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Ok(false);
        }
        let new = NewDelivery {
            app_id,
            trigger,
            // One tick at a time: a tick waits for the last one's delivery to end.
            order_key: "cron",
            event,
            handles_dead_letter: false,
            depth: 0,
        };
        insert_delivery(&mut tx, new, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Claims up to `limit` due deliveries for this node until `lease_until`, counting an
    /// attempt for each, the longest due first (the scan walks the due index and stops at
    /// `limit`, however long the queue). A delivery waits while an earlier one of its trigger and order
    /// key is pending (its retries included), so one key's events run in order. A node
    /// that dies holding a claim leaves it to another (or to itself after a restart)
    /// once the lease has passed: delivery is at least once.
    pub async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
        skip_apps: &[String],
    ) -> StorageResult<Vec<Claimed>> {
        let skip_locked = match self.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        // Apps with their most deliveries running are passed over (`$4`, `$5`, …).
        let skipped = if skip_apps.is_empty() {
            String::new()
        } else {
            let placeholders: Vec<String> = (0..skip_apps.len())
                .map(|i| format!("${}", i + 4))
                .collect();
            format!(" AND d.app_id NOT IN ({})", placeholders.join(", "))
        };
        let sql = format!(
            "UPDATE deliveries SET lease_until = $1, attempts = attempts + 1, updated_at = $2 \
             WHERE id IN (\
                 SELECT d.id FROM deliveries d \
                 WHERE d.status = 'pending' AND d.next_at <= $2 AND d.lease_until <= $2{skipped} \
                 AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.status = 'pending' \
                     AND e.app_id = d.app_id AND e.trigger_name = d.trigger_name \
                     AND e.order_key = d.order_key AND e.id < d.id) \
                 ORDER BY d.next_at, d.id LIMIT $3{skip_locked}) \
             RETURNING id, app_id, trigger_name, event, attempts, handles_dead_letter, depth, \
             function"
        );
        let query = sqlx::query(&sql)
            .bind(lease_until)
            .bind(now)
            .bind(i64::from(limit));
        let rows = skip_apps
            .iter()
            .fold(query, |q, app| q.bind(app))
            .fetch_all(&self.pool)
            .await?;
        let mut claimed = rows
            .iter()
            .map(|r| {
                Ok(Claimed {
                    id: r.try_get("id")?,
                    app_id: r.try_get("app_id")?,
                    trigger_name: r.try_get("trigger_name")?,
                    event: r.try_get("event")?,
                    attempt: r.try_get("attempts")?,
                    handles_dead_letter: r.try_get::<i64, _>("handles_dead_letter")? != 0,
                    depth: r.try_get("depth")?,
                    function: r.try_get("function")?,
                })
            })
            .collect::<StorageResult<Vec<_>>>()?;
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    /// Queues a request to async route function `function` of app `app_id` (`request`:
    /// JSON text), unless the app already has `max_pending` waiting (then `None`).
    /// Answers the execution's id.
    pub async fn enqueue_async(
        &self,
        app_id: &str,
        function: &str,
        request: &str,
        max_pending: i64,
        now: i64,
    ) -> StorageResult<Option<i64>> {
        let pending: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM deliveries WHERE app_id = $1 AND status = 'pending' \
             AND trigger_name = ''",
        )
        .bind(app_id)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        if pending >= max_pending {
            return Ok(None);
        }
        let row = sqlx::query(
            "INSERT INTO deliveries (app_id, trigger_name, function, order_key, event, status, \
             next_at, created_at, updated_at) \
             VALUES ($1, '', $2, $3, $4, 'pending', $5, $5, $5) RETURNING id",
        )
        .bind(app_id)
        .bind(function)
        // Each request on its own: async requests do not wait for one another.
        .bind(new_id())
        .bind(request)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        let id: i64 = row.try_get("id")?;
        self.events.notify_one();
        Ok(Some(id))
    }

    /// The async execution `id` of app `app_id`.
    pub async fn execution(&self, app_id: &str, id: i64) -> StorageResult<Option<Execution>> {
        let row = sqlx::query(
            "SELECT id, function, status, attempts, last_error, result, created_at, updated_at \
             FROM deliveries WHERE app_id = $1 AND id = $2 AND trigger_name = ''",
        )
        .bind(app_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let result: Option<String> = row.try_get("result")?;
        let status: String = row.try_get("status")?;
        Ok(Some(Execution {
            id: row.try_get::<i64, _>("id")?.to_string(),
            function: row
                .try_get::<Option<String>, _>("function")?
                .unwrap_or_default(),
            finished_at: (status != "pending")
                .then(|| row.try_get("updated_at"))
                .transpose()?,
            status,
            attempts: row.try_get("attempts")?,
            error: row.try_get("last_error")?,
            result: result.and_then(|r| serde_json::from_str(&r).ok()),
            accepted_at: row.try_get("created_at")?,
        }))
    }

    /// Async execution `id` ran: `done` with the function's `result` (JSON text), or
    /// `failed` with `error` and the result when there is one.
    pub async fn execution_finished(
        &self,
        id: i64,
        result: Option<&str>,
        error: Option<&str>,
        now: i64,
    ) -> StorageResult<()> {
        sqlx::query(
            "UPDATE deliveries SET status = $2, result = $3, last_error = $4, lease_until = 0, \
             updated_at = $5 WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(if error.is_some() { "failed" } else { "done" })
        .bind(result)
        .bind(error)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deliveries `ids` succeeded: one statement (per 500) for many, so that on SQLite a
    /// burst of deliveries costs one commit, not one each.
    pub async fn deliveries_done(&self, ids: &[i64], now: i64) -> StorageResult<()> {
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "UPDATE deliveries SET status = 'done', last_error = NULL, updated_at = $1 \
                 WHERE id IN ({}) AND status = 'pending'",
                placeholders.join(", ")
            );
            chunk
                .iter()
                .fold(sqlx::query(&sql).bind(now), |q, id| q.bind(id))
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Delivery `id` could not run now (its app or the host was busy): it runs at
    /// `next_at`, and this attempt is not counted.
    pub async fn delivery_postpone(&self, id: i64, next_at: i64) -> StorageResult<()> {
        sqlx::query(
            "UPDATE deliveries SET next_at = $2, lease_until = 0, attempts = attempts - 1 \
             WHERE id = $1 AND status = 'pending' AND attempts > 0",
        )
        .bind(id)
        .bind(next_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Voids every claim (at the start of the only process of a SQLite database: the
    /// claims left are those of its last run).
    pub async fn release_claims(&self) -> StorageResult<u64> {
        let released = sqlx::query(
            "UPDATE deliveries SET lease_until = 0 WHERE status = 'pending' AND lease_until > 0",
        )
        .execute(&self.pool)
        .await?;
        Ok(released.rows_affected())
    }

    /// The name of the app with id `app_id`.
    pub async fn app_name(&self, app_id: &str) -> StorageResult<Option<String>> {
        let row = sqlx::query("SELECT name FROM apps WHERE id = $1")
            .bind(app_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("name")).transpose()?)
    }

    /// Delivery `id` failed with `error` and is tried again at `next_at`.
    pub async fn delivery_retry(
        &self,
        id: i64,
        next_at: i64,
        error: &str,
        now: i64,
    ) -> StorageResult<()> {
        sqlx::query(
            "UPDATE deliveries SET next_at = $2, lease_until = 0, last_error = $3, updated_at = $4 \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(next_at)
        .bind(error)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Delivery `id` failed its last attempt with `error`. A dead-letter handler's
    /// delivery is then `failed` (never dead-lettered: a failing handler would otherwise
    /// feed itself); any other becomes a dead letter, and each dead-letter trigger of
    /// its app (of its source, when the trigger names one) gets a delivery of it, in the
    /// same transaction. Answers how many handlers it queued.
    pub async fn delivery_exhausted(
        &self,
        claimed: &Claimed,
        error: &str,
        now: i64,
    ) -> StorageResult<usize> {
        let mut tx = self.pool.begin().await?;
        let status = if claimed.handles_dead_letter {
            "failed"
        } else {
            "dead"
        };
        let updated = sqlx::query(
            "UPDATE deliveries SET status = $2, last_error = $3, lease_until = 0, updated_at = $4 \
             WHERE id = $1 AND status = 'pending' RETURNING created_at, attempts",
        )
        .bind(claimed.id)
        .bind(status)
        .bind(error)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = updated else {
            return Ok(0);
        };
        let mut queued = 0;
        if !claimed.handles_dead_letter {
            let first_at: i64 = row.try_get("created_at")?;
            let attempts: i64 = row.try_get("attempts")?;
            let original: Value = serde_json::from_str(&claimed.event)
                .map_err(|e| StorageError::Corrupt(format!("a delivery's event: {e}")))?;
            let source = original
                .get("source")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let rows = sqlx::query(&format!(
                "SELECT {TRIGGER_COLUMNS} FROM triggers WHERE app_id = $1 AND kind = 'dead-letter'"
            ))
            .bind(&claimed.app_id)
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                let handler = trigger_from_row(row)?;
                if handler.source.is_some() && handler.source != source {
                    continue;
                }
                let event = json!({
                    "id": format!("dl-{}", claimed.id),
                    "source": "dead-letter",
                    "dead_letter_id": claimed.id.to_string(),
                    "original": original,
                    "attempts": attempts,
                    "last_error": error,
                    "trigger": handler.name,
                    "failed_trigger": claimed.trigger_name,
                    "first_attempt_at": first_at,
                    "last_attempt_at": now,
                });
                let order_key = format!("dead-letter\u{1f}{}", claimed.id);
                let event_json = event.to_string();
                let new = NewDelivery {
                    app_id: &claimed.app_id,
                    trigger: &handler.name,
                    order_key: &order_key,
                    event: &event_json,
                    handles_dead_letter: true,
                    depth: claimed.depth,
                };
                insert_delivery(&mut tx, new, now).await?;
                queued += 1;
            }
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// The deliveries of app `app_id` with `status` (e.g. `dead`: its dead letters),
    /// newest first, below id `before` when given, at most `limit`.
    pub async fn deliveries(
        &self,
        app_id: &str,
        status: &str,
        before: Option<i64>,
        limit: u32,
    ) -> StorageResult<Vec<DeliveryView>> {
        let rows = sqlx::query(
            "SELECT id, trigger_name, status, attempts, event, last_error, created_at, updated_at \
             FROM deliveries WHERE app_id = $1 AND status = $2 AND id < $3 \
             ORDER BY id DESC LIMIT $4",
        )
        .bind(app_id)
        .bind(status)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(view_from_row).collect()
    }

    /// Delivery `id` of app `app_id`.
    pub async fn delivery(&self, app_id: &str, id: i64) -> StorageResult<Option<DeliveryView>> {
        let row = sqlx::query(
            "SELECT id, trigger_name, status, attempts, event, last_error, created_at, updated_at \
             FROM deliveries WHERE app_id = $1 AND id = $2",
        )
        .bind(app_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(view_from_row).transpose()
    }

    /// Queues dead letter `id` of app `app_id` again with fresh attempts (after a fix);
    /// answers whether it was a dead letter.
    pub async fn replay_dead_letter(&self, app_id: &str, id: i64, now: i64) -> StorageResult<bool> {
        let updated = sqlx::query(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_at = $3, lease_until = 0, \
             updated_at = $3 WHERE app_id = $1 AND id = $2 AND status = 'dead'",
        )
        .bind(app_id)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Marks dead letter `id` of app `app_id` settled; answers whether it was a dead
    /// letter.
    pub async fn resolve_dead_letter(
        &self,
        app_id: &str,
        id: i64,
        now: i64,
    ) -> StorageResult<bool> {
        let updated = sqlx::query(
            "UPDATE deliveries SET status = 'resolved', updated_at = $3 \
             WHERE app_id = $1 AND id = $2 AND status = 'dead'",
        )
        .bind(app_id)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }
}

/// A delivery to queue (see [`insert_delivery`]).
struct NewDelivery<'a> {
    app_id: &'a str,
    trigger: &'a str,
    order_key: &'a str,
    event: &'a str,
    handles_dead_letter: bool,
    depth: i64,
}

async fn insert_delivery(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    new: NewDelivery<'_>,
    now: i64,
) -> StorageResult<()> {
    sqlx::query(
        "INSERT INTO deliveries (app_id, trigger_name, order_key, event, handles_dead_letter, \
         depth, status, next_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7, $7)",
    )
    .bind(new.app_id)
    .bind(new.trigger)
    .bind(new.order_key)
    .bind(new.event)
    .bind(i64::from(new.handles_dead_letter))
    .bind(new.depth)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn view_from_row(row: &sqlx::any::AnyRow) -> StorageResult<DeliveryView> {
    let event: String = row.try_get("event")?;
    Ok(DeliveryView {
        id: row.try_get("id")?,
        trigger: row.try_get("trigger_name")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        event: serde_json::from_str(&event).unwrap_or(Value::String(event)),
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
