//! `picloud topics`: an app's declared pubsub topics (set, list, delete).

use super::{Client, print};
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub(super) enum TopicsCommand {
    /// Declare a topic, or change it: `--external` lets browsers subscribe with a token
    /// a function minted (`GET /rt/APP/TOPIC`); without it the topic is internal.
    Set {
        /// App name.
        app: String,
        /// Topic name (A-Z a-z 0-9 _ - .).
        name: String,
        /// Browsers may subscribe.
        #[arg(long)]
        external: bool,
        /// Signed-in end users of the app may also subscribe with their session token
        /// (with --external).
        #[arg(long)]
        sessions: bool,
    },
    /// List an app's declared topics.
    List {
        /// App name.
        app: String,
    },
    /// Remove a declared topic (subscribers with tokens for it are refused from then).
    Delete {
        /// App name.
        app: String,
        /// Topic name.
        name: String,
    },
}

fn describe(topic: &Value) -> String {
    format!(
        "{:<32} {}",
        topic["name"].as_str().unwrap_or(""),
        match (topic["external"] == true, topic["sessions"] == true) {
            (true, true) => "external, sessions",
            (true, false) => "external",
            _ => "internal",
        }
    )
}

pub(super) async fn run(client: &Client, json: bool, command: TopicsCommand) -> anyhow::Result<()> {
    match command {
        TopicsCommand::Set {
            app,
            name,
            external,
            sessions,
        } => {
            let topic = client
                .send(
                    reqwest::Method::PUT,
                    &format!("/apps/{app}/topics/{name}"),
                    Some(json!({ "external": external, "sessions": sessions })),
                )
                .await?;
            print(json, &topic, || format!("topic {}", describe(&topic)));
        }
        TopicsCommand::List { app } => {
            let list = client
                .send(reqwest::Method::GET, &format!("/apps/{app}/topics"), None)
                .await?;
            print(json, &list, || {
                let lines: Vec<String> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(describe)
                    .collect();
                if lines.is_empty() {
                    format!("app {app} declares no topics")
                } else {
                    lines.join("\n")
                }
            });
        }
        TopicsCommand::Delete { app, name } => {
            client
                .send(
                    reqwest::Method::DELETE,
                    &format!("/apps/{app}/topics/{name}"),
                    None,
                )
                .await?;
            print(json, &json!({ "deleted": name }), || {
                format!("deleted topic {name}")
            });
        }
    }
    Ok(())
}
