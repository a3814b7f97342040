//! Warm instances: after an invocation that ended cleanly, its instance (and store) is
//! kept for the next invocation of the same function instead of instantiating afresh.
//!
//! This is only for guests whose code PiCloud controls and which keep no state of one
//! invocation for the next — the Rhai shim, which builds a fresh Rhai `Scope` for every
//! request from an engine and AST it never mutates (it also keeps which function each
//! call of the script resolves to, which depends on the script alone). An arbitrary component may keep
//! anything in its globals, so it always gets a fresh instance.
//!
//! Each function version has its own [`WarmPool`]; an instance is never shared between
//! functions, versions or apps. An instance is put back only when:
//! - its call returned (an `Ok` response or a WIT error): after any trap, fuel or memory
//!   exhaustion, timeout or cancellation it is dropped;
//! - its linear memory is at most [`WARM_MAX_MEMORY`], so one large request does not pin
//!   its memory;
//! - it has served fewer than [`WARM_MAX_USES`] invocations;
//! - the pool and the runtime-wide budget of idle instances have room (each idle
//!   instance holds a slot of the pooling allocator).
//!
//! Before each use the store gets the new invocation's SDK handle, identity, empty log,
//! fuel budget, epoch deadline and memory limit, so limits and records are exactly those
//! of a fresh store.

use crate::bindings::Function;
use crate::invoke::{Output, State};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wasmtime::Store;

/// An instance larger than this is not kept: its memory goes back to the pool.
pub const WARM_MAX_MEMORY: u64 = 64 * 1024 * 1024;
/// Invocations one instance serves at most before it is replaced by a fresh one, which
/// bounds what fragmentation of the guest's heap can cost.
pub const WARM_MAX_USES: u32 = 10_000;
/// Idle instances kept per function version.
pub const WARM_MAX_IDLE_PER_FUNCTION: usize = 8;

/// An instance, its store and its captured output, between invocations.
pub(crate) struct Warm<S: 'static> {
    pub(crate) store: Store<State<S>>,
    pub(crate) function: Function,
    pub(crate) output: Output,
    pub(crate) uses: u32,
    idle_since: Instant,
}

impl<S> Warm<S> {
    pub(crate) fn new(
        store: Store<State<S>>,
        function: Function,
        output: Output,
        uses: u32,
    ) -> Self {
        Self {
            store,
            function,
            output,
            uses,
            idle_since: Instant::now(),
        }
    }
}

/// Runtime-wide accounting of idle warm instances.
#[derive(Debug, Default)]
pub(crate) struct WarmBudget {
    idle: AtomicUsize,
    max_idle: usize,
    reuses: AtomicU64,
}

impl WarmBudget {
    pub(crate) fn new(max_idle: usize) -> Self {
        Self {
            max_idle,
            ..Self::default()
        }
    }

    fn try_acquire(&self) -> bool {
        self.idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_idle).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        self.idle.fetch_sub(n, Ordering::AcqRel);
    }

    pub(crate) fn idle(&self) -> usize {
        self.idle.load(Ordering::Acquire)
    }

    pub(crate) fn reuses(&self) -> u64 {
        self.reuses.load(Ordering::Relaxed)
    }

    pub(crate) fn max_idle(&self) -> usize {
        self.max_idle
    }
}

/// The idle warm instances of one function version. Dropping the pool drops them and
/// returns their slots.
pub struct WarmPool<S: 'static> {
    idle: Mutex<Vec<Warm<S>>>,
    budget: std::sync::Arc<WarmBudget>,
}

impl<S> WarmPool<S> {
    pub(crate) fn new(budget: std::sync::Arc<WarmBudget>) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            budget,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Warm<S>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle instance whose memory fits `memory_limit`.
    pub(crate) fn take(&self, memory_limit: u64) -> Option<Warm<S>> {
        let mut idle = self.lock();
        while let Some(warm) = idle.pop() {
            self.budget.release(1);
            if warm.store.data().memory_total() <= memory_limit {
                self.budget.reuses.fetch_add(1, Ordering::Relaxed);
                return Some(warm);
            }
        }
        None
    }

    /// Keeps `warm` for a later invocation if it may be kept and there is room.
    pub(crate) fn put(&self, warm: Warm<S>) {
        let state = warm.store.data();
        if !state.reusable() || state.memory_total() > WARM_MAX_MEMORY || warm.uses >= WARM_MAX_USES
        {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < WARM_MAX_IDLE_PER_FUNCTION && self.budget.try_acquire() {
            idle.push(warm);
        }
    }

    /// Drops the instances idle for longer than `max_idle`; answers how many.
    pub fn trim(&self, max_idle: Duration) -> usize {
        let stale: Vec<Warm<S>> = {
            let mut idle = self.lock();
            let (stale, fresh) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|w| w.idle_since.elapsed() > max_idle);
            *idle = fresh;
            stale
        };
        self.budget.release(stale.len());
        stale.len()
    }

    /// How many instances are idle in this pool.
    pub fn idle(&self) -> usize {
        self.lock().len()
    }
}

impl<S> Drop for WarmPool<S> {
    fn drop(&mut self) {
        let n = self.lock().len();
        self.budget.release(n);
    }
}
