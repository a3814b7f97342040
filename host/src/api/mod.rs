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

/// The app called `name`, or 404.
pub async fn existing_app(state: &AppState, name: &str) -> ApiResult<Arc<AppEntry>> {
    state
        .invoker
        .app(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no app called {name:?}")))
}
