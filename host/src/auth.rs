//! Admin tokens: bootstrap on first start, bearer check and authorisation on every admin
//! API call.
//!
//! Tokens are 256-bit random values; only their sha256 is stored, and the presented
//! token's hash is compared in constant time.
//!
//! Every token has a [`Scope`] — `read` (list and get, logs, usage), `deploy` (also
//! deploy, rollback, routes, triggers, secrets, data, end users) or `admin` (also apps,
//! limits, outbound hosts, rekeying and tokens) — may be limited to one app and may
//! expire. [`ENDPOINTS`] says what each admin endpoint needs; an endpoint missing from
//! it needs `admin` (and is logged as a bug). A token limited to an app sees no other
//! app at all: their endpoints answer the same 404 as an app that does not exist, and
//! `GET /apps` lists its app only; endpoints that are not about one app (creating apps,
//! tokens, rekeying, the runtime's cache) answer 403. The bootstrap token is an
//! unlimited `admin`.

use crate::error::ApiError;
use crate::server::AppState;
use crate::storage::Db;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::path::Path;
use subtle::ConstantTimeEq;

/// Name of the bootstrap token.
pub const ADMIN_TOKEN_NAME: &str = "admin";
/// File in the data directory that holds a generated admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// The stored form of a token: its sha256, hex.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Makes sure an admin token exists: the given one (replacing any earlier one), or a
/// generated one printed once and written to `{data_dir}/admin-token` with mode 0600.
pub async fn bootstrap_admin_token(
    db: &Db,
    data_dir: &Path,
    given: Option<&str>,
) -> anyhow::Result<()> {
    if let Some(token) = given {
        anyhow::ensure!(
            token.len() >= 16,
            "PICLOUD_ADMIN_TOKEN must be at least 16 characters"
        );
        db.put_token(ADMIN_TOKEN_NAME, &hash(token), "admin")
            .await?;
        return Ok(());
    }
    if db.token_exists(ADMIN_TOKEN_NAME).await? {
        return Ok(());
    }
    let token = new_token();
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    write_private(&path, &token)?;
    db.put_token(ADMIN_TOKEN_NAME, &hash(&token), "admin")
        .await?;
    println!(
        "Generated the admin token (shown once; also in {}):\n  {token}",
        path.display()
    );
    Ok(())
}

/// A new token: `pc_` and 256 random bits in hex.
pub fn new_token() -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    format!("pc_{}", hex::encode(raw))
}

/// The admin token in `path`: its first line, trimmed.
pub fn read_token_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading the admin token file {}: {e}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

/// The first line of the private file at `path`, trimmed; a symlink is not followed.
pub(crate) fn read_private(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    let mut text = String::new();
    options.open(path)?.read_to_string(&mut text)?;
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

/// Writes `contents` to `path` readable by the server's user only. A symlink at `path`
/// is replaced, never followed (it could point the token at a file another user reads),
/// and the open refuses one that appears meanwhile.
pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file(path)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// What a token may do; each scope includes the ones before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// List and get: apps, functions, routes, triggers, invocations and logs, usage.
    Read,
    /// Also change an app's code and content: deploy, rollback, routes, triggers,
    /// secrets, topics, files and indexes, end users, dead letters, invoking.
    Deploy,
    /// Also apps, limits, outbound hosts, rekeying secrets and tokens.
    Admin,
}

impl Scope {
    /// The scope called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "read" => Some(Self::Read),
            "deploy" => Some(Self::Deploy),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Deploy => "deploy",
            Self::Admin => "admin",
        }
    }
}

/// The scope each admin endpoint (method, path under `/api/v1`) needs.
pub const ENDPOINTS: &[(&str, &str, Scope)] = {
    use Scope::{Admin, Deploy, Read};
    &[
        ("GET", "/apps", Read),
        ("POST", "/apps", Admin),
        ("GET", "/apps/{app}", Read),
        ("DELETE", "/apps/{app}", Admin),
        ("PUT", "/apps/{app}/limits", Admin),
        ("GET", "/apps/{app}/outbound", Read),
        ("PUT", "/apps/{app}/outbound", Admin),
        ("GET", "/apps/{app}/docs/indexes", Read),
        (
            "PUT",
            "/apps/{app}/docs/{collection}/indexes/{field}",
            Deploy,
        ),
        (
            "DELETE",
            "/apps/{app}/docs/{collection}/indexes/{field}",
            Deploy,
        ),
        ("POST", "/apps/{app}/docs/{collection}/explain", Read),
        ("GET", "/apps/{app}/files", Read),
        ("GET", "/apps/{app}/files/{*path}", Read),
        ("PUT", "/apps/{app}/files/{*path}", Deploy),
        ("DELETE", "/apps/{app}/files/{*path}", Deploy),
        ("GET", "/apps/{app}/changes", Read),
        ("GET", "/apps/{app}/email", Read),
        ("PUT", "/apps/{app}/email", Deploy),
        ("GET", "/apps/{app}/email/triggers", Read),
        ("POST", "/apps/{app}/email/triggers", Deploy),
        ("DELETE", "/apps/{app}/email/triggers/{name}", Deploy),
        ("GET", "/apps/{app}/functions", Read),
        ("GET", "/apps/{app}/functions/{name}", Read),
        ("DELETE", "/apps/{app}/functions/{name}", Deploy),
        ("POST", "/apps/{app}/functions/{name}/versions", Deploy),
        ("POST", "/apps/{app}/functions/{name}/rollback", Deploy),
        ("POST", "/apps/{app}/functions/{name}/invoke", Deploy),
        ("GET", "/apps/{app}/invocations", Read),
        ("GET", "/apps/{app}/usage", Read),
        ("GET", "/apps/{app}/load", Read),
        ("GET", "/runtime/cache", Read),
        ("GET", "/apps/{app}/routes", Read),
        ("POST", "/apps/{app}/routes", Deploy),
        ("DELETE", "/apps/{app}/routes/{id}", Deploy),
        ("GET", "/apps/{app}/secrets", Read),
        ("PUT", "/apps/{app}/secrets/{name}", Deploy),
        ("DELETE", "/apps/{app}/secrets/{name}", Deploy),
        ("POST", "/secrets/rekey", Admin),
        ("GET", "/apps/{app}/topics", Read),
        ("GET", "/apps/{app}/topics/{name}", Read),
        ("PUT", "/apps/{app}/topics/{name}", Deploy),
        ("DELETE", "/apps/{app}/topics/{name}", Deploy),
        ("GET", "/apps/{app}/triggers", Read),
        ("POST", "/apps/{app}/triggers", Deploy),
        ("DELETE", "/apps/{app}/triggers/{name}", Deploy),
        ("GET", "/apps/{app}/dead-letters", Read),
        ("GET", "/apps/{app}/dead-letters/{id}", Read),
        ("POST", "/apps/{app}/dead-letters/{id}/replay", Deploy),
        ("POST", "/apps/{app}/dead-letters/{id}/resolve", Deploy),
        ("GET", "/apps/{app}/executions/{id}", Read),
        ("GET", "/apps/{app}/users", Read),
        ("POST", "/apps/{app}/users", Deploy),
        ("POST", "/apps/{app}/users/invite", Deploy),
        ("GET", "/apps/{app}/users/settings", Read),
        ("PUT", "/apps/{app}/users/settings", Deploy),
        ("GET", "/apps/{app}/users/{id}", Read),
        ("PATCH", "/apps/{app}/users/{id}", Deploy),
        ("DELETE", "/apps/{app}/users/{id}", Deploy),
        ("GET", "/tokens", Admin),
        ("POST", "/tokens", Admin),
        ("DELETE", "/tokens/{name}", Admin),
    ]
};

/// Who is calling the admin API: the token's name, scope and app (its id), as request
/// extension for handlers that filter (`GET /apps`).
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's name.
    pub name: String,
    /// Its scope.
    pub scope: Scope,
    /// The app it is limited to (id); `None`: every app.
    pub app_id: Option<String>,
}

/// The scope `method` on `pattern` needs.
fn needed(method: &Method, pattern: &str) -> Scope {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    match ENDPOINTS
        .iter()
        .find(|(m, p, _)| *m == method && *p == pattern)
    {
        Some((_, _, scope)) => *scope,
        None => {
            // A known path with another method is answered 405 by the router.
            if !ENDPOINTS.iter().any(|(_, p, _)| *p == pattern) {
                tracing::error!(%method, pattern, "an admin endpoint has no scope in auth::ENDPOINTS; it needs admin");
            }
            Scope::Admin
        }
    }
}

/// The `{app}` segment of `path` matched by `pattern`.
fn app_segment<'a>(pattern: &str, path: &'a str) -> Option<&'a str> {
    let at = pattern.split('/').position(|s| s == "{app}")?;
    path.split('/').nth(at)
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// Checks that `principal` may call `method` on `pattern` (the path under `/api/v1`
/// as routed) with the concrete `path`.
async fn authorise(
    state: &AppState,
    principal: &Principal,
    method: &Method,
    pattern: &str,
    path: &str,
) -> Result<(), ApiError> {
    if let Some(app_id) = &principal.app_id {
        match app_segment(pattern, path) {
            Some(name) => {
                let own = state
                    .invoker
                    .app(name)
                    .await?
                    .is_some_and(|app| app.id == *app_id);
                if !own {
                    return Err(ApiError::not_found(format!("no app called {name:?}")));
                }
            }
            None if pattern == "/apps" && method == Method::GET => {}
            None => {
                return Err(forbidden(
                    "this token is limited to one app; this endpoint is not about one app",
                ));
            }
        }
    }
    let needed = needed(method, pattern);
    if principal.scope < needed {
        return Err(forbidden(format!(
            "this token's scope is {}; this needs {}",
            principal.scope.as_str(),
            needed.as_str()
        )));
    }
    Ok(())
}

/// Middleware: the request must carry `Authorization: Bearer <token>` of a known token.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    let presented_hash = hash(presented);
    let record = state
        .db
        .token_by_hash(&presented_hash)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if !bool::from(
        record
            .token_hash
            .as_bytes()
            .ct_eq(presented_hash.as_bytes()),
    ) || record
        .expires_at
        .is_some_and(|at| at <= crate::storage::now_ms())
    {
        return Err(ApiError::unauthorized());
    }
    let principal = Principal {
        name: record.name,
        // A stored scope this server does not know grants nothing beyond reading.
        scope: Scope::parse(&record.scopes).unwrap_or(Scope::Read),
        app_id: record.app_id,
    };
    let mut request = request;
    if let Some(matched) = request.extensions().get::<MatchedPath>() {
        let pattern = matched.as_str();
        let pattern = pattern
            .strip_prefix("/api/v1")
            .unwrap_or(pattern)
            .to_owned();
        let path = request.uri().path();
        let path = path.strip_prefix("/api/v1").unwrap_or(path).to_owned();
        authorise(&state, &principal, request.method(), &pattern, &path).await?;
    }
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}
