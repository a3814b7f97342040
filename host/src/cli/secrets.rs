//! `picloud secrets`: set, list and delete an app's secrets; rekey after a key rotation.

use super::{Client, print};
use clap::Subcommand;
use serde_json::json;
use std::io::{IsTerminal, Read};

#[derive(Debug, Subcommand)]
pub(super) enum SecretsCommand {
    /// Set a secret. The value is read from stdin (without echo on a terminal; one
    /// trailing newline is dropped), never from the command line.
    Set {
        /// App name.
        app: String,
        /// Secret name (A-Z a-z 0-9 _ - .).
        name: String,
    },
    /// List an app's secret names and when each was set (never the values).
    List {
        /// App name.
        app: String,
    },
    /// Delete a secret.
    Delete {
        /// App name.
        app: String,
        /// Secret name.
        name: String,
    },
    /// Reseal every secret sealed with PICLOUD_SECRET_KEY_PREVIOUS with the current key
    /// (run once after starting the server with both keys).
    Rekey,
}

/// The value from stdin: prompted without echo on a terminal, else read whole.
pub(super) fn read_value(name: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        return Ok(rpassword::prompt_password(format!("value of {name}: "))?);
    }
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .map_err(|e| anyhow::anyhow!("reading the value from stdin: {e}"))?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    Ok(value)
}

pub(super) async fn run(
    client: &Client,
    json: bool,
    command: SecretsCommand,
) -> anyhow::Result<()> {
    match command {
        SecretsCommand::Set { app, name } => {
            let value = read_value(&name)?;
            client
                .send(
                    reqwest::Method::PUT,
                    &format!("/apps/{app}/secrets/{name}"),
                    Some(json!({ "value": value })),
                )
                .await?;
            print(json, &json!({ "set": name }), || {
                format!("set secret {name}")
            });
        }
        SecretsCommand::List { app } => {
            let list = client
                .send(reqwest::Method::GET, &format!("/apps/{app}/secrets"), None)
                .await?;
            print(json, &list, || {
                let lines: Vec<String> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        let updated = s["updated_at"]
                            .as_i64()
                            .and_then(chrono::DateTime::from_timestamp_millis)
                            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                            .unwrap_or_default();
                        format!("{}  {updated}", s["name"].as_str().unwrap_or(""))
                    })
                    .collect();
                if lines.is_empty() {
                    format!("app {app} has no secrets")
                } else {
                    lines.join("\n")
                }
            });
        }
        SecretsCommand::Delete { app, name } => {
            client
                .send(
                    reqwest::Method::DELETE,
                    &format!("/apps/{app}/secrets/{name}"),
                    None,
                )
                .await?;
            print(json, &json!({ "deleted": name }), || {
                format!("deleted secret {name}")
            });
        }
        SecretsCommand::Rekey => {
            let answer = client
                .send(reqwest::Method::POST, "/secrets/rekey", None)
                .await?;
            print(json, &answer, || {
                format!(
                    "resealed {} secrets with key {}",
                    answer["rekeyed"],
                    answer["key_id"].as_str().unwrap_or("")
                )
            });
        }
    }
    Ok(())
}
