//! Connections for the kv, docs and files calls, bounded for the tenant that makes them.
//!
//! A guest's SQL must end at its invocation's deadline and one app must not hold every
//! connection (SPEC §3). Dropping a host call's future at the deadline does not stop
//! the SQL it started, so every call of a scoped [`Db`](super::Db) (see
//! [`Db::for_app`](super::Db::for_app)) runs on a connection of the tenant pool, set up
//! before use:
//! - SQLite: a progress handler that interrupts the statement once the deadline passes;
//! - PostgreSQL: `statement_timeout` set to the time left.
//!
//! The tenant pool is a typed pool per dialect (the handle of a SQLite connection cannot
//! be reached through sqlx's `Any` driver), kept apart from the host's own pool so the
//! invocation recorder, the sweeps and the admin API are never starved by tenants and
//! never inherit a tenant's timeout. Before a connection, a scoped call takes a permit of
//! its app's share of the tenant pool (half of it), so the other half always serves other
//! apps. Unscoped calls (the admin API, tests) use the host pool as they are.
//!
//! SQLite statements run on each connection's own thread, outside the fair CPU scheduler
//! of the invocations ([`crate::fair`]). So that an app's heavy queries cannot take the
//! cores its neighbours' requests need, a statement of an invocation that has run past
//! [`FRESH_CPU`] must hold one of its app's CPU slots ([`SqlGate`]): its progress handler
//! takes one (waiting on the connection's thread, at most until the deadline) and gives
//! it back every [`SQL_SLICE`] so others' slices interleave. Short statements, nearly
//! all of them, never touch the scheduler. (PostgreSQL runs statements in its own
//! processes, which PiCloud cannot pause: there `statement_timeout` and the app's share
//! of connections bound them.)
//!
//! [`Conn`] is an [`Executor`] over `Any`: the storage code runs the same queries on
//! either kind of connection, through the drivers' `AnyConnectionBackend`.

use super::{Dialect, StorageError, StorageResult};
use crate::fair::{CpuScheduler, FRESH_CPU, Held, ThreadSlot};
use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_util::{FutureExt as _, StreamExt as _};
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTransactionManager, AnyTypeInfo};
use sqlx::pool::PoolConnection;
use sqlx::{Any, Describe, Either, Execute, Executor, Postgres, Sqlite, TransactionManager};
use sqlx_core::any::AnyConnectionBackend;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// SQLite virtual-machine steps between two checks of the deadline: a check reads the
/// clock (tens of ns), a step costs about as much, so one check in 1000 steps is noise
/// while an interrupt still lands well within a millisecond.
const PROGRESS_STEPS: i32 = 1000;
/// How long a long statement holds a CPU slot before giving others a turn: the epoch
/// tick at which guests yield.
const SQL_SLICE: std::time::Duration = std::time::Duration::from_millis(1);

/// The tenant pool.
#[derive(Clone)]
pub(crate) enum TenantPool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl TenantPool {
    /// Opens the tenant pool of `url` with `size` connections (the database is migrated).
    pub(crate) async fn open(dialect: Dialect, url: &str, size: u32) -> anyhow::Result<Self> {
        use std::str::FromStr as _;
        let acquire = std::time::Duration::from_secs(10);
        Ok(match dialect {
            Dialect::Sqlite => {
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(std::time::Duration::from_secs(10));
                Self::Sqlite(
                    sqlx::pool::PoolOptions::new()
                        .max_connections(size)
                        .acquire_timeout(acquire)
                        .connect_with(options)
                        .await?,
                )
            }
            Dialect::Postgres => Self::Postgres(
                sqlx::pool::PoolOptions::new()
                    .max_connections(size)
                    .acquire_timeout(acquire)
                    .connect(url)
                    .await?,
            ),
        })
    }

    pub(crate) async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

/// Per-app shares of the tenant pool: one semaphore per app, created on first use.
pub(crate) struct Shares {
    per_app: usize,
    apps: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Shares {
    /// Shares of a tenant pool of `pool_size` connections: half of it per app (at least
    /// one), so whatever one app does, the other half serves the rest.
    pub(crate) fn new(pool_size: u32) -> Self {
        Self {
            per_app: (pool_size as usize / 2).max(1),
            apps: Mutex::default(),
        }
    }

    /// How many connections one app may hold at once.
    pub(crate) fn per_app(&self) -> usize {
        self.per_app
    }

    fn of(&self, app_id: &str) -> Arc<Semaphore> {
        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(share) = apps.get(app_id) {
            return share.clone();
        }
        apps.entry(app_id.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_app)))
            .clone()
    }
}

/// The bounds of one app's calls: its share of the tenant pool and, for an invocation,
/// its deadline and the CPU scheduler its long statements run under.
pub(crate) struct Scope {
    share: Arc<Semaphore>,
    deadline: Option<Instant>,
    cpu: Option<(Arc<CpuScheduler>, Arc<str>, Option<Held>)>,
}

impl Scope {
    pub(crate) fn new(
        shares: &Shares,
        app_id: &str,
        deadline: Option<Instant>,
        cpu: Option<(&Arc<CpuScheduler>, Option<&Held>)>,
    ) -> Self {
        Self {
            share: shares.of(app_id),
            deadline,
            cpu: cpu.map(|(cpu, held)| (cpu.clone(), app_id.into(), held.cloned())),
        }
    }
}

/// Keeps an app's long SQLite statements within its CPU share (module docs). The
/// connection's progress handler calls [`SqlGate::on_progress`] on the connection's
/// thread; the statement's start and end are marked from the async side.
pub(crate) struct SqlGate {
    cpu: Arc<CpuScheduler>,
    app: Arc<str>,
    /// The invocation's count of slots its SQL holds (see [`Held`]).
    held: Option<Held>,
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    /// When the running statement started (`None` between statements).
    statement: Option<std::time::Instant>,
    /// The slot a long statement holds and when its slice began.
    slot: Option<(ThreadSlot, std::time::Instant)>,
}

impl SqlGate {
    fn new(cpu: Arc<CpuScheduler>, app: Arc<str>, held: Option<Held>) -> Self {
        Self {
            cpu,
            app,
            held,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A statement starts.
    fn begin_statement(&self) {
        let mut state = self.state();
        state.statement = Some(std::time::Instant::now());
        state.slot = None;
    }

    /// The statement ended (or its caller gave up on it): its slot goes back.
    fn end_statement(&self) {
        let slot = {
            let mut state = self.state();
            state.statement = None;
            state.slot.take()
        };
        drop(slot);
    }

    /// Whether the statement may go on (on the connection's thread, every
    /// [`PROGRESS_STEPS`] steps): at once while it is fresh or within its slice; past
    /// its slice it gives its slot back and waits for the next, and past `deadline`
    /// (also while waiting) it is interrupted.
    fn on_progress(&self, deadline: Option<std::time::Instant>) -> bool {
        let now = std::time::Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return false;
        }
        let slot = {
            let mut state = self.state();
            let Some(started) = state.statement else {
                return true;
            };
            if now.duration_since(started) < FRESH_CPU {
                return true;
            }
            if let Some((_, slice)) = &state.slot
                && now.duration_since(*slice) < SQL_SLICE
            {
                return true;
            }
            state.slot.take()
        };
        // The slice is over: give the slot back (a waiter may take it), then queue.
        drop(slot);
        let Some(slot) = self
            .cpu
            .block_for_slot(&self.app, deadline, self.held.as_ref())
        else {
            return false;
        };
        let mut state = self.state();
        if state.statement.is_some() {
            state.slot = Some((slot, std::time::Instant::now()));
        }
        true
    }
}

/// Ends the gate's statement when the statement's future or stream is dropped.
struct Statement(Option<Arc<SqlGate>>);

impl Statement {
    fn begin(gate: &Option<Arc<SqlGate>>) -> Self {
        if let Some(gate) = gate {
            gate.begin_statement();
        }
        Self(gate.clone())
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        if let Some(gate) = &self.0 {
            gate.end_statement();
        }
    }
}

enum Inner {
    Host(PoolConnection<Any>),
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

/// A connection for one storage call: from the host pool, or from the tenant pool set
/// up to end its SQL at the deadline. Dropped inside a transaction, it rolls back.
pub struct Conn {
    inner: Inner,
    deadline: Option<Instant>,
    /// For a SQLite connection of an invocation under the fair scheduler.
    gate: Option<Arc<SqlGate>>,
    _permit: Option<OwnedSemaphorePermit>,
    /// Notified when a transaction that recorded change events commits.
    events: Option<Arc<tokio::sync::Notify>>,
    /// The open transaction recorded change events.
    recorded: bool,
    /// The trigger-chain depth of the change events it records.
    pub(crate) depth: i64,
}

/// Waits for `future` until `deadline` (if any); past it, [`StorageError::Deadline`].
async fn until<T>(deadline: Option<Instant>, future: impl Future<Output = T>) -> StorageResult<T> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, future)
            .await
            .map_err(|_| StorageError::Deadline),
        None => Ok(future.await),
    }
}

impl Conn {
    /// A connection of the host pool.
    pub(crate) async fn host(pool: &sqlx::AnyPool) -> StorageResult<Self> {
        Ok(Self {
            inner: Inner::Host(pool.acquire().await?),
            deadline: None,
            gate: None,
            _permit: None,
            events: None,
            recorded: false,
            depth: 0,
        })
    }

    /// A connection of the tenant pool within `scope`: waits for the app's share and a
    /// connection until the deadline, then bounds the connection's SQL by it.
    pub(crate) async fn tenant(pool: &TenantPool, scope: &Scope) -> StorageResult<Self> {
        let deadline = scope.deadline;
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(StorageError::Deadline);
        }
        let permit = until(deadline, scope.share.clone().acquire_owned())
            .await?
            .map_err(|_| StorageError::Deadline)?;
        let mut gate = None;
        let inner = match pool {
            TenantPool::Sqlite(pool) => {
                let mut conn = until(deadline, pool.acquire()).await??;
                let mut handle = until(deadline, conn.lock_handle()).await??;
                let deadline = deadline.map(Instant::into_std);
                gate = scope.cpu.as_ref().map(|(cpu, app, held)| {
                    Arc::new(SqlGate::new(cpu.clone(), app.clone(), held.clone()))
                });
                match (deadline, gate.clone()) {
                    (_, Some(gate)) => handle
                        .set_progress_handler(PROGRESS_STEPS, move || gate.on_progress(deadline)),
                    (Some(deadline), None) => handle
                        .set_progress_handler(PROGRESS_STEPS, move || {
                            std::time::Instant::now() < deadline
                        }),
                    (None, None) => handle.remove_progress_handler(),
                }
                drop(handle);
                Inner::Sqlite(conn)
            }
            TenantPool::Postgres(pool) => {
                let mut conn = until(deadline, pool.acquire()).await??;
                // Whole milliseconds left, at least one (0 would mean no timeout).
                let ms = deadline.map_or(0, |d| {
                    d.saturating_duration_since(Instant::now())
                        .as_millis()
                        .clamp(1, i64::MAX as u128)
                });
                let set = format!("SET statement_timeout = {ms}");
                until(
                    deadline,
                    AnyConnectionBackend::fetch_optional(&mut *conn, &set, false, None),
                )
                .await??;
                Inner::Postgres(conn)
            }
        };
        Ok(Self {
            inner,
            deadline,
            gate,
            _permit: Some(permit),
            events: None,
            recorded: false,
            depth: 0,
        })
    }

    /// Starts a transaction; every statement until [`Conn::commit`] is part of it.
    pub async fn begin(&mut self) -> Result<(), sqlx::Error> {
        self.check_deadline()?;
        self.recorded = false;
        match &mut self.inner {
            Inner::Host(conn) => AnyTransactionManager::begin(conn, None).await,
            Inner::Sqlite(conn) => AnyConnectionBackend::begin(&mut **conn, None).await,
            Inner::Postgres(conn) => AnyConnectionBackend::begin(&mut **conn, None).await,
        }
    }

    /// Commits the transaction; if it recorded change events, tells the dispatcher.
    pub async fn commit(&mut self) -> Result<(), sqlx::Error> {
        match &mut self.inner {
            Inner::Host(conn) => AnyTransactionManager::commit(conn).await,
            Inner::Sqlite(conn) => AnyConnectionBackend::commit(&mut **conn).await,
            Inner::Postgres(conn) => AnyConnectionBackend::commit(&mut **conn).await,
        }?;
        if std::mem::take(&mut self.recorded)
            && let Some(events) = &self.events
        {
            events.notify_one();
        }
        Ok(())
    }

    /// This connection, telling `events` when a transaction that recorded change events
    /// commits, recording them at trigger-chain depth `depth`.
    pub(crate) fn announcing(mut self, events: Arc<tokio::sync::Notify>, depth: i64) -> Self {
        self.events = Some(events);
        self.depth = depth;
        self
    }

    /// Notes that the open transaction recorded a change event.
    pub(crate) fn recorded_event(&mut self) {
        self.recorded = true;
    }

    /// Past the deadline no statement starts (a call running several statements, such as
    /// a retried compare-and-swap, stops at the first one after it).
    fn check_deadline(&self) -> Result<(), sqlx::Error> {
        match self.deadline {
            Some(deadline) if deadline <= Instant::now() => Err(super::deadline_passed()),
            _ => Ok(()),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // As sqlx's `Transaction` does: queue a rollback, which the pool flushes when it
        // takes the connection back.
        fn rollback_if_open(backend: &mut dyn AnyConnectionBackend) {
            if backend.get_transaction_depth() > 0 {
                backend.start_rollback();
            }
        }
        match &mut self.inner {
            Inner::Host(conn) => {
                if AnyTransactionManager::get_transaction_depth(conn) > 0 {
                    AnyTransactionManager::start_rollback(conn);
                }
            }
            Inner::Sqlite(conn) => rollback_if_open(&mut **conn),
            Inner::Postgres(conn) => rollback_if_open(&mut **conn),
        }
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl<'c> Executor<'c> for &'c mut Conn {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        mut query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        if let Err(e) = self.check_deadline() {
            return futures_util::stream::once(std::future::ready(Err(e))).boxed();
        }
        let backend: &mut dyn AnyConnectionBackend = match &mut self.inner {
            Inner::Host(conn) => return (&mut **conn).fetch_many(query),
            Inner::Sqlite(conn) => &mut **conn,
            Inner::Postgres(conn) => &mut **conn,
        };
        let arguments = match query.take_arguments().map_err(sqlx::Error::Encode) {
            Ok(arguments) => arguments,
            Err(e) => return futures_util::stream::once(std::future::ready(Err(e))).boxed(),
        };
        let statement = Statement::begin(&self.gate);
        backend
            .fetch_many(query.sql(), query.persistent(), arguments)
            .map(move |item| {
                let _ = &statement;
                item
            })
            .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        mut query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        if let Err(e) = self.check_deadline() {
            return std::future::ready(Err(e)).boxed();
        }
        let backend: &mut dyn AnyConnectionBackend = match &mut self.inner {
            Inner::Host(conn) => return (&mut **conn).fetch_optional(query),
            Inner::Sqlite(conn) => &mut **conn,
            Inner::Postgres(conn) => &mut **conn,
        };
        let arguments = match query.take_arguments().map_err(sqlx::Error::Encode) {
            Ok(arguments) => arguments,
            Err(e) => return std::future::ready(Err(e)).boxed(),
        };
        let statement = Statement::begin(&self.gate);
        backend
            .fetch_optional(query.sql(), query.persistent(), arguments)
            .map(move |row| {
                drop(statement);
                row
            })
            .boxed()
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        match &mut self.inner {
            Inner::Host(conn) => (&mut **conn).prepare_with(sql, parameters),
            Inner::Sqlite(conn) => AnyConnectionBackend::prepare_with(&mut **conn, sql, parameters),
            Inner::Postgres(conn) => {
                AnyConnectionBackend::prepare_with(&mut **conn, sql, parameters)
            }
        }
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>>
    where
        'c: 'e,
    {
        match &mut self.inner {
            Inner::Host(conn) => (&mut **conn).describe(sql),
            Inner::Sqlite(conn) => AnyConnectionBackend::describe(&mut **conn, sql),
            Inner::Postgres(conn) => AnyConnectionBackend::describe(&mut **conn, sql),
        }
    }
}
