//! `picloud apps` (create, list, delete, limits) and `picloud outbound`.

use super::{Client, print};
use clap::Subcommand;
use serde_json::json;

#[derive(Debug, Subcommand)]
pub(super) enum AppsCommand {
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

pub(super) async fn run(client: &Client, json: bool, command: AppsCommand) -> anyhow::Result<()> {
    match command {
        AppsCommand::Create { name } => {
            let app = client
                .send(
                    reqwest::Method::POST,
                    "/apps",
                    Some(json!({ "name": name })),
                )
                .await?;
            print(json, &app, || format!("created app {name}"));
        }
        AppsCommand::List => {
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
        AppsCommand::Delete { name } => {
            client
                .send(reqwest::Method::DELETE, &format!("/apps/{name}"), None)
                .await?;
            print(json, &json!({ "deleted": name }), || {
                format!("deleted app {name}")
            });
        }
        AppsCommand::Limits {
            name,
            fuel,
            timeout_ms,
            memory_bytes,
            daily_fuel,
        } => {
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
    }
    Ok(())
}

/// `picloud outbound APP [--allow-host H]… [--any-host]`.
pub(super) async fn outbound(
    client: &Client,
    json: bool,
    app: String,
    allow_hosts: Vec<String>,
    any_host: bool,
) -> anyhow::Result<()> {
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
    Ok(())
}
