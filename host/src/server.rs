//! `picloud serve`: configuration, start-up and the HTTP router.

use crate::admission::{AdmissionConfig, DEFAULT_MAX_WAIT_MS, DEFAULT_QUEUED_PER_RUNNING, Gates};
use crate::api;
use crate::auth;
use crate::dataplane;
use crate::invoke::Invoker;
use crate::mailer;
use crate::outbound;
use crate::recorder::Recorder;
use crate::storage::files::{
    BlobStore, DEFAULT_MAX_APP_BYTES, DEFAULT_MAX_FILE_BYTES, FilesConfig,
};
use crate::storage::usage::{
    DEFAULT_DISPATCHED_EVENT_RETENTION_DAYS, DEFAULT_INVOCATION_RETENTION_DAYS,
    DEFAULT_MAX_APP_DOCS_BYTES, DEFAULT_MAX_APP_KV_BYTES,
    DEFAULT_UNDISPATCHED_EVENT_RETENTION_DAYS, DEFAULT_USAGE_RETENTION_DAYS, Pruned, Retention,
};
use crate::storage::{Db, Dialect};
use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use picloud_runtime::{
    DEFAULT_MAX_INSTANCES, DEFAULT_MAX_WARM_INSTANCES, Limits, Runtime, RuntimeConfig,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Default data directory: the embedded database, compile cache and admin token.
pub const DEFAULT_DATA_DIR: &str = ".picloud";
/// Default listen address: loopback only, until an operator decides otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default address of the dashboard: loopback, the port after the API's.
pub const DEFAULT_DASHBOARD_LISTEN: &str = "127.0.0.1:8081";
/// Default base domain for `{app}.{base-domain}` routing.
pub const DEFAULT_BASE_DOMAIN: &str = "localhost";
/// How often idle warm instances are checked.
const WARM_TRIM_INTERVAL: Duration = Duration::from_secs(10);
/// Warm instances idle for longer than this are dropped.
const WARM_MAX_IDLE: Duration = Duration::from_secs(60);
/// How often expired kv entries are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// How often file blobs no file refers to are swept (and at start).
const ORPHAN_SWEEP_INTERVAL: Duration = Duration::from_secs(600);
/// Blobs and temp files younger than this may belong to a put in flight.
const ORPHAN_GRACE: Duration = Duration::from_secs(3600);
/// How often old records, change events and usage rows are pruned (and at start):
/// retention is counted in days, so a few passes an hour keep tables near their bound.
const RETENTION_INTERVAL: Duration = Duration::from_secs(600);
/// Seconds a client has to send a request's headers (hyper's own default). A real
/// client sends them at once; one that trickles them (slowloris) is disconnected. An
/// idle keep-alive connection is closed after this long, too.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 30;
/// Seconds a client has to send a function's request body. The largest body (10 MiB)
/// then needs at least 175 KiB/s; the body holds a slot of its app's concurrency while
/// it arrives, so a stalled upload gives it back after this long (answered 408).
pub const DEFAULT_BODY_READ_TIMEOUT_SECS: u64 = 60;
/// Default of [`ServeArgs::event_claim_secs`]: 15 minutes.
pub const DEFAULT_EVENT_CLAIM_SECS: u64 = 15 * 60;
/// Pause after a failed accept that is not about one connection (e.g. out of file
/// descriptors), so the loop does not spin; axum's `serve` waits as long.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Options of `picloud serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PICLOUD_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Address of the dashboard (`/dashboard/`), or `off`. A listener of its own: the
    /// dashboard must not share an origin with functions' pages.
    #[arg(long, env = "PICLOUD_DASHBOARD_LISTEN", default_value = DEFAULT_DASHBOARD_LISTEN, value_parser = parse_dashboard_listen)]
    pub dashboard_listen: DashboardListen,
    /// Directory for the embedded database, the compile cache and the admin token.
    #[arg(long, env = "PICLOUD_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Database URL: postgres://… for PostgreSQL; default: SQLite in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Functions are also reachable at http://{app}.{base-domain}/…
    #[arg(long, env = "PICLOUD_BASE_DOMAIN", default_value = DEFAULT_BASE_DOMAIN)]
    pub base_domain: String,
    /// The admin token, from the environment variable PICLOUD_ADMIN_TOKEN only (a
    /// command-line flag would show in `ps`); see also --admin-token-file. When neither
    /// is given, one is generated on first start and written to {data-dir}/admin-token.
    #[arg(skip = std::env::var("PICLOUD_ADMIN_TOKEN").ok())]
    pub admin_token: Option<String>,
    /// The secrets master key (base64 of 32 bytes), from the environment variable
    /// PICLOUD_SECRET_KEY only. Required with PostgreSQL; with the embedded default one
    /// is generated on first start into {data-dir}/secret-key.
    #[arg(skip = std::env::var(crate::vault::KEY_ENV).ok())]
    pub secret_key: Option<String>,
    /// The previous secrets master key during a rotation (PICLOUD_SECRET_KEY_PREVIOUS):
    /// secrets sealed with it still open; `picloud secrets rekey` reseals them.
    #[arg(skip = std::env::var(crate::vault::PREVIOUS_KEY_ENV).ok())]
    pub secret_key_previous: Option<String>,
    /// A file holding the admin token (its first line), instead of PICLOUD_ADMIN_TOKEN.
    #[arg(long, env = "PICLOUD_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Invocations of one app running at once; more wait in the app's queue. Default: 8
    /// per CPU core, at least 8.
    #[arg(long, env = "PICLOUD_MAX_CONCURRENCY_PER_APP")]
    pub max_concurrency_per_app: Option<u32>,
    /// Invocations of one app waiting for a running slot at once; more are answered 429
    /// straight away. Default: 4 per running slot.
    #[arg(long, env = "PICLOUD_MAX_QUEUED_PER_APP")]
    pub max_queued_per_app: Option<u32>,
    /// Longest an invocation waits in its app's queue before it is answered 429, in
    /// milliseconds.
    #[arg(long, env = "PICLOUD_ADMISSION_WAIT_MS", default_value_t = DEFAULT_MAX_WAIT_MS)]
    pub admission_wait_ms: u64,
    /// Directory for file content. Default: {data-dir}/files with SQLite; in the
    /// database with PostgreSQL (give a directory every node shares to keep it there).
    #[arg(long, env = "PICLOUD_FILES_DIR")]
    pub files_dir: Option<PathBuf>,
    /// Largest file, in bytes.
    #[arg(long, env = "PICLOUD_MAX_FILE_BYTES", default_value_t = DEFAULT_MAX_FILE_BYTES)]
    pub max_file_bytes: u64,
    /// Largest total of one app's files, in bytes.
    #[arg(long, env = "PICLOUD_MAX_APP_FILES_BYTES", default_value_t = DEFAULT_MAX_APP_BYTES)]
    pub max_app_files_bytes: u64,
    /// Largest total of one app's kv entries (collection, key and value bytes); a write
    /// past it answers `limit`.
    #[arg(long, env = "PICLOUD_MAX_APP_KV_BYTES", default_value_t = DEFAULT_MAX_APP_KV_BYTES)]
    pub max_app_kv_bytes: u64,
    /// Largest total of one app's documents (collection, id and body bytes); a write past
    /// it answers `limit`.
    #[arg(long, env = "PICLOUD_MAX_APP_DOCS_BYTES", default_value_t = DEFAULT_MAX_APP_DOCS_BYTES)]
    pub max_app_docs_bytes: u64,
    /// Days invocation records (and their logs) are kept.
    #[arg(long, env = "PICLOUD_INVOCATION_RETENTION_DAYS", default_value_t = DEFAULT_INVOCATION_RETENTION_DAYS)]
    pub invocation_retention_days: u32,
    /// Days change events are kept once dispatched to triggers.
    #[arg(long, env = "PICLOUD_CHANGE_EVENT_RETENTION_DAYS", default_value_t = DEFAULT_DISPATCHED_EVENT_RETENTION_DAYS)]
    pub change_event_retention_days: u32,
    /// Days change events never dispatched are kept (for triggers still to come).
    #[arg(long, env = "PICLOUD_UNDISPATCHED_EVENT_RETENTION_DAYS", default_value_t = DEFAULT_UNDISPATCHED_EVENT_RETENTION_DAYS)]
    pub undispatched_event_retention_days: u32,
    /// Days of per-app daily usage kept.
    #[arg(long, env = "PICLOUD_USAGE_RETENTION_DAYS", default_value_t = DEFAULT_USAGE_RETENTION_DAYS)]
    pub usage_retention_days: u32,
    /// Idle warm instances of Rhai functions kept for reuse, in all (0: a fresh instance
    /// for every invocation).
    #[arg(long, env = "PICLOUD_WARM_INSTANCES", default_value_t = DEFAULT_MAX_WARM_INSTANCES)]
    pub warm_instances: u32,
    /// Invocations that may run at once in all apps (slots of the instance pool); a
    /// quarter of them is kept for apps that run few invocations.
    #[arg(long, env = "PICLOUD_MAX_INSTANCES", default_value_t = DEFAULT_MAX_INSTANCES)]
    pub max_instances: u32,
    /// Guest code of at most this many invocations runs at once, handed out fairly
    /// between apps (see `picloud::fair`); default: the number of CPU cores. 0 turns
    /// the fair scheduler off (invocations then run in tokio's order).
    #[arg(long, env = "PICLOUD_CPU_SLOTS")]
    pub cpu_slots: Option<usize>,
    /// The clock per-day usage and quotas are counted by (tests move it past midnight).
    #[arg(skip)]
    pub clock: crate::quota::Clock,
    /// Seconds a client has to send a request's headers; slower ones (and idle
    /// keep-alive connections) are disconnected.
    #[arg(long, env = "PICLOUD_HEADER_READ_TIMEOUT_SECS", default_value_t = DEFAULT_HEADER_READ_TIMEOUT_SECS)]
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send the body of a request to a function; slower ones
    /// are answered 408.
    #[arg(long, env = "PICLOUD_BODY_READ_TIMEOUT_SECS", default_value_t = DEFAULT_BODY_READ_TIMEOUT_SECS)]
    pub body_read_timeout_secs: u64,
    /// Seconds a node holds an event delivery it started: past them (the node died) any
    /// node runs it again. Longer than any function's timeout, or a slow run may be
    /// delivered twice.
    #[arg(long, env = "PICLOUD_EVENT_CLAIM_SECS", default_value_t = DEFAULT_EVENT_CLAIM_SECS)]
    pub event_claim_secs: u64,
    /// Addresses guests' outbound http may reach although the SSRF guard denies them
    /// (private services): CIDRs or addresses, repeatable or comma-separated.
    #[arg(long = "outbound-allow-cidr", env = "PICLOUD_OUTBOUND_ALLOW_CIDRS", value_delimiter = ',', value_parser = outbound::guard::parse_cidr)]
    pub outbound_allow_cidrs: Vec<ipnet::IpNet>,
    /// Ports guests' outbound http may connect to, comma-separated.
    #[arg(long, env = "PICLOUD_OUTBOUND_PORTS", value_delimiter = ',', default_values_t = outbound::DEFAULT_PORTS)]
    pub outbound_ports: Vec<u16>,
    /// Longest outbound http call (all redirects and the body), in milliseconds; a call
    /// never outlives its invocation either.
    #[arg(long, env = "PICLOUD_OUTBOUND_TIMEOUT_MS", default_value_t = outbound::DEFAULT_TIMEOUT_MS)]
    pub outbound_timeout_ms: u64,
    /// Largest outbound http response body, in bytes; a longer one answers `limit`.
    #[arg(long, env = "PICLOUD_OUTBOUND_MAX_RESPONSE_BYTES", default_value_t = outbound::DEFAULT_MAX_RESPONSE_BYTES)]
    pub outbound_max_response_bytes: u64,
    /// Outbound http calls per invocation; more answer `limit`.
    #[arg(long, env = "PICLOUD_OUTBOUND_MAX_CALLS", default_value_t = outbound::DEFAULT_MAX_CALLS)]
    pub outbound_max_calls: u32,
    /// The SMTP relay guests' email goes through: smtp://HOST:PORT (plain; add
    /// ?tls=required for STARTTLS), smtps://HOST:PORT (TLS), with USER:PASSWORD@ for
    /// authentication (give a URL with a password in the environment variable, not on
    /// the command line, where `ps` shows it). Without it every send answers
    /// `unavailable("email not configured")`.
    #[arg(long, env = "PICLOUD_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// PEM file of certificates trusted, besides the public roots, to sign the SMTP
    /// relay's certificate (a relay with a private CA or a self-signed certificate);
    /// needs a TLS --smtp-url (smtps:// or ?tls=required).
    #[arg(long, env = "PICLOUD_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<PathBuf>,
    /// The From address of email of apps without their own (`noreply@example.com` or
    /// `Shop <noreply@example.com>`); required with --smtp-url.
    #[arg(long, env = "PICLOUD_EMAIL_FROM")]
    pub email_from: Option<String>,
    /// Largest email (formatted: headers and encoded bodies), in bytes; a larger one
    /// answers `limit`.
    #[arg(long, env = "PICLOUD_EMAIL_MAX_BYTES", default_value_t = mailer::DEFAULT_MAX_BYTES)]
    pub email_max_bytes: u64,
    /// Emails one app may send per UTC day; more answer `limit` until midnight UTC.
    #[arg(long, env = "PICLOUD_EMAIL_DAILY_LIMIT", default_value_t = mailer::DEFAULT_DAILY_LIMIT)]
    pub email_daily_limit: u64,
    /// Seconds between heartbeat comments on an idle realtime stream.
    #[arg(long, env = "PICLOUD_REALTIME_HEARTBEAT_SECS", default_value_t = crate::events::realtime::DEFAULT_HEARTBEAT.as_secs())]
    pub realtime_heartbeat_secs: u64,
    /// Messages a realtime subscriber may fall behind before it is disconnected.
    #[arg(long, env = "PICLOUD_REALTIME_BUFFER", default_value_t = crate::events::realtime::DEFAULT_BUFFER)]
    pub realtime_buffer: usize,
    /// Realtime subscribers of one app connected to this node at once; more are
    /// answered 429.
    #[arg(long, env = "PICLOUD_REALTIME_MAX_SUBSCRIBERS_PER_APP", default_value_t = crate::events::realtime::DEFAULT_MAX_SUBSCRIBERS_PER_APP)]
    pub realtime_max_subscribers_per_app: usize,
    /// Realtime subscribers of all apps connected to this node at once; more are
    /// answered 503.
    #[arg(long, env = "PICLOUD_REALTIME_MAX_SUBSCRIBERS", default_value_t = crate::events::realtime::DEFAULT_MAX_SUBSCRIBERS)]
    pub realtime_max_subscribers: usize,
}

impl ServeArgs {
    /// Defaults with `data_dir`, as tests and embedders want them.
    pub fn with_data_dir(data_dir: PathBuf) -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            dashboard_listen: DashboardListen(None),
            data_dir,
            database_url: None,
            base_domain: DEFAULT_BASE_DOMAIN.into(),
            admin_token: None,
            admin_token_file: None,
            secret_key: None,
            secret_key_previous: None,
            max_concurrency_per_app: None,
            max_queued_per_app: None,
            admission_wait_ms: DEFAULT_MAX_WAIT_MS,
            files_dir: None,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_app_files_bytes: DEFAULT_MAX_APP_BYTES,
            max_app_kv_bytes: DEFAULT_MAX_APP_KV_BYTES,
            max_app_docs_bytes: DEFAULT_MAX_APP_DOCS_BYTES,
            invocation_retention_days: DEFAULT_INVOCATION_RETENTION_DAYS,
            change_event_retention_days: DEFAULT_DISPATCHED_EVENT_RETENTION_DAYS,
            undispatched_event_retention_days: DEFAULT_UNDISPATCHED_EVENT_RETENTION_DAYS,
            usage_retention_days: DEFAULT_USAGE_RETENTION_DAYS,
            warm_instances: DEFAULT_MAX_WARM_INSTANCES,
            header_read_timeout_secs: DEFAULT_HEADER_READ_TIMEOUT_SECS,
            body_read_timeout_secs: DEFAULT_BODY_READ_TIMEOUT_SECS,
            event_claim_secs: DEFAULT_EVENT_CLAIM_SECS,
            max_instances: DEFAULT_MAX_INSTANCES,
            cpu_slots: None,
            clock: crate::quota::Clock::default(),
            outbound_allow_cidrs: Vec::new(),
            outbound_ports: outbound::DEFAULT_PORTS.to_vec(),
            outbound_timeout_ms: outbound::DEFAULT_TIMEOUT_MS,
            outbound_max_response_bytes: outbound::DEFAULT_MAX_RESPONSE_BYTES,
            outbound_max_calls: outbound::DEFAULT_MAX_CALLS,
            smtp_url: None,
            smtp_ca_file: None,
            email_from: None,
            email_max_bytes: mailer::DEFAULT_MAX_BYTES,
            email_daily_limit: mailer::DEFAULT_DAILY_LIMIT,
            realtime_heartbeat_secs: crate::events::realtime::DEFAULT_HEARTBEAT.as_secs(),
            realtime_buffer: crate::events::realtime::DEFAULT_BUFFER,
            realtime_max_subscribers_per_app:
                crate::events::realtime::DEFAULT_MAX_SUBSCRIBERS_PER_APP,
            realtime_max_subscribers: crate::events::realtime::DEFAULT_MAX_SUBSCRIBERS,
        }
    }

    /// Guests' outbound email, or `None` (logged once) when --smtp-url is not given.
    pub fn mailer(&self) -> anyhow::Result<Option<mailer::Mailer>> {
        let Some(smtp_url) = &self.smtp_url else {
            tracing::warn!(
                "email is not configured (no --smtp-url / PICLOUD_SMTP_URL): every email \
                 send answers unavailable(\"{}\")",
                crate::services::email::NOT_CONFIGURED
            );
            return Ok(None);
        };
        let Some(from) = &self.email_from else {
            anyhow::bail!(
                "--email-from (PICLOUD_EMAIL_FROM) is required with --smtp-url: the From \
                 address of email of apps without their own"
            );
        };
        let mailer = mailer::Mailer::new(&mailer::MailerConfig {
            smtp_url: smtp_url.clone(),
            ca_file: self.smtp_ca_file.clone(),
            from: from.clone(),
            max_bytes: self.email_max_bytes,
            daily_limit: self.email_daily_limit,
        })?;
        tracing::info!(from = %mailer.default_from(), "email goes out through the SMTP relay of --smtp-url");
        Ok(Some(mailer))
    }

    /// The settings of guests' outbound http.
    pub fn outbound(&self) -> outbound::OutboundConfig {
        outbound::OutboundConfig {
            allow_cidrs: self.outbound_allow_cidrs.clone(),
            ports: self.outbound_ports.clone(),
            max_response_bytes: self.outbound_max_response_bytes,
            max_timeout: Duration::from_millis(self.outbound_timeout_ms),
            max_calls: self.outbound_max_calls,
        }
    }

    /// What the retention job keeps.
    pub fn retention(&self) -> Retention {
        let days = |n: u32| Duration::from_secs(u64::from(n) * 86_400);
        Retention {
            invocations: days(self.invocation_retention_days),
            dispatched_events: days(self.change_event_retention_days),
            undispatched_events: days(self.undispatched_event_retention_days),
            usage: days(self.usage_retention_days),
        }
    }
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// Runs invocations.
    pub invoker: Arc<Invoker>,
    /// Changes apps, functions and routes.
    pub control: Arc<crate::control::Control>,
    /// Invocation records.
    pub recorder: Recorder,
    /// Base domain for host-based routing.
    pub base_domain: Arc<str>,
    /// Time a client has to send the body of a request to a function.
    pub body_read_timeout: Duration,
}

/// A started server: its state and what `serve` needs to run it.
pub struct Server {
    /// Handler state.
    pub state: AppState,
    /// Background jobs, stopped when serving ends.
    jobs: Arc<crate::jobs::Jobs>,
    listener: tokio::net::TcpListener,
    dashboard: Option<tokio::net::TcpListener>,
    header_read_timeout: Duration,
}

impl Server {
    /// Opens storage, runs migrations, bootstraps the admin token, builds the runtime
    /// and binds the listener. Prints the admin token when it generated one.
    pub async fn start(args: &ServeArgs) -> anyhow::Result<Self> {
        crate::storage::files::create_private_dir(&args.data_dir)?;
        let url = match &args.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                args.data_dir.join("picloud.db").display()
            ),
        };
        let db = Db::open(&url).await?;
        let blobs = match (&args.files_dir, db.dialect()) {
            (Some(dir), _) => BlobStore::Disk(dir.clone()),
            (None, Dialect::Sqlite) => BlobStore::Disk(args.data_dir.join("files")),
            (None, Dialect::Postgres) => BlobStore::Database,
        };
        let db = db.with_files(FilesConfig {
            blobs,
            max_file_bytes: args.max_file_bytes,
            max_app_bytes: args.max_app_files_bytes,
        });
        db.set_storage_quotas(args.max_app_kv_bytes, args.max_app_docs_bytes)
            .await?;
        let keys = crate::vault::Keys::load(
            &db,
            &args.data_dir,
            args.secret_key.as_deref(),
            args.secret_key_previous.as_deref(),
        )
        .await?;
        let db = db.with_secret_keys(Arc::new(keys));
        let token = match (&args.admin_token, &args.admin_token_file) {
            (Some(_), Some(_)) => anyhow::bail!(
                "give the admin token once: PICLOUD_ADMIN_TOKEN or --admin-token-file, not both"
            ),
            (_, Some(file)) => Some(auth::read_token_file(file)?),
            (token, None) => token.clone(),
        };
        auth::bootstrap_admin_token(&db, &args.data_dir, token.as_deref()).await?;

        let runtime = Runtime::new(&RuntimeConfig {
            cache_dir: Some(args.data_dir.join("cache")),
            max_warm_instances: args.warm_instances,
            max_instances: args.max_instances,
            ..RuntimeConfig::default()
        })?;
        let quotas = Arc::new(crate::quota::FuelQuotas::new(
            db.clone(),
            args.clock.clone(),
        ));
        let recorder = Recorder::start(db.clone(), Some(quotas.clone()));
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let max_running = args
            .max_concurrency_per_app
            .unwrap_or_else(|| crate::admission::default_max_running(cores));
        let gates = Gates::new(AdmissionConfig {
            max_running,
            max_queued: args
                .max_queued_per_app
                .unwrap_or_else(|| max_running.saturating_mul(DEFAULT_QUEUED_PER_RUNNING)),
            max_wait: Duration::from_millis(args.admission_wait_ms),
        });
        let invoker = Invoker::new(
            db.clone(),
            Arc::new(runtime),
            Limits::default(),
            recorder.clone(),
            gates,
            args.cpu_slots.unwrap_or(cores),
            quotas,
        )
        .with_outbound(Arc::new(outbound::Outbound::new(args.outbound())?))
        .with_realtime(crate::events::realtime::RealtimeConfig {
            heartbeat: Duration::from_secs(args.realtime_heartbeat_secs.max(1)),
            buffer: args.realtime_buffer.max(1),
            max_subscribers_per_app: args.realtime_max_subscribers_per_app,
            max_subscribers: args.realtime_max_subscribers,
        });
        let invoker = match args.mailer()? {
            Some(mailer) => invoker.with_mailer(Arc::new(mailer)),
            None => invoker,
        };
        let invoker = Arc::new(invoker);
        let state = AppState {
            db: db.clone(),
            control: Arc::new(crate::control::Control::new(db.clone(), invoker.clone())),
            invoker,
            recorder,
            base_domain: args.base_domain.as_str().into(),
            body_read_timeout: Duration::from_secs(args.body_read_timeout_secs),
        };

        // Compiled code of functions deleted while the server was down, and of earlier
        // PiCloud and wasmtime versions.
        if let Err(e) = state.invoker.collect_garbage().await {
            tracing::warn!(error = %e, "collecting unused compiled code failed");
        }
        let jobs = Arc::new(crate::jobs::Jobs::new());
        // This node's own: its warm instances and its blob directory.
        let invoker = state.invoker.clone();
        jobs.every("trim-warm", WARM_TRIM_INTERVAL, move || {
            let dropped = invoker.trim_warm(WARM_MAX_IDLE);
            if dropped > 0 {
                tracing::debug!(dropped, "dropped idle warm instances");
            }
            std::future::ready(())
        });
        let blobs_db = db.clone();
        jobs.every("blob-sweep", ORPHAN_SWEEP_INTERVAL, move || {
            let db = blobs_db.clone();
            async move {
                match db.sweep_orphan_blobs(ORPHAN_GRACE).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "swept orphan file blobs"),
                    Err(e) => tracing::warn!(error = %e, "file blob sweep failed"),
                }
            }
        });
        // The database's: one node of a cluster does them.
        let sweep_db = db.clone();
        jobs.every_on_one_node("kv-sweep", SWEEP_INTERVAL, db.clone(), move || {
            let db = sweep_db.clone();
            async move {
                match db.sweep_expired_kv().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(removed = n, "swept expired kv entries"),
                    Err(e) => tracing::warn!(error = %e, "kv sweep failed"),
                }
            }
        });
        let retention = Arc::new(args.retention());
        let retention_db = state.db.clone();
        jobs.every_on_one_node("retention", RETENTION_INTERVAL, db.clone(), move || {
            let (db, retention) = (retention_db.clone(), retention.clone());
            async move {
                match db.prune(&retention).await {
                    Ok(pruned) if pruned == Pruned::default() => {}
                    Ok(pruned) => tracing::info!(?pruned, "pruned old records"),
                    Err(e) => tracing::warn!(error = %e, "retention pass failed"),
                }
            }
        });

        // Each node dispatches events; they share the work through the database.
        crate::events::Dispatcher::new(
            db.clone(),
            state.invoker.clone(),
            crate::events::DispatchConfig {
                lease: Duration::from_secs(args.event_claim_secs.max(1)),
                ..crate::events::DispatchConfig::default()
            },
        )
        .start(&jobs)
        .await;

        // Realtime messages travel between the nodes of one PostgreSQL database.
        if let (Some(url), Dialect::Postgres) = (&args.database_url, db.dialect()) {
            let realtime = state.invoker.realtime().clone();
            realtime.relay_as(jobs.node());
            jobs.until_shutdown(
                "realtime-relay",
                crate::events::realtime::relay_listener(url.clone(), db.clone(), realtime),
            );
        }

        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let dashboard = match args.dashboard_listen.0 {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                anyhow::anyhow!("cannot listen for the dashboard on {addr}: {e} (set --dashboard-listen, or off)")
            })?),
            None => None,
        };
        Ok(Self {
            state,
            jobs,
            listener,
            dashboard,
            header_read_timeout: Duration::from_secs(args.header_read_timeout_secs),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The dashboard's bound address, when it has one.
    pub fn dashboard_addr(&self) -> Option<SocketAddr> {
        self.dashboard.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves HTTP/1.1 until `shutdown` resolves, then drains in-flight requests.
    ///
    /// A connection must send each request's headers within the header read timeout
    /// (hyper's, which needs the timer axum's `serve` does not give it), or it is closed.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let recorder = self.state.recorder.clone();
        let realtime = self.state.invoker.realtime().clone();
        let jobs = self.jobs.clone();
        let dashboard = crate::dashboard::router(self.state.clone());
        let front = dataplane::Front::new(self.state.clone(), router(self.state));
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout);
        let connections = hyper_util::server::graceful::GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (accepted, for_dashboard) = tokio::select! {
                accepted = self.listener.accept() => (accepted.map(|(stream, _)| stream), false),
                accepted = accept_on(self.dashboard.as_ref()) => (accepted, true),
                () = &mut shutdown => break,
            };
            let stream = match accepted {
                Ok(stream) => stream,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            };
            if for_dashboard {
                let dashboard = dashboard.clone();
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        tower::Service::call(
                            &mut dashboard.clone(),
                            request.map(axum::body::Body::new),
                        )
                    },
                );
                let connection =
                    connections.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "dashboard connection ended with an error");
                    }
                });
                continue;
            }
            let front = front.clone();
            // `Front` is always ready: no `poll_ready` before `call`.
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    tower::Service::call(&mut front.clone(), request.map(axum::body::Body::new))
                },
            );
            let connection =
                connections.watch(http.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        drop(self.dashboard);
        // Realtime streams never end by themselves: end them, or draining waits forever.
        realtime.close();
        connections.shutdown().await;
        jobs.shutdown().await;
        recorder.flush().await;
        Ok(())
    }
}

/// Where the dashboard listens: an address, or nowhere (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DashboardListen(pub Option<SocketAddr>);

/// `--dashboard-listen`: an address, or `off`.
fn parse_dashboard_listen(value: &str) -> Result<DashboardListen, String> {
    if value == "off" {
        return Ok(DashboardListen(None));
    }
    value
        .parse()
        .map(|addr| DashboardListen(Some(addr)))
        .map_err(|e| format!("{value:?} is not an address like 127.0.0.1:8081 or off: {e}"))
}

/// The next connection of `listener`; never, without one.
async fn accept_on(
    listener: Option<&tokio::net::TcpListener>,
) -> std::io::Result<tokio::net::TcpStream> {
    match listener {
        Some(listener) => listener.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

/// After a failed accept: nothing when only that connection failed, else a pause.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %error, "accepting a connection failed");
    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
}

/// Headers of every answer that is not a function's (the admin API, health): not to be
/// sniffed as another type, framed by another page (a function's, say) or cached.
const NOT_A_FUNCTION_HEADERS: [(HeaderName, &str); 4] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::CACHE_CONTROL, "no-store"),
];

/// Health and the admin API: what is not for a function (see [`dataplane::Front`]).
/// The admin API takes its token from the `Authorization` header only, never from a
/// cookie, so a page of a function on the same origin cannot use it.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .nest("/api/v1", api::router(state.clone()))
        .merge(crate::events::realtime::router())
        .with_state(state)
        .layer(axum::middleware::map_response(
            |mut response: axum::response::Response| async move {
                for (name, value) in NOT_A_FUNCTION_HEADERS {
                    response
                        .headers_mut()
                        .insert(name, HeaderValue::from_static(value));
                }
                response
            },
        ))
}

async fn readyz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<&'static str, crate::error::ApiError> {
    if state.db.ping().await {
        Ok("ready")
    } else {
        Err(crate::error::ApiError::unavailable(
            "the database is unreachable",
        ))
    }
}

/// Runs `picloud serve` until Ctrl-C or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let server = Server::start(&args).await?;
    let addr = server.local_addr()?;
    println!(
        "PiCloud listening on http://{addr}  (admin API at /api/v1, functions at /fn/{{app}}/…)"
    );
    match server.dashboard_addr() {
        Some(dashboard) => println!("Dashboard at http://{dashboard}/dashboard/"),
        None => println!("Dashboard off (--dashboard-listen)"),
    }
    server.serve(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
