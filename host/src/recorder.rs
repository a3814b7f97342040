//! Writes invocation records in batches, off the request path.
//!
//! Lifecycle: [`Recorder::start`] spawns one writer task; [`Recorder::record`] queues a
//! record without waiting; [`Recorder::flush`] waits until everything queued before it
//! is in the database (readers of the invocation list call it first).
//!
//! A batch is written [`LINGER`] after its first record, or at once when `MAX_BATCH`
//! records wait or a flush asks for it: under load that is a few transactions a second
//! instead of one per handful of requests (each commit is an fsync with SQLite's
//! `synchronous=FULL`). While a batch lingers the writer sleeps: queueing a record does
//! not wake it, only a full batch or a flush does.
//!
//! Usage is never lost to load: a record that finds the queue full is dropped, but its
//! usage (and the drop) is added to a per-app accumulator that the next batch stores
//! with its own usage (see [`Db::record_invocations`]).

use crate::quota::FuelQuotas;
use crate::storage::usage::{UsageByDay, UsageDelta, utc_day};
use crate::storage::{Db, InvocationRecord, batch_usage};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

/// Records queued beyond this are dropped (their usage kept) rather than slowing
/// requests.
pub const QUEUE_CAPACITY: usize = 10_000;
/// At most this many records per transaction; this many waiting end the linger.
const MAX_BATCH: usize = 500;
/// How long a batch waits for more records after its first one.
pub const LINGER: Duration = Duration::from_millis(100);

enum Message {
    Record(Box<(String, InvocationRecord)>),
    Flush(oneshot::Sender<()>),
}

/// Handle to the writer task.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Message>,
    /// Ends the writer's linger: a flush is waiting or a batch is full.
    urgent: Arc<Notify>,
    /// Usage of the records dropped since the last batch, by app and day.
    dropped: Arc<Mutex<UsageByDay>>,
}

fn lock(dropped: &Mutex<UsageByDay>) -> std::sync::MutexGuard<'_, UsageByDay> {
    dropped.lock().unwrap_or_else(|e| e.into_inner())
}

impl Recorder {
    /// Spawns the writer task on the current runtime; what it stores is reported to
    /// `quotas`.
    pub fn start(db: Db, quotas: Option<Arc<FuelQuotas>>) -> Self {
        Self::with_capacity(db, quotas, QUEUE_CAPACITY)
    }

    /// Spawns the writer task with a queue of `capacity` records.
    pub fn with_capacity(db: Db, quotas: Option<Arc<FuelQuotas>>, capacity: usize) -> Self {
        let (queue, mut rx) = mpsc::channel(capacity);
        let urgent = Arc::new(Notify::new());
        let wake = urgent.clone();
        let dropped: Arc<Mutex<UsageByDay>> = Arc::default();
        let dropped_usage = dropped.clone();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            let mut waiters = Vec::new();
            while let Some(first) = rx.recv().await {
                let mut next = Some(first);
                let deadline = Instant::now() + LINGER;
                loop {
                    // Take what is queued (up to a batch), then sleep out the linger
                    // unless the batch is full or a flush waits.
                    while let Some(message) = next.take() {
                        match message {
                            Message::Record(r) => batch.push(*r),
                            Message::Flush(done) => waiters.push(done),
                        }
                        if batch.len() < MAX_BATCH {
                            next = rx.try_recv().ok();
                        }
                    }
                    if batch.len() >= MAX_BATCH || !waiters.is_empty() || rx.is_closed() {
                        break;
                    }
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        () = wake.notified() => {}
                    }
                    next = rx.try_recv().ok();
                    if next.is_none() && Instant::now() >= deadline {
                        break;
                    }
                }
                let dropped = std::mem::take(&mut *lock(&dropped_usage));
                let lost: i64 = dropped.values().map(|d| d.dropped_records).sum();
                if lost > 0 {
                    tracing::warn!(
                        lost,
                        "the invocation record queue was full: records dropped, their usage kept"
                    );
                }
                if let Err(e) = db.record_invocations(&batch, &dropped).await {
                    tracing::error!(error = %e, lost = batch.len(), "could not store invocation records");
                }
                if let Some(quotas) = &quotas {
                    // Stored, or failing record by record and counted as lost: either
                    // way no longer pending on this node.
                    quotas.stored(&batch_usage(&batch, &dropped));
                }
                batch.clear();
                for done in waiters.drain(..) {
                    let _ = done.send(());
                }
            }
        });
        Self {
            queue,
            urgent,
            dropped,
        }
    }

    /// Queues one record of app `app_id`; when the queue is full, keeps only its usage.
    pub fn record(&self, app_id: String, record: InvocationRecord) {
        if let Err(e) = self
            .queue
            .try_send(Message::Record(Box::new((app_id, record))))
            && let Message::Record(item) = e.into_inner()
        {
            let (app_id, record) = *item;
            let usage = UsageDelta {
                dropped_records: 1,
                ..UsageDelta::of(&record)
            };
            lock(&self.dropped)
                .entry((app_id, utc_day(record.started_at)))
                .or_default()
                .add(usage);
        }
        if self.queue.max_capacity() - self.queue.capacity() >= MAX_BATCH {
            self.urgent.notify_one();
        }
    }

    /// Waits until every record queued so far is stored.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            self.urgent.notify_one();
            let _ = wait.await;
        }
    }
}
