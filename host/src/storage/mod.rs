//! Storage: one sqlx pool over SQLite (embedded default) or PostgreSQL.
//!
//! Every table and query here runs on both backends: the SQL is written once in the
//! dialect both accept (numbered `$n` parameters, `ON CONFLICT`, `RETURNING`), with a
//! [`Dialect`] switch where they differ. The same storage test suite runs on both.

mod apps;
pub mod changes;
mod conn;
pub mod docs;
pub mod docs_query;
pub mod email;
pub mod files;
mod functions;
mod invocations;
pub mod kv;
mod leases;
mod outbound;
mod routes;
pub mod secrets;
pub mod tokens;
pub mod topics;
pub mod triggers;
pub mod usage;
pub mod users;

pub use apps::AppRecord;
pub use conn::Conn;
pub use functions::{FunctionRecord, VersionRecord};
pub use invocations::{InvocationFilter, InvocationRecord, batch_usage};
pub use routes::RouteRecord;
pub use tokens::TokenRecord;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Embedded SQLite (WAL, `synchronous=FULL`).
    Sqlite,
    /// PostgreSQL, for several nodes.
    Postgres,
}

/// Storage failures, mapped to API and guest errors in one place each.
#[derive(Debug, Error)]
pub enum StorageError {
    /// A unique constraint would be violated (the thing exists already).
    #[error("already exists")]
    Conflict,
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The invocation's deadline passed before the call finished; its SQL was ended.
    #[error("the invocation's deadline passed during a database call")]
    Deadline,
    /// The write would take the app's kv or docs past its byte quota.
    #[error("the app's {0} would exceed their byte quota")]
    Quota(&'static str),
    /// Concurrent writers kept winning; the caller may retry.
    #[error("too much contention on {0}")]
    Contention(&'static str),
    /// Stored data is not what it must be (a host bug or outside tampering).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The file store failed (disk I/O).
    #[error("file store error: {0}")]
    Io(#[from] std::io::Error),
}

/// Result of storage calls.
pub type StorageResult<T> = Result<T, StorageError>;

/// Marks the error of a statement refused because the deadline had passed.
#[derive(Debug, Error)]
#[error("the invocation's deadline passed")]
struct DeadlinePassed;

/// The error [`Conn`] answers for a statement past its deadline.
fn deadline_passed() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        DeadlinePassed,
    ))
}

/// Message of the error the storage-quota triggers raise (migrations 0003).
const QUOTA_MESSAGE: &str = "picloud: storage quota exceeded on ";

impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Io(io) if io.get_ref().is_some_and(|e| e.is::<DeadlinePassed>()) => {
                Self::Deadline
            }
            sqlx::Error::Database(db) => {
                // PostgreSQL's query_canceled (here: statement_timeout) and SQLite's
                // SQLITE_INTERRUPT (the progress handler): only tenant connections set
                // either, and only for the deadline.
                if matches!(db.code().as_deref(), Some("57014" | "9")) {
                    return Self::Deadline;
                }
                match db.message().split_once(QUOTA_MESSAGE) {
                    Some((_, what)) if what.starts_with("docs") => Self::Quota("docs"),
                    Some(_) => Self::Quota("kv entries"),
                    None => Self::Database(e),
                }
            }
            _ => Self::Database(e),
        }
    }
}

/// Connections of the host pool: migrations, records, sweeps, the admin API.
const SQLITE_HOST_CONNECTIONS: u32 = 4;
/// Connections of the tenant pool (SQLite): writers queue on one lock anyway; eight
/// let readers of several apps run side by side.
const SQLITE_TENANT_CONNECTIONS: u32 = 8;
/// Connections of the host pool (PostgreSQL).
const POSTGRES_HOST_CONNECTIONS: u32 = 8;
/// Connections of the tenant pool (PostgreSQL), of PostgreSQL's default 100 per server.
const POSTGRES_TENANT_CONNECTIONS: u32 = 16;

/// The database: the host's and the tenants' connection pools and the dialect. A `Db`
/// made by [`Db::for_app`] bounds its kv, docs and files calls for one app.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    tenant: conn::TenantPool,
    shares: std::sync::Arc<conn::Shares>,
    scope: Option<std::sync::Arc<conn::Scope>>,
    /// The fair CPU scheduler long statements of [`Db::for_app`] calls run under.
    cpu: Option<std::sync::Arc<crate::fair::CpuScheduler>>,
    /// The invocation the slots those statements take are held for.
    held: Option<crate::fair::Held>,
    dialect: Dialect,
    files: std::sync::Arc<files::FilesConfig>,
    /// The keys secrets are sealed with; `None` until the server loaded them (the
    /// secrets service then answers `unavailable`).
    secret_keys: Option<std::sync::Arc<crate::vault::Keys>>,
    /// Notified when a transaction that recorded change events commits (see
    /// [`Db::events_written`]).
    events: std::sync::Arc<tokio::sync::Notify>,
    /// How deep in a chain of triggers the invocation writing through this database
    /// runs: the change events it records carry it (0 outside any trigger).
    depth: i64,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Db {
    /// Opens `url` (`sqlite://…` or `postgres://…`) and runs the migrations.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            anyhow::bail!("unsupported database URL {url:?}: use sqlite://PATH or postgres://…");
        };
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        let (host_size, tenant_size) = match dialect {
            Dialect::Sqlite => (SQLITE_HOST_CONNECTIONS, SQLITE_TENANT_CONNECTIONS),
            Dialect::Postgres => (POSTGRES_HOST_CONNECTIONS, POSTGRES_TENANT_CONNECTIONS),
        };
        let pool = match dialect {
            Dialect::Sqlite => {
                options
                    .max_connections(host_size)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Dialect::Postgres => options.max_connections(host_size).connect(url).await?,
        };
        let migrator = match dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await?;
        let tenant = conn::TenantPool::open(dialect, url, tenant_size).await?;
        Ok(Self {
            pool,
            tenant,
            shares: std::sync::Arc::new(conn::Shares::new(tenant_size)),
            scope: None,
            cpu: None,
            held: None,
            dialect,
            files: Default::default(),
            secret_keys: None,
            events: Default::default(),
            depth: 0,
        })
    }

    /// This database for the kv, docs and files calls of app `app_id`: each call holds
    /// one of the app's share of tenant connections (half the tenant pool) and, with a
    /// `deadline`, its SQL ends then (the call answers [`StorageError::Deadline`]).
    #[must_use]
    pub fn for_app(&self, app_id: &str, deadline: Option<tokio::time::Instant>) -> Self {
        Self {
            scope: Some(std::sync::Arc::new(conn::Scope::new(
                &self.shares,
                app_id,
                deadline,
                self.cpu.as_ref().map(|cpu| (cpu, self.held.as_ref())),
            ))),
            ..self.clone()
        }
    }

    /// How many tenant connections one app may hold at once.
    pub fn connections_per_app(&self) -> usize {
        self.shares.per_app()
    }

    /// A connection for one kv, docs or files call: bounded by the scope of a `Db` from
    /// [`Db::for_app`], else one of the host pool.
    pub(crate) async fn acquire(&self) -> StorageResult<Conn> {
        let conn = match &self.scope {
            Some(scope) => Conn::tenant(&self.tenant, scope).await,
            None => Conn::host(&self.pool).await,
        }?;
        Ok(conn.announcing(self.events.clone(), self.depth))
    }

    /// Notified (one stored permit) each time a transaction of this database's
    /// connections that recorded change events commits: the event dispatcher waits on
    /// it. Writes of other processes (nodes) do not notify it.
    pub fn events_written(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.events.clone()
    }

    /// This database with long SQLite statements of [`Db::for_app`] calls under `cpu`,
    /// within their app's share of it (see the docs of `storage::conn`).
    #[must_use]
    pub fn with_cpu(self, cpu: std::sync::Arc<crate::fair::CpuScheduler>) -> Self {
        Self {
            cpu: Some(cpu),
            ..self
        }
    }

    /// This database for one invocation at `depth` in a chain of triggers: the CPU
    /// slots its long statements take are held on its behalf (see
    /// [`crate::fair::Held`]), and the change events it records carry `depth`.
    #[must_use]
    pub fn for_invocation(&self, held: crate::fair::Held, depth: i64) -> Self {
        Self {
            held: Some(held),
            depth,
            ..self.clone()
        }
    }

    /// This database with the keys secrets are sealed with.
    #[must_use]
    pub fn with_secret_keys(self, keys: std::sync::Arc<crate::vault::Keys>) -> Self {
        Self {
            secret_keys: Some(keys),
            ..self
        }
    }

    /// The keys secrets are sealed with, once loaded.
    pub fn secret_keys(&self) -> Option<&std::sync::Arc<crate::vault::Keys>> {
        self.secret_keys.as_ref()
    }

    /// The dialect behind the pool.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The pool, for services that build their own queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.tenant.close().await;
        self.pool.close().await;
    }
}

/// Maps unique-constraint violations to [`StorageError::Conflict`].
fn conflict_or(e: sqlx::Error) -> StorageError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict,
        _ => e.into(),
    }
}

/// A fresh random id (uuid v7: time-ordered, so ids sort by creation).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
