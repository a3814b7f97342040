//! The app's data as an operator sees it:
//! - `/apps/{app}/docs/indexes`, `/apps/{app}/docs/{collection}/indexes/{field}`:
//!   declare, list and drop docs indexes; `/apps/{app}/docs/{collection}/explain`: the
//!   database's plan for a query;
//! - `/apps/{app}/files[/{path}]`: list, download, upload and delete files;
//! - `/apps/{app}/changes`: the change events of kv, docs and files writes.

use super::existing_app;
use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::services::common::{check_name, page, page_limit};
use crate::services::files::content_type_of;
use crate::storage::changes::ChangeEvent;
use crate::storage::docs::{DocIndex, DocsError};
use crate::storage::files::{FileStat, FilesError, normalize_path};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::Value;

/// Largest upload through the admin API, before the file store's own cap (checked
/// while reading the body) applies.
const MAX_UPLOAD_BYTES: usize = 1024 * 1024 * 1024;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps/{app}/docs/indexes", get(list_indexes))
        .route(
            "/apps/{app}/docs/{collection}/indexes/{field}",
            put(create_index).delete(drop_index),
        )
        .route("/apps/{app}/docs/{collection}/explain", post(explain))
        .route("/apps/{app}/files", get(list_files))
        .route(
            "/apps/{app}/files/{*path}",
            get(download)
                .put(upload)
                .delete(delete_file)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route("/apps/{app}/changes", get(changes))
}

fn docs_api_error(e: DocsError) -> ApiError {
    match e {
        DocsError::Query(e) => ApiError::bad_request(e.to_string()),
        DocsError::TooManyIndexes => ApiError::bad_request(e.to_string()),
        DocsError::Storage(e) => e.into(),
    }
}

fn check_collection(collection: &str) -> ApiResult<()> {
    check_name("collection name", collection).map_err(ApiError::bad_request)
}

async fn list_indexes(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<DocIndex>>> {
    let app = existing_app(&state, &app).await?;
    Ok(Json(state.db.docs_indexes(&app.id).await?))
}

async fn create_index(
    State(state): State<AppState>,
    Path((app, collection, field)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let app = existing_app(&state, &app).await?;
    check_collection(&collection)?;
    let created = state
        .db
        .docs_create_index(&app.id, &collection, &field)
        .await
        .map_err(docs_api_error)?;
    Ok(if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    })
}

async fn drop_index(
    State(state): State<AppState>,
    Path((app, collection, field)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let app = existing_app(&state, &app).await?;
    check_collection(&collection)?;
    if state
        .db
        .docs_drop_index(&app.id, &collection, &field)
        .await
        .map_err(docs_api_error)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no index on {field:?} of {collection:?}"
        )))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainRequest {
    #[serde(default = "empty_query")]
    query: Value,
    #[serde(default)]
    sort: Vec<String>,
}

fn empty_query() -> Value {
    Value::Object(Default::default())
}

async fn explain(
    State(state): State<AppState>,
    Path((app, collection)): Path<(String, String)>,
    Json(request): Json<ExplainRequest>,
) -> ApiResult<Json<Value>> {
    let app = existing_app(&state, &app).await?;
    check_collection(&collection)?;
    let plan = state
        .db
        .docs_explain(&app.id, &collection, &request.query, &request.sort)
        .await
        .map_err(docs_api_error)?;
    Ok(Json(serde_json::json!({ "plan": plan })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListFiles {
    #[serde(default)]
    prefix: String,
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(serde::Serialize)]
struct FilePage {
    files: Vec<FileStat>,
    cursor: Option<String>,
}

async fn list_files(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(list): Query<ListFiles>,
) -> ApiResult<Json<FilePage>> {
    let app = existing_app(&state, &app).await?;
    let limit = page_limit(list.limit).map_err(ApiError::bad_request)?;
    let files = state
        .db
        .files_list(&app.id, &list.prefix, list.cursor.as_deref(), limit + 1)
        .await?;
    let (files, cursor) = page(files, limit, |f| f.path.clone());
    Ok(Json(FilePage { files, cursor }))
}

fn path_of(path: &str) -> ApiResult<String> {
    normalize_path(path).map_err(ApiError::bad_request)
}

async fn download(
    State(state): State<AppState>,
    Path((app, path)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = existing_app(&state, &app).await?;
    let path = path_of(&path)?;
    let (stat, content) = state
        .db
        .files_get(&app.id, &path)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no file {path:?}")))?;
    let mut headers = HeaderMap::new();
    let content_type = HeaderValue::from_str(&stat.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", stat.sha256)) {
        headers.insert(header::ETAG, etag);
    }
    Ok((headers, content).into_response())
}

async fn upload(
    State(state): State<AppState>,
    Path((app, path)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<FileStat>)> {
    let app = existing_app(&state, &app).await?;
    let path = path_of(&path)?;
    // Read at most one byte more than a file may hold: a bigger upload is refused
    // without being buffered whole.
    let max = state.db.files_config().max_file_bytes;
    let limit = usize::try_from(max.saturating_add(1)).unwrap_or(usize::MAX);
    let body: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the file is larger than the limit of {max} bytes per file"),
        )
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let content_type = content_type_of(content_type).map_err(ApiError::bad_request)?;
    let stat = state
        .db
        .files_put(&app.id, &path, &body, &content_type)
        .await
        .map_err(|e| match e {
            FilesError::FileTooLarge { .. } | FilesError::AppFull { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                e.to_string(),
            ),
            FilesError::Storage(e) => e.into(),
        })?;
    Ok((StatusCode::CREATED, Json(stat)))
}

async fn delete_file(
    State(state): State<AppState>,
    Path((app, path)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = existing_app(&state, &app).await?;
    let path = path_of(&path)?;
    if state.db.files_delete(&app.id, &path).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no file {path:?}")))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListChanges {
    #[serde(default)]
    after: i64,
    limit: Option<u32>,
}

async fn changes(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(list): Query<ListChanges>,
) -> ApiResult<Json<Vec<ChangeEvent>>> {
    let app = existing_app(&state, &app).await?;
    let limit = page_limit(list.limit).map_err(ApiError::bad_request)?;
    Ok(Json(
        state.db.change_events(&app.id, list.after, limit).await?,
    ))
}
