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
//! - it has served fewer than [`WARM_MAX_USES`] invocations.
//!
//! It is taken again only by an invocation under the same fuel and memory limits as the
//! one that created it (the Rhai shim derives its own limits from them once per
//! instance). Idle instances are bounded per pool ([`WARM_MAX_IDLE_PER_FUNCTION`]) and
//! runtime-wide (each holds a slot of the pooling allocator): when the runtime-wide
//! bound is reached, the least recently used idle instance of any pool is dropped to
//! make room, so thousands of functions share a fixed number of warm instances and
//! rarely used ones release theirs.
//!
//! Before each use the store gets the new invocation's SDK handle, identity, empty log,
//! fuel budget, epoch deadline and memory limit, so limits and records are exactly those
//! of a fresh store.

use crate::Limits;
use crate::bindings::Function;
use crate::invoke::{Output, State};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
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
    /// The limits of the invocation that created the instance.
    limits: Limits,
    idle_since: Instant,
}

impl<S> Warm<S> {
    pub(crate) fn new(
        store: Store<State<S>>,
        function: Function,
        output: Output,
        uses: u32,
        limits: Limits,
    ) -> Self {
        Self {
            store,
            function,
            output,
            uses,
            limits,
            idle_since: Instant::now(),
        }
    }

    /// Whether an invocation under `limits` may run in this instance.
    fn serves(&self, limits: &Limits) -> bool {
        self.limits.fuel == limits.fuel
            && self.limits.memory_bytes == limits.memory_bytes
            && self.store.data().memory_total() <= limits.memory_bytes
    }
}

/// The idle instances of all pools, by recency.
struct Idle<S: 'static> {
    /// Every idle instance by the stamp it was put back with (oldest first), with the
    /// pool it belongs to.
    by_stamp: BTreeMap<u64, (u64, Warm<S>)>,
    /// The stamps of each pool's idle instances, oldest first.
    by_pool: HashMap<u64, Vec<u64>>,
    next_stamp: u64,
}

impl<S> Idle<S> {
    fn len(&self) -> usize {
        self.by_stamp.len()
    }

    /// Removes the idle instance `stamp` of `pool`.
    fn remove(&mut self, pool: u64, stamp: u64) -> Option<Warm<S>> {
        if let Some(stamps) = self.by_pool.get_mut(&pool) {
            stamps.retain(|s| *s != stamp);
            if stamps.is_empty() {
                self.by_pool.remove(&pool);
            }
        }
        self.by_stamp.remove(&stamp).map(|(_, warm)| warm)
    }

    /// Removes the least recently used idle instance of any pool.
    fn remove_oldest(&mut self) -> Option<Warm<S>> {
        let (&stamp, &(pool, _)) = self.by_stamp.first_key_value()?;
        self.remove(pool, stamp)
    }
}

/// Runtime-wide store of idle warm instances.
pub(crate) struct WarmBudget<S: 'static> {
    idle: Mutex<Idle<S>>,
    max_idle: usize,
    reuses: AtomicU64,
    next_pool: AtomicU64,
}

impl<S> WarmBudget<S> {
    pub(crate) fn new(max_idle: usize) -> Self {
        Self {
            idle: Mutex::new(Idle {
                by_stamp: BTreeMap::new(),
                by_pool: HashMap::new(),
                next_stamp: 0,
            }),
            max_idle,
            reuses: AtomicU64::new(0),
            next_pool: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Idle<S>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn idle(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn reuses(&self) -> u64 {
        self.reuses.load(Ordering::Relaxed)
    }

    pub(crate) fn max_idle(&self) -> usize {
        self.max_idle
    }

    /// Drops the instances idle for longer than `max_idle`; answers how many.
    pub(crate) fn trim(&self, max_idle: Duration) -> usize {
        let stale: Vec<Warm<S>> = {
            let mut idle = self.lock();
            let old: Vec<(u64, u64)> = idle
                .by_stamp
                .iter()
                .take_while(|(_, (_, w))| w.idle_since.elapsed() > max_idle)
                .map(|(&stamp, &(pool, _))| (pool, stamp))
                .collect();
            old.into_iter()
                .filter_map(|(pool, stamp)| idle.remove(pool, stamp))
                .collect()
        };
        // Dropped outside the lock: giving a slot back resets its memory.
        stale.len()
    }
}

/// The idle warm instances of one function version (kept in the runtime-wide store of
/// idle instances). Dropping the pool drops them and returns their slots.
pub struct WarmPool<S: 'static> {
    id: u64,
    budget: Arc<WarmBudget<S>>,
}

impl<S> WarmPool<S> {
    pub(crate) fn new(budget: Arc<WarmBudget<S>>) -> Self {
        Self {
            id: budget.next_pool.fetch_add(1, Ordering::Relaxed),
            budget,
        }
    }

    /// The most recently used idle instance of this pool that serves `limits`; idle
    /// instances made under other limits are dropped.
    pub(crate) fn take(&self, limits: &Limits) -> Option<Warm<S>> {
        let mut unfit = Vec::new();
        let found = {
            let mut idle = self.budget.lock();
            loop {
                let Some(&stamp) = idle.by_pool.get(&self.id).and_then(|s| s.last()) else {
                    break None;
                };
                let warm = idle.remove(self.id, stamp)?;
                if warm.serves(limits) {
                    break Some(warm);
                }
                unfit.push(warm);
            }
        };
        drop(unfit);
        if found.is_some() {
            self.budget.reuses.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Keeps `warm` for a later invocation if it may be kept, making room by dropping
    /// this pool's oldest idle instance (past [`WARM_MAX_IDLE_PER_FUNCTION`]) or the
    /// runtime's least recently used one (past its bound).
    pub(crate) fn put(&self, warm: Warm<S>) {
        let state = warm.store.data();
        if !state.reusable()
            || state.memory_total() > WARM_MAX_MEMORY
            || warm.uses >= WARM_MAX_USES
            || self.budget.max_idle == 0
        {
            return;
        }
        let mut evicted = Vec::new();
        {
            let mut idle = self.budget.lock();
            let own = idle.by_pool.get(&self.id).map_or(0, Vec::len);
            if own >= WARM_MAX_IDLE_PER_FUNCTION
                && let Some(&oldest) = idle.by_pool.get(&self.id).and_then(|s| s.first())
            {
                evicted.extend(idle.remove(self.id, oldest));
            }
            while idle.len() >= self.budget.max_idle {
                match idle.remove_oldest() {
                    Some(warm) => evicted.push(warm),
                    None => break,
                }
            }
            let stamp = idle.next_stamp;
            idle.next_stamp += 1;
            idle.by_stamp.insert(stamp, (self.id, warm));
            idle.by_pool.entry(self.id).or_default().push(stamp);
        }
        // Dropped outside the lock: giving a slot back resets its memory.
        drop(evicted);
    }

    /// Drops this pool's instances idle for longer than `max_idle`; answers how many.
    pub fn trim(&self, max_idle: Duration) -> usize {
        let stale: Vec<Warm<S>> = {
            let mut idle = self.budget.lock();
            let stamps = idle.by_pool.get(&self.id).cloned().unwrap_or_default();
            let old: Vec<u64> = stamps
                .into_iter()
                .filter(|s| {
                    idle.by_stamp
                        .get(s)
                        .is_some_and(|(_, w)| w.idle_since.elapsed() > max_idle)
                })
                .collect();
            old.into_iter()
                .filter_map(|stamp| idle.remove(self.id, stamp))
                .collect()
        };
        stale.len()
    }

    /// How many instances are idle in this pool.
    pub fn idle(&self) -> usize {
        self.budget.lock().by_pool.get(&self.id).map_or(0, Vec::len)
    }
}

impl<S> Drop for WarmPool<S> {
    fn drop(&mut self) {
        let mine: Vec<Warm<S>> = {
            let mut idle = self.budget.lock();
            let stamps = idle.by_pool.get(&self.id).cloned().unwrap_or_default();
            stamps
                .into_iter()
                .filter_map(|stamp| idle.remove(self.id, stamp))
                .collect()
        };
        drop(mine);
    }
}
