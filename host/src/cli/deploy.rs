//! `picloud deploy FILE`, `picloud deployments`, `picloud rollback` and `picloud invoke`.

use super::routes::add_route;
use super::{Client, default_function_name, print, unauthorized_message};
use anyhow::{Context, anyhow, bail};
use clap::Subcommand;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;

#[derive(Debug, Subcommand)]
pub(super) enum DeploymentsCommand {
    /// A function's versions, newest first; `*` marks the active one.
    List {
        /// APP/FUNCTION
        target: String,
    },
}

/// `APP/FUNCTION` split in two, each checked (they go into URL paths).
pub(super) fn split_target(target: &str) -> anyhow::Result<(&str, &str)> {
    let (app, function) = target
        .split_once('/')
        .ok_or_else(|| anyhow!("the target must be APP/FUNCTION, got {target:?}"))?;
    super::manifest::check_app_name(app)?;
    super::manifest::check_function_name(function)?;
    Ok((app, function))
}

pub(super) async fn deploy(
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
    let deployed = client
        .upload(
            &format!("/apps/{app}/functions/{name}/versions?kind={kind}"),
            bytes,
            &format!("{app}/{name}"),
            !as_json,
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

pub(super) async fn invoke(
    client: &Client,
    as_json: bool,
    target: &str,
    data: Option<String>,
) -> anyhow::Result<()> {
    let (app, function) = split_target(target)?;
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
    if as_json {
        let body = serde_json::from_slice::<Value>(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        let out = json!({ "status": status.as_u16(), "body": body });
        print(true, &out, String::new);
        return Ok(());
    }
    use std::io::Write;
    std::io::stdout().write_all(&bytes)?;
    if !bytes.ends_with(b"\n") {
        println!();
    }
    Ok(())
}

/// A time in ms since the Unix epoch, as UTC.
fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

pub(super) async fn deployments(
    client: &Client,
    json: bool,
    command: DeploymentsCommand,
) -> anyhow::Result<()> {
    let DeploymentsCommand::List { target } = command;
    let (app, function) = split_target(&target)?;
    let shown = client
        .send(
            reqwest::Method::GET,
            &format!("/apps/{app}/functions/{function}"),
            None,
        )
        .await?;
    let active = shown["active_version"].as_i64();
    let mut versions: Vec<Value> = shown["versions"].as_array().cloned().unwrap_or_default();
    versions.sort_by_key(|v| std::cmp::Reverse(v["version"].as_i64()));
    for v in &mut versions {
        v["active"] = json!(v["version"].as_i64() == active);
    }
    let out =
        json!({ "app": app, "function": function, "active_version": active, "versions": versions });
    print(json, &out, || {
        let mut lines = vec![format!(
            "  {:<8} {:<10} {:<13} {:>10}  created",
            "version", "kind", "sha256", "bytes"
        )];
        for v in &versions {
            let sha = v["sha256"].as_str().unwrap_or("");
            lines.push(format!(
                "{} {:<8} {:<10} {:<13} {:>10}  {}",
                if v["active"] == true { "*" } else { " " },
                v["version"].to_string(),
                v["kind"].as_str().unwrap_or(""),
                &sha[..sha.len().min(12)],
                v["size"].to_string(),
                utc(v["created_at"].as_i64().unwrap_or(0))
            ));
        }
        lines.join("\n")
    });
    Ok(())
}

pub(super) async fn rollback(
    client: &Client,
    json: bool,
    target: &str,
    version: Option<i64>,
) -> anyhow::Result<()> {
    let (app, function) = split_target(target)?;
    let path = format!("/apps/{app}/functions/{function}");
    let before = client.send(reqwest::Method::GET, &path, None).await?;
    let was = before["active_version"].as_i64().unwrap_or(0);
    if version.is_none() && was <= 1 {
        bail!(
            "{app}/{function} has no version before {was}; name one: `picloud rollback {app}/{function} VERSION` (see `picloud deployments list {app}/{function}`)"
        );
    }
    let body = version.map(|v| json!({ "version": v }));
    let shown = client
        .send(reqwest::Method::POST, &format!("{path}/rollback"), body)
        .await?;
    let now = shown["active_version"].as_i64().unwrap_or(0);
    let out =
        json!({ "app": app, "function": function, "active_version": now, "previous_version": was });
    print(json, &out, || {
        format!("{app}/{function}: version {now} is active now (was {was})")
    });
    Ok(())
}
