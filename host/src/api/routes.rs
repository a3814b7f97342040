//! `/apps/{app}/routes`: bind `METHOD /path` to a function (sync, or async: 202 and run
//! from the queue), list, delete.

use super::existing_app;
use crate::control::NewRoute;
use crate::error::ApiResult;
use crate::server::AppState;
use crate::storage::RouteRecord;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps/{app}/routes", get(list).post(create))
        .route("/apps/{app}/routes/{id}", delete(remove))
}

async fn create(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Json(new): Json<NewRoute>,
) -> ApiResult<(StatusCode, Json<RouteRecord>)> {
    let app = existing_app(&state, &app).await?;
    let route = state.control.create_route(&app, &new).await?;
    Ok((StatusCode::CREATED, Json(route)))
}

async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<RouteRecord>>> {
    let app = existing_app(&state, &app).await?;
    Ok(Json(state.db.list_routes(&app.id).await?))
}

async fn remove(
    State(state): State<AppState>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = existing_app(&state, &app).await?;
    state.control.delete_route(&app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
