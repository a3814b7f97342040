//! Per-app admission: at most `max_running` invocations of one app run at once; past
//! that, up to `max_queued` more wait in arrival order for at most `max_wait`, and the
//! rest are refused at once. A burst is absorbed by the queue; a flood is refused early,
//! before its requests' bodies are read or their guests take any CPU.
//!
//! The gates are in-process: with several nodes each node admits its own share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Running invocations per app per core, when the operator sets no cap: invocations
/// spend much of their time waiting on storage (and later the network), so an app may
/// run several per core; the fair CPU scheduler shares the cores themselves.
pub const DEFAULT_RUNNING_PER_CORE: u32 = 8;
/// Fewest running invocations per app by default, whatever the core count.
pub const MIN_DEFAULT_RUNNING: u32 = 8;
/// Invocations allowed to wait per running slot by default.
pub const DEFAULT_QUEUED_PER_RUNNING: u32 = 4;
/// Longest an invocation waits for its app's running slot by default, in milliseconds.
pub const DEFAULT_MAX_WAIT_MS: u64 = 1_000;

/// The default running cap of an app on a machine with `cores` cores.
pub fn default_max_running(cores: usize) -> u32 {
    u32::try_from(cores)
        .unwrap_or(u32::MAX)
        .saturating_mul(DEFAULT_RUNNING_PER_CORE)
        .max(MIN_DEFAULT_RUNNING)
}

/// How the gates admit.
#[derive(Clone, Copy, Debug)]
pub struct AdmissionConfig {
    /// Invocations of one app running at once.
    pub max_running: u32,
    /// Invocations of one app waiting for a running slot at once.
    pub max_queued: u32,
    /// Longest wait for a running slot.
    pub max_wait: Duration,
}

/// Why an invocation was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The app's queue is full.
    QueueFull,
    /// The invocation waited `max_wait` without a slot coming free.
    Waited,
}

/// An admitted invocation's running slot, given back when dropped.
pub struct Ticket {
    permit: OwnedSemaphorePermit,
    max_running: u32,
}

impl Ticket {
    /// Invocations of this app running now, this one included.
    pub fn running(&self) -> usize {
        self.max_running as usize - self.permit.semaphore().available_permits()
    }
}

/// One app's gate.
struct Gate {
    running: Arc<Semaphore>,
    queued: AtomicUsize,
}

/// What one app's gate holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Load {
    /// Invocations running (admitted and not yet recorded).
    pub running: usize,
    /// Invocations waiting for a running slot.
    pub queued: usize,
}

/// The gates of all apps, by app id.
pub struct Gates {
    config: AdmissionConfig,
    gates: Mutex<HashMap<Arc<str>, Arc<Gate>>>,
}

/// Counts a waiting invocation out of its queue when it stops waiting, however it stops
/// (admitted, timed out, or its request dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gates {
    /// Gates admitting by `config`.
    pub fn new(config: AdmissionConfig) -> Self {
        Self {
            config,
            gates: Mutex::default(),
        }
    }

    /// How the gates admit.
    pub fn config(&self) -> AdmissionConfig {
        self.config
    }

    fn gate(&self, app_id: &str) -> Arc<Gate> {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(gate) = gates.get(app_id) {
            return gate.clone();
        }
        let gate = Arc::new(Gate {
            running: Arc::new(Semaphore::new(self.config.max_running as usize)),
            queued: AtomicUsize::new(0),
        });
        gates.insert(app_id.into(), gate.clone());
        gate
    }

    /// A running slot of app `app_id`: at once if one is free, else after waiting in the
    /// app's queue (first come, first served) for at most the configured wait.
    pub async fn admit(&self, app_id: &str) -> Result<Ticket, Refusal> {
        let gate = self.gate(app_id);
        let max_running = self.config.max_running;
        if let Ok(permit) = gate.running.clone().try_acquire_owned() {
            return Ok(Ticket {
                permit,
                max_running,
            });
        }
        let queued = gate.queued.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&gate.queued);
        if queued >= self.config.max_queued as usize {
            return Err(Refusal::QueueFull);
        }
        match tokio::time::timeout(self.config.max_wait, gate.running.clone().acquire_owned()).await
        {
            Ok(Ok(permit)) => Ok(Ticket {
                permit,
                max_running,
            }),
            // The semaphore is never closed; a timeout is the only way to fail.
            Ok(Err(_)) | Err(_) => Err(Refusal::Waited),
        }
    }

    /// What app `app_id`'s gate holds now.
    pub fn load(&self, app_id: &str) -> Load {
        let gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates.get(app_id).map_or_else(Load::default, |gate| Load {
            running: self.config.max_running as usize - gate.running.available_permits(),
            queued: gate.queued.load(Ordering::Acquire),
        })
    }

    /// Forgets the gate of a deleted app (its running invocations keep their tickets).
    pub fn forget(&self, app_id: &str) {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates.remove(app_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gates(max_running: u32, max_queued: u32, wait_ms: u64) -> Gates {
        Gates::new(AdmissionConfig {
            max_running,
            max_queued,
            max_wait: Duration::from_millis(wait_ms),
        })
    }

    #[test]
    fn the_default_cap_grows_with_the_cores_from_a_floor() {
        assert_eq!(default_max_running(1), MIN_DEFAULT_RUNNING);
        assert_eq!(default_max_running(2), 16);
        assert_eq!(default_max_running(16), 128);
    }

    #[tokio::test]
    async fn a_full_app_queues_up_to_its_bound_and_refuses_the_rest_at_once() {
        let gates = Arc::new(gates(1, 2, 60_000));
        let first = gates.admit("a").await.unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let gates = gates.clone();
                tokio::spawn(async move { gates.admit("a").await.map(|t| t.running()) })
            })
            .collect();
        while gates.load("a").queued < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            gates.load("a"),
            Load {
                running: 1,
                queued: 2
            }
        );
        assert_eq!(gates.admit("a").await.err(), Some(Refusal::QueueFull));
        // Another app is not affected by a's queue.
        assert!(gates.admit("b").await.is_ok());
        drop(first);
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), Ok(1));
        }
        assert_eq!(gates.load("a"), Load::default());
    }

    #[tokio::test]
    async fn a_waiter_is_refused_after_the_longest_wait_and_leaves_the_queue() {
        let gates = gates(1, 4, 200);
        let _running = gates.admit("a").await.unwrap();
        let started = std::time::Instant::now();
        assert_eq!(gates.admit("a").await.err(), Some(Refusal::Waited));
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(
            gates.load("a"),
            Load {
                running: 1,
                queued: 0
            }
        );
    }

    #[tokio::test]
    async fn a_dropped_waiter_leaves_the_queue() {
        let gates = gates(1, 1, 60_000);
        let _running = gates.admit("a").await.unwrap();
        let waiting = gates.admit("a");
        assert!(
            tokio::time::timeout(Duration::from_millis(10), waiting)
                .await
                .is_err()
        );
        assert_eq!(gates.load("a").queued, 0);
        // Its place is free for the next one.
        let next = tokio::time::timeout(Duration::from_millis(10), gates.admit("a")).await;
        assert!(next.is_err(), "still waits, not refused as queue-full");
    }
}
