//! `picloud triggers` (create, list, delete) and `picloud dead-letters` (list, replay,
//! resolve).

use super::{Client, print};
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub(super) enum TriggersCommand {
    /// Run a function when the app's data changes (`--source kv|docs|files|email`), on
    /// a schedule (`--kind cron --schedule '*/5 * * * *'`, UTC), for each message
    /// published durably on a topic (`--kind pubsub --topic T`), or when one of its
    /// events becomes a dead letter (`--kind dead-letter`).
    Create {
        /// App name.
        app: String,
        /// Trigger name (A-Z a-z 0-9 - _).
        name: String,
        /// The function it runs.
        #[arg(long)]
        function: String,
        /// `change`, `pubsub`, `cron` or `dead-letter`.
        #[arg(long, default_value = "change")]
        kind: String,
        /// A pubsub trigger's topic.
        #[arg(long)]
        topic: Option<String>,
        /// A cron trigger's 5-field schedule (minute hour day-of-month month
        /// day-of-week), in UTC.
        #[arg(long)]
        schedule: Option<String>,
        /// The interface written: kv, docs, files, email or users (a dead-letter
        /// trigger: only dead letters of this source).
        #[arg(long)]
        source: Option<String>,
        /// Only this collection (files: paths under this prefix; email: this webhook).
        #[arg(long)]
        collection: Option<String>,
        /// Only these operations, comma-separated (kv: set, increment, delete, expire;
        /// docs: insert, replace, patch, delete; files: put, delete; users: create,
        /// update, delete).
        #[arg(long, value_delimiter = ',')]
        ops: Option<Vec<String>>,
        /// Attempts before an event becomes a dead letter (default 3).
        #[arg(long)]
        max_attempts: Option<i64>,
        /// Delay before the first retry in ms, doubling after each (default 1000).
        #[arg(long)]
        backoff_ms: Option<i64>,
    },
    /// List an app's triggers.
    List {
        /// App name.
        app: String,
    },
    /// Delete a trigger (its pending deliveries and dead letters go with it).
    Delete {
        /// App name.
        app: String,
        /// Trigger name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum DeadLettersCommand {
    /// List an app's dead letters, newest first.
    List {
        /// App name.
        app: String,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Queue a dead letter again with fresh attempts (after fixing its function).
    Replay {
        /// App name.
        app: String,
        /// Dead letter id.
        id: i64,
    },
    /// Mark a dead letter settled.
    Resolve {
        /// App name.
        app: String,
        /// Dead letter id.
        id: i64,
    },
}

fn describe(t: &Value) -> String {
    let mut what = vec![t["kind"].as_str().unwrap_or("").to_owned()];
    if t["kind"] == "pubsub" {
        what.push(format!("topic={}", t["collection"].as_str().unwrap_or("")));
    }
    for field in ["source", "collection", "schedule"] {
        if t["kind"] == "pubsub" {
            break;
        }
        if let Some(v) = t[field].as_str() {
            what.push(format!("{field}={v}"));
        }
    }
    if let Some(ops) = t["ops"].as_array() {
        let ops: Vec<&str> = ops.iter().filter_map(Value::as_str).collect();
        what.push(format!("ops={}", ops.join(",")));
    }
    format!(
        "{:<20} → {:<20} {}  (attempts {}, backoff {} ms)",
        t["name"].as_str().unwrap_or(""),
        t["function"].as_str().unwrap_or(""),
        what.join(" "),
        t["max_attempts"],
        t["backoff_ms"]
    )
}

pub(super) async fn triggers(
    client: &Client,
    json: bool,
    command: TriggersCommand,
) -> anyhow::Result<()> {
    match command {
        TriggersCommand::Create {
            app,
            name,
            function,
            kind,
            topic,
            schedule,
            source,
            collection,
            ops,
            max_attempts,
            backoff_ms,
        } => {
            let mut body = json!({ "name": name, "kind": kind, "function": function });
            for (field, value) in [
                ("topic", topic),
                ("source", source),
                ("collection", collection),
                ("schedule", schedule),
            ] {
                if let Some(value) = value {
                    body[field] = json!(value);
                }
            }
            if let Some(ops) = ops {
                body["ops"] = json!(ops);
            }
            if let Some(n) = max_attempts {
                body["max_attempts"] = json!(n);
            }
            if let Some(ms) = backoff_ms {
                body["backoff_ms"] = json!(ms);
            }
            let created = client
                .send(
                    reqwest::Method::POST,
                    &format!("/apps/{app}/triggers"),
                    Some(body),
                )
                .await?;
            print(json, &created, || {
                format!("created trigger {}", describe(&created))
            });
        }
        TriggersCommand::List { app } => {
            let list = client
                .send(reqwest::Method::GET, &format!("/apps/{app}/triggers"), None)
                .await?;
            print(json, &list, || {
                let lines: Vec<String> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(describe)
                    .collect();
                if lines.is_empty() {
                    format!("app {app} has no triggers")
                } else {
                    lines.join("\n")
                }
            });
        }
        TriggersCommand::Delete { app, name } => {
            client
                .send(
                    reqwest::Method::DELETE,
                    &format!("/apps/{app}/triggers/{name}"),
                    None,
                )
                .await?;
            print(json, &json!({ "deleted": name }), || {
                format!("deleted trigger {name}")
            });
        }
    }
    Ok(())
}

pub(super) async fn dead_letters(
    client: &Client,
    json: bool,
    command: DeadLettersCommand,
) -> anyhow::Result<()> {
    match command {
        DeadLettersCommand::List { app, limit } => {
            let list = client
                .send(
                    reqwest::Method::GET,
                    &format!("/apps/{app}/dead-letters?limit={limit}"),
                    None,
                )
                .await?;
            print(json, &list, || {
                let lines: Vec<String> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| {
                        let at = d["updated_at"]
                            .as_i64()
                            .and_then(chrono::DateTime::from_timestamp_millis)
                            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                            .unwrap_or_default();
                        format!(
                            "{:<8} {at}  trigger {}  after {} attempts: {}",
                            d["id"],
                            d["trigger"].as_str().unwrap_or(""),
                            d["attempts"],
                            d["last_error"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                if lines.is_empty() {
                    format!("app {app} has no dead letters")
                } else {
                    lines.join("\n")
                }
            });
        }
        DeadLettersCommand::Replay { app, id } => {
            client
                .send(
                    reqwest::Method::POST,
                    &format!("/apps/{app}/dead-letters/{id}/replay"),
                    None,
                )
                .await?;
            print(json, &json!({ "replayed": id }), || {
                format!("queued dead letter {id} again")
            });
        }
        DeadLettersCommand::Resolve { app, id } => {
            client
                .send(
                    reqwest::Method::POST,
                    &format!("/apps/{app}/dead-letters/{id}/resolve"),
                    None,
                )
                .await?;
            print(json, &json!({ "resolved": id }), || {
                format!("resolved dead letter {id}")
            });
        }
    }
    Ok(())
}
