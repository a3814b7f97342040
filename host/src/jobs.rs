//! Background jobs of the server: periodic work (the kv and blob sweeps, retention,
//! trimming idle warm instances) spawned in one place, stopped cleanly at shutdown, and
//! for work a cluster needs done once rather than once per node, run by the one node
//! holding the job's lease in the database.
//!
//! Lifecycle: [`Jobs::new`] per server; [`Jobs::every`] and [`Jobs::every_on_one_node`]
//! spawn jobs on the current runtime; [`Jobs::shutdown`] stops them: no run starts after
//! it, a run in progress gets [`SHUTDOWN_GRACE`] to end (then it is aborted, which a job
//! must tolerate: database work rolls back), and leases held are given up so another
//! node takes over at once.
//!
//! A job on one node: each period the node tries to take or renew the job's lease for
//! [`LEASE_PERIODS`] periods ([`Db::claim_lease`], one statement on either backend) and
//! runs the job only when it holds it. A node that stops renewing (it died) loses the
//! lease when it expires; until then no other node runs the job.

use crate::storage::{Db, now_ms};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long [`Jobs::shutdown`] waits for runs in progress before aborting them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A lease lasts this many periods of its job: a missed renewal or two (a slow run, a
/// pause) does not hand the job to another node, a dead node's lease ends soon.
pub const LEASE_PERIODS: u32 = 3;

/// The server's background jobs.
pub struct Jobs {
    stop: watch::Sender<bool>,
    tasks: Mutex<JoinSet<()>>,
    node: Arc<str>,
}

impl Default for Jobs {
    fn default() -> Self {
        Self::new()
    }
}

impl Jobs {
    /// No jobs yet; this node's id (for leases) is random.
    pub fn new() -> Self {
        Self {
            stop: watch::channel(false).0,
            tasks: Mutex::default(),
            node: uuid::Uuid::new_v4().to_string().into(),
        }
    }

    /// This node's id, as its leases name it.
    pub fn node(&self) -> &str {
        &self.node
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spawn(task);
    }

    /// Runs `job` now and then every `period` until shutdown (a run that overruns its
    /// period delays the next; runs never overlap).
    pub fn every<F, Fut>(&self, name: &'static str, period: Duration, mut job: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut stop = self.stop.subscribe();
        self.spawn(async move {
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|stop| *stop) => break,
                    _ = every.tick() => {}
                }
                job().await;
            }
            tracing::debug!(job = name, "job stopped");
        });
    }

    /// Runs `task` (a listener that runs for the server's life) until shutdown.
    pub fn until_shutdown(
        &self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let mut stop = self.stop.subscribe();
        self.spawn(async move {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => {}
                () = task => {}
            }
            tracing::debug!(job = name, "job stopped");
        });
    }

    /// Runs `job` as a queue-draining job: again at once while it answers that it found
    /// work, otherwise when `wake` is notified or `poll` has passed, until shutdown.
    pub fn draining<F, Fut>(
        &self,
        name: &'static str,
        wake: Arc<tokio::sync::Notify>,
        poll: Duration,
        mut job: F,
    ) where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let mut stop = self.stop.subscribe();
        self.spawn(async move {
            loop {
                if *stop.borrow() {
                    break;
                }
                if job().await {
                    tokio::task::yield_now().await;
                    continue;
                }
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|stop| *stop) => break,
                    () = wake.notified() => {}
                    () = tokio::time::sleep(poll) => {}
                }
            }
            tracing::debug!(job = name, "job stopped");
        });
    }

    /// Like [`Jobs::every`], but of the nodes sharing `db` only the one holding the
    /// job's lease runs it (module docs).
    pub fn every_on_one_node<F, Fut>(
        &self,
        name: &'static str,
        period: Duration,
        db: Db,
        mut job: F,
    ) where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let node = self.node.clone();
        let ttl = i64::try_from((period * LEASE_PERIODS).as_millis()).unwrap_or(i64::MAX);
        let mut stop = self.stop.subscribe();
        self.spawn(async move {
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut held = false;
            loop {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|stop| *stop) => break,
                    _ = every.tick() => {}
                }
                held = match db.claim_lease(name, &node, now_ms(), ttl).await {
                    Ok(held) => held,
                    Err(e) => {
                        tracing::warn!(job = name, error = %e, "taking a job's lease failed");
                        false
                    }
                };
                if held {
                    job().await;
                }
            }
            if held && let Err(e) = db.release_lease(name, &node).await {
                tracing::warn!(job = name, error = %e, "giving up a job's lease failed");
            }
            tracing::debug!(job = name, "job stopped");
        });
    }

    /// Stops every job (module docs) and waits for them to end.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                running = tasks.len(),
                "background jobs still running at shutdown were aborted"
            );
            tasks.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_every_period_and_none_runs_after_shutdown() {
        let jobs = Jobs::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let in_progress_ended = Arc::new(AtomicUsize::new(0));
        let (counted, ended) = (runs.clone(), in_progress_ended.clone());
        jobs.every("count", Duration::from_millis(5), move || {
            let (counted, ended) = (counted.clone(), ended.clone());
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                ended.fetch_add(1, Ordering::SeqCst);
            }
        });
        while runs.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        jobs.shutdown().await;
        let after = runs.load(Ordering::SeqCst);
        assert_eq!(
            in_progress_ended.load(Ordering::SeqCst),
            after,
            "the run in progress at shutdown finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(runs.load(Ordering::SeqCst), after, "no run after shutdown");
    }
}
