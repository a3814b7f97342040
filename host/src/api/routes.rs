//! `/apps/{app}/routes`: bind `METHOD /path` to a function (sync, or async: 202 and run
//! from the queue), list, delete.

use super::existing_app;
use crate::error::{ApiError, ApiResult};
use crate::routing::{DISPATCH_ASYNC, DISPATCH_SYNC, RouteTable, check_route};
use crate::server::AppState;
use crate::storage::{RouteRecord, StorageError};
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

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRoute {
    method: String,
    path: String,
    function: String,
    /// `sync` (default) or `async`: answer 202 at once and run the function from the
    /// queue.
    dispatch: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Json(new): Json<NewRoute>,
) -> ApiResult<(StatusCode, Json<RouteRecord>)> {
    let app = existing_app(&state, &app).await?;
    let method = new.method.to_ascii_uppercase();
    check_route(&method, &new.path).map_err(ApiError::bad_request)?;
    let dispatch = new.dispatch.as_deref().unwrap_or(DISPATCH_SYNC);
    if dispatch != DISPATCH_SYNC && dispatch != DISPATCH_ASYNC {
        return Err(ApiError::bad_request(format!(
            "dispatch {dispatch:?} is not one of sync, async"
        )));
    }
    let function = state
        .db
        .get_function(&app.id, &new.function)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "app {:?} has no function called {:?}; deploy it first",
                app.name, new.function
            ))
        })?;
    if function.kind == crate::services::script::KIND_RHAI_MODULE {
        return Err(ApiError::bad_request(format!(
            "{:?} is a Rhai module: scripts import it, routes cannot call it",
            function.name
        )));
    }
    // The new route must fit in the table with the existing ones (no ambiguous overlap).
    let mut table = RouteTable::build(&state.db.list_routes(&app.id).await?);
    table
        .insert_with(
            &method,
            &new.path,
            &function.name,
            dispatch == DISPATCH_ASYNC,
        )
        .map_err(ApiError::conflict)?;
    let route = state
        .db
        .create_route(
            &app.id,
            &method,
            &new.path,
            &function.id,
            &function.name,
            dispatch,
        )
        .await
        .map_err(|e| match e {
            StorageError::Conflict => ApiError::conflict(format!(
                "app {:?} already has a route {method} {}",
                app.name, new.path
            )),
            other => other.into(),
        })?;
    state.invoker.invalidate_settings(&app.name);
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
    if !state.db.delete_route(&app.id, &id).await? {
        return Err(ApiError::not_found(format!(
            "app {:?} has no route {id:?}",
            app.name
        )));
    }
    state.invoker.invalidate_settings(&app.name);
    Ok(StatusCode::NO_CONTENT)
}
