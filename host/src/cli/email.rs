//! `picloud email`: an app's From address and today's sends.

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
    }
    Ok(())
}
