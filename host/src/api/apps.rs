//! `/apps`: create, list, get, delete, limits, outbound http allow-list.

use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::storage::AppRecord;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use picloud_runtime::{LimitOverrides, Limits};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps", get(list).post(create))
        .route("/apps/{app}", get(show).delete(remove))
        .route("/apps/{app}/limits", put(set_limits))
        .route("/apps/{app}/outbound", get(show_outbound).put(set_outbound))
}

/// Most entries of an app's outbound allow-list.
pub const MAX_OUTBOUND_HOSTS: usize = 100;

/// An app's outbound http settings: `allow_hosts` null lets it reach any host the SSRF
/// guard lets through; a list restricts it to those hosts (`api.example.com`,
/// `*.example.com` for its subdomains, or an address).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboundSettings {
    allow_hosts: Option<Vec<String>>,
}

async fn show_outbound(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<OutboundSettings>> {
    let entry = super::existing_app(&state, &app).await?;
    Ok(Json(OutboundSettings {
        allow_hosts: state.db.app_outbound_hosts(&entry.id).await?,
    }))
}

async fn set_outbound(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Json(settings): Json<OutboundSettings>,
) -> ApiResult<Json<OutboundSettings>> {
    let entry = super::existing_app(&state, &app).await?;
    let hosts = match settings.allow_hosts {
        None => None,
        Some(hosts) if hosts.len() > MAX_OUTBOUND_HOSTS => {
            return Err(ApiError::bad_request(format!(
                "allow_hosts has {} entries; at most {MAX_OUTBOUND_HOSTS}",
                hosts.len()
            )));
        }
        Some(hosts) => {
            let mut normalized = hosts
                .iter()
                .map(|h| crate::outbound::normalize_host_pattern(h))
                .collect::<Result<Vec<_>, _>>()
                .map_err(ApiError::bad_request)?;
            normalized.sort();
            normalized.dedup();
            Some(normalized)
        }
    };
    state
        .control
        .set_outbound_hosts(&entry, hosts.as_deref())
        .await?;
    Ok(Json(OutboundSettings { allow_hosts: hosts }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApp {
    name: String,
    #[serde(default)]
    limits: LimitOverrides,
}

#[derive(serde::Serialize)]
struct AppView {
    #[serde(flatten)]
    app: AppRecord,
    /// Limits in force: host defaults with the overrides applied.
    effective_limits: Limits,
}

fn view(state: &AppState, app: AppRecord) -> AppView {
    AppView {
        effective_limits: state.invoker.defaults().with(&app.limits),
        app,
    }
}

async fn create(
    State(state): State<AppState>,
    Json(new): Json<NewApp>,
) -> ApiResult<(StatusCode, Json<AppView>)> {
    let app = state.control.create_app(&new.name, &new.limits).await?;
    Ok((StatusCode::CREATED, Json(view(&state, app))))
}

/// Every app; for a token limited to one app, that app only.
async fn list(
    State(state): State<AppState>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
) -> ApiResult<Json<Vec<AppView>>> {
    let only = principal.and_then(|p| p.0.app_id);
    let apps = state.db.list_apps().await?;
    Ok(Json(
        apps.into_iter()
            .filter(|a| only.as_ref().is_none_or(|id| *id == a.id))
            .map(|a| view(&state, a))
            .collect(),
    ))
}

async fn show(State(state): State<AppState>, Path(app): Path<String>) -> ApiResult<Json<AppView>> {
    let record = state
        .db
        .get_app(&app)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no app called {app:?}")))?;
    Ok(Json(view(&state, record)))
}

async fn remove(State(state): State<AppState>, Path(app): Path<String>) -> ApiResult<StatusCode> {
    state.control.delete_app(&app).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_limits(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Json(limits): Json<LimitOverrides>,
) -> ApiResult<Json<AppView>> {
    state.control.set_limits(&app, &limits).await?;
    show(State(state), Path(app)).await
}
