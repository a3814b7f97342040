//! The data plane: `/fn/{app}/{path}` and `http://{app}.{base-domain}/{path}` → route →
//! function → response. Errors are the JSON of SPEC §3.

use crate::error::{ApiError, ApiResult};
use crate::invoker::Invoker;
use crate::server::AppState;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request as HttpRequest, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http_body_util::BodyExt;
use picloud_runtime::Request;

/// Largest request body a function receives (SPEC §3).
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// Largest response body a function may answer (SPEC §3).
pub const MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;
/// An oversized body is still read (and dropped) up to this many bytes, so the client
/// gets its 413 instead of a reset connection.
const MAX_DRAIN_BYTES: usize = 256 * 1024 * 1024;
/// Header with the invocation id on every data-plane response.
pub const INVOCATION_ID_HEADER: &str = "x-picloud-invocation-id";

/// Routes of the data plane under `/fn`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/fn/{app}", any(by_path_root))
        .route("/fn/{app}/", any(by_path_root))
        .route("/fn/{app}/{*path}", any(by_path))
}

async fn by_path_root(
    State(state): State<AppState>,
    Path(app): Path<String>,
    request: HttpRequest,
) -> Response {
    handle(&state, &app, "/".to_owned(), request).await
}

async fn by_path(
    State(state): State<AppState>,
    Path((app, path)): Path<(String, String)>,
    request: HttpRequest,
) -> Response {
    handle(&state, &app, format!("/{path}"), request).await
}

/// Middleware: a request whose `Host` is `{app}.{base-domain}` goes to that app's
/// functions, whatever its path.
pub async fn by_host(State(state): State<AppState>, request: HttpRequest, next: Next) -> Response {
    let app = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':')
                .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
                .map_or(h, |(host, _)| host)
        })
        .and_then(|host| {
            host.strip_suffix(&*state.base_domain)?
                .strip_suffix('.')
                .map(str::to_owned)
        })
        .filter(|app| !app.is_empty() && !app.contains('.'));
    match app {
        Some(app) => {
            let path = request.uri().path().to_owned();
            handle(&state, &app, path, request).await
        }
        None => next.run(request).await,
    }
}

async fn handle(state: &AppState, app_name: &str, path: String, request: HttpRequest) -> Response {
    match dispatch(state, app_name, path, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn dispatch(
    state: &AppState,
    app_name: &str,
    path: String,
    request: HttpRequest,
) -> ApiResult<Response> {
    let app = state
        .invoker
        .app(app_name)
        .await?
        .ok_or_else(|| ApiError::no_route(format!("no app called {app_name:?}")))?;
    let method = request.method().as_str().to_owned();
    let route = Invoker::route(&app, &method, &path)?;
    let function = state
        .invoker
        .function(&app, &route.function)
        .await?
        .ok_or_else(|| {
            ApiError::no_route(format!(
                "the route's function {:?} no longer exists",
                route.function
            ))
        })?;
    let (parts, body) = request.into_parts();
    let body = read_limited(body, MAX_REQUEST_BYTES).await?;
    let request = Request {
        method,
        path,
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: header_pairs(&parts.headers),
        params: route.params,
        body: body.to_vec(),
        event: None,
    };
    let (id, result) = state
        .invoker
        .run(&app, &route.function, &function, "http", request)
        .await;
    http_response(&id, result)
}

/// Reads a body of at most `limit` bytes; a larger one is answered 413 (after draining
/// it, up to a bound, so the client reads the answer).
pub async fn read_limited(mut body: Body, limit: usize) -> ApiResult<Bytes> {
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(chunk.len());
        if seen <= limit {
            buf.extend_from_slice(&chunk);
        } else if seen > MAX_DRAIN_BYTES {
            break;
        }
    }
    if seen > limit {
        return Err(ApiError::payload_too_large(limit));
    }
    Ok(Bytes::from(buf))
}

/// Request headers as (lower-case name, value) pairs.
pub fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Turns a guest's response (or the failure) into the HTTP answer.
pub fn http_response(
    invocation_id: &str,
    result: Result<picloud_runtime::Response, ApiError>,
) -> ApiResult<Response> {
    let guest = result?;
    let fail = |message: String| {
        ApiError::new(StatusCode::BAD_GATEWAY, "function_failed", message)
            .with_invocation(invocation_id)
    };
    let status = StatusCode::from_u16(guest.status)
        .ok()
        .filter(|s| s.as_u16() >= 200)
        .ok_or_else(|| {
            fail(format!(
                "the function answered an invalid status {}",
                guest.status
            ))
        })?;
    if guest.body.len() > MAX_RESPONSE_BYTES {
        return Err(fail(format!(
            "the function's response body is larger than {MAX_RESPONSE_BYTES} bytes"
        )));
    }
    let mut response = Response::new(Body::from(guest.body));
    *response.status_mut() = status;
    for (name, value) in guest.headers {
        let name = HeaderName::try_from(name.as_str()).map_err(|_| {
            fail(format!(
                "the function answered an invalid header name {name:?}"
            ))
        })?;
        let value = HeaderValue::try_from(value.as_str()).map_err(|_| {
            fail(format!(
                "the function answered an invalid value for header {name}"
            ))
        })?;
        response.headers_mut().append(name, value);
    }
    response.headers_mut().insert(
        INVOCATION_ID_HEADER,
        HeaderValue::from_str(invocation_id).expect("uuid is a valid header value"),
    );
    Ok(response)
}
