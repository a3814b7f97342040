//! Fair sharing of guest CPU between apps (SPEC §3: one tenant's runaway code never slows
//! another noticeably).
//!
//! Guest code runs inside the futures of invocations; a CPU-bound guest yields at every
//! epoch tick (a millisecond, see `picloud_runtime`), and a guest waiting on a host call
//! (the database) yields too. [`CpuScheduler::run`] wraps an invocation's future so that
//! polling it needs one of a fixed number of *CPU slots* (one per worker thread): between
//! two polls the invocation gives its slot back and queues for the next. Which waiting
//! invocation gets a freed slot is decided here, not by tokio's run queue:
//!
//! 1. **Short work first.** An invocation that has used less than [`FRESH_CPU`] of CPU so
//!    far is *fresh*; fresh invocations are served before long runners, so a quick request
//!    waits for at most the slices already running, never behind a queue of long ones.
//! 2. **Round robin between apps.** Among waiters of the same class, the app served
//!    longest ago goes first. Within an app, the invocation that started first goes
//!    first: an app's long runners finish one after another, not all late together.
//! 3. **A share per app.** While several apps are active (running, waiting, or served
//!    within [`ACTIVE_WINDOW`]), no app holds more than its share of the slots
//!    (`slots / active apps`, at least one): a slot stays free for the others' short
//!    requests. An app alone on the host uses every slot.
//! 4. **A slot kept from long runners.** While a tenant with only short requests is
//!    active, long runners of all apps together hold at most `slots - 1` slots. Its
//!    requests then find a slot at once, and the CPU they run on is not also wanted by a
//!    long runner's thread (on 2 cores, three looping tenants beside it cut a short-only
//!    tenant to 0.10× of its requests/s and p99 ×13 without this rule; 0.69× and ×2.2
//!    with it, `cargo bench --bench fairness`).
//!
//! Long SQL runs under the same slots: a tenant's SQLite statement that has run for
//! longer than [`FRESH_CPU`] holds one of its app's slots for each further millisecond
//! (taken on the connection's own thread with [`CpuScheduler::block_for_slot`], see
//! `storage::conn`), so an app's heavy queries and its guests' loops together keep to
//! the app's share of the CPU.
//!
//! A long runner's slice never takes the last worker thread that is not already running
//! one: past that it runs under [`tokio::task::block_in_place`], so some worker always
//! reads new requests (with every worker in a slice, tokio polls the network only between
//! tasks, and a victim's p50 was 75 ms).
//!
//! Lifecycle: one scheduler per process ([`CpuScheduler::new`] with the number of worker
//! threads); [`CpuScheduler::run`] per invocation. The uncontended path (a free slot, no
//! other app active) is one uncontended mutex lock per poll.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// CPU an invocation may use and still count as *fresh* (served before long runners). A
/// typical handler (a Rhai script reading kv, a Rust component) uses well under a
/// millisecond; a fuel slice of a CPU-bound guest is about one.
pub const FRESH_CPU: Duration = Duration::from_millis(2);
/// An app served within this window counts as active for the per-app share, so a
/// tenant with a steady stream of short requests keeps its slot between two requests.
pub const ACTIVE_WINDOW: Duration = Duration::from_millis(50);
/// Beyond this many known apps, apps idle for longer than [`ACTIVE_WINDOW`] are
/// forgotten (their counters are only needed while they are active).
const PRUNE_ABOVE: usize = 64;

/// Hands out CPU slots to invocations; see the module docs.
pub struct CpuScheduler {
    slots: usize,
    /// Long runners' slices running on a worker thread right now.
    inline_long: AtomicUsize,
    /// Invocations so far: each one's arrival number.
    arrivals: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    free: usize,
    /// Slots held by long runners (invocations past [`FRESH_CPU`]).
    running_long: usize,
    /// Grants so far: the round-robin clock.
    grants: u64,
    next_waiter: u64,
    apps: HashMap<Arc<str>, AppShare>,
    /// Waiters granted a slot that have not been polled since (the slot is theirs).
    granted: Vec<u64>,
}

struct AppShare {
    running: usize,
    /// Of `running`, the slots held by this app's long runners.
    running_long: usize,
    /// When this app was last granted a slot for a fresh invocation.
    last_fresh: Option<Instant>,
    waiters: VecDeque<Waiter>,
    /// The grant clock when this app last got a slot.
    last_grant: u64,
    last_active: Instant,
}

struct Waiter {
    id: u64,
    fresh: bool,
    /// When its invocation was first polled (an arrival number).
    started: u64,
    waker: Waker,
}

impl AppShare {
    fn new(now: Instant) -> Self {
        Self {
            running: 0,
            running_long: 0,
            last_fresh: None,
            waiters: VecDeque::new(),
            last_grant: 0,
            last_active: now,
        }
    }

    /// The waiter this app would run next, and whether it is fresh: fresh first, then
    /// the invocation that started first. Within an app, long runners finish one after
    /// another rather than all slowing down together.
    fn next_waiter(&self) -> Option<(usize, bool)> {
        self.waiters
            .iter()
            .enumerate()
            .min_by_key(|(_, w)| (!w.fresh, w.started))
            .map(|(at, w)| (at, w.fresh))
    }

    /// Whether this app runs only short requests and has run one lately: the tenant a
    /// slot is kept free of long runners for.
    fn short_only(&self, now: Instant) -> bool {
        self.running_long == 0
            && self
                .last_fresh
                .is_some_and(|at| now.duration_since(at) < ACTIVE_WINDOW)
            && self.waiters.iter().all(|w| w.fresh)
    }

    /// Counts a slot granted to this app.
    fn grant(&mut self, fresh: bool, grants: u64, now: Instant) {
        self.running += 1;
        if fresh {
            self.last_fresh = Some(now);
        } else {
            self.running_long += 1;
        }
        self.last_grant = grants;
        self.last_active = now;
    }

    fn active(&self, now: Instant) -> bool {
        self.running > 0
            || !self.waiters.is_empty()
            || now.duration_since(self.last_active) < ACTIVE_WINDOW
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl CpuScheduler {
    /// A scheduler with `slots` CPU slots (the number of worker threads; at least 1).
    pub fn new(slots: usize) -> Self {
        let slots = slots.max(1);
        Self {
            slots,
            inline_long: AtomicUsize::new(0),
            arrivals: AtomicU64::new(0),
            state: Mutex::new(State {
                free: slots,
                ..State::default()
            }),
        }
    }

    /// How many slots there are.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Runs `future` (an invocation of app `app`) under the scheduler: each poll holds a
    /// CPU slot. Answers the future's output.
    pub async fn run<F: Future>(self: &Arc<Self>, app: Arc<str>, future: F) -> F::Output {
        self.run_held(app, Held::default(), future).await
    }

    /// [`CpuScheduler::run`] for an invocation whose SQL takes slots on its behalf
    /// with `held` (see [`Held`]).
    pub async fn run_held<F: Future>(
        self: &Arc<Self>,
        app: Arc<str>,
        held: Held,
        future: F,
    ) -> F::Output {
        Scheduled {
            scheduler: self.clone(),
            app,
            future: Box::pin(future),
            cpu: Duration::ZERO,
            started: self.arrivals.fetch_add(1, Ordering::Relaxed),
            waiting: None,
            held,
        }
        .await
    }

    /// Polls a long runner's slice: on this worker thread while another worker stays
    /// free of long slices, else under [`tokio::task::block_in_place`], which hands this
    /// worker's queue (the connections, the timers, short requests) to another thread
    /// for the length of the slice. Without this, slices on every worker would leave
    /// no thread to read new requests, however fair the slots are.
    fn poll_long<T>(&self, poll: impl FnOnce() -> T) -> T {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return poll();
        };
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return poll();
        }
        let workers = handle.metrics().num_workers();
        let inline = self
            .inline_long
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n + 1 < workers).then_some(n + 1)
            })
            .is_ok();
        if inline {
            struct Done<'a>(&'a AtomicUsize);
            impl Drop for Done<'_> {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::AcqRel);
                }
            }
            let _done = Done(&self.inline_long);
            poll()
        } else {
            tokio::task::block_in_place(poll)
        }
    }

    /// Blocks the calling thread, which must not be one of tokio's workers (a SQLite
    /// connection's own thread), until app `app` may run a long slice, as a long runner
    /// of that app; `None` once `deadline` passes first. The slot counts against the
    /// app's share like its invocations' slices.
    pub fn block_for_slot(
        self: &Arc<Self>,
        app: &Arc<str>,
        deadline: Option<Instant>,
        held: Option<&Held>,
    ) -> Option<ThreadSlot> {
        let started = self.arrivals.fetch_add(1, Ordering::Relaxed);
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut waiting = None;
        loop {
            if self.acquire(app, false, started, &mut waiting, &waker) {
                if let Some(held) = held {
                    held.0.fetch_add(1, Ordering::AcqRel);
                }
                return Some(ThreadSlot {
                    scheduler: self.clone(),
                    app: app.clone(),
                    held: held.cloned(),
                });
            }
            match deadline {
                None => std::thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        if let Some(id) = waiting.take() {
                            self.withdraw(app, id, false);
                        }
                        return None;
                    }
                    std::thread::park_timeout(deadline - now);
                }
            }
        }
    }

    /// Takes a slot for a slice of `app` (fresh or long; `started` is its arrival
    /// number), or queues for one: `waiting` is the waiter's id while queued, `waker`
    /// what wakes it when a slot is granted. Answers whether the slot is held now.
    fn acquire(
        &self,
        app: &Arc<str>,
        fresh: bool,
        started: u64,
        waiting: &mut Option<u64>,
        waker: &Waker,
    ) -> bool {
        let now = Instant::now();
        let mut state = lock(&self.state);
        let has_slot = match waiting.take() {
            Some(id) => match state.granted.iter().position(|&g| g == id) {
                Some(at) => {
                    state.granted.swap_remove(at);
                    true
                }
                None => {
                    // Still queued: refresh the waker (a spurious or outside wake-up).
                    let entry = state.apps.get_mut(app).expect("a waiter's app");
                    if let Some(w) = entry.waiters.iter_mut().find(|w| w.id == id) {
                        w.waker.clone_from(waker);
                    }
                    *waiting = Some(id);
                    false
                }
            },
            None => self.try_take(&mut state, app, fresh, now),
        };
        if !has_slot && waiting.is_none() {
            state.next_waiter += 1;
            let id = state.next_waiter;
            state
                .apps
                .entry(app.clone())
                .or_insert_with(|| AppShare::new(now))
                .waiters
                .push_back(Waiter {
                    id,
                    fresh,
                    started,
                    waker: waker.clone(),
                });
            *waiting = Some(id);
            // A slot may be free while this app is at its share: another app's waiter
            // may take it.
            self.hand_out(&mut state, now);
        }
        has_slot
    }

    /// Withdraws waiter `id` of `app`: out of the queue, or, when it was granted a slot
    /// it never used, the slot passes on.
    fn withdraw(&self, app: &Arc<str>, id: u64, fresh: bool) {
        let now = Instant::now();
        let mut state = lock(&self.state);
        if let Some(at) = state.granted.iter().position(|&g| g == id) {
            state.granted.swap_remove(at);
            self.release(&mut state, app, fresh, now);
        } else if let Some(entry) = state.apps.get_mut(app) {
            entry.waiters.retain(|w| w.id != id);
        }
    }

    /// The slot share of one app while `active` apps are active.
    fn share(&self, active: usize) -> usize {
        (self.slots / active.max(1)).max(1)
    }

    /// Takes a slot for `app` now if the rules allow it without overtaking a waiter.
    fn try_take(&self, state: &mut State, app: &Arc<str>, fresh: bool, now: Instant) -> bool {
        if state.free == 0 {
            return false;
        }
        if !fresh && state.running_long >= self.long_cap(state, now) {
            return false;
        }
        let (others_waiting, active) = survey(state, app, now);
        let share = self.share(active);
        let entry = state
            .apps
            .entry(app.clone())
            .or_insert_with(|| AppShare::new(now));
        // A waiter of another app that this grant would overtake, or a share used up
        // while others are active: queue instead.
        let overtakes = others_waiting.is_some_and(|best_fresh| best_fresh || !fresh);
        if overtakes || (active > 1 && entry.running >= share) {
            return false;
        }
        state.grants += 1;
        entry.grant(fresh, state.grants, now);
        if !fresh {
            state.running_long += 1;
        }
        state.free -= 1;
        true
    }

    /// How many slots long runners may hold together: all of them, but one while a
    /// tenant with only short requests is active, so its requests never wait behind a
    /// slice (nor for a CPU behind long runners' threads).
    fn long_cap(&self, state: &State, now: Instant) -> usize {
        if self.slots >= 2 && state.apps.values().any(|a| a.short_only(now)) {
            self.slots - 1
        } else {
            self.slots
        }
    }

    /// Gives back the slot `app` held (for a long runner unless `fresh`) and hands free
    /// slots to the waiters the rules pick.
    fn release(&self, state: &mut State, app: &Arc<str>, fresh: bool, now: Instant) {
        if let Some(entry) = state.apps.get_mut(app) {
            entry.running = entry.running.saturating_sub(1);
            if !fresh {
                entry.running_long = entry.running_long.saturating_sub(1);
            }
            entry.last_active = now;
        }
        if !fresh {
            state.running_long = state.running_long.saturating_sub(1);
        }
        state.free += 1;
        self.hand_out(state, now);
    }

    /// Grants free slots to waiters: fresh before long, the app served longest ago first,
    /// within an app in arrival order; an app at its share waits while others are active.
    fn hand_out(&self, state: &mut State, now: Instant) {
        while state.free > 0 {
            let active = state.apps.values().filter(|a| a.active(now)).count();
            let share = self.share(active);
            let long_room = state.running_long < self.long_cap(state, now);
            let pick = state
                .apps
                .iter()
                .filter(|(_, a)| active <= 1 || a.running < share)
                .filter_map(|(name, a)| {
                    a.next_waiter()
                        .filter(|&(_, fresh)| fresh || long_room)
                        .map(|(at, fresh)| (name, at, fresh, a.last_grant))
                })
                .min_by_key(|&(_, _, fresh, last_grant)| (!fresh, last_grant))
                .map(|(name, at, _, _)| (name.clone(), at));
            let Some((name, at)) = pick else { break };
            let entry = state.apps.get_mut(&name).expect("picked app exists");
            let waiter = entry.waiters.remove(at).expect("picked app has a waiter");
            state.grants += 1;
            entry.grant(waiter.fresh, state.grants, now);
            if !waiter.fresh {
                state.running_long += 1;
            }
            state.free -= 1;
            state.granted.push(waiter.id);
            waiter.waker.wake();
        }
        if state.apps.len() > PRUNE_ABOVE {
            state.apps.retain(|_, a| a.active(now));
        }
    }
}

/// Whether an app other than `app` has a waiter (and whether the best such waiter is
/// fresh), and how many apps are active, `app` included.
fn survey(state: &State, app: &Arc<str>, now: Instant) -> (Option<bool>, usize) {
    let mut others_waiting: Option<bool> = None;
    let mut active = 0;
    let mut app_counted = false;
    for (name, share) in &state.apps {
        if share.active(now) {
            active += 1;
        }
        if name == app {
            app_counted = share.active(now);
            continue;
        }
        if share.waiters.iter().any(|w| w.fresh) {
            others_waiting = Some(true);
        } else if !share.waiters.is_empty() && others_waiting.is_none() {
            others_waiting = Some(false);
        }
    }
    if !app_counted {
        active += 1;
    }
    (others_waiting, active)
}

/// An invocation's future under the scheduler.
struct Scheduled<F> {
    scheduler: Arc<CpuScheduler>,
    app: Arc<str>,
    /// Boxed, so this wrapper is `Unpin` (an invocation's future is large and boxed
    /// anyway by the caller's needs; one allocation per invocation).
    future: Pin<Box<F>>,
    /// CPU spent polling the future so far.
    cpu: Duration,
    /// Its arrival number (see [`Waiter::started`]).
    started: u64,
    /// The waiter id while queued for a slot.
    waiting: Option<u64>,
    /// Slots its SQL holds for it.
    held: Held,
}

impl<F: Future> Future for Scheduled<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let scheduler = this.scheduler.clone();
        let fresh = this.cpu < FRESH_CPU;
        if this.held.any() {
            // Its SQL holds a slot: read the statement's rows under it (see `Held`).
            if let Some(id) = this.waiting.take() {
                scheduler.withdraw(&this.app, id, fresh);
            }
            let started = Instant::now();
            let result = this.future.as_mut().poll(cx);
            this.cpu += started.elapsed();
            return result;
        }
        if !scheduler.acquire(
            &this.app,
            fresh,
            this.started,
            &mut this.waiting,
            cx.waker(),
        ) {
            return Poll::Pending;
        }
        let started = Instant::now();
        let result = if fresh {
            this.future.as_mut().poll(cx)
        } else {
            scheduler.poll_long(|| this.future.as_mut().poll(cx))
        };
        let now = Instant::now();
        this.cpu += now.duration_since(started);
        scheduler.release(&mut lock(&scheduler.state), &this.app, fresh, now);
        result
    }
}

impl<F> Drop for Scheduled<F> {
    fn drop(&mut self) {
        if let Some(id) = self.waiting.take() {
            self.scheduler.withdraw(&self.app, id, self.cpu < FRESH_CPU);
        }
    }
}

/// A CPU slot held by a thread outside tokio's workers for a long slice of app `app`'s
/// work (a SQLite connection's thread running a long statement); given back when
/// dropped.
pub struct ThreadSlot {
    scheduler: Arc<CpuScheduler>,
    app: Arc<str>,
    held: Option<Held>,
}

/// The slots held on an invocation's behalf by its SQL ([`ThreadSlot`]s). While one is
/// held the invocation itself is polled without taking another: it is one logical
/// thread of work, either in the guest or in its SQL, and a statement's rows are read
/// by the invocation's polls (a statement holding the app's only slot while it waits
/// for its rows to be read, and the invocation waiting for a slot to read them, would
/// otherwise wait for each other).
#[derive(Clone, Default, Debug)]
pub struct Held(Arc<AtomicUsize>);

impl Held {
    fn any(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }
}

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        if let Some(held) = &self.held {
            held.0.fetch_sub(1, Ordering::AcqRel);
        }
        let mut state = lock(&self.scheduler.state);
        self.scheduler
            .release(&mut state, &self.app, false, Instant::now());
    }
}

impl std::fmt::Debug for ThreadSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadSlot")
            .field("app", &self.app)
            .finish()
    }
}

/// Wakes a thread parked in [`CpuScheduler::block_for_slot`].
struct Unpark(std::thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> Arc<str> {
        name.into()
    }

    /// Queues a waiter of `app` as a poll that found no slot would.
    fn queue(scheduler: &CpuScheduler, app: &Arc<str>, fresh: bool) -> u64 {
        let mut state = lock(&scheduler.state);
        state.next_waiter += 1;
        let id = state.next_waiter;
        state
            .apps
            .entry(app.clone())
            .or_insert_with(|| AppShare::new(Instant::now()))
            .waiters
            .push_back(Waiter {
                id,
                fresh,
                started: id,
                waker: Waker::noop().clone(),
            });
        id
    }

    fn take(scheduler: &CpuScheduler, app: &Arc<str>, fresh: bool) -> bool {
        scheduler.try_take(&mut lock(&scheduler.state), app, fresh, Instant::now())
    }

    /// Ends a poll of `app` that held a slot (of a fresh invocation or a long runner).
    fn release(scheduler: &CpuScheduler, app: &Arc<str>, fresh: bool) -> Vec<u64> {
        let mut state = lock(&scheduler.state);
        scheduler.release(&mut state, app, fresh, Instant::now());
        std::mem::take(&mut state.granted)
    }

    #[test]
    fn an_app_alone_uses_every_slot() {
        let scheduler = CpuScheduler::new(2);
        let a = app("a");
        assert!(take(&scheduler, &a, false));
        assert!(take(&scheduler, &a, false));
        assert!(!take(&scheduler, &a, false), "only two slots");
    }

    #[test]
    fn a_fresh_waiter_of_another_app_goes_before_queued_long_runners() {
        let scheduler = CpuScheduler::new(1);
        let (a, b) = (app("a"), app("b"));
        assert!(take(&scheduler, &a, false));
        let long: Vec<u64> = (0..3).map(|_| queue(&scheduler, &a, false)).collect();
        let fresh = queue(&scheduler, &b, true);
        assert_eq!(release(&scheduler, &a, false), [fresh]);
        assert_eq!(
            release(&scheduler, &b, true),
            [long[0]],
            "then the long runners, in order"
        );
    }

    #[test]
    fn apps_waiting_alike_are_served_round_robin() {
        let scheduler = CpuScheduler::new(1);
        let (a, b) = (app("a"), app("b"));
        assert!(take(&scheduler, &a, false));
        let a1 = queue(&scheduler, &a, false);
        let a2 = queue(&scheduler, &a, false);
        let b1 = queue(&scheduler, &b, false);
        let b2 = queue(&scheduler, &b, false);
        // a was served last, so b goes first, then they alternate.
        assert_eq!(release(&scheduler, &a, false), [b1]);
        assert_eq!(release(&scheduler, &b, false), [a1]);
        assert_eq!(release(&scheduler, &a, false), [b2]);
        assert_eq!(release(&scheduler, &b, false), [a2]);
    }

    #[test]
    fn while_another_app_is_active_a_long_runner_keeps_to_its_share() {
        let scheduler = CpuScheduler::new(2);
        let (a, b) = (app("a"), app("b"));
        assert!(take(&scheduler, &a, false));
        assert!(take(&scheduler, &a, false));
        let b1 = queue(&scheduler, &b, true);
        let a1 = queue(&scheduler, &a, false);
        let a2 = queue(&scheduler, &a, false);
        assert_eq!(
            release(&scheduler, &a, false),
            [b1],
            "b's short request first"
        );
        assert_eq!(release(&scheduler, &a, false), [a1], "a keeps one slot");
        // b's request ends; a, at its share while b is active, does not take b's slot...
        assert_eq!(release(&scheduler, &b, true), Vec::<u64>::new());
        // ...which b's next request finds free.
        assert!(take(&scheduler, &b, true));
        assert_eq!(
            release(&scheduler, &a, false),
            [a2],
            "a's own slot passes to its next slice"
        );
    }

    #[test]
    fn within_an_app_the_invocation_that_started_first_runs_first() {
        let scheduler = CpuScheduler::new(1);
        let a = app("a");
        assert!(take(&scheduler, &a, false));
        // Long runners queue again after each slice: the oldest goes next, so they
        // finish one after another instead of all slowing down together.
        let first = queue(&scheduler, &a, false);
        let second = queue(&scheduler, &a, false);
        lock(&scheduler.state).apps.get_mut(&a).unwrap().waiters[1].started = 0;
        assert_eq!(release(&scheduler, &a, false), [second]);
        assert_eq!(release(&scheduler, &a, false), [first]);
    }

    #[test]
    fn long_runners_leave_a_slot_to_a_tenant_with_only_short_requests() {
        let scheduler = CpuScheduler::new(2);
        let (a, b, c, v) = (app("a"), app("b"), app("c"), app("victim"));
        // Three apps of long runners, nobody else: they share both slots.
        assert!(take(&scheduler, &a, false));
        assert!(take(&scheduler, &b, false));
        let c1 = queue(&scheduler, &c, false);
        assert_eq!(release(&scheduler, &a, false), [c1]);
        // A tenant with short requests comes; its first one waits for a slot.
        let v1 = queue(&scheduler, &v, true);
        let a1 = queue(&scheduler, &a, false);
        assert_eq!(release(&scheduler, &b, false), [v1]);
        // While it is active, long runners hold one slot between them...
        assert_eq!(release(&scheduler, &v, true), Vec::<u64>::new());
        assert!(!take(&scheduler, &b, false));
        // ...and the other is free for its next request at once.
        assert!(take(&scheduler, &v, true));
        assert_eq!(release(&scheduler, &v, true), Vec::<u64>::new());
        assert_eq!(release(&scheduler, &c, false), [a1]);
    }

    #[test]
    fn an_app_alone_with_short_and_long_requests_uses_every_slot() {
        let scheduler = CpuScheduler::new(2);
        let a = app("a");
        assert!(take(&scheduler, &a, true));
        assert_eq!(release(&scheduler, &a, true), Vec::<u64>::new());
        // Its own short requests do not hold a slot back from its long runners.
        assert!(take(&scheduler, &a, false));
        assert!(take(&scheduler, &a, false));
    }

    #[test]
    fn a_dropped_waiter_leaves_the_queue_and_a_dropped_grant_passes_on() {
        let scheduler = Arc::new(CpuScheduler::new(1));
        let (a, b) = (app("a"), app("b"));
        assert!(take(&scheduler, &a, false));
        let gone = queue(&scheduler, &b, true);
        let next = queue(&scheduler, &a, false);
        // b's waiter is granted the slot, then dropped before it runs.
        assert_eq!(release(&scheduler, &a, false), [gone]);
        lock(&scheduler.state).granted.push(gone);
        drop(Scheduled {
            scheduler: scheduler.clone(),
            app: b.clone(),
            future: Box::pin(std::future::ready(())),
            cpu: Duration::ZERO,
            started: 0,
            waiting: Some(gone),
            held: Held::default(),
        });
        assert_eq!(lock(&scheduler.state).granted, [next]);
        assert_eq!(lock(&scheduler.state).free, 0);
    }

    #[test]
    fn a_thread_waits_for_a_slot_and_gives_up_at_its_deadline() {
        let scheduler = Arc::new(CpuScheduler::new(1));
        let (a, b) = (app("a"), app("b"));
        let held = scheduler.block_for_slot(&a, None, None).unwrap();
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(scheduler.block_for_slot(&b, Some(soon), None).is_none());
        assert!(
            lock(&scheduler.state).apps[&b].waiters.is_empty(),
            "gone from the queue"
        );
        // A thread waiting without a deadline gets the slot when it is given back.
        let waiter = {
            let (scheduler, b) = (scheduler.clone(), b.clone());
            std::thread::spawn(move || scheduler.block_for_slot(&b, None, None).is_some())
        };
        while lock(&scheduler.state).apps[&b].waiters.is_empty() {
            std::thread::yield_now();
        }
        drop(held);
        assert!(waiter.join().unwrap());
        assert_eq!(
            lock(&scheduler.state).free,
            1,
            "its slot went back when dropped"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn futures_under_the_scheduler_all_complete_and_never_exceed_the_slots() {
        let scheduler = Arc::new(CpuScheduler::new(1));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (scheduler, running, most) = (scheduler.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    let app: Arc<str> = format!("app{}", i % 3).into();
                    scheduler
                        .run(app, async move {
                            for _ in 0..5 {
                                let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                most.fetch_max(now + 1, std::sync::atomic::Ordering::SeqCst);
                                std::thread::sleep(Duration::from_micros(200));
                                running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                                tokio::task::yield_now().await;
                            }
                            i
                        })
                        .await
                })
            })
            .collect();
        let mut done = Vec::new();
        for task in tasks {
            done.push(task.await.unwrap());
        }
        assert_eq!(done, (0..8).collect::<Vec<_>>());
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(lock(&scheduler.state).free, 1);
    }
}
