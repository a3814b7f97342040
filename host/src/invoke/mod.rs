//! The invocation core: from a resolved app and function to an outcome — caches,
//! admission, run, record — for every [`Trigger`], with no HTTP in it. Its callers (the
//! data plane, the admin API's invoke, the event dispatcher) settle the guest's
//! response into what they answer before it is recorded, so a record is always what the
//! caller saw.

mod outcome;

pub use outcome::{Answer, Code, Failure, Trigger};

use crate::admission::{Gates, Load, Refusal, Ticket};
use crate::fair::CpuScheduler;
use crate::mailer::Mailer;
use crate::outbound::Outbound;
use crate::quota::FuelQuotas;
use crate::recorder::Recorder;
use crate::routing::RouteTable;
use crate::services::HostSdk;
use crate::services::common::CallLog;
use crate::services::email::EmailService;
use crate::services::http::HttpService;
use crate::services::script::{KIND_RHAI, KIND_RHAI_MODULE, Script};
use crate::storage::{Db, InvocationRecord};
use picloud_runtime::{
    Collected, CompileError, Compiled, Invocation, Limits, LogLine, Outcome, Request, Runtime,
    WarmPool,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{OnceCell, RwLock, RwLockReadGuard};

/// One slot in this many of the instance pool (at least one) is kept for apps that run
/// few invocations: busy apps together take at most three quarters of the pool, so one
/// app — or several — flooding the server cannot leave another app without an instance.
const RESERVED_SLOTS_DIVISOR: u32 = 4;
/// An app runs few invocations, and may take a reserved slot, while that leaves it
/// running at most one per this many of the pool's slots (at least one): 8 of the default
/// 256, so the reserve serves many lightly loaded apps rather than a few busy ones.
const LIGHT_APP_DIVISOR: u32 = 32;

/// The instance pool's slots as admission counts them: one per running invocation.
struct Slots {
    in_use: AtomicUsize,
    max: usize,
    /// The last slots, kept for apps that run at most `light` invocations.
    reserved: usize,
    light: usize,
}

/// Why [`Slots::take`] refused.
enum Refused {
    /// Every slot is in use.
    Full,
    /// Only reserved slots are left and the app runs more than a few invocations.
    Busy,
}

impl Slots {
    fn new(max: u32) -> Self {
        Self {
            in_use: AtomicUsize::new(0),
            max: max as usize,
            reserved: (max / RESERVED_SLOTS_DIVISOR).max(1) as usize,
            light: (max / LIGHT_APP_DIVISOR).max(1) as usize,
        }
    }

    /// A slot for an invocation of an app that runs `running` invocations with this one.
    fn take(&self, running: usize) -> Result<Slot<'_>, Refused> {
        let mut refused = Refused::Full;
        self.in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                if used >= self.max {
                    refused = Refused::Full;
                    None
                } else if used + self.reserved >= self.max && running > self.light {
                    refused = Refused::Busy;
                    None
                } else {
                    Some(used + 1)
                }
            })
            .map(|_| Slot(self))
            .map_err(|_| refused)
    }
}

/// A taken slot, given back when dropped.
struct Slot<'a>(&'a Slots);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.in_use.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Adds the lines of the invocation's outbound calls to its log, in time order (a
/// stable sort: lines of the same millisecond keep the guest's first).
fn merge_call_lines(logs: &mut Vec<LogLine>, calls: &CallLog) {
    let lines = std::mem::take(&mut *lock(calls));
    if !lines.is_empty() {
        logs.extend(lines);
        logs.sort_by_key(|line| line.at_ms);
    }
}

/// An app as the data plane needs it: identity, resolved limits and routes.
pub struct AppEntry {
    /// Internal id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Host defaults with the app's overrides applied.
    pub limits: Limits,
    /// Route table.
    pub routes: RouteTable,
    /// The hosts the app's outbound http may reach, when an operator restricted them.
    pub outbound_hosts: Option<Arc<[String]>>,
}

/// A deployable ready to run: compiled, with its script when it is a Rhai function.
pub struct Prepared {
    /// The compiled component: the artifact itself, or for a Rhai script the Rhai shim
    /// every Rhai function shares.
    pub compiled: Compiled<HostSdk>,
    /// A Rhai function's source, which its instances parse on their first request.
    pub script: Option<Arc<str>>,
}

/// The active version of a function, compiled.
pub struct ActiveFunction {
    /// Version number.
    pub version: i64,
    /// Compiled artifact, and the script of a Rhai function.
    pub prepared: Prepared,
    /// Idle instances kept for the next invocations: Rhai scripts only, whose shim keeps
    /// no state between invocations (see `picloud_runtime::warm`). Dropped with this
    /// version when another becomes active or the app changes; every instance in it
    /// parsed this version's script and no other.
    pub warm: Option<WarmPool<HostSdk>>,
}

type FunctionSlot = Arc<OnceCell<Option<Arc<ActiveFunction>>>>;

/// An invocation let in under its app's running cap, which it counts against until it
/// is dropped: taken before the request body is read, so that reading bodies is bounded
/// by the cap too.
pub struct Admission {
    invocation_id: String,
    ticket: Ticket,
}

/// One invocation to run: which function of which app, why, with what request.
pub struct Call<'a> {
    /// The app.
    pub app: &'a AppEntry,
    /// The function's name.
    pub function_name: &'a str,
    /// Its active version.
    pub function: &'a ActiveFunction,
    /// What started it.
    pub trigger: Trigger,
    /// What it is given (the HTTP request, or the trigger's event in `event`).
    pub request: Request,
    /// How deep in a chain of triggers it runs: 0 for a request, a cron tick or an
    /// operator's call, one more than its event's for a delivery. The change events its
    /// writes record carry it.
    pub depth: i64,
}

/// A finished invocation's answer, as its caller settled it.
#[derive(Debug)]
pub struct Answered<T> {
    /// The invocation.
    pub invocation_id: String,
    /// The answer.
    pub answer: T,
}

/// Runs invocations and keeps the caches of apps and active functions. Caches are
/// invalidated by the admin API on every change of an app, its routes or functions.
pub struct Invoker {
    db: Db,
    runtime: Arc<Runtime<HostSdk>>,
    defaults: Limits,
    recorder: Recorder,
    apps: Mutex<HashMap<String, Arc<AppEntry>>>,
    /// Function slots by app name, then function name.
    functions: Mutex<HashMap<String, HashMap<String, FunctionSlot>>>,
    /// Per-app running caps and queues.
    gates: Gates,
    /// The instance slots of the runtime's pool: past them the host is full.
    capacity: Slots,
    /// Daily fuel quotas.
    quotas: Arc<FuelQuotas>,
    /// Shares guest CPU fairly between apps; `None` leaves it to tokio.
    cpu: Option<Arc<CpuScheduler>>,
    /// The Rhai shim's snapshot, compiled once for every Rhai function.
    rhai_shim: OnceCell<Compiled<HostSdk>>,
    /// Held (shared) by deploys from compiling to recording the version, and
    /// (exclusively) by the garbage collection of compiled code, which would otherwise
    /// remove code compiled for a version not recorded yet.
    compiling: RwLock<()>,
    /// Outbound http of guests; `None`: their http calls answer `unavailable`.
    outbound: Option<Arc<Outbound>>,
    /// Outbound email of guests; `None`: their sends answer `unavailable`.
    mailer: Option<Arc<Mailer>>,
    /// This node's realtime subscribers, whom guests' `pubsub` publishes reach.
    realtime: Arc<crate::events::realtime::Realtime>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Invoker {
    /// An invoker over `db` and `runtime`, running guest code of at most `cpu_slots`
    /// invocations at once under the fair scheduler (0: no fair scheduler).
    pub fn new(
        db: Db,
        runtime: Arc<Runtime<HostSdk>>,
        defaults: Limits,
        recorder: Recorder,
        gates: Gates,
        cpu_slots: usize,
        quotas: Arc<FuelQuotas>,
    ) -> Self {
        let cpu = (cpu_slots > 0).then(|| Arc::new(CpuScheduler::new(cpu_slots)));
        let db = match &cpu {
            Some(cpu) => db.with_cpu(cpu.clone()),
            None => db,
        };
        Self {
            quotas,
            db,
            defaults,
            recorder,
            apps: Mutex::default(),
            functions: Mutex::default(),
            gates,
            capacity: Slots::new(runtime.max_instances()),
            cpu,
            runtime,
            rhai_shim: OnceCell::new(),
            compiling: RwLock::new(()),
            outbound: None,
            mailer: None,
            realtime: crate::events::realtime::Realtime::new(
                crate::events::realtime::RealtimeConfig::default(),
            ),
        }
    }

    /// This invoker with realtime subscribers configured by `config`.
    pub fn with_realtime(mut self, config: crate::events::realtime::RealtimeConfig) -> Self {
        self.realtime = crate::events::realtime::Realtime::new(config);
        self
    }

    /// This node's realtime subscribers.
    pub fn realtime(&self) -> &Arc<crate::events::realtime::Realtime> {
        &self.realtime
    }

    /// This invoker with guests' outbound http served by `outbound`.
    pub fn with_outbound(mut self, outbound: Arc<Outbound>) -> Self {
        self.outbound = Some(outbound);
        self
    }

    /// This invoker with guests' outbound email sent by `mailer`.
    pub fn with_mailer(mut self, mailer: Arc<Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// The mailer of guests' email, when the server has SMTP.
    pub fn mailer(&self) -> Option<&Arc<Mailer>> {
        self.mailer.as_ref()
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime<HostSdk> {
        &self.runtime
    }

    /// The clock invocations and their per-day usage are counted by.
    pub fn clock(&self) -> &crate::quota::Clock {
        self.quotas.clock()
    }

    /// The host's default limits.
    pub fn defaults(&self) -> Limits {
        self.defaults
    }

    /// Forgets everything cached about app `name` (its routes, limits and functions).
    pub fn invalidate_app(&self, name: &str) {
        lock(&self.apps).remove(name);
        lock(&self.functions).remove(name);
    }

    /// Caches `prepared` as the active version of `app`/`function` (right after a
    /// deploy, which prepared it already).
    pub fn install(&self, app: &str, function: &str, kind: &str, version: i64, prepared: Prepared) {
        let slot = Arc::new(OnceCell::new_with(Some(Some(Arc::new(ActiveFunction {
            version,
            prepared,
            warm: self.warm_pool(kind),
        })))));
        lock(&self.functions)
            .entry(app.to_owned())
            .or_default()
            .insert(function.to_owned(), slot);
    }

    /// A warm-instance pool for a function of `kind`, when that kind may reuse instances.
    fn warm_pool(&self, kind: &str) -> Option<WarmPool<HostSdk>> {
        (kind == KIND_RHAI)
            .then(|| self.runtime.warm_pool())
            .flatten()
    }

    /// Drops warm instances idle for longer than `max_idle`, so functions no longer
    /// called give their pool slots and memory back. Answers how many.
    pub fn trim_warm(&self, max_idle: std::time::Duration) -> usize {
        self.runtime.trim_warm(max_idle)
    }

    /// Held by a deploy from [`Invoker::prepare`] until its version is recorded, so
    /// [`Invoker::collect_garbage`] does not remove what it compiled.
    pub async fn deploying(&self) -> RwLockReadGuard<'_, ()> {
        self.compiling.read().await
    }

    /// Removes the compiled code no function version refers to any more (see
    /// `picloud_runtime::Runtime::collect_garbage`): run after functions or apps are
    /// deleted, and at start.
    pub async fn collect_garbage(&self) -> anyhow::Result<Collected> {
        let _alone = self.compiling.write().await;
        let mut live = self.db.live_artifacts("component").await?;
        // Kept while no Rhai function exists, too: compiling it again takes seconds.
        live.push(crate::rhai::shim_key().to_owned());
        let runtime = self.runtime.clone();
        let collected = tokio::task::spawn_blocking(move || {
            runtime.collect_garbage(live.iter().map(String::as_str))
        })
        .await??;
        if collected.files > 0 {
            tracing::info!(
                files = collected.files,
                bytes = collected.bytes,
                "removed unused compiled code"
            );
        }
        Ok(collected)
    }

    /// Drops what it cached about an app that [`Changed`](crate::control::Changed).
    pub fn changed(&self, changed: &crate::control::Changed) {
        use crate::control::Changed;
        match changed {
            Changed::Code { app } => self.invalidate_app(app),
            Changed::Settings { app } => self.invalidate_settings(app),
            Changed::Removed { app, id } => {
                self.invalidate_app(app);
                self.forget_gate(id);
            }
        }
    }

    /// Forgets the cached routes and limits of app `name`; its compiled functions stay.
    pub fn invalidate_settings(&self, name: &str) {
        lock(&self.apps).remove(name);
    }

    /// The app called `name`, from the cache or the database.
    pub async fn app(&self, name: &str) -> Result<Option<Arc<AppEntry>>, Failure> {
        if let Some(hit) = lock(&self.apps).get(name) {
            return Ok(Some(hit.clone()));
        }
        // Boxed: the database calls make a large future, which would otherwise be part
        // of (and moved with) every data-plane request's future.
        Box::pin(self.load_app(name)).await
    }

    async fn load_app(&self, name: &str) -> Result<Option<Arc<AppEntry>>, Failure> {
        let Some(app) = self.db.get_app(name).await? else {
            return Ok(None);
        };
        let routes = self.db.list_routes(&app.id).await?;
        let outbound_hosts = self.db.app_outbound_hosts(&app.id).await?;
        let entry = Arc::new(AppEntry {
            outbound_hosts: outbound_hosts.map(Into::into),
            limits: self.defaults.with(&app.limits),
            routes: RouteTable::build(&routes),
            id: app.id,
            name: app.name,
        });
        lock(&self.apps).insert(name.to_owned(), entry.clone());
        Ok(Some(entry))
    }

    /// The active version of function `name` of `app`, compiled (once per process, or
    /// loaded from the compile cache).
    pub async fn function(
        &self,
        app: &AppEntry,
        name: &str,
    ) -> Result<Option<Arc<ActiveFunction>>, Failure> {
        let slot = {
            let mut functions = lock(&self.functions);
            match functions.get(&app.name).and_then(|f| f.get(name)) {
                Some(slot) => slot.clone(),
                None => functions
                    .entry(app.name.clone())
                    .or_default()
                    .entry(name.to_owned())
                    .or_default()
                    .clone(),
            }
        };
        if let Some(loaded) = slot.get() {
            return Ok(loaded.clone());
        }
        // Boxed, as in `app`: loading and compiling is the rare, large part.
        let loaded = Box::pin(slot.get_or_try_init(|| async {
            let Some(function) = self.db.get_function(&app.id, name).await? else {
                return Ok(None);
            };
            let bytes = self.db.artifact(&function.sha256).await?.ok_or_else(|| {
                Failure::internal(format!(
                    "artifact {} of {}/{name} is missing",
                    function.sha256, app.name
                ))
            })?;
            if function.kind == KIND_RHAI_MODULE {
                return Ok(None);
            }
            let prepared = self
                .prepare(&function.kind, bytes)
                .await
                .map_err(|e| Failure::internal(format!("stored artifact does not compile: {e}")))?;
            Ok::<_, Failure>(Some(Arc::new(ActiveFunction {
                version: function.active_version,
                prepared,
                warm: self.warm_pool(&function.kind),
            })))
        }))
        .await?;
        Ok(loaded.clone())
    }

    /// Gets a deployable of `kind` ready to run: a component compiled as it is; a Rhai
    /// script checked to be UTF-8 text and run by the Rhai shim every Rhai function
    /// shares (a snapshot of the shim with the Rhai engine built, compiled once and
    /// cached in memory and on disk), which parses the script in each instance on its
    /// first request. Compiled code is cached (memory and disk).
    pub async fn prepare(&self, kind: &str, bytes: Vec<u8>) -> Result<Prepared, CompileError> {
        if kind == KIND_RHAI {
            let source: Arc<str> = String::from_utf8(bytes)
                .map_err(|_| CompileError::Invalid("a Rhai script must be UTF-8 text".into()))?
                .into();
            let compiled = self.rhai_shim().await?;
            return Ok(Prepared {
                compiled,
                script: Some(source),
            });
        }
        let runtime = self.runtime.clone();
        let compiled = tokio::task::spawn_blocking(move || runtime.compile(&bytes))
            .await
            .map_err(|e| CompileError::Internal(e.to_string()))??;
        Ok(Prepared {
            compiled,
            script: None,
        })
    }

    /// The Rhai shim's snapshot, compiled: once per process, from the disk cache after a
    /// restart. Its initialisation only builds the Rhai engine and asks the host for
    /// nothing, so it runs with no app's services and the host's default limits.
    async fn rhai_shim(&self) -> Result<Compiled<HostSdk>, CompileError> {
        self.rhai_shim
            .get_or_try_init(|| {
                self.runtime.compile_snapshot(
                    crate::rhai::RHAI_SHIM,
                    crate::rhai::shim_key(),
                    HostSdk::new(&self.db, ""),
                    self.defaults,
                )
            })
            .await
            .cloned()
    }

    /// Lets an invocation of `app` in under the app's daily fuel quota and concurrency
    /// cap, or says why not (`quota_exceeded`, with when to retry).
    pub async fn admit(&self, app: &AppEntry) -> Result<Admission, Failure> {
        let invocation_id = uuid::Uuid::now_v7().to_string();
        if let Err(reached) = self.quotas.admit(&app.id, app.limits.daily_fuel).await {
            let failure = Failure::new(
                Code::QuotaExceeded,
                format!(
                    "app {} used its daily fuel quota of {}; it renews at midnight UTC",
                    app.name, reached.quota
                ),
            )
            .with_retry_after(reached.retry_after_secs);
            return Err(failure.with_invocation(&invocation_id));
        }
        let ticket = match self.gates.admit(&app.id).await {
            Ok(ticket) => ticket,
            Err(refusal) => {
                let config = self.gates.config();
                let why = match refusal {
                    Refusal::QueueFull => format!(
                        "app {} runs {} invocations and {} more wait",
                        app.name, config.max_running, config.max_queued
                    ),
                    Refusal::Waited => format!(
                        "app {} runs {} invocations and none ended within {} ms",
                        app.name,
                        config.max_running,
                        config.max_wait.as_millis()
                    ),
                };
                let failure = Failure::new(Code::QuotaExceeded, format!("{why}; retry"));
                return Err(failure.with_invocation(&invocation_id));
            }
        };
        Ok(Admission {
            invocation_id,
            ticket,
        })
    }

    /// Forgets the admission gate of the deleted app `app_id`.
    pub fn forget_gate(&self, app_id: &str) {
        self.gates.forget(app_id);
    }

    /// How invocations are admitted.
    pub fn admission(&self) -> crate::admission::AdmissionConfig {
        self.gates.config()
    }

    /// Invocations of `app` running and waiting now.
    pub fn load(&self, app: &AppEntry) -> Load {
        self.gates.load(&app.id)
    }

    /// Runs `call` under its app's limits, settles the guest's response with `settle`
    /// into the caller's answer (or a failure: `function_failed` for what the caller
    /// cannot be given; `settle` may add lines to the invocation's log), and queues the
    /// invocation record of exactly that answer. A failure's `message` is PiCloud's,
    /// its `detail` has the reason.
    pub async fn run<T: Answer>(
        &self,
        admission: Admission,
        call: Call<'_>,
        settle: impl FnOnce(picloud_runtime::Response, &mut Vec<LogLine>) -> Result<T, Failure>,
    ) -> Result<Answered<T>, Failure> {
        let Call {
            app,
            function_name,
            function,
            trigger,
            request,
            depth,
        } = call;
        // The app's slot is held until the invocation is recorded.
        let Admission {
            invocation_id,
            ticket,
        } = admission;
        let running = ticket.running();
        let _slot = match self.capacity.take(running) {
            Ok(slot) => slot,
            Err(refused) => {
                let failure = match refused {
                    Refused::Full => Failure::new(
                        Code::Unavailable,
                        "the server runs as many invocations as it can; retry",
                    ),
                    Refused::Busy => Failure::new(
                        Code::QuotaExceeded,
                        format!(
                            "app {} already runs {} invocations and the server's instance pool is nearly full; retry",
                            app.name,
                            running - 1
                        ),
                    ),
                };
                return Err(failure.with_invocation(&invocation_id));
            }
        };
        let started_at = self.quotas.clock().now_ms();
        let invocation = Invocation {
            app: app.name.clone(),
            function: function_name.to_owned(),
            version: u32::try_from(function.version).unwrap_or(u32::MAX),
            invocation_id: invocation_id.clone(),
            trigger: trigger.as_str().to_owned(),
            event: request.event.clone(),
        };
        let deadline = tokio::time::Instant::now() + app.limits.timeout();
        let held = crate::fair::Held::default();
        let db = self.db.for_invocation(held.clone(), depth);
        let mut sdk = match &function.prepared.script {
            Some(source) => HostSdk::with_script(
                &db,
                &app.id,
                Some(deadline),
                Script {
                    source: source.clone(),
                    limits: app.limits,
                },
            ),
            None => HostSdk::with_deadline(&db, &app.id, deadline),
        };
        let calls = CallLog::default();
        if let Some(outbound) = &self.outbound {
            sdk = sdk.with_http(HttpService::new(
                outbound.clone(),
                app.outbound_hosts.clone(),
                Some(deadline),
                calls.clone(),
            ));
        }
        sdk = sdk.with_pubsub(crate::services::pubsub::PubsubService::new(
            db.for_app(&app.id, Some(deadline)),
            app.id.as_str().into(),
            self.realtime.clone(),
            self.quotas.clock().clone(),
        ));
        if let Some(mailer) = &self.mailer {
            sdk = sdk.with_email(EmailService::new(
                mailer.clone(),
                db.for_app(&app.id, Some(deadline)),
                app.id.as_str().into(),
                self.quotas.clock().clone(),
                Some(deadline),
                calls.clone(),
            ));
        }
        let run = self.runtime.invoke_warm(
            &function.prepared.compiled,
            function.warm.as_ref(),
            invocation,
            request,
            app.limits,
            sdk,
        );
        let outcome = match &self.cpu {
            Some(cpu) => cpu.run_held(app.id.as_str().into(), held, run).await,
            None => run.await,
        };
        let Outcome {
            result,
            fuel_used,
            wall_time,
            peak_memory,
            mut logs,
        } = outcome;
        self.quotas
            .used(&app.id, app.limits.daily_fuel, started_at, fuel_used);
        merge_call_lines(&mut logs, &calls);
        // The answer is settled before it is recorded, so the record is what the
        // caller saw.
        let result = match result {
            Ok(guest) => settle(guest, &mut logs),
            Err(e) => Err(Failure::from_run(&e, &invocation_id)),
        };
        let (status, http_status, code, message) = match &result {
            Ok(answer) => ("ok", i64::from(answer.status()), None, None),
            Err(f) => (
                "error",
                i64::from(f.code.status()),
                Some(f.code.as_str().to_owned()),
                Some(f.recorded_message()),
            ),
        };
        self.recorder.record(
            app.id.clone(),
            InvocationRecord {
                id: invocation_id.clone(),
                app: app.name.clone(),
                function: function_name.to_owned(),
                version: function.version,
                trigger: trigger.as_str().to_owned(),
                status: status.to_owned(),
                http_status,
                error_code: code,
                error_message: message,
                fuel_used: i64::try_from(fuel_used).unwrap_or(i64::MAX),
                duration_us: i64::try_from(wall_time.as_micros()).unwrap_or(i64::MAX),
                peak_memory: i64::try_from(peak_memory).unwrap_or(i64::MAX),
                started_at,
                logs,
            },
        );
        match result {
            Ok(answer) => Ok(Answered {
                invocation_id,
                answer,
            }),
            Err(failure) => Err(failure.with_invocation(&invocation_id)),
        }
    }
}
