//! `picloud tokens`: admin API tokens with a scope, optionally limited to one app and
//! expiring (create — the token is printed once —, list, revoke).

use super::{Client, print};
use clap::Subcommand;
use rand::RngCore;
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub(super) enum TokensCommand {
    /// Create a token; it is printed once. `read`: list and get, logs, usage; `deploy`:
    /// also deploy, rollback, routes, triggers, secrets, data, end users; `admin`: also
    /// apps, limits, outbound hosts and tokens.
    Create {
        /// read, deploy or admin.
        #[arg(long)]
        scope: String,
        /// Limit the token to this app (it sees no other).
        #[arg(long)]
        app: Option<String>,
        /// Lifetime: a number and a unit, s, m, h or d (`30d`); default: no expiry.
        #[arg(long)]
        expires: Option<String>,
        /// Its name (default: the scope, the app and random letters).
        #[arg(long)]
        name: Option<String>,
    },
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke a token by name.
    Revoke {
        /// The token's name.
        name: String,
    },
}

/// Seconds in `text`: a number and a unit (`s`, `m`, `h`, `d`).
fn seconds(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => anyhow::bail!("--expires {text:?}: write a number and a unit, s, m, h or d (30d)"),
    };
    let number: u64 = number.parse().map_err(|_| {
        anyhow::anyhow!("--expires {text:?}: write a number and a unit, s, m, h or d (30d)")
    })?;
    Ok(number.saturating_mul(unit))
}

fn describe(token: &Value) -> String {
    let expires = match token["expires_at"].as_i64() {
        Some(ms) => chrono::DateTime::from_timestamp_millis(ms).map_or_else(
            || ms.to_string(),
            |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
        ),
        None => "never".into(),
    };
    format!(
        "{:<32} {:<7} {:<24} expires {expires}",
        token["name"].as_str().unwrap_or(""),
        token["scope"].as_str().unwrap_or(""),
        token["app"].as_str().unwrap_or("(every app)"),
    )
}

pub(super) async fn run(client: &Client, json: bool, command: TokensCommand) -> anyhow::Result<()> {
    use reqwest::Method;
    match command {
        TokensCommand::Create {
            scope,
            app,
            expires,
            name,
        } => {
            let expires_in_secs = expires.as_deref().map(seconds).transpose()?;
            let name = name.unwrap_or_else(|| {
                let mut raw = [0u8; 3];
                rand::rng().fill_bytes(&mut raw);
                format!(
                    "{scope}-{}-{}",
                    app.as_deref().unwrap_or("all"),
                    hex::encode(raw)
                )
            });
            let body = json!({ "name": name, "scope": scope, "app": app, "expires_in_secs": expires_in_secs });
            let created = client.send(Method::POST, "/tokens", Some(body)).await?;
            print(json, &created, || {
                format!(
                    "created token {}\n{}\n(shown once: keep it now)",
                    describe(&created),
                    created["token"].as_str().unwrap_or("")
                )
            });
        }
        TokensCommand::List => {
            let list = client.send(Method::GET, "/tokens", None).await?;
            print(json, &list, || {
                list.as_array()
                    .into_iter()
                    .flatten()
                    .map(describe)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        TokensCommand::Revoke { name } => {
            client
                .send(Method::DELETE, &format!("/tokens/{name}"), None)
                .await?;
            print(json, &json!({ "revoked": name }), || {
                format!("revoked token {name}")
            });
        }
    }
    Ok(())
}
