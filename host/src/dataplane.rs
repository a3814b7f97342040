//! The data plane: `/fn/{app}/{path}` and `http://{app}.{base-domain}/{path}` → route →
//! function → response. Errors are the JSON of SPEC §3.

use crate::error::{ApiError, ApiResult};
use crate::invoker::Invoker;
use crate::server::AppState;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request as HttpRequest;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
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

/// The HTTP front: a request for a function goes straight to the data plane, everything
/// else (health, the admin API) to `rest`. A function is addressed by host name,
/// `http://{app}.{base-domain}/{path}` (whatever the path), or by path,
/// `/fn/{app}/{path}`. Deciding this before the router keeps routing, middleware and
/// extractors off the path of every invocation.
#[derive(Clone)]
pub struct Front {
    state: AppState,
    rest: Router,
}

impl Front {
    /// The front of `state`'s data plane, with `rest` serving the other requests.
    pub fn new(state: AppState, rest: Router) -> Self {
        Self { state, rest }
    }
}

impl tower::Service<HttpRequest> for Front {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response, Self::Error>> + Send + 'static>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let target = by_host(&self.state.base_domain, &request)
            .map(|app| Ok((app, request.uri().path().to_owned())))
            .or_else(|| by_path(request.uri().path()));
        match target {
            Some(Ok((app, path))) => {
                let state = self.state.clone();
                Box::pin(async move { Ok(handle(&state, &app, path, request).await) })
            }
            Some(Err(error)) => Box::pin(std::future::ready(Ok(error.into_response()))),
            None => {
                let mut rest = self.rest.clone();
                Box::pin(async move { rest.call(request).await })
            }
        }
    }
}

/// The app a request is for by its `Host` header, `{app}.{base-domain}[:port]`.
fn by_host(base_domain: &str, request: &HttpRequest) -> Option<String> {
    let host = request.headers().get(header::HOST)?.to_str().ok()?;
    let host = host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(host, _)| host);
    let app = host.strip_suffix(base_domain)?.strip_suffix('.')?;
    (!app.is_empty() && !app.contains('.')).then(|| app.to_owned())
}

/// The app and the path below it of `/fn/{app}` and `/fn/{app}/{path}`, both
/// percent-decoded; `None` for any other path.
fn by_path(path: &str) -> Option<ApiResult<(String, String)>> {
    let rest = path.strip_prefix("/fn/")?;
    let (app, below) = rest.split_once('/').unwrap_or((rest, ""));
    if app.is_empty() {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(std::borrow::Cow::into_owned)
            .map_err(|_| {
                ApiError::bad_request(format!("the path {path:?} is not UTF-8 once decoded"))
            })
    };
    Some(decode(app).and_then(|app| Ok((app, format!("/{}", decode(below)?)))))
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
