//! `/apps/{app}/invocations`: what ran, how it ended, its cost and log lines.

use super::existing_app;
use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::storage::{InvocationFilter, InvocationRecord};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/apps/{app}/invocations", get(list))
}

async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(filter): Query<InvocationFilter>,
) -> ApiResult<Json<Vec<InvocationRecord>>> {
    if let Some(status) = filter
        .status
        .as_deref()
        .filter(|s| !["ok", "error"].contains(s))
    {
        return Err(ApiError::bad_request(format!(
            "status must be 'ok' or 'error', not {status:?}"
        )));
    }
    let app = existing_app(&state, &app).await?;
    state.recorder.flush().await;
    Ok(Json(
        state
            .db
            .list_invocations(&app.id, &app.name, &filter)
            .await?,
    ))
}
