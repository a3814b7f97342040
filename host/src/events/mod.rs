//! The event dispatcher: drains the change-event outbox into deliveries to the triggers
//! each event matches, and runs them through the invocation core with `ctx.event`,
//! retrying with exponential backoff and turning an event that exhausted its attempts
//! into a dead letter (which fires the app's dead-letter triggers; a failing dead-letter
//! handler is never itself dead-lettered).
//!
//! Delivery is at least once: the event's `id` is in `ctx.event`, the same on every
//! attempt, so a handler can be idempotent. Apps share a node's deliveries fairly: at
//! most [`DispatchConfig::max_in_flight_per_app`] of one app run at once, and claims pass
//! over an app running that many. Each node runs one dispatcher; the storage
//! steps let several share one PostgreSQL database (see `storage::triggers`). A write on
//! this node wakes the dispatcher at once; writes of other nodes and due retries are seen
//! at the next poll.

pub mod cron;
pub mod realtime;

use crate::invoke::{Call, Code, Failure, Invoker, Trigger};
use crate::jobs::Jobs;
use crate::storage::triggers::{Claimed, TriggerRecord};
use crate::storage::{Db, Dialect, now_ms};
use picloud_runtime::Request;
use rand::Rng;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// How the dispatcher works.
#[derive(Debug, Clone, Copy)]
pub struct DispatchConfig {
    /// How often it looks for work nothing woke it for (other nodes' writes, retries).
    pub poll: Duration,
    /// Change events taken from the outbox per transaction.
    pub fan_out_batch: u32,
    /// Deliveries running at once on this node.
    pub max_in_flight: usize,
    /// Deliveries of one app running at once on this node: while an app has this many
    /// running, claims pass its events over, so one app's backlog does not hold up
    /// another's events (its own wait; they run in order as its deliveries end).
    pub max_in_flight_per_app: usize,
    /// How long a claimed delivery is this node's before another may take it (a node
    /// that died holding it): longer than any invocation should run.
    pub lease: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(250),
            fan_out_batch: 256,
            max_in_flight: 64,
            max_in_flight_per_app: 32,
            lease: Duration::from_secs(15 * 60),
        }
    }
}

/// While deliveries run, the dispatcher claims more once this many can start.
const CLAIM_BATCH: usize = 16;

/// Defaults of a trigger's retries (SPEC §6).
pub const DEFAULT_MAX_ATTEMPTS: i64 = 3;
/// See [`DEFAULT_MAX_ATTEMPTS`].
pub const DEFAULT_BACKOFF_MS: i64 = 1_000;
/// Most attempts a trigger may ask for, and its longest first backoff.
pub const MAX_ATTEMPTS: i64 = 20;
/// See [`MAX_ATTEMPTS`].
pub const MAX_BACKOFF_MS: i64 = 3_600_000;
/// A retry is never scheduled later than this after a failure.
const MAX_RETRY_DELAY_MS: i64 = 24 * 3_600_000;

/// The delay before retry `attempt` (1 after the first failure): `backoff_ms` doubled
/// per earlier retry, ±20 % jitter, at most a day.
pub fn retry_delay_ms(backoff_ms: i64, attempt: i64) -> i64 {
    let doublings = u32::try_from((attempt - 1).clamp(0, 30)).unwrap_or(30);
    let base = backoff_ms
        .saturating_mul(1_i64 << doublings)
        .min(MAX_RETRY_DELAY_MS);
    let jitter = rand::rng().random_range(0.8..=1.2);
    ((base as f64) * jitter) as i64
}

/// One node's dispatcher.
pub struct Dispatcher {
    db: Db,
    invoker: Arc<Invoker>,
    config: DispatchConfig,
    /// Woken by writes that recorded change events (once committed) and by deliveries
    /// that ended (the next event of their key may run now).
    wake: Arc<Notify>,
    in_flight: Arc<Semaphore>,
    /// Deliveries running, by app id.
    running: std::sync::Mutex<HashMap<String, usize>>,
    /// Deliveries that succeeded and are not yet recorded done, and whether a task is
    /// recording them (see [`Dispatcher::done`]).
    finished: std::sync::Mutex<Finished>,
}

/// See [`Dispatcher::done`].
#[derive(Default)]
struct Finished {
    ids: Vec<i64>,
    recording: bool,
}

/// What a batch of claimed deliveries needs from the database, read once per batch
/// rather than once per delivery: their triggers, and their apps' names. A lookup that
/// failed is absent, and the delivery reads it itself.
#[derive(Default)]
struct Lookups {
    triggers: HashMap<(String, String), Option<TriggerRecord>>,
    app_names: HashMap<String, Option<String>>,
}

impl Dispatcher {
    /// A dispatcher over `db`, running functions with `invoker`.
    pub fn new(db: Db, invoker: Arc<Invoker>, config: DispatchConfig) -> Arc<Self> {
        Arc::new(Self {
            wake: db.events_written(),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            running: std::sync::Mutex::default(),
            finished: std::sync::Mutex::default(),
            db,
            invoker,
            config,
        })
    }

    /// Starts the dispatcher as a job of `jobs` (stopped by its shutdown; deliveries in
    /// progress then get the jobs' grace, and any cut short run again later).
    pub async fn start(self: &Arc<Self>, jobs: &Jobs) {
        if self.db.dialect() == Dialect::Sqlite {
            // One process owns a SQLite database: a claim left by the last run of this
            // process (which died or was stopped mid-delivery) is void now.
            if let Err(e) = self.db.release_claims().await {
                tracing::warn!(error = %e, "releasing the last run's event claims failed");
            }
        }
        let dispatcher = self.clone();
        jobs.draining("events", self.wake.clone(), self.config.poll, move || {
            let dispatcher = dispatcher.clone();
            async move { dispatcher.step().await }
        });
    }

    /// One round: fans out the outbox, then starts as many due deliveries as there is
    /// room for. Answers whether it found work (the job then runs it again at once).
    pub async fn step(self: &Arc<Self>) -> bool {
        let mut busy = false;
        match self.db.fan_out(now_ms(), self.config.fan_out_batch).await {
            Ok(n) => busy |= n > 0,
            Err(e) => {
                tracing::warn!(error = %e, "taking events from the outbox failed");
                return false;
            }
        }
        match self.fire_cron().await {
            Ok(n) => busy |= n > 0,
            Err(e) => tracing::warn!(error = %e, "firing cron triggers failed"),
        }
        // Claims go in batches while deliveries run: one claim statement per few
        // deliveries, not per delivery, when the queue is long.
        let room = self.in_flight.available_permits();
        let running = self.config.max_in_flight - room;
        if room == 0 || (running > 0 && room < CLAIM_BATCH.min(self.config.max_in_flight)) {
            return busy;
        }
        let now = now_ms();
        let lease_until =
            now.saturating_add(i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX));
        // Apps running their share are passed over.
        let per_app = self.config.max_in_flight_per_app.max(1);
        let busy_apps: Vec<String> = self
            .running()
            .iter()
            .filter(|(_, n)| **n >= per_app)
            .map(|(app, _)| app.clone())
            .collect();
        let claimed = match self
            .db
            .claim_deliveries(
                now,
                lease_until,
                // At most one app's share at a time: the claim after it passes over
                // an app that took it all.
                u32::try_from(room.min(per_app)).unwrap_or(u32::MAX),
                &busy_apps,
            )
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "claiming event deliveries failed");
                return busy;
            }
        };
        busy |= !claimed.is_empty();
        let lookups = Arc::new(self.look_up(&claimed).await);
        for delivery in claimed {
            let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                // Cannot happen (this task alone takes permits); the lease lapses.
                break;
            };
            let dispatcher = self.clone();
            let app_id = delivery.app_id.clone();
            *self.running().entry(app_id.clone()).or_default() += 1;
            let lookups = lookups.clone();
            tokio::spawn(async move {
                dispatcher.deliver(delivery, &lookups).await;
                {
                    let mut running = dispatcher.running();
                    if let Some(n) = running.get_mut(&app_id) {
                        *n -= 1;
                        if *n == 0 {
                            running.remove(&app_id);
                        }
                    }
                }
                drop(permit);
                dispatcher.wake.notify_one();
            });
        }
        busy
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finished(&self) -> std::sync::MutexGuard<'_, Finished> {
        self.finished.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the triggers and app names of `claimed`, each once.
    async fn look_up(&self, claimed: &[Claimed]) -> Lookups {
        let mut lookups = Lookups::default();
        for delivery in claimed {
            if !lookups.app_names.contains_key(&delivery.app_id)
                && let Ok(name) = self.db.app_name(&delivery.app_id).await
            {
                lookups.app_names.insert(delivery.app_id.clone(), name);
            }
            let key = (delivery.app_id.clone(), delivery.trigger_name.clone());
            if !delivery.trigger_name.is_empty()
                && !lookups.triggers.contains_key(&key)
                && let Ok(trigger) = self
                    .db
                    .get_trigger(&delivery.app_id, &delivery.trigger_name)
                    .await
            {
                lookups.triggers.insert(key, trigger);
            }
        }
        lookups
    }

    /// Records delivery `id` done, together with the others that end meanwhile: the first
    /// to end records them all, one statement per round until none is left, while the
    /// rest return at once (group commit: on SQLite a commit is a disk flush, and one
    /// per delivery would bound deliveries per second by the disk). A delivery recorded
    /// done lets the next event of its key run, so the dispatcher is woken after each
    /// round. Until then a delivery stays claimed: if the process dies first it runs
    /// again once its claim lapses (at least once).
    async fn done(&self, id: i64) {
        {
            let mut finished = self.finished();
            finished.ids.push(id);
            if finished.recording {
                return;
            }
            finished.recording = true;
        }
        // Should this task end mid-round (the runtime shutting down), another records
        // the rest.
        struct Recording<'a>(&'a Dispatcher, bool);
        impl Drop for Recording<'_> {
            fn drop(&mut self) {
                if self.1 {
                    self.0.finished().recording = false;
                }
            }
        }
        let mut recording = Recording(self, true);
        loop {
            let ids = {
                let mut finished = self.finished();
                if finished.ids.is_empty() {
                    finished.recording = false;
                    recording.1 = false;
                    return;
                }
                std::mem::take(&mut finished.ids)
            };
            if let Err(e) = self.db.deliveries_done(&ids, now_ms()).await {
                tracing::warn!(error = %e, deliveries = ids.len(), "recording deliveries done failed; they run again once their claims lapse");
            }
            self.wake.notify_one();
        }
    }

    /// Fires the cron triggers that are due: each due tick once in the cluster (the
    /// node that moves the trigger's next tick queues its delivery). After downtime a
    /// trigger that missed several ticks fires once, for the first it missed, and its
    /// next tick is the first after now. Answers how many it fired.
    async fn fire_cron(&self) -> Result<usize, crate::storage::StorageError> {
        // The invoker's clock (the wall clock, or a test's): schedules follow it.
        let now = self.invoker.clock().now_ms();
        let mut fired = 0;
        for (app_id, trigger) in self.db.due_cron(now, self.config.fan_out_batch).await? {
            let (Some(schedule), Some(tick)) = (&trigger.schedule, trigger.next_tick) else {
                continue;
            };
            let next = match cron::parse(schedule) {
                Ok(parsed) => cron::next_tick(&parsed, now.max(tick)),
                Err(e) => {
                    // Checked at creation: only a change of the parser gets here.
                    tracing::warn!(app = %app_id, trigger = %trigger.name, error = %e, "a cron trigger's schedule no longer parses; it stops");
                    None
                }
            };
            let event = serde_json::json!({
                "id": format!("cron-{}-{tick}", trigger.name),
                "source": "cron",
                "schedule": schedule,
                "tick": tick,
                "trigger": trigger.name,
            });
            if self
                .db
                // The delivery is due now by the wall clock the claims go by.
                .fire_cron(
                    &app_id,
                    &trigger.name,
                    tick,
                    next,
                    &event.to_string(),
                    now_ms(),
                )
                .await?
            {
                fired += 1;
            }
        }
        Ok(fired)
    }

    /// Runs an async route's queued request once and keeps its answer (a transient
    /// refusal — the app or host busy — only postpones it).
    async fn deliver_async(&self, delivery: Claimed, lookups: &Lookups) {
        let function = delivery.function.clone().unwrap_or_default();
        let request = match serde_json::from_str::<QueuedRequest>(&delivery.event)
            .map_err(|e| e.to_string())
            .and_then(QueuedRequest::into_request)
        {
            Ok(request) => request,
            Err(e) => {
                let error = format!("the queued request is unreadable: {e}");
                let _ = self
                    .db
                    .execution_finished(delivery.id, None, Some(&error), now_ms())
                    .await;
                return;
            }
        };
        let outcome = self
            .run(&delivery, lookups, &function, request, Trigger::Async)
            .await;
        let result = match outcome {
            Err(failure) if failure.code.is_transient() => {
                let delay = failure.retry_after.map_or(DEFAULT_BACKOFF_MS, |s| {
                    i64::try_from(s * 1000).unwrap_or(i64::MAX)
                });
                self.db
                    .delivery_postpone(delivery.id, now_ms().saturating_add(delay))
                    .await
            }
            Err(failure) => {
                self.db
                    .execution_finished(delivery.id, None, Some(&failure.to_string()), now_ms())
                    .await
            }
            Ok(response) => {
                let kept = KeptResponse::from(&response).to_json();
                let error = (response.status >= 500)
                    .then(|| format!("the function answered status {}", response.status));
                self.db
                    .execution_finished(delivery.id, Some(&kept), error.as_deref(), now_ms())
                    .await
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, execution = delivery.id, "recording an async execution failed; it runs again once its claim lapses");
        }
    }

    /// Runs one claimed delivery and records how it went.
    async fn deliver(&self, delivery: Claimed, lookups: &Lookups) {
        if delivery.trigger_name.is_empty() {
            return self.deliver_async(delivery, lookups).await;
        }
        let now = || now_ms();
        let looked_up = lookups
            .triggers
            .get(&(delivery.app_id.clone(), delivery.trigger_name.clone()))
            .cloned();
        let trigger = match looked_up {
            Some(found) => Ok(found),
            None => {
                self.db
                    .get_trigger(&delivery.app_id, &delivery.trigger_name)
                    .await
            }
        };
        let trigger = match trigger {
            Ok(Some(trigger)) => trigger,
            // Deleted since: its deliveries went with it.
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "loading a trigger failed; the delivery runs again later");
                let _ = self
                    .db
                    .delivery_postpone(delivery.id, now() + DEFAULT_BACKOFF_MS)
                    .await;
                return;
            }
        };
        let kind = if delivery.handles_dead_letter {
            Trigger::DeadLetter
        } else {
            match event_source(&delivery.event).as_deref() {
                Some("email") => Trigger::Email,
                Some("cron") => Trigger::Cron,
                Some("pubsub") => Trigger::Pubsub,
                _ => Trigger::Change,
            }
        };
        let request = Request {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            headers: Vec::new(),
            params: Vec::new(),
            body: Vec::new(),
            event: Some(delivery.event.clone()),
        };
        // A status of 500 or more fails the delivery, as a failed invocation does.
        let outcome = match self
            .run(&delivery, lookups, &trigger.function, request, kind)
            .await
        {
            Ok(response) if response.status >= 500 => Err(Failure::new(
                Code::FunctionFailed,
                format!("the function answered status {}", response.status),
            )),
            Ok(_) => Ok(()),
            Err(failure) => Err(failure),
        };
        let result = match outcome {
            Ok(()) => {
                self.done(delivery.id).await;
                Ok(())
            }
            Err(failure) if failure.code.is_transient() => {
                // The app or host was busy: no attempt is counted.
                let delay = failure.retry_after.map_or(DEFAULT_BACKOFF_MS, |s| {
                    i64::try_from(s * 1000).unwrap_or(i64::MAX)
                });
                self.db
                    .delivery_postpone(delivery.id, now().saturating_add(delay))
                    .await
            }
            Err(failure) if delivery.attempt < trigger.max_attempts => {
                let next =
                    now().saturating_add(retry_delay_ms(trigger.backoff_ms, delivery.attempt));
                self.db
                    .delivery_retry(delivery.id, next, &failure.to_string(), now())
                    .await
            }
            Err(failure) => {
                tracing::info!(
                    app = %delivery.app_id,
                    trigger = %delivery.trigger_name,
                    attempts = delivery.attempt,
                    error = %failure,
                    "{}",
                    if delivery.handles_dead_letter {
                        "a dead-letter handler failed its last attempt"
                    } else {
                        "an event became a dead letter"
                    }
                );
                self.db
                    .delivery_exhausted(&delivery, &failure.to_string(), now())
                    .await
                    .map(|_| ())
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, delivery = delivery.id, "recording a delivery's outcome failed; it runs again once its claim lapses");
        }
    }

    /// Invokes `function` of the delivery's app with `request`, one level deeper in the
    /// chain of triggers than the delivery's event; answers the function's response.
    async fn run(
        &self,
        delivery: &Claimed,
        lookups: &Lookups,
        function: &str,
        request: Request,
        trigger: Trigger,
    ) -> Result<picloud_runtime::Response, Failure> {
        let gone = || Failure::new(Code::FunctionFailed, "the app no longer exists");
        let name = match lookups.app_names.get(&delivery.app_id) {
            Some(name) => name.clone(),
            None => self.db.app_name(&delivery.app_id).await?,
        }
        .ok_or_else(gone)?;
        let app = self.invoker.app(&name).await?.ok_or_else(gone)?;
        if app.id != delivery.app_id {
            // Deleted, and another app made with its name since.
            return Err(gone());
        }
        let active = self
            .invoker
            .function(&app, function)
            .await?
            .ok_or_else(|| {
                Failure::new(
                    Code::FunctionFailed,
                    format!("function {function:?} does not exist"),
                )
            })?;
        let admission = self.invoker.admit(&app).await?;
        let call = Call {
            app: &app,
            function_name: function,
            function: &active,
            trigger,
            request,
            depth: delivery.depth + 1,
        };
        self.invoker
            .run(admission, call, |guest, _logs| Ok(guest))
            .await
            .map(|answered| answered.answer)
    }
}

/// Largest body of an async route's answer that is kept for its caller to read.
pub const MAX_KEPT_BODY_BYTES: usize = 1024 * 1024;

/// A request to an async route as queued (the delivery's `event` column).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct QueuedRequest {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    params: Vec<(String, String)>,
    body_base64: String,
}

impl QueuedRequest {
    /// `request` for the queue.
    pub fn new(request: &Request) -> Self {
        use base64::Engine as _;
        Self {
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            headers: request.headers.clone(),
            params: request.params.clone(),
            body_base64: base64::engine::general_purpose::STANDARD.encode(&request.body),
        }
    }

    fn into_request(self) -> Result<Request, String> {
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD
            .decode(&self.body_base64)
            .map_err(|e| e.to_string())?;
        Ok(Request {
            method: self.method,
            path: self.path,
            query: self.query,
            headers: self.headers,
            params: self.params,
            body,
            event: None,
        })
    }
}

/// An async route's answer as kept: status, headers, body (base64; left out past
/// [`MAX_KEPT_BODY_BYTES`], with `body_omitted`).
struct KeptResponse<'a>(&'a picloud_runtime::Response);

impl<'a> From<&'a picloud_runtime::Response> for KeptResponse<'a> {
    fn from(response: &'a picloud_runtime::Response) -> Self {
        Self(response)
    }
}

impl KeptResponse<'_> {
    fn to_json(&self) -> String {
        use base64::Engine as _;
        let response = self.0;
        let mut kept = serde_json::json!({
            "status": response.status,
            "headers": response.headers,
        });
        if response.body.len() > MAX_KEPT_BODY_BYTES {
            kept["body_omitted"] = serde_json::json!(true);
        } else {
            kept["body_base64"] =
                serde_json::json!(base64::engine::general_purpose::STANDARD.encode(&response.body));
        }
        kept.to_string()
    }
}

/// The `source` of a delivery's event (JSON text).
fn event_source(event: &str) -> Option<String> {
    let event: serde_json::Value = serde_json::from_str(event).ok()?;
    event.get("source")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_with_jitter_and_a_ceiling() {
        for attempt in 1..=4 {
            let base = 1_000 * (1 << (attempt - 1));
            for _ in 0..100 {
                let delay = retry_delay_ms(1_000, attempt);
                assert!(
                    (base * 8 / 10..=base * 12 / 10).contains(&delay),
                    "attempt {attempt}: {delay} ms"
                );
            }
        }
        assert!(retry_delay_ms(MAX_BACKOFF_MS, 40) <= MAX_RETRY_DELAY_MS * 12 / 10);
    }
}
