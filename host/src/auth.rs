//! Admin tokens: bootstrap on first start, bearer check on every admin API call.
//!
//! Tokens are 256-bit random values; only their sha256 is stored, and the presented
//! token's hash is compared in constant time.

use crate::error::ApiError;
use crate::server::AppState;
use crate::storage::Db;
use axum::extract::{Request, State};
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

fn hash(token: &str) -> String {
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
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = format!("pc_{}", hex::encode(raw));
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
    ) {
        return Err(ApiError::unauthorized());
    }
    Ok(next.run(request).await)
}
