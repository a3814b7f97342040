//! The `picloud` command line: `serve`, and the client commands that talk to a server
//! over the admin API.

mod email;
mod secrets;
mod tokens;
mod topics;
mod triggers;
mod users;

use crate::server::{self, ServeArgs};
use anyhow::{Context, anyhow, bail};
use clap::{Parser, Subcommand};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Default server URL of the client commands.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// PiCloud: self-hosted serverless functions in a wasmtime sandbox.
#[derive(Debug, Parser)]
#[command(name = "picloud", version, about)]
pub struct Cli {
    /// Server URL of the client commands.
    #[arg(long, env = "PICLOUD_URL", default_value = DEFAULT_URL, global = true)]
    url: String,
    /// Admin API token (default: ./.picloud/admin-token when present).
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
    Apps(AppsCommand),
    /// Upload a component or Rhai script as the next version of a function and bind
    /// routes to it.
    Deploy {
        /// The .wasm component or .rhai script.
        file: PathBuf,
        /// App to deploy to.
        #[arg(long)]
        app: String,
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
    Routes(RoutesCommand),
    /// List, download, upload and delete an app's files.
    #[command(subcommand)]
    Files(FilesCommand),
    /// Declare, list and drop indexes of an app's document collections.
    #[command(subcommand)]
    Indexes(IndexesCommand),
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

#[derive(Debug, Subcommand)]
enum FilesCommand {
    /// List an app's files (path order).
    List {
        /// App name.
        app: String,
        /// Only paths starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Download a file (to stdout, or --output).
    Get {
        /// App name.
        app: String,
        /// The file's path.
        path: String,
        /// Write here instead of stdout.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// Upload a local file as PATH.
    Put {
        /// App name.
        app: String,
        /// The file's path in the app.
        path: String,
        /// The local file.
        file: PathBuf,
        /// Content type (default application/octet-stream).
        #[arg(long)]
        content_type: Option<String>,
    },
    /// Delete a file.
    Delete {
        /// App name.
        app: String,
        /// The file's path.
        path: String,
    },
}

#[derive(Debug, Subcommand)]
enum IndexesCommand {
    /// List an app's declared indexes.
    List {
        /// App name.
        app: String,
    },
    /// Index FIELD (a dotted path) of COLLECTION; queries on it then use the index.
    Create {
        /// App name.
        app: String,
        /// Collection name.
        collection: String,
        /// Field path, like `status` or `address.city`.
        field: String,
    },
    /// Drop the index on FIELD of COLLECTION.
    Delete {
        /// App name.
        app: String,
        /// Collection name.
        collection: String,
        /// Field path.
        field: String,
    },
}

#[derive(Debug, Subcommand)]
enum AppsCommand {
    /// Create an app.
    Create {
        /// App name (a-z 0-9 -).
        name: String,
    },
    /// List apps.
    List,
    /// Delete an app and everything it owns.
    Delete {
        /// App name.
        name: String,
    },
    /// Show an app's limits, or set some of them (the others keep their values).
    Limits {
        /// App name.
        name: String,
        /// Fuel per invocation.
        #[arg(long)]
        fuel: Option<u64>,
        /// Wall-clock milliseconds per invocation.
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// Linear-memory bytes per instance.
        #[arg(long)]
        memory_bytes: Option<u64>,
        /// Fuel per UTC day, all invocations together (unlimited by default).
        #[arg(long)]
        daily_fuel: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum RoutesCommand {
    /// List an app's routes.
    List {
        /// App name.
        app: String,
    },
    /// Bind 'METHOD /path' of an app to a function.
    Add {
        /// App name.
        app: String,
        /// Like 'GET /orders/:id'.
        route: String,
        /// Function name.
        function: String,
        /// Answer 202 at once and run the function from the queue (read its answer
        /// with `picloud execution APP ID`).
        #[arg(long = "async")]
        is_async: bool,
    },
    /// Delete a route by id.
    Delete {
        /// App name.
        app: String,
        /// Route id (see `routes list`).
        id: String,
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
    if let Command::Serve(args) = command {
        return server::run(*args).await;
    }
    let client = Client::new(url, token)?;
    match command {
        Command::Serve(_) => unreachable!("handled above"),
        Command::Apps(AppsCommand::Create { name }) => {
            let app = client
                .send(
                    reqwest::Method::POST,
                    "/apps",
                    Some(json!({ "name": name })),
                )
                .await?;
            print(json, &app, || format!("created app {name}"));
        }
        Command::Apps(AppsCommand::List) => {
            let apps = client.send(reqwest::Method::GET, "/apps", None).await?;
            print(json, &apps, || {
                let names: Vec<&str> = apps
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a["name"].as_str())
                    .collect();
                if names.is_empty() {
                    "no apps yet".to_owned()
                } else {
                    names.join("\n")
                }
            });
        }
        Command::Apps(AppsCommand::Delete { name }) => {
            client
                .send(reqwest::Method::DELETE, &format!("/apps/{name}"), None)
                .await?;
            print(json, &json!({ "deleted": name }), || {
                format!("deleted app {name}")
            });
        }
        Command::Apps(AppsCommand::Limits {
            name,
            fuel,
            timeout_ms,
            memory_bytes,
            daily_fuel,
        }) => {
            let path = format!("/apps/{name}");
            let mut app = client.send(reqwest::Method::GET, &path, None).await?;
            let given = [
                ("fuel", fuel),
                ("timeout_ms", timeout_ms),
                ("memory_bytes", memory_bytes),
                ("daily_fuel", daily_fuel),
            ];
            if given.iter().any(|(_, v)| v.is_some()) {
                let mut limits = app["limits"].clone();
                if !limits.is_object() {
                    limits = json!({});
                }
                for (field, value) in given {
                    if let Some(value) = value {
                        limits[field] = json!(value);
                    }
                }
                app = client
                    .send(
                        reqwest::Method::PUT,
                        &format!("{path}/limits"),
                        Some(limits),
                    )
                    .await?;
            }
            let limits = app["effective_limits"].clone();
            print(json, &limits, || {
                let daily = limits["daily_fuel"]
                    .as_u64()
                    .map_or_else(|| "unlimited".to_owned(), |f| f.to_string());
                format!(
                    "fuel {}  timeout_ms {}  memory_bytes {}  daily_fuel {daily}",
                    limits["fuel"], limits["timeout_ms"], limits["memory_bytes"]
                )
            });
        }
        Command::Outbound {
            app,
            allow_hosts,
            any_host,
        } => {
            let path = format!("/apps/{app}/outbound");
            let settings = if any_host {
                let body = json!({ "allow_hosts": null });
                client.send(reqwest::Method::PUT, &path, Some(body)).await?
            } else if !allow_hosts.is_empty() {
                let body = json!({ "allow_hosts": allow_hosts });
                client.send(reqwest::Method::PUT, &path, Some(body)).await?
            } else {
                client.send(reqwest::Method::GET, &path, None).await?
            };
            print(json, &settings, || {
                match settings["allow_hosts"].as_array() {
                    None => format!("{app} may reach any host the SSRF guard lets through"),
                    Some(hosts) => {
                        let hosts: Vec<&str> = hosts.iter().filter_map(|h| h.as_str()).collect();
                        format!("{app} may reach only: {}", hosts.join(", "))
                    }
                }
            });
        }
        Command::Usage { app, days } => {
            let usage = client
                .send(
                    reqwest::Method::GET,
                    &format!("/apps/{app}/usage?days={days}"),
                    None,
                )
                .await?;
            print(json, &usage, || {
                let mut lines = vec![format!(
                    "{:<10} {:>11} {:>7} {:>16} {:>12}",
                    "day", "invocations", "errors", "fuel", "wall ms"
                )];
                for day in usage.as_array().into_iter().flatten() {
                    lines.push(format!(
                        "{:<10} {:>11} {:>7} {:>16} {:>12}",
                        day["day"].as_str().unwrap_or(""),
                        day["invocations"],
                        day["errors"],
                        day["fuel_used"],
                        day["duration_us"].as_i64().unwrap_or(0) / 1000
                    ));
                }
                if lines.len() == 1 {
                    format!("no invocations of {app} in the last {days} days")
                } else {
                    lines.join("\n")
                }
            });
        }
        Command::Deploy {
            file,
            app,
            name,
            routes,
            kind,
        } => deploy(&client, json, &file, &app, name, &routes, kind).await?,
        Command::Invoke { target, data } => invoke(&client, &target, data).await?,
        Command::Logs {
            app,
            function,
            status,
            limit,
            follow,
        } => {
            let filter = LogFilter {
                app,
                function,
                status,
            };
            if follow {
                follow_logs(&client, json, &filter, limit).await?;
            } else {
                logs(&client, json, &filter, limit).await?;
            }
        }
        Command::Routes(RoutesCommand::List { app }) => {
            let routes = client
                .send(reqwest::Method::GET, &format!("/apps/{app}/routes"), None)
                .await?;
            print(json, &routes, || {
                let lines: Vec<String> = routes
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        format!(
                            "{:<7} {:<30} → {}  ({})",
                            r["method"].as_str().unwrap_or(""),
                            r["path"].as_str().unwrap_or(""),
                            r["function"].as_str().unwrap_or(""),
                            r["id"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                if lines.is_empty() {
                    format!("app {app} has no routes")
                } else {
                    lines.join("\n")
                }
            });
        }
        Command::Routes(RoutesCommand::Add {
            app,
            route,
            function,
            is_async,
        }) => {
            let created = add_route(&client, &app, &route, &function, is_async).await?;
            print(json, &created, || {
                let how = if is_async {
                    " (async: 202, then `picloud execution`)"
                } else {
                    ""
                };
                format!("bound {route} → {function}{how}")
            });
        }
        Command::Execution { app, id } => {
            let execution = client
                .send(
                    reqwest::Method::GET,
                    &format!("/apps/{app}/executions/{id}"),
                    None,
                )
                .await?;
            print(json, &execution, || {
                let mut text = format!(
                    "execution {id} of {}: {}",
                    execution["function"].as_str().unwrap_or(""),
                    execution["status"].as_str().unwrap_or("")
                );
                if let Some(status) = execution["result"]["status"].as_u64() {
                    text.push_str(&format!(", answered {status}"));
                }
                if let Some(error) = execution["error"].as_str() {
                    text.push_str(&format!(": {error}"));
                }
                text
            });
        }
        Command::Files(command) => files(&client, json, command).await?,
        Command::Secrets(command) => secrets::run(&client, json, command).await?,
        Command::Triggers(command) => triggers::triggers(&client, json, command).await?,
        Command::DeadLetters(command) => triggers::dead_letters(&client, json, command).await?,
        Command::Email(command) => email::run(&client, json, command).await?,
        Command::Topics(command) => topics::run(&client, json, command).await?,
        Command::Users(command) => users::run(&client, json, command).await?,
        Command::Tokens(command) => tokens::run(&client, json, command).await?,
        Command::Indexes(command) => indexes(&client, json, command).await?,
        Command::Routes(RoutesCommand::Delete { app, id }) => {
            client
                .send(
                    reqwest::Method::DELETE,
                    &format!("/apps/{app}/routes/{id}"),
                    None,
                )
                .await?;
            print(json, &json!({ "deleted": id }), || {
                format!("deleted route {id}")
            });
        }
    }
    Ok(())
}

/// `path` with each segment percent-encoded, for a URL.
fn url_path(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The normal form of a file path, checked here so that `..` is refused with the
/// server's message instead of being resolved away by URL normalisation.
fn file_path(path: &str) -> anyhow::Result<String> {
    crate::storage::files::normalize_path(path).map_err(|e| anyhow!(e))
}

async fn files(client: &Client, json: bool, command: FilesCommand) -> anyhow::Result<()> {
    match command {
        FilesCommand::List { app, prefix } => {
            let mut all = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!(
                    "/apps/{app}/files?limit=1000&prefix={}",
                    url_path(&prefix).replace('/', "%2F")
                );
                if let Some(cursor) = &cursor {
                    path.push_str(&format!("&cursor={}", url_path(cursor).replace('/', "%2F")));
                }
                let page = client.send(reqwest::Method::GET, &path, None).await?;
                all.extend(page["files"].as_array().cloned().unwrap_or_default());
                match page["cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            let value = Value::Array(all);
            print(json, &value, || {
                let lines: Vec<String> = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| {
                        format!(
                            "{:>10}  {:<24}  {}",
                            f["size"],
                            f["content_type"].as_str().unwrap_or(""),
                            f["path"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                if lines.is_empty() {
                    format!("app {app} has no files")
                } else {
                    lines.join("\n")
                }
            });
        }
        FilesCommand::Get { app, path, output } => {
            let path = file_path(&path)?;
            let response = client
                .raw(
                    reqwest::Method::GET,
                    &format!("/apps/{app}/files/{}", url_path(&path)),
                )
                .send()
                .await
                .map_err(|e| client.unreachable(e))?;
            if !response.status().is_success() {
                client.finish(response).await?;
                bail!("download failed");
            }
            let bytes = response.bytes().await?;
            match output {
                Some(file) => {
                    std::fs::write(&file, &bytes)
                        .with_context(|| format!("writing {}", file.display()))?;
                    let done = json!({ "path": path, "size": bytes.len(), "output": file });
                    print(json, &done, || {
                        format!("wrote {} bytes to {}", bytes.len(), file.display())
                    });
                }
                None => {
                    use std::io::Write as _;
                    std::io::stdout().write_all(&bytes)?;
                }
            }
        }
        FilesCommand::Put {
            app,
            path,
            file,
            content_type,
        } => {
            let path = file_path(&path)?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let response = client
                .raw(
                    reqwest::Method::PUT,
                    &format!("/apps/{app}/files/{}", url_path(&path)),
                )
                .header(
                    "content-type",
                    content_type
                        .as_deref()
                        .unwrap_or("application/octet-stream"),
                )
                .body(bytes)
                .send()
                .await
                .map_err(|e| client.unreachable(e))?;
            let stat = client.finish(response).await?;
            print(json, &stat, || {
                format!(
                    "stored {} ({} bytes, sha256 {})",
                    stat["path"].as_str().unwrap_or(""),
                    stat["size"],
                    stat["sha256"].as_str().unwrap_or("")
                )
            });
        }
        FilesCommand::Delete { app, path } => {
            let path = file_path(&path)?;
            client
                .send(
                    reqwest::Method::DELETE,
                    &format!("/apps/{app}/files/{}", url_path(&path)),
                    None,
                )
                .await?;
            print(json, &json!({ "deleted": path }), || {
                format!("deleted {path}")
            });
        }
    }
    Ok(())
}

async fn indexes(client: &Client, json: bool, command: IndexesCommand) -> anyhow::Result<()> {
    match command {
        IndexesCommand::List { app } => {
            let list = client
                .send(
                    reqwest::Method::GET,
                    &format!("/apps/{app}/docs/indexes"),
                    None,
                )
                .await?;
            print(json, &list, || {
                let lines: Vec<String> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|i| {
                        format!(
                            "{} {}",
                            i["collection"].as_str().unwrap_or(""),
                            i["field"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                if lines.is_empty() {
                    format!("app {app} has no indexes")
                } else {
                    lines.join("\n")
                }
            });
        }
        IndexesCommand::Create {
            app,
            collection,
            field,
        } => {
            client
                .send(
                    reqwest::Method::PUT,
                    &format!("/apps/{app}/docs/{collection}/indexes/{}", url_path(&field)),
                    None,
                )
                .await?;
            let done = json!({ "collection": collection, "field": field });
            print(json, &done, || format!("indexed {collection}.{field}"));
        }
        IndexesCommand::Delete {
            app,
            collection,
            field,
        } => {
            client
                .send(
                    reqwest::Method::DELETE,
                    &format!("/apps/{app}/docs/{collection}/indexes/{}", url_path(&field)),
                    None,
                )
                .await?;
            let done = json!({ "collection": collection, "field": field });
            print(json, &done, || {
                format!("dropped the index on {collection}.{field}")
            });
        }
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

async fn add_route(
    client: &Client,
    app: &str,
    route: &str,
    function: &str,
    is_async: bool,
) -> anyhow::Result<Value> {
    let (method, path) = crate::routing::parse_route_spec(route).map_err(|e| anyhow!(e))?;
    let dispatch = if is_async { "async" } else { "sync" };
    client
        .send(
            reqwest::Method::POST,
            &format!("/apps/{app}/routes"),
            Some(json!({ "method": method, "path": path, "function": function, "dispatch": dispatch })),
        )
        .await
}

async fn deploy(
    client: &Client,
    as_json: bool,
    file: &Path,
    app: &str,
    name: Option<String>,
    routes: &[String],
    kind: Option<String>,
) -> anyhow::Result<()> {
    let is_rhai = file.extension().is_some_and(|e| e == "rhai");
    let kind = match kind.as_deref() {
        None if is_rhai => "rhai",
        None => "component",
        Some("module") if is_rhai => "module",
        Some("module") => bail!("--kind module is for .rhai files"),
        Some(other) => bail!("--kind must be `module`, not {other:?}"),
    };
    let name = match name {
        Some(n) => n,
        None => default_function_name(file).ok_or_else(|| {
            anyhow!(
                "cannot derive a function name from {}; pass --name",
                file.display()
            )
        })?,
    };
    for route in routes {
        crate::routing::parse_route_spec(route).map_err(|e| anyhow!(e))?;
    }
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    if !as_json && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!(
            "uploading {} ({} bytes) and compiling…",
            file.display(),
            bytes.len()
        );
    }
    let deployed = client
        .upload(
            &format!("/apps/{app}/functions/{name}/versions?kind={kind}"),
            bytes,
        )
        .await?;
    let mut bound = Vec::new();
    for route in routes {
        bound.push(add_route(client, app, route, &name, false).await?);
    }
    let base = client.url.trim_end_matches('/');
    let urls: Vec<String> = bound
        .iter()
        .map(|r| {
            format!(
                "{} {base}/fn/{app}{}",
                r["method"].as_str().unwrap_or(""),
                r["path"].as_str().unwrap_or("")
            )
        })
        .collect();
    let out = json!({ "deployed": deployed, "routes": bound, "urls": urls });
    print(as_json, &out, || {
        let mut text = format!(
            "deployed {app}/{name} version {} ({}, sha256 {}, {} bytes)",
            deployed["version"],
            deployed["kind"].as_str().unwrap_or("?"),
            deployed["sha256"].as_str().unwrap_or("?"),
            deployed["size"]
        );
        if urls.is_empty() {
            text.push_str(&format!("\nno route bound: call it with `picloud invoke {app}/{name}` or deploy with --route 'GET /path'"));
        }
        for url in &urls {
            text.push_str(&format!("\n  {url}"));
        }
        text
    });
    Ok(())
}

async fn invoke(client: &Client, target: &str, data: Option<String>) -> anyhow::Result<()> {
    let (app, function) = target
        .split_once('/')
        .ok_or_else(|| anyhow!("the target must be APP/FUNCTION, got {target:?}"))?;
    let body = match data {
        Some(d) if d.starts_with('@') => {
            std::fs::read(&d[1..]).with_context(|| format!("cannot read {}", &d[1..]))?
        }
        Some(d) => d.into_bytes(),
        None => Vec::new(),
    };
    let response = client
        .raw(
            reqwest::Method::POST,
            &format!("/apps/{app}/functions/{function}/invoke"),
        )
        .body(body)
        .send()
        .await
        .map_err(|e| client.unreachable(e))?;
    let status = response.status();
    let bytes = response.bytes().await?;
    if status == StatusCode::UNAUTHORIZED {
        bail!("{}", unauthorized_message());
    }
    let platform_error = (!status.is_success())
        .then(|| serde_json::from_slice::<Value>(&bytes).ok())
        .flatten()
        .and_then(|value| {
            value
                .get("error")
                .filter(|e| e["code"].is_string())
                .cloned()
        });
    if let Some(error) = platform_error {
        bail!(
            "{} ({}, invocation {})",
            error["message"].as_str().unwrap_or("failed"),
            error["code"].as_str().unwrap_or("?"),
            error["invocation_id"].as_str().unwrap_or("-")
        );
    }
    use std::io::Write;
    std::io::stdout().write_all(&bytes)?;
    if !bytes.ends_with(b"\n") {
        println!();
    }
    Ok(())
}

/// Which invocations `picloud logs` shows.
struct LogFilter {
    app: String,
    function: Option<String>,
    status: Option<String>,
}

impl LogFilter {
    /// The newest `limit` invocations that pass, newest first.
    async fn fetch(&self, client: &Client, limit: u32) -> anyhow::Result<Value> {
        let mut query = vec![("limit".to_owned(), limit.to_string())];
        query.extend(self.function.clone().map(|f| ("function".to_owned(), f)));
        query.extend(self.status.clone().map(|s| ("status".to_owned(), s)));
        let qs: String = query
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        client
            .send(
                reqwest::Method::GET,
                &format!("/apps/{}/invocations?{qs}", self.app),
                None,
            )
            .await
    }
}

/// One invocation and its log lines, as `picloud logs` prints them.
fn describe_invocation(inv: &Value) -> Vec<String> {
    let outcome = match inv["error_code"].as_str() {
        Some(code) => format!(
            "{} {code}: {}",
            inv["http_status"],
            inv["error_message"].as_str().unwrap_or("")
        ),
        None => format!("{}", inv["http_status"]),
    };
    let mut out = vec![format!(
        "{}  {} v{}  {}  {:.2} ms  fuel {}  [{}]",
        inv["id"].as_str().unwrap_or(""),
        inv["function"].as_str().unwrap_or(""),
        inv["version"],
        outcome,
        inv["duration_us"].as_f64().unwrap_or(0.0) / 1000.0,
        inv["fuel_used"],
        inv["trigger"].as_str().unwrap_or("")
    )];
    for line in inv["logs"].as_array().into_iter().flatten() {
        out.push(format!(
            "    {:<5} {}",
            line["level"].as_str().unwrap_or(""),
            line["message"].as_str().unwrap_or("")
        ));
    }
    out
}

async fn logs(
    client: &Client,
    as_json: bool,
    filter: &LogFilter,
    limit: u32,
) -> anyhow::Result<()> {
    let invocations = filter.fetch(client, limit).await?;
    print(as_json, &invocations, || {
        let out: Vec<String> = invocations
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(describe_invocation)
            .collect();
        if out.is_empty() {
            format!("no invocations of {} yet", filter.app)
        } else {
            out.join("\n")
        }
    });
    Ok(())
}

/// How often `logs --follow` asks for new invocations, and how many at a time.
const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
const FOLLOW_PAGE: u32 = 200;
/// Ids `logs --follow` remembers having printed (records arrive in batches, not in id
/// order, so it remembers rather than comparing with the last id).
const FOLLOW_REMEMBERED: usize = 10_000;

/// `picloud logs --follow`: the newest `limit` invocations, then each new one as it is
/// recorded, oldest first, until interrupted.
async fn follow_logs(
    client: &Client,
    as_json: bool,
    filter: &LogFilter,
    limit: u32,
) -> anyhow::Result<()> {
    use std::collections::{HashSet, VecDeque};
    use std::io::Write as _;
    let mut seen: HashSet<String> = HashSet::new();
    let mut order: VecDeque<String> = VecDeque::new();
    let mut first = true;
    loop {
        let page = filter
            .fetch(client, if first { limit.max(1) } else { FOLLOW_PAGE })
            .await?;
        let mut fresh: Vec<&Value> = page
            .as_array()
            .into_iter()
            .flatten()
            .filter(|inv| inv["id"].as_str().is_some_and(|id| !seen.contains(id)))
            .collect();
        // Newest first from the API; printed oldest first, as a log reads.
        fresh.reverse();
        let mut stdout = std::io::stdout().lock();
        for inv in fresh {
            let id = inv["id"].as_str().unwrap_or_default().to_owned();
            if as_json {
                writeln!(stdout, "{inv}")?;
            } else {
                for line in describe_invocation(inv) {
                    writeln!(stdout, "{line}")?;
                }
            }
            seen.insert(id.clone());
            order.push_back(id);
            if order.len() > FOLLOW_REMEMBERED
                && let Some(old) = order.pop_front()
            {
                seen.remove(&old);
            }
        }
        stdout.flush()?;
        drop(stdout);
        first = false;
        tokio::select! {
            () = tokio::time::sleep(FOLLOW_INTERVAL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

fn unauthorized_message() -> &'static str {
    "the server refused the token (401): pass --token or set PICLOUD_TOKEN to the admin token (see .picloud/admin-token on the server)"
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

    fn new(url: String, token: Option<String>) -> anyhow::Result<Self> {
        let token = token.or_else(|| {
            std::fs::read_to_string(
                Path::new(server::DEFAULT_DATA_DIR).join(crate::auth::ADMIN_TOKEN_FILE),
            )
            .ok()
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

    async fn upload(&self, path: &str, bytes: Vec<u8>) -> anyhow::Result<Value> {
        let response = self
            .raw(reqwest::Method::POST, path)
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        self.finish(response).await
    }
}
