//! `/apps/{app}/users`: an app's end users, for operators (the same rules as the SDK's
//! `users` interface, `services::users`): list (by pages, or `?email=`), create, get,
//! update, delete, invite; `/apps/{app}/users/settings`: the link template of user
//! emails. Users are shown without their password hash, ever.

use super::existing_app;
use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::services::email::EmailService;
use crate::services::users::{Users, check_link_template};
use crate::storage::users::UserRow;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use picloud_runtime::GuestError;
use picloud_runtime::users::{NewUser, UserUpdate};
use serde_json::Value;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps/{app}/users", get(list).post(create))
        .route("/apps/{app}/users/invite", post(invite))
        .route(
            "/apps/{app}/users/settings",
            get(settings).put(set_settings),
        )
        .route(
            "/apps/{app}/users/{id}",
            get(one).patch(update).delete(remove),
        )
}

fn api_error(e: GuestError) -> ApiError {
    match e {
        GuestError::NotFound => ApiError::not_found("no such user"),
        GuestError::Invalid(m) => ApiError::bad_request(m),
        GuestError::Denied(m) => ApiError::new(StatusCode::FORBIDDEN, "denied", m),
        GuestError::Limit(m) => ApiError::quota_exceeded(m),
        GuestError::Unavailable(m) => ApiError::unavailable(m),
        GuestError::Internal(m) => ApiError::internal(m),
    }
}

async fn users(state: &AppState, app: &str) -> ApiResult<Users> {
    let app = existing_app(state, app).await?;
    let app_id: std::sync::Arc<str> = app.id.as_str().into();
    let email = state.invoker.mailer().map(|mailer| {
        EmailService::new(
            mailer.clone(),
            state.db.clone(),
            app_id.clone(),
            state.invoker.clock().clone(),
            None,
            Default::default(),
        )
    });
    Ok(Users::new(state.db.clone(), app_id, email))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    cursor: Option<String>,
    limit: Option<u32>,
    email: Option<String>,
}

#[derive(serde::Serialize)]
struct Page {
    users: Vec<Value>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Page>> {
    let users = users(&state, &app).await?;
    if let Some(email) = &query.email {
        let found = users.find_by_email(email).await.map_err(api_error)?;
        return Ok(Json(Page {
            users: found.iter().map(UserRow::public).collect(),
            cursor: None,
        }));
    }
    let (rows, cursor) = users
        .list(query.cursor.as_deref(), query.limit)
        .await
        .map_err(api_error)?;
    Ok(Json(Page {
        users: rows.iter().map(UserRow::public).collect(),
        cursor,
    }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    email: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
    data: Option<Value>,
}

async fn create(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Json(body): Json<NewUserBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let users = users(&state, &app).await?;
    let new = NewUser {
        email: body.email,
        password: body.password,
        roles: body.roles,
        data: body.data.map(|d| d.to_string()),
    };
    let row = users.create(new).await.map_err(api_error)?;
    Ok((StatusCode::CREATED, Json(row.public())))
}

async fn one(
    State(state): State<AppState>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let users = users(&state, &app).await?;
    match users.get(&id).await.map_err(api_error)? {
        Some(row) => Ok(Json(row.public())),
        None => Err(ApiError::not_found(format!("no user {id:?}"))),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    email: Option<String>,
    password: Option<String>,
    roles: Option<Vec<String>>,
    data: Option<Value>,
}

async fn update(
    State(state): State<AppState>,
    Path((app, id)): Path<(String, String)>,
    Json(body): Json<UpdateBody>,
) -> ApiResult<Json<Value>> {
    let users = users(&state, &app).await?;
    let update = UserUpdate {
        email: body.email,
        password: body.password,
        roles: body.roles,
        data: body.data.map(|d| d.to_string()),
    };
    let row = users.update(&id, update).await.map_err(api_error)?;
    Ok(Json(row.public()))
}

async fn remove(
    State(state): State<AppState>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let users = users(&state, &app).await?;
    if users.delete(&id).await.map_err(api_error)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no user {id:?}")))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    email: String,
    #[serde(default)]
    roles: Vec<String>,
}

async fn invite(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Json(body): Json<InviteBody>,
) -> ApiResult<StatusCode> {
    let users = users(&state, &app).await?;
    users
        .invite(&body.email, &body.roles)
        .await
        .map_err(api_error)?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The URL of links in user emails: `{token}` (and `{action}`) are replaced.
    link_url: Option<String>,
}

async fn settings(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<Settings>> {
    let app = existing_app(&state, &app).await?;
    let link_url = state.db.user_link_template(&app.id).await?;
    Ok(Json(Settings { link_url }))
}

async fn set_settings(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Json(body): Json<Settings>,
) -> ApiResult<Json<Settings>> {
    let app = existing_app(&state, &app).await?;
    if let Some(url) = &body.link_url {
        check_link_template(url).map_err(ApiError::bad_request)?;
    }
    state
        .db
        .set_user_link_template(&app.id, body.link_url.as_deref())
        .await?;
    Ok(Json(body))
}
