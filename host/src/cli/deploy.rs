//! `picloud deploy FILE` and `picloud invoke`.

use super::routes::add_route;
use super::{Client, default_function_name, print, unauthorized_message};
use anyhow::{Context, anyhow, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;

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

pub(super) async fn invoke(
    client: &Client,
    target: &str,
    data: Option<String>,
) -> anyhow::Result<()> {
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
