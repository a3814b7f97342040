//! `picloud indexes`: declare, list and drop indexes of document collections.

use super::files::url_path;
use super::{Client, print};
use clap::Subcommand;
use serde_json::json;

#[derive(Debug, Subcommand)]
pub(super) enum IndexesCommand {
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

pub(super) async fn run(
    client: &Client,
    json: bool,
    command: IndexesCommand,
) -> anyhow::Result<()> {
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
