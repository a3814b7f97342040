//! `/tokens`: admin API tokens (see `crate::auth`). A token is shown once, when it is
//! created; listings show names, scopes, apps and expiry, never tokens or hashes.

use super::existing_app;
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::storage::StorageError;
use crate::storage::tokens::TokenRecord;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};

/// Longest lifetime of a token, in seconds (10 years).
const MAX_EXPIRES_SECS: u64 = 10 * 365 * 86_400;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(list).post(create))
        .route("/tokens/{name}", delete(revoke))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    scope: String,
    /// The app it is limited to (by name).
    app: Option<String>,
    /// Lifetime in seconds; none: it does not expire.
    expires_in_secs: Option<u64>,
}

#[derive(serde::Serialize)]
struct Created {
    /// The token: shown this once.
    token: String,
    #[serde(flatten)]
    record: TokenRecord,
}

fn check_token_name(name: &str) -> ApiResult<()> {
    let b = name.as_bytes();
    let valid = (1..=64).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "token name {name:?} must be 1-64 of A-Z a-z 0-9 - _ ., starting with a letter or digit"
        )))
    }
}

async fn create(
    State(state): State<AppState>,
    Json(new): Json<NewToken>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    check_token_name(&new.name)?;
    let scope = Scope::parse(&new.scope).ok_or_else(|| {
        ApiError::bad_request(format!(
            "scope {:?} is not one of read, deploy, admin",
            new.scope
        ))
    })?;
    let app = match &new.app {
        Some(name) => Some(existing_app(&state, name).await?),
        None => None,
    };
    let expires_at = match new.expires_in_secs {
        Some(secs) if (1..=MAX_EXPIRES_SECS).contains(&secs) => {
            Some(crate::storage::now_ms() + i64::try_from(secs * 1000).unwrap_or(i64::MAX))
        }
        Some(secs) => {
            return Err(ApiError::bad_request(format!(
                "expires_in_secs must be 1-{MAX_EXPIRES_SECS}, got {secs}"
            )));
        }
        None => None,
    };
    let token = crate::auth::new_token();
    let token_hash = crate::auth::hash(&token);
    let created = state
        .db
        .create_token(
            &new.name,
            &token_hash,
            scope.as_str(),
            app.as_ref().map(|a| a.id.as_str()),
            expires_at,
        )
        .await;
    match created {
        Ok(()) => {}
        Err(StorageError::Conflict) => {
            return Err(ApiError::conflict(format!(
                "a token called {:?} exists",
                new.name
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let record = state
        .db
        .token_by_hash(&token_hash)
        .await?
        .ok_or_else(|| ApiError::internal("a created token is missing"))?;
    Ok((StatusCode::CREATED, Json(Created { token, record })))
}

async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<TokenRecord>>> {
    Ok(Json(state.db.list_tokens().await?))
}

async fn revoke(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if name == crate::auth::ADMIN_TOKEN_NAME {
        return Err(ApiError::bad_request(
            "the bootstrap token is replaced by restarting with PICLOUD_ADMIN_TOKEN, not revoked",
        ));
    }
    if name == principal.name {
        tracing::info!(token = %name, "a token revoked itself");
    }
    if state.db.delete_token(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no token called {name:?}")))
    }
}
