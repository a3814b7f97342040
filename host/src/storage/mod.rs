//! Storage: one sqlx pool over SQLite (embedded default) or PostgreSQL.
//!
//! Every table and query here runs on both backends: the SQL is written once in the
//! dialect both accept (numbered `$n` parameters, `ON CONFLICT`, `RETURNING`), with a
//! [`Dialect`] switch where they differ. The same storage test suite runs on both.

mod apps;
pub mod changes;
pub mod docs;
pub mod docs_query;
pub mod files;
mod functions;
mod invocations;
pub mod kv;
mod routes;
mod tokens;

pub use apps::AppRecord;
pub use functions::{FunctionRecord, VersionRecord};
pub use invocations::{InvocationFilter, InvocationRecord};
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
    Database(#[from] sqlx::Error),
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

/// The database: a connection pool and its dialect.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    dialect: Dialect,
    files: std::sync::Arc<files::FilesConfig>,
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
        let pool = match dialect {
            Dialect::Sqlite => {
                options
                    .max_connections(8)
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
            Dialect::Postgres => options.max_connections(16).connect(url).await?,
        };
        let migrator = match dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await?;
        Ok(Self {
            pool,
            dialect,
            files: Default::default(),
        })
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
        self.pool.close().await;
    }
}

/// Maps unique-constraint violations to [`StorageError::Conflict`].
fn conflict_or(e: sqlx::Error) -> StorageError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict,
        _ => StorageError::Database(e),
    }
}

/// A fresh random id (uuid v7: time-ordered, so ids sort by creation).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
