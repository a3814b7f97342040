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

use crate::storage::{Db, InvocationRecord};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

/// Records queued beyond this are dropped (with a warning) rather than slowing requests.
const QUEUE_CAPACITY: usize = 10_000;
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
}

impl Recorder {
    /// Spawns the writer task on the current runtime.
    pub fn start(db: Db) -> Self {
        let (queue, mut rx) = mpsc::channel(QUEUE_CAPACITY);
        let urgent = Arc::new(Notify::new());
        let wake = urgent.clone();
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
                if let Err(e) = db.insert_invocations(&batch).await {
                    tracing::error!(error = %e, lost = batch.len(), "could not store invocation records");
                }
                batch.clear();
                for done in waiters.drain(..) {
                    let _ = done.send(());
                }
            }
        });
        Self { queue, urgent }
    }

    /// Queues one record of app `app_id`.
    pub fn record(&self, app_id: String, record: InvocationRecord) {
        if self
            .queue
            .try_send(Message::Record(Box::new((app_id, record))))
            .is_err()
        {
            tracing::warn!("invocation record queue is full; dropping a record");
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
