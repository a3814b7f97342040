//! `/apps/{app}/functions`: deploy (upload bytes → new immutable version), list,
//! show with history, rollback, delete, invoke.

use super::existing_app;
use crate::control::{Deployed, MAX_ARTIFACT_BYTES, check_function_name};
use crate::dataplane::{
    Caller, CookieScope, answer, guest_headers, read_body, read_limited, settle,
};
use crate::error::{ApiError, ApiResult};
use crate::invoke::{Call, Trigger};
use crate::server::AppState;
use crate::storage::{FunctionRecord, VersionRecord};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use picloud_runtime::Request;

/// Largest request body of `invoke` (same as the data plane).
use crate::dataplane::MAX_REQUEST_BYTES;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps/{app}/functions", get(list))
        .route("/apps/{app}/functions/{name}", get(show).delete(remove))
        .route("/apps/{app}/functions/{name}/versions", post(deploy))
        .route("/apps/{app}/functions/{name}/rollback", post(rollback))
        .route("/apps/{app}/functions/{name}/invoke", post(invoke))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployOptions {
    /// `component` (the default: detected from the bytes), `rhai` (a Rhai function
    /// script) or `module` (a Rhai module other scripts import).
    kind: Option<String>,
}

async fn deploy(
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
    Query(options): Query<DeployOptions>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Deployed>)> {
    check_function_name(&name)?;
    let app = existing_app(&state, &app).await?;
    let bytes = read_limited(body, MAX_ARTIFACT_BYTES).await?;
    let deployed = state
        .control
        .deploy(&app, &name, options.kind.as_deref(), bytes)
        .await?;
    Ok((StatusCode::CREATED, Json(deployed)))
}

async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<FunctionRecord>>> {
    let app = existing_app(&state, &app).await?;
    Ok(Json(state.db.list_functions(&app.id).await?))
}

#[derive(serde::Serialize)]
struct FunctionView {
    #[serde(flatten)]
    function: FunctionRecord,
    versions: Vec<VersionRecord>,
}

async fn show(
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<Json<FunctionView>> {
    let app = existing_app(&state, &app).await?;
    let function = state.control.function(&app, &name).await?;
    let versions = state.db.list_versions(&function.id).await?;
    Ok(Json(FunctionView { function, versions }))
}

async fn remove(
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = existing_app(&state, &app).await?;
    state.control.delete_function(&app, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Rollback {
    /// The version to activate; default: the one before the active version.
    version: Option<i64>,
}

async fn rollback(
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
    body: Option<Json<Rollback>>,
) -> ApiResult<Json<FunctionView>> {
    let app = existing_app(&state, &app).await?;
    let version = body.and_then(|Json(b)| b.version);
    state.control.rollback(&app, &name, version).await?;
    show(State(state), Path((app.name.clone(), name))).await
}

async fn invoke(
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let app = existing_app(&state, &app).await?;
    let function = state.invoker.function(&app, &name).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "app {:?} has no function called {name:?}",
            app.name
        ))
    })?;
    let admission = state.invoker.admit(&app).await?;
    let body = read_body(body, MAX_REQUEST_BYTES, state.body_read_timeout).await?;
    let request = Request {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        headers: guest_headers(&headers, Caller::Admin),
        params: Vec::new(),
        body,
        event: None,
    };
    // Cookies as under /fn/{app}/: the answer may reach a browser on the API's origin.
    let cookies = CookieScope::below_fn(&app.name);
    let call = Call {
        app: &app,
        function_name: &name,
        function: &function,
        trigger: Trigger::Manual,
        request,
        depth: 0,
    };
    let outcome = state.invoker.run(admission, call, settle(&cookies)).await;
    answer(outcome).map_err(ApiError::detailed)
}
