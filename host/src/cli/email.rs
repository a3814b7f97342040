//! `picloud email`: an app's From address and today's sends; its inbound email
//! triggers.

use super::{Client, print};
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub(super) enum EmailCommand {
    /// Show an app's From address, today's sends and the daily cap.
    Show {
        /// App name.
        app: String,
    },
    /// Set the From address of an app's email (`noreply@shop.example` or
    /// `Shop <noreply@shop.example>`), or go back to the server's with --server-default.
    From {
        /// App name.
        app: String,
        /// The address.
        #[arg(required_unless_present = "server_default")]
        address: Option<String>,
        /// Remove the app's own address: its email goes out from --email-from.
        #[arg(long, conflicts_with = "address")]
        server_default: bool,
    },
    /// Create an inbound email trigger: prints its webhook URL and its signing secret,
    /// which is shown this once.
    AddTrigger {
        /// App name.
        app: String,
        /// Trigger name (A-Z a-z 0-9 _ - .).
        name: String,
    },
    /// List an app's inbound email triggers (names, never their secrets).
    Triggers {
        /// App name.
        app: String,
    },
    /// Delete an inbound email trigger.
    DeleteTrigger {
        /// App name.
        app: String,
        /// Trigger name.
        name: String,
    },
}

fn describe(app: &str, settings: &Value) -> String {
    if settings["configured"] != true {
        return format!(
            "email is not configured on this server (no --smtp-url); {app} sent {} today",
            settings["sent_today"]
        );
    }
    let own = if settings["from"].is_null() {
        " (the server's)"
    } else {
        ""
    };
    format!(
        "{app} sends from {}{own}; {} of {} sent today (UTC)",
        settings["sends_from"].as_str().unwrap_or(""),
        settings["sent_today"],
        settings["daily_limit"]
    )
}

pub(super) async fn run(client: &Client, json: bool, command: EmailCommand) -> anyhow::Result<()> {
    match command {
        EmailCommand::Show { app } => {
            let settings = client
                .send(reqwest::Method::GET, &format!("/apps/{app}/email"), None)
                .await?;
            print(json, &settings, || describe(&app, &settings));
        }
        EmailCommand::From {
            app,
            address,
            server_default: _,
        } => {
            let settings = client
                .send(
                    reqwest::Method::PUT,
                    &format!("/apps/{app}/email"),
                    Some(json!({ "from": address })),
                )
                .await?;
            print(json, &settings, || describe(&app, &settings));
        }
        EmailCommand::AddTrigger { app, name } => {
            let created = client
                .send(
                    reqwest::Method::POST,
                    &format!("/apps/{app}/email/triggers"),
                    Some(json!({ "name": name })),
                )
                .await?;
            print(json, &created, || {
                format!(
                    "inbound email trigger {name} of {app}\n  POST {}{}\n  signing secret \
                     (shown once): {}\n  sign each body: X-PiCloud-Signature: \
                     sha256=<hex of HMAC-SHA256(secret, body)>",
                    client.base_url(),
                    created["url"].as_str().unwrap_or(""),
                    created["secret"].as_str().unwrap_or("")
                )
            });
        }
        EmailCommand::Triggers { app } => {
            let list = client
                .send(
                    reqwest::Method::GET,
                    &format!("/apps/{app}/email/triggers"),
                    None,
                )
                .await?;
            print(json, &list, || {
                let names: Vec<&str> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t["name"].as_str())
                    .collect();
                if names.is_empty() {
                    format!("app {app} has no inbound email triggers")
                } else {
                    names.join("\n")
                }
            });
        }
        EmailCommand::DeleteTrigger { app, name } => {
            client
                .send(
                    reqwest::Method::DELETE,
                    &format!("/apps/{app}/email/triggers/{name}"),
                    None,
                )
                .await?;
            print(json, &json!({ "deleted": name }), || {
                format!("deleted inbound email trigger {name}")
            });
        }
    }
    Ok(())
}
