//! The `picloud` command line: `serve`, and the client commands that talk to a server
//! over the admin API.

mod apps;
mod config;
mod deploy;
mod email;
mod files;
mod indexes;
mod init;
mod logs;
mod manifest;
mod routes;
mod secrets;
mod tokens;
mod topics;
mod triggers;
mod usage;
mod users;

use crate::server::{self, ServeArgs};
use anyhow::{anyhow, bail};
use clap::{Parser, Subcommand};
use reqwest::StatusCode;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Default server URL of the client commands.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// PiCloud: self-hosted serverless functions in a wasmtime sandbox.
#[derive(Debug, Parser)]
#[command(name = "picloud", version, about)]
pub struct Cli {
    /// Server URL of the client commands (default: the one `picloud login` saved, else
    /// http://127.0.0.1:8080).
    #[arg(long, env = "PICLOUD_URL", global = true)]
    url: Option<String>,
    /// Admin API token (default: the one `picloud login` saved for this URL, else
    /// ./.picloud/admin-token when present).
    #[arg(long, env = "PICLOUD_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (embedded SQLite under --data-dir unless --database-url is given).
    Serve(Box<ServeArgs>),
    /// Create, list and delete apps (tenants); show and set their limits.
    #[command(subcommand)]
    Apps(apps::AppsCommand),
    /// Check a token against the server and save both (then commands need no --token).
    Login,
    /// Forget what `picloud login` saved.
    Logout,
    /// Write a new project directory NAME: a picloud.toml and a hello function.
    Init {
        /// The directory to create (its name is the app's name).
        name: PathBuf,
        /// `rhai` (a script, deployable as is) or `rust` (a wasm32-wasip2 component).
        #[arg(long, default_value = "rhai")]
        template: String,
        /// The app to deploy to (default: the directory's name).
        #[arg(long)]
        app: Option<String>,
        /// rust: the picloud-sdk crate (guest-sdk/ of the PiCloud source tree); default
        /// PICLOUD_SDK_PATH, else the source tree this binary was built from.
        #[arg(long, env = "PICLOUD_SDK_PATH")]
        sdk_path: Option<PathBuf>,
    },
    /// Upload a component or Rhai script as the next version of a function and bind
    /// routes to it; without FILE, deploy the project of ./picloud.toml (what changed).
    Deploy {
        /// The .wasm component or .rhai script (none: deploy ./picloud.toml).
        file: Option<PathBuf>,
        /// App to deploy FILE to.
        #[arg(long)]
        app: Option<String>,
        /// The project manifest to deploy (default ./picloud.toml).
        #[arg(long, conflicts_with_all = ["file", "app", "name", "routes", "kind"])]
        manifest: Option<PathBuf>,
        /// Function name (default: the file name without extension, `_` → `-`).
        #[arg(long)]
        name: Option<String>,
        /// Route to bind, like 'GET /orders/:id' (repeatable).
        #[arg(long = "route")]
        routes: Vec<String>,
        /// `module` deploys a .rhai file as a module other scripts import.
        #[arg(long)]
        kind: Option<String>,
    },
    /// A function's versions, the active one marked.
    #[command(subcommand)]
    Deployments(deploy::DeploymentsCommand),
    /// Make an earlier version of a function the active one (default: the one before).
    Rollback {
        /// APP/FUNCTION
        target: String,
        /// The version to activate.
        version: Option<i64>,
    },
    /// Call a function directly (POST with --data as the body).
    Invoke {
        /// APP/FUNCTION
        target: String,
        /// Request body; @FILE reads a file.
        #[arg(long, short = 'd')]
        data: Option<String>,
    },
    /// Show an app's invocations and their log lines, newest first.
    Logs {
        /// App name.
        app: String,
        /// Only this function.
        #[arg(long)]
        function: Option<String>,
        /// Only `ok` or only `error` invocations.
        #[arg(long)]
        status: Option<String>,
        /// How many invocations.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Then keep printing new invocations as they are recorded (oldest first; with
        /// --json one JSON object per line), until interrupted.
        #[arg(long, short)]
        follow: bool,
    },
    /// List, add and delete routes.
    #[command(subcommand)]
    Routes(routes::RoutesCommand),
    /// List, download, upload and delete an app's files.
    #[command(subcommand)]
    Files(files::FilesCommand),
    /// Declare, list and drop indexes of an app's document collections.
    #[command(subcommand)]
    Indexes(indexes::IndexesCommand),
    /// Set, list and delete an app's encrypted secrets.
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// The status and answer of a request to an async route.
    Execution {
        /// App name.
        app: String,
        /// The `execution_id` of its 202.
        id: String,
    },
    /// Run functions on a schedule, when an app's data changes or when its events die.
    #[command(subcommand)]
    Triggers(triggers::TriggersCommand),
    /// Events whose trigger failed every attempt: list, replay, resolve.
    #[command(subcommand)]
    DeadLetters(triggers::DeadLettersCommand),
    /// An app's pubsub topics: which browsers may subscribe to (external).
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
    /// An app's end users: list, get, create, delete, invite; email link settings.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Admin API tokens: create (scoped, per app, expiring), list, revoke.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// An app's email: its From address and today's sends.
    #[command(subcommand)]
    Email(email::EmailCommand),
    /// Show or set the hosts an app's outbound http may reach (operators only).
    Outbound {
        /// App name.
        app: String,
        /// Restrict the app to these hosts (repeatable; `*.example.com` allows its
        /// subdomains). Replaces the current list.
        #[arg(long = "allow-host")]
        allow_hosts: Vec<String>,
        /// Remove the restriction: any host the SSRF guard lets through.
        #[arg(long, conflicts_with = "allow_hosts")]
        any_host: bool,
    },
    /// An app's invocations, errors, fuel and wall time per UTC day.
    Usage {
        /// App name.
        app: String,
        /// How many days, today included.
        #[arg(long, default_value_t = 7)]
        days: u32,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("PICLOUD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli {
        url,
        token,
        json,
        command,
    } = cli;
    match command {
        Command::Serve(args) => return server::run(*args).await,
        Command::Logout => return config::logout(json),
        Command::Init {
            name,
            template,
            app,
            sdk_path,
        } => return init::run(json, &name, &template, app, sdk_path),
        _ => {}
    }
    if let Command::Login = command {
        // Logging in again: to the saved server unless --url names another.
        let url = url.or_else(|| config::load().ok().flatten().map(|c| c.url));
        let client = Client::new(url, None, false)?;
        return config::login(&client, json, token).await;
    }
    let client = Client::new(url, token, true)?;
    match command {
        Command::Serve(_) | Command::Login | Command::Logout | Command::Init { .. } => {
            unreachable!("handled above")
        }
        Command::Apps(command) => apps::run(&client, json, command).await?,
        Command::Outbound {
            app,
            allow_hosts,
            any_host,
        } => apps::outbound(&client, json, app, allow_hosts, any_host).await?,
        Command::Usage { app, days } => usage::run(&client, json, app, days).await?,
        Command::Deploy {
            file: Some(file),
            app,
            name,
            routes,
            kind,
            manifest: _,
        } => {
            let app = app.ok_or_else(|| {
                anyhow!("--app is required with FILE (or run `picloud deploy` without FILE next to a picloud.toml)")
            })?;
            deploy::deploy(&client, json, &file, &app, name, &routes, kind).await?;
        }
        Command::Deploy {
            file: None,
            app,
            name,
            routes,
            kind,
            manifest,
        } => {
            if app.is_some() || name.is_some() || !routes.is_empty() || kind.is_some() {
                bail!(
                    "--app, --name, --route and --kind go with FILE; a project's are in its picloud.toml"
                );
            }
            let manifest = manifest.unwrap_or_else(|| PathBuf::from(manifest::FILE_NAME));
            manifest::deploy(&client, json, &manifest).await?;
        }
        Command::Deployments(command) => deploy::deployments(&client, json, command).await?,
        Command::Rollback { target, version } => {
            deploy::rollback(&client, json, &target, version).await?;
        }
        Command::Invoke { target, data } => deploy::invoke(&client, json, &target, data).await?,
        Command::Logs {
            app,
            function,
            status,
            limit,
            follow,
        } => {
            let filter = logs::LogFilter {
                app,
                function,
                status,
            };
            if follow {
                logs::follow_logs(&client, json, &filter, limit).await?;
            } else {
                logs::logs(&client, json, &filter, limit).await?;
            }
        }
        Command::Routes(command) => routes::run(&client, json, command).await?,
        Command::Execution { app, id } => routes::execution(&client, json, app, id).await?,
        Command::Files(command) => files::run(&client, json, command).await?,
        Command::Secrets(command) => secrets::run(&client, json, command).await?,
        Command::Triggers(command) => triggers::triggers(&client, json, command).await?,
        Command::DeadLetters(command) => triggers::dead_letters(&client, json, command).await?,
        Command::Email(command) => email::run(&client, json, command).await?,
        Command::Topics(command) => topics::run(&client, json, command).await?,
        Command::Users(command) => users::run(&client, json, command).await?,
        Command::Tokens(command) => tokens::run(&client, json, command).await?,
        Command::Indexes(command) => indexes::run(&client, json, command).await?,
    }
    Ok(())
}

fn print(as_json: bool, value: &Value, text: impl FnOnce() -> String) {
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        println!("{}", text());
    }
}

/// The function name a file deploys as by default: `target/…/example_hello.wasm` → `example-hello`.
pub fn default_function_name(file: &Path) -> Option<String> {
    Some(file.file_stem()?.to_str()?.replace('_', "-"))
}

/// A bar of `total` bytes sent, on stderr.
fn upload_bar(total: u64, label: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template("{msg} [{bar:25}] {bytes}/{total_bytes}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(format!("uploading {label}"));
    bar
}

/// `bar` turned into a spinner: everything is sent, the server compiles.
fn compiling_spinner(bar: &indicatif::ProgressBar, label: &str) {
    if bar.is_hidden() {
        return;
    }
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        bar.set_style(style);
    }
    bar.set_message(format!("{label}: compiling…"));
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
}

fn unauthorized_message() -> &'static str {
    "the server refused the token (401): run `picloud login`, pass --token or set PICLOUD_TOKEN to an admin token (see .picloud/admin-token on the server)"
}

struct Client {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Client {
    /// The server URL the commands talk to.
    fn base_url(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    /// A client of `url` (flag or env) with `token` (flag or env); when not given, the
    /// URL and token `picloud login` saved (its token only for its URL), then
    /// ./.picloud/admin-token when `fallback`.
    fn new(url: Option<String>, token: Option<String>, fallback: bool) -> anyhow::Result<Self> {
        let saved = if fallback && (token.is_none() || url.is_none()) {
            config::load()?
        } else {
            None
        };
        let url = url
            .or_else(|| saved.as_ref().map(|c| c.url.clone()))
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let same_server =
            |c: &config::UserConfig| c.url.trim_end_matches('/') == url.trim_end_matches('/');
        let token = token
            .or_else(|| saved.filter(same_server).map(|c| c.token))
            .or_else(|| {
                fallback
                    .then(|| {
                        std::fs::read_to_string(
                            Path::new(server::DEFAULT_DATA_DIR).join(crate::auth::ADMIN_TOKEN_FILE),
                        )
                        .ok()
                    })
                    .flatten()
                    .map(|t| t.trim().to_owned())
            });
        Ok(Self {
            http: reqwest::Client::builder().build()?,
            url,
            token,
        })
    }

    fn raw(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(
            method,
            format!("{}/api/v1{path}", self.url.trim_end_matches('/')),
        );
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        if e.is_connect() {
            anyhow!(
                "cannot reach PiCloud at {} (is `picloud serve` running? set --url or PICLOUD_URL)",
                self.url
            )
        } else {
            anyhow!("request to {} failed: {e}", self.url)
        }
    }

    async fn finish(&self, response: reqwest::Response) -> anyhow::Result<Value> {
        let status = response.status();
        let bytes = response.bytes().await?;
        if status == StatusCode::UNAUTHORIZED {
            bail!("{}", unauthorized_message());
        }
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if !status.is_success() {
            let message = value["error"]["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("the server answered {status}"));
            bail!("{message}");
        }
        Ok(value)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.raw(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        self.finish(response).await
    }

    /// Uploads `bytes` to `path`; with `progress` on a terminal, a progress bar for the
    /// upload, then a spinner while the server compiles.
    async fn upload(
        &self,
        path: &str,
        bytes: Vec<u8>,
        label: &str,
        progress: bool,
    ) -> anyhow::Result<Value> {
        use std::io::IsTerminal as _;
        let total = bytes.len() as u64;
        let bar = if progress && std::io::stderr().is_terminal() {
            upload_bar(total, label)
        } else {
            indicatif::ProgressBar::hidden()
        };
        const CHUNK: usize = 64 * 1024;
        let bytes = bytes::Bytes::from(bytes);
        let chunks: Vec<bytes::Bytes> = (0..bytes.len())
            .step_by(CHUNK)
            .map(|at| bytes.slice(at..(at + CHUNK).min(bytes.len())))
            .collect();
        let counting = bar.clone();
        let compiling = label.to_owned();
        let stream = futures_util::stream::iter(chunks.into_iter().map(move |chunk| {
            counting.inc(chunk.len() as u64);
            if counting.position() >= total {
                compiling_spinner(&counting, &compiling);
            }
            Ok::<_, std::io::Error>(chunk)
        }));
        let response = self
            .raw(reqwest::Method::POST, path)
            .header("content-type", "application/wasm")
            .header("content-length", total)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map_err(|e| self.unreachable(e));
        bar.finish_and_clear();
        self.finish(response?).await
    }
}
