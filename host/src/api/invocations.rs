//! `/apps/{app}/invocations`: what ran, how it ended, its cost and log lines;
//! `/apps/{app}/usage?days=N`: invocations, errors, fuel and wall time per UTC day;
//! `/apps/{app}/load`: invocations running and waiting for a slot now.

use super::existing_app;
use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::storage::usage::{DailyUsage, utc_day};
use crate::storage::{InvocationFilter, InvocationRecord};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps/{app}/invocations", get(list))
        .route("/apps/{app}/usage", get(usage))
        .route("/apps/{app}/load", get(load))
}

/// Invocations of the app running and waiting on this node now, with the caps.
#[derive(serde::Serialize)]
struct LoadView {
    running: usize,
    queued: usize,
    max_running: u32,
    max_queued: u32,
    max_wait_ms: u128,
}

async fn load(State(state): State<AppState>, Path(app): Path<String>) -> ApiResult<Json<LoadView>> {
    let app = existing_app(&state, &app).await?;
    let load = state.invoker.load(&app);
    let config = state.invoker.admission();
    Ok(Json(LoadView {
        running: load.running,
        queued: load.queued,
        max_running: config.max_running,
        max_queued: config.max_queued,
        max_wait_ms: config.max_wait.as_millis(),
    }))
}

/// Days of usage answered when `days` is not given.
const DEFAULT_USAGE_DAYS: u32 = 30;
/// Most days of usage one request answers: a year and a bit, as long as usage is kept
/// by default.
const MAX_USAGE_DAYS: u32 = 400;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    days: Option<u32>,
}

/// The app's usage per UTC day over the last `days` days (today included), oldest
/// first; days without invocations have no row.
async fn usage(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(query): Query<UsageQuery>,
) -> ApiResult<Json<Vec<DailyUsage>>> {
    let days = query.days.unwrap_or(DEFAULT_USAGE_DAYS);
    if !(1..=MAX_USAGE_DAYS).contains(&days) {
        return Err(ApiError::bad_request(format!(
            "days must be 1-{MAX_USAGE_DAYS}, got {days}"
        )));
    }
    let app = existing_app(&state, &app).await?;
    state.recorder.flush().await;
    let today = state.invoker.clock().now_ms();
    let since = utc_day(today - (i64::from(days) - 1) * 86_400_000);
    Ok(Json(state.db.usage_daily(&app.id, &since).await?))
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
