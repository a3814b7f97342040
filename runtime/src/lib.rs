//! PiCloud's sandbox: it compiles uploaded WebAssembly and runs one invocation at a time
//! inside a fresh wasmtime `Store` with fuel, wall-clock and memory limits — or, for
//! guests that keep no state between invocations (the Rhai shim), in a kept [`warm`]
//! instance of the same function whose store is re-armed with the same limits.
//!
//! Scope: artifact classification, the compiled-code caches (memory and disk), and
//! `invoke`. It knows nothing of HTTP routing, SQL or tenants' data: the embedder passes
//! an [`Sdk`] value that serves the guest's SDK calls, and gets an [`Outcome`] back.
//!
//! Lifecycle: build one [`Runtime`] per process ([`Runtime::new`] starts the epoch
//! ticker), [`Runtime::compile`] each deployed artifact once (cached by sha256), then
//! [`Runtime::invoke`] (or [`Runtime::invoke_warm`] with the function's [`WarmPool`]) per
//! request.

#![warn(missing_docs)]

mod bindings;
mod error;
mod incremental;
mod invoke;
mod limits;
mod sdk;
mod snapshot;
pub mod warm;

pub use bindings::picloud::sdk::types::Error as GuestError;
pub use bindings::picloud::sdk::types::{Request, Response};
pub use bindings::picloud::sdk::{
    dead_letters, docs, email, files, http, kv, pubsub, secrets, users,
};
pub use bindings::shim::picloud::sdk::rhai_script;
pub use error::{CompileError, RunError};
pub use invoke::{
    Invocation, LOG_FUEL_PER_BYTE, LogLine, MAX_CAPTURED_OUTPUT_BYTES, MAX_LOG_BYTES,
    MAX_LOG_FIELDS_BYTES, MAX_LOG_LINES, MAX_LOG_MESSAGE_BYTES, Outcome, State,
};
pub use limits::{DEFAULT_FUEL, DEFAULT_MEMORY_BYTES, DEFAULT_TIMEOUT_MS, LimitOverrides, Limits};
pub use sdk::{Sdk, Unavailable};
pub use snapshot::INIT_EXPORT;
pub use warm::WarmPool;

use bindings::FunctionPre;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// The export every PiCloud component must have.
pub const HANDLER_EXPORT: &str = "picloud:sdk/handler@0.1.0";
/// Default of [`RuntimeConfig::max_instances`].
pub const DEFAULT_MAX_INSTANCES: u32 = 256;
/// Default of [`RuntimeConfig::max_warm_instances`].
pub const DEFAULT_MAX_WARM_INSTANCES: u32 = 32;
/// How often the epoch ticker advances: a CPU-bound guest yields at every tick (its
/// slice of a CPU slot), and wall-clock limits are checked at this grain.
pub const DEFAULT_EPOCH_TICK: Duration = Duration::from_millis(1);
/// Bytes of each pooled memory (and table) kept resident between instances (see
/// `Runtime::new`); the rest of what an instance touched goes back to the kernel when
/// it ends. A Rust guest's stack and early heap live in its first megabytes, so a
/// fresh component instance takes no page faults on them. Rhai functions mostly run in
/// warm instances, which are not reset at all. Every slot an instance ever used keeps
/// this much, so it is what a burst of large guests leaves behind per slot: at 32 MiB
/// the hardening soak's server grew from ~0.3 to ~1.3 GiB over five minutes of memory
/// bombs (slots × 32 MiB); at 4 MiB it stays flat. Measured in one run each (release,
/// 2 cores): Rhai handler 26,417 vs 26,451 requests/s at 32 vs 4 MiB, with warm
/// instances off 10,003 vs 9,584 (the Rhai shim touches ~15 MiB), components no slower.
const KEEP_RESIDENT_BYTES: usize = 4 * 1024 * 1024;
/// Set to `1` to have the engine write `/tmp/perf-{pid}.map`, so `perf report` names
/// the guests' functions (a developer tool for profiling; off by default).
pub const PERF_MAP_ENV: &str = "PICLOUD_PERF_MAP";
/// Guest wasm stack: deep enough for real programs, small enough that unbounded
/// recursion ends quickly with a stack-overflow trap.
const MAX_WASM_STACK: usize = 1024 * 1024;
/// Core module instances one component may hold. The Rhai shim and the examples (Rust,
/// `wasm32-wasip2`) hold 3: their module and the two small ones `wit-component` adds to
/// any module for its lowered imports; 8 leaves room for an adapter module or two
/// composed components. The pool has this many per slot, so no component can take
/// another's share (compiling a larger one fails with the pool's message).
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 8;
/// Tables one component may hold (the components above hold 2: one per module with
/// indirect calls). The pool has this many per slot.
pub const MAX_TABLES_PER_COMPONENT: u32 = 8;
/// Linear memories one component may hold (the components above hold 1; 2 fits two
/// composed components). The pool has this many per slot; each reserves address space
/// for the largest memory limit, which is why this stays small.
pub const MAX_MEMORIES_PER_COMPONENT: u32 = 2;

/// How the engine is set up. The defaults suit one server process.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled code is cached on disk; `None` keeps it in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Largest memory any one instance may be allowed (the largest per-app memory limit).
    /// The pooling allocator reserves address space per slot of this size.
    pub max_memory_bytes: u64,
    /// How many instances may be alive at once (pool slots). Admission control keeps
    /// concurrent invocations below this.
    pub max_instances: u32,
    /// Grain of the wall-clock limit.
    pub epoch_tick: Duration,
    /// How many idle warm instances (see [`warm`]) may be kept in all; each holds a
    /// pool slot beyond `max_instances`. 0 turns warm reuse off.
    pub max_warm_instances: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            max_memory_bytes: 1 << 30,
            max_instances: DEFAULT_MAX_INSTANCES,
            epoch_tick: DEFAULT_EPOCH_TICK,
            max_warm_instances: DEFAULT_MAX_WARM_INSTANCES,
        }
    }
}

/// What kind of deployable an artifact is (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A component of the `picloud:sdk/function` world.
    Component,
}

impl Kind {
    /// The name used in the API and the CLI.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Component => "component",
        }
    }
}

/// A compiled, linked artifact, ready to instantiate. Cheap to clone.
pub struct Compiled<S: 'static> {
    sha256: String,
    kind: Kind,
    pre: FunctionPre<State<S>>,
}

impl<S> Clone for Compiled<S> {
    fn clone(&self) -> Self {
        Self {
            sha256: self.sha256.clone(),
            kind: self.kind,
            pre: self.pre.clone(),
        }
    }
}

impl<S> Compiled<S> {
    /// Hex sha256 of the artifact bytes (for a snapshot: the key it was compiled under,
    /// see [`Runtime::compile_snapshot`]).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// What kind of deployable this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }
}

/// What [`Runtime::collect_garbage`] removed from the disk cache.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Collected {
    /// Files removed.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// A temporary file of the disk cache older than this was left by a write that never
/// finished (a crash); [`Runtime::collect_garbage`] removes it.
const STALE_TEMP_FILE_AGE: Duration = Duration::from_secs(3600);

/// Counters of the compile caches, to show that a restart does not recompile.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Artifacts compiled by cranelift.
    pub compiled: u64,
    /// Artifacts loaded from the on-disk cache.
    pub disk_hits: u64,
    /// Artifacts found already linked in memory.
    pub memory_hits: u64,
    /// Invocations that ran in a kept warm instance instead of a fresh one.
    pub warm_reuses: u64,
    /// Warm instances idle now.
    pub warm_idle: u64,
}

#[derive(Default)]
struct Counters {
    compiled: AtomicU64,
    disk_hits: AtomicU64,
    memory_hits: AtomicU64,
}

/// The process's wasmtime engine, linker and compile caches.
pub struct Runtime<S: Sdk> {
    engine: Engine,
    linker: Linker<State<S>>,
    cache_dir: Option<PathBuf>,
    compat: String,
    linked: Mutex<HashMap<String, Compiled<S>>>,
    counters: Counters,
    epoch_tick: Duration,
    max_instances: u32,
    warm: Arc<warm::WarmBudget<S>>,
}

/// The error of a host call that traps the guest (wasmtime's error type).
pub type TrapError = wasmtime::Error;
/// A host call's result where the error traps the guest.
pub type TrapResult<T> = wasmtime::Result<T>;

/// What an SDK host call returns: the outer error traps the guest (host bug or limit
/// breach), the inner one is the guest-visible WIT `error`.
pub type Answer<T> = wasmtime::Result<Result<T, GuestError>>;

/// Hex sha256 of `bytes`, the identity of an artifact.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A human-readable form of a guest-visible SDK error.
pub fn describe_error(error: &GuestError) -> String {
    match error {
        GuestError::NotFound => "not found".into(),
        GuestError::Invalid(m) => format!("invalid: {m}"),
        GuestError::Denied(m) => format!("denied: {m}"),
        GuestError::Limit(m) => format!("limit: {m}"),
        GuestError::Unavailable(m) => format!("unavailable: {m}"),
        GuestError::Internal(m) => format!("internal: {m}"),
    }
}

impl<S: Sdk> Runtime<S> {
    /// Builds the engine (component model, fuel, epochs, pooling allocator) and the
    /// linker with WASI and the whole SDK, and starts the epoch ticker thread, which
    /// ends when the runtime is dropped.
    pub fn new(config: &RuntimeConfig) -> anyhow::Result<Self> {
        // Slots for every running instance plus every idle warm one, each with room for
        // the most core instances, tables and memories a component may hold: a slot
        // always brings what its component needs, so counting component instances (as
        // admission does) is enough to keep one app from taking everyone's share.
        let slots = config.max_instances + config.max_warm_instances;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots)
            .total_core_instances(slots * MAX_CORE_INSTANCES_PER_COMPONENT)
            .total_memories(slots * MAX_MEMORIES_PER_COMPONENT)
            .total_tables(slots * MAX_TABLES_PER_COMPONENT)
            .total_stacks(slots)
            .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
            .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
            .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
            .max_memory_size(config.max_memory_bytes as usize)
            // Reset reused slots by rewriting the pages a guest touched (found with
            // Linux's PAGEMAP_SCAN where available) instead of unmapping them: the next
            // instance then takes no page faults on them. Contents are reset either way,
            // so nothing of one instance is visible to the next.
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES)
            // A freed slot goes to the next instance that needs one (its own module's
            // first, else the least recently used), never to an untouched slot while a
            // used one is free: the slots ever used are at most the peak of instances
            // alive at once, so what they keep resident is bounded by that peak, not
            // by the pool's size (wasmtime's default prefers untouched slots until 100
            // used ones are idle, which let resident memory creep up for minutes).
            .max_unused_warm_slots(0)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(MAX_WASM_STACK)
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if std::env::var_os(PERF_MAP_ENV).is_some_and(|v| v == "1") {
            // For profiling guests with `perf`: names JIT code in /tmp/perf-{pid}.map.
            wasm.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let functions =
            incremental::FunctionCache::new(config.cache_dir.as_ref().map(|d| d.join("functions")));
        wasm.enable_incremental_compilation(std::sync::Arc::new(functions))
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let engine = Engine::new(&wasm).map_err(|e| anyhow::anyhow!("{e:#}"))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        link_sdk(&mut linker).map_err(|e| anyhow::anyhow!("{e:#}"))?;

        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = format!("{:016x}", hasher.finish());
        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir)?;
        }
        spawn_epoch_ticker(&engine, config.epoch_tick);
        Ok(Self {
            engine,
            linker,
            cache_dir: config.cache_dir.clone(),
            compat,
            linked: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            epoch_tick: config.epoch_tick,
            max_instances: config.max_instances,
            warm: Arc::new(warm::WarmBudget::new(config.max_warm_instances as usize)),
        })
    }

    /// Validates, classifies and compiles `bytes`, or returns the cached result for the
    /// same sha256. Compiled code is written to the disk cache so that a restarted
    /// process loads it instead of compiling again.
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled<S>, CompileError> {
        let sha256 = sha256_hex(bytes);
        if let Some(hit) = self
            .linked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&sha256)
        {
            self.counters.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit.clone());
        }
        let component = self.component(bytes)?;
        let compiled = self.link(sha256.clone(), &component)?;
        self.linked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sha256, compiled.clone());
        Ok(compiled)
    }

    /// The compiled component for `bytes`: from the disk cache, or compiled (and cached).
    fn component(&self, bytes: &[u8]) -> Result<Component, CompileError> {
        classify_bytes(bytes)?;
        let sha256 = sha256_hex(bytes);
        match self.load_cached(&sha256) {
            Some(component) => Ok(component),
            None => self.compile_fresh(&sha256, bytes),
        }
    }

    /// Drops the in-memory linked copy of an artifact (the disk cache stays).
    pub fn evict(&self, sha256: &str) {
        self.linked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(sha256);
    }

    /// Removes the compiled code of every artifact not in `live` — the sha256 of each
    /// artifact a function version still refers to, and the keys of the snapshots in use
    /// (see [`Runtime::compile_snapshot`]) — from memory and from the disk cache, with
    /// cache files of other wasmtime builds and the per-script snapshots of earlier
    /// PiCloud versions (`snapshots/`). The embedder must not compile while this runs:
    /// code compiled meanwhile may be removed with the rest. Cranelift's per-function
    /// cache (`functions/`) is left alone.
    pub fn collect_garbage<'a>(
        &self,
        live: impl IntoIterator<Item = &'a str>,
    ) -> std::io::Result<Collected> {
        let live: std::collections::HashSet<&str> = live.into_iter().collect();
        self.linked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, _| live.contains(id.as_str()));
        let mut collected = Collected::default();
        let Some(dir) = &self.cache_dir else {
            return Ok(collected);
        };
        let suffix = format!("-{}.cwasm", self.compat);
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let metadata = entry.metadata()?;
            let stale = if name.ends_with(".cwasm") {
                name.strip_suffix(&suffix)
                    .is_none_or(|id| !live.contains(id))
            } else if name.contains(".tmp") {
                // A write interrupted by a crash; one in progress is younger.
                metadata
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > STALE_TEMP_FILE_AGE)
            } else {
                false
            };
            if stale && metadata.is_file() {
                std::fs::remove_file(entry.path())?;
                collected.files += 1;
                collected.bytes += metadata.len();
            }
        }
        let legacy = dir.join("snapshots");
        if legacy.is_dir() {
            for entry in std::fs::read_dir(&legacy)? {
                let entry = entry?;
                let metadata = entry.metadata()?;
                if metadata.is_file() {
                    std::fs::remove_file(entry.path())?;
                    collected.files += 1;
                    collected.bytes += metadata.len();
                }
            }
            std::fs::remove_dir(&legacy)?;
        }
        Ok(collected)
    }

    /// How many instances can be alive at once (the pool's slots).
    pub fn max_instances(&self) -> u32 {
        self.max_instances
    }

    /// The compile-cache counters since this runtime was built.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            compiled: self.counters.compiled.load(Ordering::Relaxed),
            disk_hits: self.counters.disk_hits.load(Ordering::Relaxed),
            memory_hits: self.counters.memory_hits.load(Ordering::Relaxed),
            warm_reuses: self.warm.reuses(),
            warm_idle: self.warm.idle() as u64,
        }
    }

    /// A pool for the warm instances of one function version, or `None` when warm
    /// reuse is off. Use it only for guests that keep no state between invocations
    /// (see [`warm`]).
    pub fn warm_pool(&self) -> Option<WarmPool<S>> {
        (self.warm.max_idle() > 0).then(|| WarmPool::new(self.warm.clone()))
    }

    /// Drops the warm instances of all pools idle for longer than `max_idle`, so
    /// functions no longer called give their pool slots and memory back. Answers how
    /// many.
    pub fn trim_warm(&self, max_idle: Duration) -> usize {
        self.warm.trim(max_idle)
    }

    fn cache_path(&self, sha256: &str) -> Option<PathBuf> {
        self.cache_dir
            .as_ref()
            .map(|d| d.join(format!("{sha256}-{}.cwasm", self.compat)))
    }

    fn load_cached(&self, sha256: &str) -> Option<Component> {
        let path = self.cache_path(sha256)?;
        if !path.exists() {
            return None;
        }
        // SAFETY: the cache directory belongs to this server and files in it are only
        // ever written by `compile_fresh` below from `Component::serialize` output of an
        // engine with the same compatibility hash (part of the file name); wasmtime
        // additionally checks the header and compatibility on load.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(&self.engine, &path) };
        match loaded {
            Ok(component) => {
                self.counters.disk_hits.fetch_add(1, Ordering::Relaxed);
                Some(component)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable compile-cache entry");
                None
            }
        }
    }

    fn compile_fresh(&self, sha256: &str, bytes: &[u8]) -> Result<Component, CompileError> {
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| CompileError::Invalid(format!("{e:#}")))?;
        self.counters.compiled.fetch_add(1, Ordering::Relaxed);
        if let Some(path) = self.cache_path(sha256)
            && let Err(e) = component
                .serialize()
                .map_err(|e| anyhow::anyhow!("{e:#}"))
                .and_then(|bytes| write_atomically(&path, &bytes))
        {
            tracing::warn!(path = %path.display(), error = %e, "could not write compile-cache entry");
        }
        Ok(component)
    }

    fn link(&self, sha256: String, component: &Component) -> Result<Compiled<S>, CompileError> {
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        if !exports.iter().any(|e| e == HANDLER_EXPORT) {
            let found = if exports.is_empty() {
                "nothing".to_owned()
            } else {
                exports.join(", ")
            };
            return Err(CompileError::Unsupported(format!(
                "a component that does not export `{HANDLER_EXPORT}` (it exports {found}); build it for the `picloud:sdk/function` world"
            )));
        }
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| CompileError::Invalid(format!("{e:#}")))?;
        let pre = FunctionPre::new(pre).map_err(|e| CompileError::Invalid(format!("{e:#}")))?;
        Ok(Compiled {
            sha256,
            kind: Kind::Component,
            pre,
        })
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see
/// a partial file.
pub(crate) fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Refuses anything that is not a component, naming what it is.
fn classify_bytes(bytes: &[u8]) -> Result<(), CompileError> {
    if bytes.is_empty() {
        return Err(CompileError::NotWasm("the file is empty".into()));
    }
    if wasmtime::wasmparser::Parser::is_component(bytes) {
        return Ok(());
    }
    if wasmtime::wasmparser::Parser::is_core_wasm(bytes) {
        return Err(CompileError::Unsupported(
            "a core WebAssembly module, not a component; build for wasm32-wasip2 (or run `wasm-tools component new`) targeting the `picloud:sdk/function` world".into(),
        ));
    }
    let head: String = bytes
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    Err(CompileError::NotWasm(format!(
        "it does not start with the wasm magic bytes (starts with {head})"
    )))
}

fn link_sdk<S: Sdk>(linker: &mut Linker<State<S>>) -> wasmtime::Result<()> {
    use bindings::picloud::sdk::log::Level;
    use wasmtime::component::WasmStr;
    // By hand rather than with the generated `add_to_linker`: the strings stay in guest
    // memory and only what is kept is copied (see `invoke::log_from_guest`).
    let mut log = linker.instance("picloud:sdk/log@0.1.0")?;
    log.func_wrap(
        "log",
        |store, (level, message, fields): (Level, WasmStr, Option<WasmStr>)| {
            invoke::log_from_guest(store, level, &message, fields.as_ref())
        },
    )?;

    let mut runtime = linker.instance("picloud:sdk/runtime@0.1.0")?;
    runtime.func_wrap("info", |store, (): ()| Ok((store.data().info(),)))?;
    runtime.func_wrap("remaining-fuel", |store, (): ()| Ok((store.get_fuel()?,)))?;
    runtime.func_wrap("now", |_store, (): ()| Ok((invoke::now_ms(),)))?;
    sdk::add_to_linker(linker)
}

fn spawn_epoch_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("picloud-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .expect("spawning the epoch ticker thread");
}
