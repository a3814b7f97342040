//! The user config `picloud login` writes (server URL and admin token), and
//! `picloud login` / `picloud logout`.
//!
//! Where: `$PICLOUD_CONFIG`, else `$XDG_CONFIG_HOME/picloud/config.toml`, else
//! `~/.config/picloud/config.toml`; the file is mode 0600 in a 0700 directory.

use super::{Client, print};
use anyhow::{Context, anyhow, bail};
use reqwest::StatusCode;
use serde_json::json;
use std::path::{Path, PathBuf};

/// What `picloud login` saved.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct UserConfig {
    /// The server the token is for.
    pub(super) url: String,
    /// Its admin API token.
    pub(super) token: String,
}

/// The config file's path, or `None` when neither `$PICLOUD_CONFIG`, `$XDG_CONFIG_HOME`
/// nor `$HOME` is set.
pub(super) fn path() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(path) = var("PICLOUD_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let base = match var("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(var("HOME")?).join(".config"),
    };
    Some(base.join("picloud").join("config.toml"))
}

/// The saved config, `None` when there is none; a broken file is an error that says
/// what to do.
pub(super) fn load() -> anyhow::Result<Option<UserConfig>> {
    let Some(path) = path() else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("cannot read the config {}: {e}", path.display()),
    };
    let config: UserConfig = toml::from_str(&text).map_err(|e| {
        anyhow!(
            "the config {} is broken ({}); run `picloud logout` and `picloud login` again",
            path.display(),
            one_line(&e.to_string())
        )
    })?;
    Ok(Some(config))
}

/// A multi-line message (toml's errors quote the line) on one line.
pub(super) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| matches!(c, '|' | '^' | ' ')))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes `config` to `path` (mode 0600, its directory 0700), replacing any file there.
fn save(path: &Path, config: &UserConfig) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = toml::to_string(config)?;
    // A fresh file beside it, renamed over: never a half-written or readable token.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        bail!("cannot write the config {}: {e}", path.display());
    }
    Ok(())
}

/// `picloud login`: checks `token` (or one read from stdin) against the server at
/// `client`'s URL and saves both.
pub(super) async fn login(
    client: &Client,
    json: bool,
    token: Option<String>,
) -> anyhow::Result<()> {
    let path = path().ok_or_else(|| {
        anyhow!("no place for the config: set PICLOUD_CONFIG, XDG_CONFIG_HOME or HOME")
    })?;
    let token = match token {
        Some(token) => token,
        None => read_token()?,
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        bail!("no token given: pipe it on stdin (`picloud login < token-file`) or pass --token");
    }
    let response = client
        .http
        .get(format!("{}/api/v1/apps", client.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .map_err(|e| client.unreachable(e))?;
    match response.status() {
        StatusCode::UNAUTHORIZED => bail!(
            "the server at {} refused this token (401); nothing saved: check the token (see .picloud/admin-token on the server, or `picloud tokens create`)",
            client.base_url()
        ),
        status if status.is_success() || status == StatusCode::FORBIDDEN => {}
        _ => {
            client.finish(response).await?;
        }
    }
    let config = UserConfig {
        url: client.base_url().to_owned(),
        token,
    };
    save(&path, &config)?;
    let out = json!({ "url": config.url, "config": path });
    print(json, &out, || {
        format!(
            "logged in to {} (saved in {}); commands without --token use it",
            config.url,
            path.display()
        )
    });
    Ok(())
}

/// The token from stdin: a prompt without echo on a terminal, else the first line.
fn read_token() -> anyhow::Result<String> {
    use std::io::IsTerminal as _;
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("admin token: ").context("cannot read the token");
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the token from stdin")?;
    Ok(line)
}

/// `picloud logout`: removes the saved config.
pub(super) fn logout(json: bool) -> anyhow::Result<()> {
    let path = path()
        .ok_or_else(|| anyhow!("no config: PICLOUD_CONFIG, XDG_CONFIG_HOME and HOME are unset"))?;
    let removed = match std::fs::remove_file(&path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => bail!("cannot remove {}: {e}", path.display()),
    };
    let out = json!({ "removed": removed, "config": path });
    print(json, &out, || {
        if removed {
            format!("logged out (removed {})", path.display())
        } else {
            format!("not logged in (no {})", path.display())
        }
    });
    Ok(())
}
