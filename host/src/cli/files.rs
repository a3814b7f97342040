//! `picloud files`: list, get, put, delete an app's files.

use super::{Client, print};
use anyhow::{Context, anyhow, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub(super) enum FilesCommand {
    /// List an app's files (path order).
    List {
        /// App name.
        app: String,
        /// Only paths starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Download a file (to stdout, or --output; with --json, as base64 in JSON).
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

/// `path` with each segment percent-encoded, for a URL.
pub(super) fn url_path(path: &str) -> String {
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
pub(super) fn file_path(path: &str) -> anyhow::Result<String> {
    crate::storage::files::normalize_path(path).map_err(|e| anyhow!(e))
}

pub(super) async fn run(client: &Client, json: bool, command: FilesCommand) -> anyhow::Result<()> {
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
                None if json => {
                    use base64::Engine as _;
                    let content = base64::engine::general_purpose::STANDARD.encode(&bytes);
                    let done = json!({ "path": path, "size": bytes.len(), "base64": content });
                    print(json, &done, String::new);
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
