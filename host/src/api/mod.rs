//! Admin API `/api/v1`: JSON, bearer token. One module per resource, each with `router()`.

mod apps;
mod data;
mod email;
mod functions;
mod inbound;
mod invocations;
mod routes;
mod secrets;
mod tokens;
mod topics;
mod triggers;
mod users;

use crate::error::{ApiError, ApiResult};
use crate::invoke::AppEntry;
use crate::server::AppState;
use axum::Router;
use std::sync::Arc;

/// All admin routes, behind the token check, and the inbound email webhook, whose
/// signed body is its credential.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .merge(apps::router())
        .merge(functions::router())
        .merge(routes::router())
        .merge(invocations::router())
        .merge(data::router())
        .merge(secrets::router())
        .merge(email::router())
        .merge(inbound::router())
        .merge(triggers::router())
        .merge(topics::router())
        .merge(users::router())
        .merge(tokens::router())
        .route("/runtime/cache", axum::routing::get(cache_stats))
        .layer(axum::middleware::from_fn_with_state(
            state,
            crate::auth::require_token,
        ))
        .merge(inbound::webhook())
}

async fn cache_stats(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::Json<picloud_runtime::CacheStats> {
    axum::Json(state.invoker.runtime().cache_stats())
}

/// App names are DNS labels, since apps are also reachable as `{app}.{base-domain}`.
pub fn check_app_name(name: &str) -> ApiResult<()> {
    let b = name.as_bytes();
    let valid = (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-';
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "app name {name:?} must be 1-63 of a-z 0-9 '-', not starting or ending with '-'"
        )))
    }
}

/// Function names: letters, digits, `-` and `_`, starting with a letter or digit.
pub fn check_function_name(name: &str) -> ApiResult<()> {
    let b = name.as_bytes();
    let valid = (1..=64).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "function name {name:?} must be 1-64 of A-Z a-z 0-9 '-' '_', starting with a letter or digit"
        )))
    }
}

/// The app called `name`, or 404.
pub async fn existing_app(state: &AppState, name: &str) -> ApiResult<Arc<AppEntry>> {
    state
        .invoker
        .app(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no app called {name:?}")))
}

/// Removes compiled code that deleted functions left behind. A failure only leaves files
/// on disk (the next collection retries), so it is logged rather than answered.
async fn collect_garbage(state: &AppState) {
    if let Err(e) = state.invoker.collect_garbage().await {
        tracing::warn!(error = %e, "collecting unused compiled code failed");
    }
}
