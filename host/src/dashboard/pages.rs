//! The dashboard's pages: apps, an app's functions (upload, versions, rollback, routes,
//! limits), invocations with a live tail, usage against the quota, triggers, secrets,
//! files, end users and dead letters. Each page checks the viewer's scope and app the
//! way the admin API does (`auth::ENDPOINTS`): reading needs `read`, changing code and
//! content `deploy`, apps and limits `admin`; another app is "not found" to a token
//! limited to one app.

use super::{Problem, Viewer, check_csrf, csrf_field, layout, trusted};
use crate::auth::Scope;
use crate::control::NewRoute;
use crate::invoke::AppEntry;
use crate::server::AppState;
use crate::storage::InvocationFilter;
use crate::storage::usage::{DailyUsage, utc_day};
use axum::Form;
use axum::Router;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use picloud_runtime::LimitOverrides;
use std::sync::Arc;
use std::time::Duration;

type PageResult = Result<Response, Problem>;

/// Routes of the pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard/", get(apps))
        .route("/dashboard/apps", post(create_app))
        .route("/dashboard/apps/{app}", get(app_page))
        .route("/dashboard/apps/{app}/delete", post(delete_app))
        .route("/dashboard/apps/{app}/deploy", post(deploy))
        .route("/dashboard/apps/{app}/limits", post(set_limits))
        .route("/dashboard/apps/{app}/routes", post(add_route))
        .route(
            "/dashboard/apps/{app}/routes/{id}/delete",
            post(delete_route),
        )
        .route("/dashboard/apps/{app}/functions/{name}", get(function_page))
        .route(
            "/dashboard/apps/{app}/functions/{name}/rollback",
            post(rollback),
        )
        .route(
            "/dashboard/apps/{app}/functions/{name}/delete",
            post(delete_function),
        )
        .route("/dashboard/apps/{app}/invocations", get(invocations))
        .route("/dashboard/apps/{app}/tail", get(tail))
        .route("/dashboard/apps/{app}/usage", get(usage))
        .route("/dashboard/apps/{app}/triggers", get(triggers))
        .route(
            "/dashboard/apps/{app}/triggers/{name}/delete",
            post(delete_trigger),
        )
        .route(
            "/dashboard/apps/{app}/secrets",
            get(secrets).post(set_secret),
        )
        .route(
            "/dashboard/apps/{app}/secrets/{name}/delete",
            post(delete_secret),
        )
        .route("/dashboard/apps/{app}/files", get(files).post(upload_file))
        .route("/dashboard/apps/{app}/files/delete", post(delete_file))
        .route(
            "/dashboard/apps/{app}/files/raw/{*path}",
            get(download_file),
        )
        .route("/dashboard/apps/{app}/users", get(users))
        .route("/dashboard/apps/{app}/users/{id}/delete", post(delete_user))
        .route("/dashboard/apps/{app}/dead-letters", get(dead_letters))
        .route(
            "/dashboard/apps/{app}/dead-letters/{id}/{action}",
            post(dead_letter_action),
        )
}

/// The app called `name` as `viewer` may see it with `scope`: a token limited to
/// another app gets the same "not found" as a missing app.
async fn app_for(
    state: &AppState,
    viewer: &Viewer,
    name: &str,
    scope: Scope,
) -> Result<Arc<AppEntry>, Problem> {
    let missing = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            format!("There is no app called {name:?}."),
        )
    };
    let app = state.invoker.app(name).await?.ok_or_else(missing)?;
    if viewer
        .principal
        .app_id
        .as_ref()
        .is_some_and(|own| *own != app.id)
    {
        return Err(missing());
    }
    viewer.require(scope, Some(&app.id))?;
    Ok(app)
}

/// For a form that changes app `name`: this session's CSRF token from this origin, then
/// the app as the viewer may change it with `scope`.
async fn changing(
    state: &AppState,
    viewer: &Viewer,
    headers: &HeaderMap,
    csrf: Option<&str>,
    name: &str,
    scope: Scope,
) -> Result<Arc<AppEntry>, Problem> {
    check_csrf(viewer, headers, csrf)?;
    app_for(state, viewer, name, scope).await
}

fn page(title: &str, viewer: &Viewer, app: Option<&str>, body: Markup) -> PageResult {
    Ok(layout(title, Some(viewer), app, body).into_response())
}

fn back_to(path: String) -> PageResult {
    Ok(Redirect::to(&path).into_response())
}

/// `path` for a URL, each segment percent-encoded (`/` kept).
fn url_path(path: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    const SEGMENT: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    path.split('/')
        .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn micros(us: i64) -> String {
    if us >= 1_000_000 {
        format!("{:.2} s", us as f64 / 1e6)
    } else if us >= 1_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{us} µs")
    }
}

fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[derive(serde::Deserialize)]
struct Csrf {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

// ---- apps ----

async fn apps(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let all = state.db.list_apps().await?;
    let visible: Vec<_> = all
        .into_iter()
        .filter(|a| {
            viewer
                .principal
                .app_id
                .as_ref()
                .is_none_or(|id| *id == a.id)
        })
        .collect();
    let body = html! {
        h1 { "Apps" }
        @if visible.is_empty() {
            div.empty {
                p { "No apps yet." }
                @if viewer.may(Scope::Admin, None) {
                    p { "Create one below, then upload a " code { ".wasm" } " component or a " code { ".rhai" } " script to it." }
                } @else {
                    p { "Ask an administrator to create one." }
                }
            }
        } @else {
            table {
                thead { tr { th { "App" } th { "Created" } th.num { "Fuel / call" } th.num { "Timeout" } } }
                tbody {
                    @for app in &visible {
                        @let limits = state.invoker.defaults().with(&app.limits);
                        tr {
                            td { a href={ "/dashboard/apps/" (app.name) } { (app.name) } }
                            td { (when(app.created_at)) }
                            td.num { (count(i64::try_from(limits.fuel).unwrap_or(i64::MAX))) }
                            td.num { (limits.timeout_ms) " ms" }
                        }
                    }
                }
            }
        }
        @if viewer.may(Scope::Admin, None) {
            section.card {
                h2 { "New app" }
                form method="post" action="/dashboard/apps" {
                    (csrf_field(&viewer))
                    label for="app-name" { "Name" }
                    input #app-name name="name" required pattern="[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?" placeholder="shop";
                    button type="submit" { "Create app" }
                }
                p.hint { "1–63 of a–z, 0–9 and '-'; it becomes part of URLs (" code { "/fn/NAME/…" } ")." }
            }
        }
    };
    page("Apps", &viewer, None, body)
}

#[derive(serde::Deserialize)]
struct NewApp {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
    name: String,
}

async fn create_app(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<NewApp>,
) -> PageResult {
    check_csrf(&viewer, &headers, form.csrf.as_deref())?;
    viewer.require(Scope::Admin, None)?;
    let name = form.name.trim();
    state
        .control
        .create_app(name, &LimitOverrides::default())
        .await?;
    back_to(format!("/dashboard/apps/{name}"))
}

async fn delete_app(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(app): Path<String>,
    Form(form): Form<Csrf>,
) -> PageResult {
    let app = changing(
        &state,
        &viewer,
        &headers,
        form.csrf.as_deref(),
        &app,
        Scope::Admin,
    )
    .await?;
    viewer.require(Scope::Admin, None)?;
    state.control.delete_app(&app.name).await?;
    back_to("/dashboard/".into())
}

// ---- an app: functions, upload, routes, limits ----

#[derive(serde::Deserialize)]
struct AppQuery {
    deployed: Option<String>,
}

async fn app_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(app): Path<String>,
    Query(query): Query<AppQuery>,
) -> PageResult {
    let app = app_for(&state, &viewer, &app, Scope::Read).await?;
    let record = state
        .db
        .get_app(&app.name)
        .await?
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "The app is gone."))?;
    let functions = state.db.list_functions(&app.id).await?;
    let routes = state.db.list_routes(&app.id).await?;
    let limits = state.invoker.defaults().with(&record.limits);
    let can_deploy = viewer.may(Scope::Deploy, Some(&app.id));
    let name = &app.name;
    let body = html! {
        h1 { "Functions" }
        // Only a function name: the query string is anyone's to write.
        @if let Some(deployed) = query.deployed.as_deref().filter(|n| crate::control::check_function_name(n).is_ok()) {
            p.notice role="status" { "Deployed " (deployed) "." }
        }
        @if functions.is_empty() {
            div.empty { p { "No functions yet. " @if can_deploy { "Drop a " code { ".wasm" } " component or a " code { ".rhai" } " script below." } } }
        } @else {
            table {
                thead { tr { th { "Function" } th { "Kind" } th.num { "Active version" } th { "Created" } } }
                tbody {
                    @for f in &functions {
                        tr {
                            td { a href={ "/dashboard/apps/" (name) "/functions/" (f.name) } { (f.name) } }
                            td { (f.kind) }
                            td.num { "v" (f.active_version) }
                            td { (when(f.created_at)) }
                        }
                    }
                }
            }
        }
        @if can_deploy {
            section.card #upload {
                h2 { "Deploy" }
                form #deploy-form method="post" action={ "/dashboard/apps/" (name) "/deploy" } enctype="multipart/form-data" data-csrf=(viewer.csrf) {
                    (csrf_field(&viewer))
                    div.dropzone #dropzone {
                        p { "Drag a " code { ".wasm" } " or " code { ".rhai" } " file here, or " }
                        input #file type="file" name="file" accept=".wasm,.rhai" required;
                    }
                    div.row {
                        label for="fn-name" { "Function name" }
                        input #fn-name name="name" placeholder="from the file name" pattern="[A-Za-z0-9][A-Za-z0-9_-]{0,63}";
                        label for="fn-kind" { "Kind" }
                        select #fn-kind name="kind" {
                            option value="" { "by extension" }
                            option value="component" { "component" }
                            option value="rhai" { "Rhai script" }
                            option value="module" { "Rhai module" }
                        }
                        button type="submit" { "Deploy" }
                    }
                    progress #progress max="100" value="0" hidden {}
                    p #deploy-status role="status" {}
                }
            }
        }
        h2 { "Routes" }
        @if routes.is_empty() {
            p.empty { "No routes yet. A route binds a method and path to a function, which then answers at " code { "/fn/" (name) "/PATH" } "." }
        } @else {
            table {
                thead { tr { th { "Method" } th { "Path" } th { "Function" } th { "Dispatch" } th {} } }
                tbody {
                    @for r in &routes {
                        tr {
                            td { code { (r.method) } }
                            td { code { (r.path) } }
                            td { (r.function) }
                            td { (r.dispatch) }
                            td {
                                @if can_deploy {
                                    form.inline method="post" action={ "/dashboard/apps/" (name) "/routes/" (r.id) "/delete" } {
                                        (csrf_field(&viewer))
                                        button.danger.small type="submit" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if can_deploy && !functions.is_empty() {
            form.row method="post" action={ "/dashboard/apps/" (name) "/routes" } {
                (csrf_field(&viewer))
                select name="method" aria-label="Method" { @for m in ["GET", "POST", "PUT", "PATCH", "DELETE", "*"] { option { (m) } } }
                input name="path" placeholder="/orders/:id" required aria-label="Path";
                select name="function" aria-label="Function" { @for f in &functions { option { (f.name) } } }
                select name="dispatch" aria-label="Dispatch" { option value="sync" { "sync" } option value="async" { "async (202)" } }
                button type="submit" { "Add route" }
            }
        }
        h2 { "Limits" }
        table.narrow {
            tbody {
                tr { th { "Fuel per invocation" } td.num { (count(i64::try_from(limits.fuel).unwrap_or(i64::MAX))) } }
                tr { th { "Timeout" } td.num { (limits.timeout_ms) " ms" } }
                tr { th { "Memory" } td.num { (bytes(limits.memory_bytes)) } }
                tr { th { "Fuel per day" } td.num { @match limits.daily_fuel { Some(f) => (count(i64::try_from(f).unwrap_or(i64::MAX))), None => "unlimited" } } }
            }
        }
        @if viewer.may(Scope::Admin, None) {
            form.row method="post" action={ "/dashboard/apps/" (name) "/limits" } {
                (csrf_field(&viewer))
                input name="fuel" type="number" min="1" placeholder="fuel" value=[record.limits.fuel] aria-label="Fuel per invocation";
                input name="timeout_ms" type="number" min="1" placeholder="timeout ms" value=[record.limits.timeout_ms] aria-label="Timeout in ms";
                input name="memory_bytes" type="number" min="1" placeholder="memory bytes" value=[record.limits.memory_bytes] aria-label="Memory in bytes";
                input name="daily_fuel" type="number" min="1" placeholder="daily fuel" value=[record.limits.daily_fuel] aria-label="Fuel per day";
                button type="submit" { "Set limits" }
            }
            p.hint { "Empty fields take the host's defaults." }
            section.card.danger-zone {
                h2 { "Delete this app" }
                p { "Deletes its functions, routes, data, files, users and records. This cannot be undone." }
                form method="post" action={ "/dashboard/apps/" (name) "/delete" } data-confirm={ "Delete app " (name) " and everything it holds?" } {
                    (csrf_field(&viewer))
                    button.danger type="submit" { "Delete app " (name) }
                }
            }
        }
    };
    page(name, &viewer, Some(name), body)
}

/// What the dashboard's script gets back from an upload.
#[derive(serde::Serialize)]
struct DeployAnswer {
    ok: bool,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<i64>,
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

async fn deploy(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(app): Path<String>,
    multipart: Multipart,
) -> Response {
    let json = wants_json(&headers);
    match deploy_upload(&state, &viewer, &headers, &app, multipart).await {
        Ok((name, version)) if json => axum::Json(DeployAnswer {
            ok: true,
            message: format!("Deployed {name} as version {version}."),
            version: Some(version),
        })
        .into_response(),
        Ok((name, _)) => {
            Redirect::to(&format!("/dashboard/apps/{app}?deployed={name}")).into_response()
        }
        Err(problem) if json => (
            problem.status,
            axum::Json(DeployAnswer {
                ok: false,
                message: problem.message,
                version: None,
            }),
        )
            .into_response(),
        Err(problem) => problem.page(Some(&viewer)),
    }
}

async fn deploy_upload(
    state: &AppState,
    viewer: &Viewer,
    headers: &HeaderMap,
    app: &str,
    mut multipart: Multipart,
) -> Result<(String, i64), Problem> {
    let bad = |m: String| Problem::new(StatusCode::BAD_REQUEST, m);
    let (mut csrf, mut name, mut kind, mut file) = (None, None, None, None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| bad(format!("the upload is not a valid form: {e}")))?
    {
        match field.name().unwrap_or("") {
            "_csrf" => csrf = Some(field.text().await.map_err(|e| bad(e.to_string()))?),
            "name" => name = Some(field.text().await.map_err(|e| bad(e.to_string()))?),
            "kind" => kind = Some(field.text().await.map_err(|e| bad(e.to_string()))?),
            "file" => {
                // The CSRF token comes first (the field before it, or the header).
                check_csrf(viewer, headers, csrf.as_deref())?;
                let file_name = field.file_name().unwrap_or("").to_owned();
                let mut content = Vec::new();
                let mut field = field;
                while let Some(chunk) = field
                    .chunk()
                    .await
                    .map_err(|e| bad(format!("the upload broke off: {e}")))?
                {
                    if content.len() + chunk.len() > crate::control::MAX_ARTIFACT_BYTES {
                        return Err(Problem::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!(
                                "The file is larger than {} MiB.",
                                crate::control::MAX_ARTIFACT_BYTES >> 20
                            ),
                        ));
                    }
                    content.extend_from_slice(&chunk);
                }
                file = Some((file_name, content));
            }
            _ => {}
        }
    }
    check_csrf(viewer, headers, csrf.as_deref())?;
    let app = app_for(state, viewer, app, Scope::Deploy).await?;
    let (file_name, content) =
        file.ok_or_else(|| bad("Choose a .wasm or .rhai file to deploy.".into()))?;
    if content.is_empty() {
        return Err(bad(format!("{file_name:?} is empty.")));
    }
    let name = match name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => name.to_owned(),
        None => crate::cli::default_function_name(std::path::Path::new(&file_name)).ok_or_else(
            || {
                bad(format!(
                    "Give the function a name ({file_name:?} has none to take)."
                ))
            },
        )?,
    };
    let kind = match kind.as_deref().filter(|k| !k.is_empty()) {
        Some(kind) => Some(kind.to_owned()),
        None if file_name.ends_with(".rhai") => Some("rhai".to_owned()),
        None => None,
    };
    let deployed = state
        .control
        .deploy(&app, &name, kind.as_deref(), content)
        .await?;
    Ok((name, deployed.version.version))
}

#[derive(serde::Deserialize)]
struct LimitsForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
    fuel: Option<String>,
    timeout_ms: Option<String>,
    memory_bytes: Option<String>,
    daily_fuel: Option<String>,
}

fn optional_number(field: &str, value: Option<&str>) -> Result<Option<u64>, Problem> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                format!("{field} must be a whole number, not {v:?}."),
            )
        }),
    }
}

async fn set_limits(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(app): Path<String>,
    Form(form): Form<LimitsForm>,
) -> PageResult {
    let app = changing(
        &state,
        &viewer,
        &headers,
        form.csrf.as_deref(),
        &app,
        Scope::Admin,
    )
    .await?;
    viewer.require(Scope::Admin, None)?;
    let limits = LimitOverrides {
        fuel: optional_number("Fuel", form.fuel.as_deref())?,
        timeout_ms: optional_number("Timeout", form.timeout_ms.as_deref())?,
        memory_bytes: optional_number("Memory", form.memory_bytes.as_deref())?,
        daily_fuel: optional_number("Fuel per day", form.daily_fuel.as_deref())?,
    };
    state.control.set_limits(&app.name, &limits).await?;
    back_to(format!("/dashboard/apps/{}", app.name))
}

#[derive(serde::Deserialize)]
struct RouteForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
    method: String,
    path: String,
    function: String,
    dispatch: Option<String>,
}

async fn add_route(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(app): Path<String>,
    Form(form): Form<RouteForm>,
) -> PageResult {
    let app = changing(
        &state,
        &viewer,
        &headers,
        form.csrf.as_deref(),
        &app,
        Scope::Deploy,
    )
    .await?;
    let new = NewRoute {
        method: form.method,
        path: form.path.trim().to_owned(),
        function: form.function,
        dispatch: form.dispatch,
    };
    state.control.create_route(&app, &new).await?;
    back_to(format!("/dashboard/apps/{}", app.name))
}

async fn delete_route(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((app, id)): Path<(String, String)>,
    Form(form): Form<Csrf>,
) -> PageResult {
    let app = changing(
        &state,
        &viewer,
        &headers,
        form.csrf.as_deref(),
        &app,
        Scope::Deploy,
    )
    .await?;
    state.control.delete_route(&app, &id).await?;
    back_to(format!("/dashboard/apps/{}", app.name))
}

// ---- a function: versions and rollback ----

async fn function_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((app, name)): Path<(String, String)>,
) -> PageResult {
    let app = app_for(&state, &viewer, &app, Scope::Read).await?;
    let function = state.control.function(&app, &name).await?;
    let versions = state.db.list_versions(&function.id).await?;
    let can_deploy = viewer.may(Scope::Deploy, Some(&app.id));
    let body = html! {
        h1 { (function.name) " " small { (function.kind) } }
        p { "Active version: " strong #active-version { "v" (function.active_version) } ". "
            a href={ "/dashboard/apps/" (app.name) "/invocations?function=" (function.name) } { "Its invocations" } }
        h2 { "Deployments" }
        table #versions {
            thead { tr { th.num { "Version" } th { "Deployed" } th { "Kind" } th.num { "Size" } th { "sha256" } th {} } }
            tbody {
                @for v in versions.iter().rev() {
                    tr.active[v.version == function.active_version] {
                        td.num { "v" (v.version) }
                        td { (when(v.created_at)) }
                        td { (v.kind) }
                        td.num { (bytes(u64::try_from(v.size).unwrap_or(0))) }
                        td { code { (v.sha256.get(..12).unwrap_or(&v.sha256)) } }
                        td {
                            @if v.version == function.active_version {
                                span.badge { "active" }
                            } @else if can_deploy {
                                form.inline method="post" action={ "/dashboard/apps/" (app.name) "/functions/" (function.name) "/rollback" } {
                                    (csrf_field(&viewer))
                                    input type="hidden" name="version" value=(v.version);
                                    button.small type="submit" { "Roll back to v" (v.version) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if can_deploy {
            section.card.danger-zone {
                h2 { "Delete this function" }
                form method="post" action={ "/dashboard/apps/" (app.name) "/functions/" (function.name) "/delete" } data-confirm={ "Delete " (function.name) ", its versions and routes?" } {
                    (csrf_field(&viewer))
                    button.danger type="submit" { "Delete " (function.name) }
                }
            }
        }
    };
    page(&function.name, &viewer, Some(&app.name), body)
}

#[derive(serde::Deserialize)]
struct RollbackForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
    version: Option<i64>,
}

async fn rollback(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((app, name)): Path<(String, String)>,
    Form(form): Form<RollbackForm>,
) -> PageResult {
    let app = changing(
        &state,
        &viewer,
        &headers,
        form.csrf.as_deref(),
        &app,
        Scope::Deploy,
    )
    .await?;
    state.control.rollback(&app, &name, form.version).await?;
    back_to(format!("/dashboard/apps/{}/functions/{name}", app.name))
}

async fn delete_function(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((app, name)): Path<(String, String)>,
    Form(form): Form<Csrf>,
) -> PageResult {
    let app = changing(
        &state,
        &viewer,
        &headers,
        form.csrf.as_deref(),
        &app,
        Scope::Deploy,
    )
    .await?;
    state.control.delete_function(&app, &name).await?;
    back_to(format!("/dashboard/apps/{}", app.name))
}

// ---- invocations and the live tail ----

#[derive(serde::Deserialize)]
struct InvocationQuery {
    function: Option<String>,
    status: Option<String>,
    before: Option<String>,
}

/// Invocations per page.
const INVOCATIONS_PAGE: i64 = 50;

async fn invocations(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(app): Path<String>,
    Query(query): Query<InvocationQuery>,
) -> PageResult {
    let app = app_for(&state, &viewer, &app, Scope::Read).await?;
    let filter = InvocationFilter {
        function: query.function.clone().filter(|f| !f.is_empty()),
        status: query.status.clone().filter(|s| s == "ok" || s == "error"),
        before: query.before.clone(),
        limit: Some(INVOCATIONS_PAGE),
    };
    let records = state
        .db
        .list_invocations(&app.id, &app.name, &filter)
        .await?;
    let next = (records.len() == INVOCATIONS_PAGE as usize)
        .then(|| records.last().map(|r| r.id.clone()))
        .flatten();
    let body = html! {
        h1 { "Invocations" }
        form.row.filters method="get" {
            input name="function" placeholder="function" value=[query.function.as_deref()] aria-label="Function";
            select name="status" aria-label="Status" {
                option value="" { "any status" }
                option value="ok" selected[query.status.as_deref() == Some("ok")] { "ok" }
                option value="error" selected[query.status.as_deref() == Some("error")] { "error" }
            }
            button type="submit" { "Filter" }
        }
        section.card #tail data-src={ "/dashboard/apps/" (app.name) "/tail" } {
            h2 { "Live tail " span #tail-state.badge { "connecting…" } }
            p.hint #tail-empty { "New invocations appear here as they happen." }
            table #tail-table hidden {
                thead { tr { th { "Started" } th { "Function" } th { "Status" } th.num { "HTTP" } th.num { "Duration" } th.num { "Fuel" } th { "Error" } } }
                tbody #tail-rows {}
            }
        }
        h2 { "Recent" }
        @if records.is_empty() {
            p.empty { "No invocations recorded" @if query.before.is_some() { " before these" } ". Call a function and they show here." }
        } @else {
            table #invocations {
                thead { tr { th { "Started" } th { "Function" } th { "Trigger" } th { "Status" } th.num { "HTTP" } th.num { "Duration" } th.num { "Fuel" } th { "Error / logs" } } }
                tbody {
                    @for r in &records {
                        tr class={ "status-" (r.status) } {
                            td { (when(r.started_at)) }
                            td { (r.function) " " small { "v" (r.version) } }
                            td { (r.trigger) }
                            td { span class={ "badge " (r.status) } { (r.status) } }
                            td.num { (r.http_status) }
                            td.num { (micros(r.duration_us)) }
                            td.num { (count(r.fuel_used)) }
                            td {
                                @if let Some(code) = &r.error_code { code { (code) } " " }
                                @if let Some(message) = &r.error_message { span.message { (message) } }
                                @if !r.logs.is_empty() {
                                    details {
                                        summary { (r.logs.len()) " log line" @if r.logs.len() != 1 { "s" } }
                                        pre.logs { @for line in &r.logs { (line.level) " " (line.message) "\n" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = next {
                p { a href={ "?before=" (next) "&function=" (query.function.as_deref().unwrap_or("")) "&status=" (query.status.as_deref().unwrap_or("")) } { "Older →" } }
            }
        }
    };
    page("Invocations", &viewer, Some(&app.name), body)
}

/// How often the live tail looks for new invocations.
const TAIL_POLL: Duration = Duration::from_millis(500);
/// How often the live tail checks that its session's token is still valid.
const TAIL_RECHECK: Duration = Duration::from_secs(30);

/// Server-Sent Events: each new invocation of the app as JSON (`event: invocation`),
/// oldest first. Reads the records (every node's), so it shows what `logs` shows.
async fn tail(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(app): Path<String>,
) -> Result<Response, Problem> {
    let app = app_for(&state, &viewer, &app, Scope::Read).await?;
    let cookie = super::cookie_value(&headers, super::COOKIE)
        .unwrap_or("")
        .to_owned();
    let filter = InvocationFilter {
        limit: Some(100),
        ..InvocationFilter::default()
    };
    let seen: std::collections::HashSet<String> = state
        .db
        .list_invocations(&app.id, &app.name, &filter)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let closing = state.invoker.realtime().closing();
    let stream = futures_util::stream::unfold(
        (
            state,
            app,
            seen,
            closing,
            cookie,
            tokio::time::Instant::now(),
        ),
        |(state, app, mut seen, mut closing, cookie, mut checked)| async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(TAIL_POLL) => {}
                    _ = closing.wait_for(|closed| *closed) => return None,
                }
                if checked.elapsed() >= TAIL_RECHECK {
                    let keys = super::session_keys(&state);
                    let hash = super::open_session(&keys, &cookie, super::now_secs())?;
                    let record = state.db.token_by_hash(&hash).await.ok().flatten()?;
                    if record
                        .expires_at
                        .is_some_and(|at| at <= crate::storage::now_ms())
                    {
                        return None;
                    }
                    checked = tokio::time::Instant::now();
                }
                let filter = InvocationFilter {
                    limit: Some(100),
                    ..InvocationFilter::default()
                };
                let Ok(records) = state.db.list_invocations(&app.id, &app.name, &filter).await
                else {
                    continue;
                };
                let mut fresh: Vec<_> = records
                    .into_iter()
                    .filter(|r| !seen.contains(&r.id))
                    .collect();
                if fresh.is_empty() {
                    continue;
                }
                fresh.sort_by(|a, b| a.id.cmp(&b.id));
                let events: Vec<Result<Event, std::convert::Infallible>> = fresh
                    .iter()
                    .filter_map(|r| {
                        seen.insert(r.id.clone());
                        Event::default()
                            .event("invocation")
                            .json_data(r)
                            .ok()
                            .map(Ok)
                    })
                    .collect();
                if seen.len() > 10_000 {
                    // Ids are time-ordered: keep the newest.
                    let mut ids: Vec<_> = seen.drain().collect();
                    ids.sort();
                    seen.extend(ids.into_iter().rev().take(1_000));
                }
                let next = (state, app, seen, closing, cookie, checked);
                return Some((futures_util::stream::iter(events), next));
            }
        },
    );
    use futures_util::StreamExt;
    let sse =
        Sse::new(stream.flatten()).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    Ok(sse.into_response())
}

// ---- usage ----

#[derive(serde::Deserialize)]
struct UsageQuery {
    days: Option<u32>,
}

async fn usage(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(app): Path<String>,
    Query(query): Query<UsageQuery>,
) -> PageResult {
    let app = app_for(&state, &viewer, &app, Scope::Read).await?;
    let days = query.days.unwrap_or(14).clamp(1, 90);
    let now = state.invoker.clock().now_ms();
    let since = utc_day(now - i64::from(days - 1) * 86_400_000);
    let rows = state.db.usage_daily(&app.id, &since).await?;
    let record = state.db.get_app(&app.name).await?;
    let daily_fuel = record
        .as_ref()
        .and_then(|r| state.invoker.defaults().with(&r.limits).daily_fuel);
    // Every day of the range, zero where nothing ran.
    let series: Vec<DailyUsage> = (0..days)
        .map(|i| {
            let day = utc_day(now - i64::from(days - 1 - i) * 86_400_000);
            rows.iter()
                .find(|r| r.day == day)
                .cloned()
                .unwrap_or(DailyUsage {
                    day,
                    invocations: 0,
                    errors: 0,
                    fuel_used: 0,
                    duration_us: 0,
                    dropped_records: 0,
                    errors_by_code: Default::default(),
                })
        })
        .collect();
    let total_invocations: i64 = series.iter().map(|d| d.invocations).sum();
    let total_fuel: i64 = series.iter().map(|d| d.fuel_used).sum();
    let body = html! {
        h1 { "Usage" }
        p { "Last " (days) " days (UTC): " strong { (count(total_invocations)) } " invocations, "
            strong { (count(total_fuel)) } " fuel. "
            @for d in [7, 14, 30, 90] { a.pill href={ "?days=" (d) } { (d) " days" } " " } }
        h2 { "Fuel per day" @if let Some(q) = daily_fuel { " " small { "(quota " (count(i64::try_from(q).unwrap_or(i64::MAX))) " per day)" } } }
        figure.chart #fuel-chart { (chart(&series, |d| d.fuel_used, daily_fuel.map(|q| i64::try_from(q).unwrap_or(i64::MAX)), "fuel")) }
        h2 { "Invocations per day" }
        figure.chart #invocations-chart { (chart(&series, |d| d.invocations, None, "invocations")) }
        table #usage-table {
            thead { tr { th { "Day" } th.num { "Invocations" } th.num { "Errors" } th { "By code" } th.num { "Fuel" } th.num { "Wall time" } } }
            tbody {
                @for d in series.iter().rev() {
                    tr {
                        td { (d.day) } td.num { (count(d.invocations)) } td.num { (count(d.errors)) }
                        td { @for (code, n) in &d.errors_by_code { code { (code) } " " (count(*n)) " " } }
                        td.num { (count(d.fuel_used)) } td.num { (micros(d.duration_us)) }
                    }
                }
            }
        }
    };
    page("Usage", &viewer, Some(&app.name), body)
}

/// A bar chart of `value` per day as inline SVG, with the quota as a line when given.
/// Built from numbers and day strings only (`YYYY-MM-DD`), so nothing needs escaping.
fn chart(
    series: &[DailyUsage],
    value: impl Fn(&DailyUsage) -> i64,
    quota: Option<i64>,
    what: &str,
) -> maud::PreEscaped<String> {
    use std::fmt::Write;
    const W: f64 = 720.0;
    const H: f64 = 180.0;
    const TOP: f64 = 16.0;
    const BOTTOM: f64 = 24.0;
    let max = series
        .iter()
        .map(&value)
        .max()
        .unwrap_or(0)
        .max(quota.unwrap_or(0))
        .max(1) as f64;
    let slot = W / series.len().max(1) as f64;
    let scale = (H - TOP - BOTTOM) / max;
    let mut svg = format!(
        r#"<svg viewBox="0 0 {W} {H}" role="img" aria-label="{what} per day" class="bars"><text x="2" y="11" class="axis">{}</text><line x1="0" x2="{W}" y1="{TOP}" y2="{TOP}" class="grid"/>"#,
        count(max as i64)
    );
    for (i, d) in series.iter().enumerate() {
        let v = value(d).max(0) as f64;
        let h = v * scale;
        let x = i as f64 * slot + slot * 0.15;
        let y = H - BOTTOM - h;
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" class="bar"><title>{} {}: {}</title></rect>"#,
            slot * 0.7,
            d.day,
            what,
            v as i64
        );
        if series.len() <= 31 || i % 7 == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" class="label">{}</text>"#,
                x + slot * 0.35,
                H - 8.0,
                d.day.get(5..).unwrap_or(&d.day)
            );
        }
    }
    if let Some(quota) = quota {
        let y = H - BOTTOM - quota as f64 * scale;
        let _ = write!(
            svg,
            r#"<line x1="0" x2="{W}" y1="{y:.1}" y2="{y:.1}" class="quota"/><text x="4" y="{:.1}" class="quota-label">quota</text>"#,
            (y - 4.0).max(10.0)
        );
    }
    svg.push_str("</svg>");
    trusted(svg)
}

// ---- triggers ----

async fn triggers(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(app): Path<String>,
) -> PageResult {
    let app = app_for(&state, &viewer, &app, Scope::Read).await?;
    let list = state.db.list_triggers(&app.id).await?;
    let can_deploy = viewer.may(Scope::Deploy, Some(&app.id));
    let body = html! {
        h1 { "Triggers" }
        @if list.is_empty() {
            p.empty { "No triggers. Create them with " code { "picloud triggers create " (app.name) " …" } " (cron, data changes, pubsub, dead letters)." }
        } @else {
            table {
                thead { tr { th { "Name" } th { "Kind" } th { "Function" } th { "On" } th.num { "Attempts" } th {} } }
                tbody {
                    @for t in &list {
                        tr {
                            td { (t.name) }
                            td { (t.kind) }
                            td { (t.function) }
                            td {
                                @if let Some(s) = &t.schedule { code { (s) } }
                                @if let Some(s) = &t.source { (s) }
                                @if let Some(c) = &t.collection { " " code { (c) } }
                                @if let Some(ops) = &t.ops { " (" (ops.join(", ")) ")" }
                            }
                            td.num { (t.max_attempts) }
                            td {
                                @if can_deploy {
                                    form.inline method="post" action={ "/dashboard/apps/" (app.name) "/triggers/" (t.name) "/delete" } {
                                        (csrf_field(&viewer))
                                        button.danger.small type="submit" { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Triggers", &viewer, Some(&app.name), body)
}

async fn delete_trigger(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((app, name)): Path<(String, String)>,
    Form(form): Form<Csrf>,
) -> PageResult {
    let app = changing(
        &state,
        &viewer,
        &headers,
        form.csrf.as_deref(),
        &app,
        Scope::Deploy,
    )
    .await?;
    if !state.db.delete_trigger(&app.id, &name).await? {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            format!("There is no trigger {name:?}."),
        ));
    }
    back_to(format!("/dashboard/apps/{}/triggers", app.name))
}

// ---- secrets ----

fn vault(
    state: &AppState,
    app: &AppEntry,
) -> Result<crate::services::secrets::Vault<crate::storage::Db>, Problem> {
    let keys = state.db.secret_keys().cloned().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Secrets are not configured on this server.",
        )
    })?;
    Ok(crate::services::secrets::Vault::new(
        state.db.clone(),
        keys,
        app.id.as_str().into(),
    ))
}

fn vault_problem(e: crate::services::secrets::VaultError) -> Problem {
    use crate::services::secrets::VaultError;
    match e {
        VaultError::Invalid(m) => Problem::new(StatusCode::BAD_REQUEST, m),
        VaultError::Storage(e) => e.into(),
        other => Problem::new(StatusCode::BAD_REQUEST, other.to_string()),
    }
}

async fn secrets(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(app): Path<String>,
) -> PageResult {
    let app = app_for(&state, &viewer, &app, Scope::Read).await?;
    let names = vault(&state, &app)?.list().await.map_err(vault_problem)?;
    let can_deploy = viewer.may(Scope::Deploy, Some(&app.id));
    let body = html! {
        h1 { "Secrets" }
        p.hint { "Values are encrypted at rest and never shown again; functions read them with " code { "secrets::get" } "." }
        @if names.is_empty() {
            p.empty { "No secrets yet." }
        } @else {
            table {
                thead { tr { th { "Name" } th { "Updated" } th {} } }
                tbody {
                    @for s in &names {
                        tr {
                            td { code { (s.name) } }
                            td { (when(s.updated_at)) }
                            td {
                                @if can_deploy {
                                    form.inline method="post" action={ "/dashboard/apps/" (app.name) "/secrets/" (s.name) "/delete" } {
                                        (csrf_field(&viewer))
                                        button.danger.small type="submit" { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if can_deploy {
            form.row method="post" action={ "/dashboard/apps/" (app.name) "/secrets" } {
                (csrf_field(&viewer))
                input name="name" placeholder="STRIPE_KEY" required aria-label="Name";
                input name="value" type="password" placeholder="value" required aria-label="Value" autocomplete="off";
                button type="submit" { "Set secret" }
            }
        }
    };
    page("Secrets", &viewer, Some(&app.name), body)
}

#[derive(serde::Deserialize)]
struct SecretForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
    name: String,
    value: String,
}

async fn set_secret(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(app): Path<String>,
    Form(form): Form<SecretForm>,
) -> PageResult {
    let app = changing(
        &state,
        &viewer,
        &headers,
        form.csrf.as_deref(),
        &app,
        Scope::Deploy,
    )
    .await?;
    vault(&state, &app)?
        .set(form.name.trim(), &form.value)
        .await
        .map_err(vault_problem)?;
    back_to(format!("/dashboard/apps/{}/secrets", app.name))
}

async fn delete_secret(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((app, name)): Path<(String, String)>,
    Form(form): Form<Csrf>,
) -> PageResult {
    let app = changing(
        &state,
        &viewer,
        &headers,
        form.csrf.as_deref(),
        &app,
        Scope::Deploy,
    )
    .await?;
    vault(&state, &app)?
        .delete(&name)
        .await
        .map_err(vault_problem)?;
    back_to(format!("/dashboard/apps/{}/secrets", app.name))
}

// ---- files ----

#[derive(serde::Deserialize)]
struct FilesQuery {
    after: Option<String>,
}

/// Files per page.
const FILES_PAGE: u32 = 100;

async fn files(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(app): Path<String>,
    Query(query): Query<FilesQuery>,
) -> PageResult {
    let app = app_for(&state, &viewer, &app, Scope::Read).await?;
    let list = state
        .db
        .files_list(&app.id, "", query.after.as_deref(), FILES_PAGE + 1)
        .await?;
    let more = list.len() > FILES_PAGE as usize;
    let list = &list[..list.len().min(FILES_PAGE as usize)];
    let can_deploy = viewer.may(Scope::Deploy, Some(&app.id));
    let body = html! {
        h1 { "Files" }
        @if list.is_empty() {
            p.empty { "No files. Functions store them with " code { "files::put" } @if can_deploy { "; or upload one below" } "." }
        } @else {
            table {
                thead { tr { th { "Path" } th.num { "Size" } th { "Type" } th { "Modified" } th {} } }
                tbody {
                    @for f in list {
                        tr {
                            td { a href={ "/dashboard/apps/" (app.name) "/files/raw/" (url_path(&f.path)) } download { (f.path) } }
                            td.num { (bytes(f.size)) }
                            td { (f.content_type) }
                            td { (when(f.modified)) }
                            td {
                                @if can_deploy {
                                    form.inline method="post" action={ "/dashboard/apps/" (app.name) "/files/delete" } {
                                        (csrf_field(&viewer))
                                        input type="hidden" name="path" value=(f.path);
                                        button.danger.small type="submit" { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if more { @if let Some(last) = list.last() { p { a href={ "?after=" (last.path) } { "More →" } } } }
        }
        @if can_deploy {
            form.row method="post" action={ "/dashboard/apps/" (app.name) "/files" } enctype="multipart/form-data" {
                (csrf_field(&viewer))
                input name="path" placeholder="images/logo.png" required aria-label="Path";
                input name="file" type="file" required aria-label="File";
                button type="submit" { "Upload" }
            }
        }
    };
    page("Files", &viewer, Some(&app.name), body)
}

async fn download_file(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((app, path)): Path<(String, String)>,
) -> PageResult {
    let app = app_for(&state, &viewer, &app, Scope::Read).await?;
    let path = crate::storage::files::normalize_path(&path)
        .map_err(|m| Problem::new(StatusCode::BAD_REQUEST, m))?;
    let (stat, content) = state.db.files_get(&app.id, &path).await?.ok_or_else(|| {
        Problem::new(StatusCode::NOT_FOUND, format!("There is no file {path:?}."))
    })?;
    // Always a download, never rendered on the dashboard's origin.
    let mut response = content.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let file_name: String = stat
        .path
        .rsplit('/')
        .next()
        .unwrap_or("file")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

async fn upload_file(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(app): Path<String>,
    mut multipart: Multipart,
) -> PageResult {
    let bad = |m: String| Problem::new(StatusCode::BAD_REQUEST, m);
    let (mut csrf, mut path, mut file) = (None, None, None);
    let max = state.db.files_config().max_file_bytes;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| bad(format!("the upload is not a valid form: {e}")))?
    {
        match field.name().unwrap_or("") {
            "_csrf" => csrf = Some(field.text().await.map_err(|e| bad(e.to_string()))?),
            "path" => path = Some(field.text().await.map_err(|e| bad(e.to_string()))?),
            "file" => {
                check_csrf(&viewer, &headers, csrf.as_deref())?;
                let content_type = field.content_type().unwrap_or("").to_owned();
                let mut content = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(|e| bad(e.to_string()))? {
                    if (content.len() + chunk.len()) as u64 > max {
                        return Err(Problem::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("The file is larger than the limit of {max} bytes per file."),
                        ));
                    }
                    content.extend_from_slice(&chunk);
                }
                file = Some((content_type, content));
            }
            _ => {}
        }
    }
    check_csrf(&viewer, &headers, csrf.as_deref())?;
    let app = app_for(&state, &viewer, &app, Scope::Deploy).await?;
    let path = crate::storage::files::normalize_path(path.as_deref().unwrap_or("")).map_err(bad)?;
    let (content_type, content) = file.ok_or_else(|| bad("Choose a file to upload.".into()))?;
    let content_type = crate::services::files::content_type_of(&content_type).map_err(bad)?;
    state
        .db
        .files_put(&app.id, &path, &content, &content_type)
        .await
        .map_err(|e| match e {
            crate::storage::files::FilesError::Storage(e) => e.into(),
            other => Problem::new(StatusCode::PAYLOAD_TOO_LARGE, other.to_string()),
        })?;
    back_to(format!("/dashboard/apps/{}/files", app.name))
}

#[derive(serde::Deserialize)]
struct PathForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
    path: String,
}

async fn delete_file(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(app): Path<String>,
    Form(form): Form<PathForm>,
) -> PageResult {
    let app = changing(
        &state,
        &viewer,
        &headers,
        form.csrf.as_deref(),
        &app,
        Scope::Deploy,
    )
    .await?;
    let path = crate::storage::files::normalize_path(&form.path)
        .map_err(|m| Problem::new(StatusCode::BAD_REQUEST, m))?;
    state.db.files_delete(&app.id, &path).await?;
    back_to(format!("/dashboard/apps/{}/files", app.name))
}

// ---- end users ----

#[derive(serde::Deserialize)]
struct CursorQuery {
    cursor: Option<String>,
}

async fn users(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(app): Path<String>,
    Query(query): Query<CursorQuery>,
) -> PageResult {
    let app = app_for(&state, &viewer, &app, Scope::Read).await?;
    let users = crate::services::users::Users::new(state.db.clone(), app.id.as_str().into(), None);
    let (rows, cursor) = users
        .list(query.cursor.as_deref(), Some(100))
        .await
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let can_deploy = viewer.may(Scope::Deploy, Some(&app.id));
    let body = html! {
        h1 { "End users" }
        @if rows.is_empty() {
            p.empty { "No end users. They sign up through your functions (" code { "users::create" } ") or " code { "picloud users create" } "." }
        } @else {
            table {
                thead { tr { th { "Email" } th { "Verified" } th { "Roles" } th { "Created" } th {} } }
                tbody {
                    @for u in &rows {
                        tr {
                            td { (u.email) }
                            td { @if u.email_verified { "yes" } @else { "no" } }
                            td { (u.roles.join(", ")) }
                            td { (when(u.created_at)) }
                            td {
                                @if can_deploy {
                                    form.inline method="post" action={ "/dashboard/apps/" (app.name) "/users/" (u.id) "/delete" } data-confirm={ "Delete " (u.email) "?" } {
                                        (csrf_field(&viewer))
                                        button.danger.small type="submit" { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(cursor) = cursor { p { a href={ "?cursor=" (cursor) } { "More →" } } }
        }
    };
    page("End users", &viewer, Some(&app.name), body)
}

async fn delete_user(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((app, id)): Path<(String, String)>,
    Form(form): Form<Csrf>,
) -> PageResult {
    let app = changing(
        &state,
        &viewer,
        &headers,
        form.csrf.as_deref(),
        &app,
        Scope::Deploy,
    )
    .await?;
    let users = crate::services::users::Users::new(state.db.clone(), app.id.as_str().into(), None);
    users
        .delete(&id)
        .await
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    back_to(format!("/dashboard/apps/{}/users", app.name))
}

// ---- dead letters ----

async fn dead_letters(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(app): Path<String>,
) -> PageResult {
    let app = app_for(&state, &viewer, &app, Scope::Read).await?;
    let list = state.db.deliveries(&app.id, "dead", None, 100).await?;
    let can_deploy = viewer.may(Scope::Deploy, Some(&app.id));
    let body = html! {
        h1 { "Dead letters" }
        p.hint { "Events whose trigger failed every attempt. Replay runs the trigger again; resolve marks one handled." }
        @if list.is_empty() {
            p.empty { "No dead letters. Good." }
        } @else {
            table {
                thead { tr { th.num { "Id" } th { "Trigger" } th.num { "Attempts" } th { "Last error" } th { "Failed" } th {} } }
                tbody {
                    @for d in &list {
                        tr {
                            td.num { (d.id) }
                            td { (d.trigger) }
                            td.num { (d.attempts) }
                            td { span.message { (d.last_error.as_deref().unwrap_or("")) } }
                            td { (when(d.updated_at)) }
                            td {
                                @if can_deploy {
                                    @for action in ["replay", "resolve"] {
                                        form.inline method="post" action={ "/dashboard/apps/" (app.name) "/dead-letters/" (d.id) "/" (action) } {
                                            (csrf_field(&viewer))
                                            button.small type="submit" { (action) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Dead letters", &viewer, Some(&app.name), body)
}

async fn dead_letter_action(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((app, id, action)): Path<(String, i64, String)>,
    Form(form): Form<Csrf>,
) -> PageResult {
    let app = changing(
        &state,
        &viewer,
        &headers,
        form.csrf.as_deref(),
        &app,
        Scope::Deploy,
    )
    .await?;
    let now = crate::storage::now_ms();
    let done = match action.as_str() {
        "replay" => {
            let done = state.db.replay_dead_letter(&app.id, id, now).await?;
            state.db.events_written().notify_one();
            done
        }
        "resolve" => state.db.resolve_dead_letter(&app.id, id, now).await?,
        _ => {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "There is no such action.",
            ));
        }
    };
    if !done {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            format!("There is no dead letter {id}."),
        ));
    }
    back_to(format!("/dashboard/apps/{}/dead-letters", app.name))
}
