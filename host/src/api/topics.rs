//! `/apps/{app}/topics`: an app's declared pubsub topics — whether browsers may subscribe
//! to each (`external`) over `GET /rt/{app}/{topic}`. List, set (declare or change),
//! delete.

use super::existing_app;
use crate::error::{ApiError, ApiResult};
use crate::events::realtime::check_topic;
use crate::server::AppState;
use crate::storage::topics::TopicRecord;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

/// Topics one app may declare.
pub const MAX_TOPICS_PER_APP: i64 = 100;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/apps/{app}/topics", get(list)).route(
        "/apps/{app}/topics/{name}",
        get(show).put(set).delete(remove),
    )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicSettings {
    /// Whether browsers may subscribe with a token.
    external: bool,
    /// Whether an end user's session token also subscribes (external topics only).
    #[serde(default)]
    sessions: bool,
}

async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<TopicRecord>>> {
    let app = existing_app(&state, &app).await?;
    Ok(Json(state.db.list_topics(&app.id).await?))
}

fn no_topic(app: &str, name: &str) -> ApiError {
    ApiError::not_found(format!("app {app:?} has no declared topic {name:?}"))
}

async fn show(
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<Json<TopicRecord>> {
    let app = existing_app(&state, &app).await?;
    state
        .db
        .get_topic(&app.id, &name)
        .await?
        .map(Json)
        .ok_or_else(|| no_topic(&app.name, &name))
}

async fn set(
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
    Json(settings): Json<TopicSettings>,
) -> ApiResult<Json<TopicRecord>> {
    let app = existing_app(&state, &app).await?;
    check_topic(&name).map_err(ApiError::bad_request)?;
    if settings.sessions && !settings.external {
        return Err(ApiError::bad_request(
            "only an external topic takes session subscribers",
        ));
    }
    if state.db.get_topic(&app.id, &name).await?.is_none()
        && state.db.count_topics(&app.id).await? >= MAX_TOPICS_PER_APP
    {
        return Err(ApiError::conflict(format!(
            "app {:?} has {MAX_TOPICS_PER_APP} topics, the most it may declare",
            app.name
        )));
    }
    Ok(Json(
        state
            .db
            .put_topic(&app.id, &name, settings.external, settings.sessions)
            .await?,
    ))
}

async fn remove(
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = existing_app(&state, &app).await?;
    if state.db.delete_topic(&app.id, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_topic(&app.name, &name))
    }
}
