//! `/apps/{app}/secrets`: an app's secrets, by name. Values go in, never out: listing
//! answers names and update times only. `/secrets/rekey` reseals every secret sealed
//! with the previous master key.

use super::existing_app;
use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::services::secrets::{MAX_SECRET_BYTES, Vault, VaultError};
use crate::storage::Db;
use crate::storage::secrets::SecretName;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps/{app}/secrets", get(list))
        .route(
            "/apps/{app}/secrets/{name}",
            put(set)
                .delete(remove)
                .layer(DefaultBodyLimit::max(2 * MAX_SECRET_BYTES + 1024)),
        )
        .route("/secrets/rekey", post(rekey))
}

/// The value of a secret being set.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretValue {
    value: String,
}

fn api_error(e: VaultError) -> ApiError {
    match e {
        VaultError::Invalid(message) => ApiError::bad_request(message),
        VaultError::TooMany => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            e.to_string(),
        ),
        VaultError::Unreadable { .. } => ApiError::internal(e),
        VaultError::Storage(e) => e.into(),
    }
}

async fn vault(state: &AppState, app: &str) -> ApiResult<Vault<Db>> {
    let app = existing_app(state, app).await?;
    let keys = state
        .db
        .secret_keys()
        .cloned()
        .ok_or_else(|| ApiError::unavailable("secrets are not configured"))?;
    Ok(Vault::new(state.db.clone(), keys, app.id.as_str().into()))
}

async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<SecretName>>> {
    let vault = vault(&state, &app).await?;
    Ok(Json(vault.list().await.map_err(api_error)?))
}

async fn set(
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
    Json(body): Json<SecretValue>,
) -> ApiResult<StatusCode> {
    let vault = vault(&state, &app).await?;
    vault.set(&name, &body.value).await.map_err(api_error)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let vault = vault(&state, &app).await?;
    if vault.delete(&name).await.map_err(api_error)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no secret called {name:?}")))
    }
}

#[derive(serde::Serialize)]
struct Rekeyed {
    rekeyed: u64,
    key_id: String,
}

async fn rekey(State(state): State<AppState>) -> ApiResult<Json<Rekeyed>> {
    let keys = state
        .db
        .secret_keys()
        .cloned()
        .ok_or_else(|| ApiError::unavailable("secrets are not configured"))?;
    let rekeyed = keys.rekey(&state.db).await.map_err(ApiError::internal)?;
    Ok(Json(Rekeyed {
        rekeyed,
        key_id: keys.current_id().to_owned(),
    }))
}
