//! `/apps/{app}/functions`: deploy (upload bytes → new immutable version), list,
//! show with history, rollback, delete, invoke.

use super::{check_function_name, existing_app};
use crate::dataplane::{
    Caller, CookieScope, answer, guest_headers, read_body, read_limited, settle,
};
use crate::error::{ApiError, ApiResult};
use crate::invoke::{Call, Trigger};
use crate::server::AppState;
use crate::services::script::{KIND_RHAI, KIND_RHAI_MODULE};
use crate::storage::{FunctionRecord, VersionRecord};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use picloud_runtime::Request;

/// Largest artifact accepted by deploy. Components are a few MiB; this leaves room for
/// big ones while keeping a mistaken upload from filling the database.
pub const MAX_ARTIFACT_BYTES: usize = 32 * 1024 * 1024;
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

#[derive(serde::Serialize)]
struct Deployed {
    app: String,
    name: String,
    #[serde(flatten)]
    version: VersionRecord,
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
    let kind = match options.kind.as_deref() {
        None | Some("component") => "component",
        Some("rhai") => KIND_RHAI,
        Some("module") => KIND_RHAI_MODULE,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "kind must be component, rhai or module, not {other:?}"
            )));
        }
    };
    if kind != "component" {
        let source = std::str::from_utf8(&bytes)
            .map_err(|_| ApiError::bad_request("a Rhai script must be UTF-8 text"))?;
        crate::rhai::check_script(source).map_err(ApiError::bad_request)?;
    }
    let sha256 = picloud_runtime::sha256_hex(&bytes);
    // What is compiled stays out of the garbage collection until its version is recorded.
    let _deploying = state.invoker.deploying().await;
    let prepared = if kind == KIND_RHAI_MODULE {
        None
    } else {
        let prepared = state.invoker.prepare(kind, bytes.clone()).await;
        Some(prepared.map_err(|e| ApiError::bad_request(e.to_string()))?)
    };
    let version = state
        .db
        .deploy_function(&app.id, &name, kind, &sha256, &bytes)
        .await?;
    state.invoker.invalidate_app(&app.name);
    if let Some(prepared) = prepared {
        // The first request finds the new version ready instead of loading it again.
        state
            .invoker
            .install(&app.name, &name, kind, version.version, prepared);
    }
    tracing::info!(app = %app.name, function = %name, kind, version = version.version, sha256 = %version.sha256, "deployed");
    Ok((
        StatusCode::CREATED,
        Json(Deployed {
            app: app.name.clone(),
            name,
            version,
        }),
    ))
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

async fn existing_function(
    state: &AppState,
    app_id: &str,
    app: &str,
    name: &str,
) -> ApiResult<FunctionRecord> {
    state
        .db
        .get_function(app_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("app {app:?} has no function called {name:?}")))
}

async fn show(
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<Json<FunctionView>> {
    let app = existing_app(&state, &app).await?;
    let function = existing_function(&state, &app.id, &app.name, &name).await?;
    let versions = state.db.list_versions(&function.id).await?;
    Ok(Json(FunctionView { function, versions }))
}

async fn remove(
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = existing_app(&state, &app).await?;
    if !state.db.delete_function(&app.id, &name).await? {
        return Err(ApiError::not_found(format!(
            "app {:?} has no function called {name:?}",
            app.name
        )));
    }
    state.invoker.invalidate_app(&app.name);
    super::collect_garbage(&state).await;
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
    let function = existing_function(&state, &app.id, &app.name, &name).await?;
    let target = body
        .and_then(|Json(b)| b.version)
        .unwrap_or(function.active_version - 1);
    if !state.db.activate_version(&function.id, target).await? {
        return Err(ApiError::not_found(format!(
            "function {name:?} has no version {target}"
        )));
    }
    state.invoker.invalidate_app(&app.name);
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
