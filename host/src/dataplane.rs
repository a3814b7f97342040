//! The data plane: `/fn/{app}/{path}` and `http://{app}.{base-domain}/{path}` → route →
//! function → response. Errors are the JSON of SPEC §3.

use crate::error::{ApiError, ApiResult};
use crate::invoke::{Answer, Answered, Call, Failure, Trigger};
use crate::server::AppState;
use axum::Router;
use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::Request as HttpRequest;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use picloud_runtime::{LogLine, Request};
use std::time::Duration;

/// Largest request body a function receives (SPEC §3).
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// Largest response body a function may answer (SPEC §3).
pub const MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;
/// An oversized body is still read (and dropped) up to this many bytes, so the client
/// gets its 413 instead of a reset connection.
const MAX_DRAIN_BYTES: usize = 256 * 1024 * 1024;
/// Header with the invocation id on every data-plane response.
pub const INVOCATION_ID_HEADER: &str = "x-picloud-invocation-id";
/// Most headers a function's response may carry; more is a 502. Real responses have a
/// few dozen at most, and hyper's clients (reqwest among them) refuse a response of more
/// than 100 headers: 90 leaves room for those PiCloud adds (`date`, `content-length`,
/// `x-content-type-options`, the invocation id).
pub const MAX_RESPONSE_HEADERS: usize = 90;
/// Most bytes (names and values) of a function's response headers: room for many
/// cookies (a browser keeps at most 4 KiB each) while a guest cannot make the host build
/// a big header map; proxies in front commonly refuse header sections of 8-64 KiB
/// anyway. More is a 502.
pub const MAX_RESPONSE_HEADER_BYTES: usize = 64 * 1024;

/// Request headers no guest receives: the hop-by-hop headers, which describe the
/// client's connection to PiCloud rather than the request (RFC 9110 §7.6.1; so do the
/// headers `connection` names), and `proxy-authorization`, a credential for a proxy in
/// front of PiCloud.
pub const NOT_FOR_GUESTS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];
/// Request headers a guest does not receive on the admin path: PiCloud's credentials
/// (the admin token; a cookie of whatever fronts the admin API).
pub const ADMIN_CREDENTIALS: &[&str] = &["authorization", "cookie"];
/// Response headers a guest may not set: they frame the HTTP exchange or describe the
/// connection, which are PiCloud's (the length comes from the body). Dropped.
const FRAMING: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

/// Who calls a function, which decides the request headers the guest receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A client of the data plane: its own headers, less [`NOT_FOR_GUESTS`].
    Public,
    /// The admin API's invoke: also less `authorization` and `cookie`.
    Admin,
}

/// Where a function is reached, which decides the cookies its answers may set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieScope {
    /// By host name: the app's own host, `{app}.{base-domain}`. A `Domain` attribute
    /// must name that host.
    Host(String),
    /// Below `/fn/{app}` on the origin all apps share (and the admin API's invoke): no
    /// `Domain` attribute, a `Path` at or below `/fn/{app}`; a cookie without a `Path`
    /// gets `Path=/fn/{app}`, so the browser sends it to this app only.
    Path(String),
}

impl CookieScope {
    /// The scope of app `app` reached under `/fn/{app}`.
    pub fn below_fn(app: &str) -> Self {
        Self::Path(format!("/fn/{app}"))
    }

    /// `cookie` (a `Set-Cookie` value) as the app may set it, or why it may not.
    fn admit(&self, cookie: &str) -> Result<Option<String>, String> {
        let attributes = cookie.split(';').skip(1).map(|a| {
            let (name, value) = a.split_once('=').unwrap_or((a, ""));
            (name.trim(), value.trim())
        });
        let mut has_path = false;
        for (name, value) in attributes {
            if name.eq_ignore_ascii_case("domain") {
                match self {
                    Self::Host(host)
                        if value
                            .strip_prefix('.')
                            .unwrap_or(value)
                            .eq_ignore_ascii_case(host) => {}
                    Self::Host(host) => {
                        return Err(format!("its Domain {value:?} is not the app's host {host}"));
                    }
                    Self::Path(prefix) => {
                        return Err(format!(
                            "below {prefix}/ all apps share one host, so a cookie may not name a Domain"
                        ));
                    }
                }
            } else if name.eq_ignore_ascii_case("path")
                && let Self::Path(prefix) = self
            {
                has_path = true;
                let inside = value
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
                if !inside {
                    return Err(format!("its Path {value:?} is outside {prefix}"));
                }
            }
        }
        Ok(match self {
            Self::Path(prefix) if !has_path => Some(format!("{cookie}; Path={prefix}")),
            _ => None,
        })
    }
}

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
        let target = match by_host(&self.state.base_domain, &request) {
            Some(app) => {
                let scope = CookieScope::Host(format!("{app}.{}", self.state.base_domain));
                Some(Ok((app, request.uri().path().to_owned(), scope)))
            }
            None => by_path(request.uri().path()).map(|target| {
                target.map(|(app, path)| {
                    let scope = CookieScope::below_fn(&app);
                    (app, path, scope)
                })
            }),
        };
        match target {
            Some(Ok((app, path, scope))) => {
                let state = self.state.clone();
                Box::pin(async move { Ok(handle(&state, &app, path, scope, request).await) })
            }
            Some(Err(error)) => Box::pin(std::future::ready(Ok(public_error(error)))),
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

/// The app (percent-decoded) and the path below it (as sent) of `/fn/{app}` and
/// `/fn/{app}/{path}`; `None` for any other path.
fn by_path(path: &str) -> Option<ApiResult<(String, String)>> {
    let rest = path.strip_prefix("/fn/")?;
    let (app, below) = rest.split_once('/').unwrap_or((rest, ""));
    if app.is_empty() {
        return None;
    }
    Some(decode_path(app).map(|app| (app, format!("/{below}"))))
}

/// A path (or segment) as sent, percent-decoded once; 400 unless that is UTF-8.
fn decode_path(raw: &str) -> ApiResult<String> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| ApiError::bad_request(format!("the path {raw:?} is not UTF-8 once decoded")))
}

/// A data-plane error as the public sees it: a generic message per code (SPEC §3).
fn public_error(error: ApiError) -> Response {
    let mut response = error.public().into_response();
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn handle(
    state: &AppState,
    app_name: &str,
    raw_path: String,
    scope: CookieScope,
    request: HttpRequest,
) -> Response {
    match dispatch(state, app_name, raw_path, &scope, request).await {
        Ok(response) => response,
        Err(error) => public_error(error),
    }
}

/// Routes on the path as sent (a route parameter is decoded once, by the route table,
/// so `%2F` in a parameter is a `/` inside it); the guest's `path` is decoded once.
async fn dispatch(
    state: &AppState,
    app_name: &str,
    raw_path: String,
    scope: &CookieScope,
    request: HttpRequest,
) -> ApiResult<Response> {
    let path = decode_path(&raw_path)?;
    let app = state
        .invoker
        .app(app_name)
        .await?
        .ok_or_else(|| ApiError::no_route(format!("no app called {app_name:?}")))?;
    let method = request.method().as_str().to_owned();
    let route = app.routes.lookup(&method, &raw_path).ok_or_else(|| {
        ApiError::no_route(format!(
            "app {} has no route for {method} {raw_path}",
            app.name
        ))
    })?;
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
    // Admitted before the body is read: an app at its concurrency cap buffers nothing
    // more, and a slow body holds the app's slot (until the body read timeout), not
    // memory ahead of it.
    let admission = state.invoker.admit(&app).await?;
    if route.is_async {
        return enqueue(state, &app, route, method, path, request).await;
    }
    let (parts, body) = request.into_parts();
    let body = read_body(body, MAX_REQUEST_BYTES, state.body_read_timeout).await?;
    let request = Request {
        method,
        path,
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: guest_headers(&parts.headers, Caller::Public),
        params: route.params,
        body,
        event: None,
    };
    let call = Call {
        app: &app,
        function_name: &route.function,
        function: &function,
        trigger: Trigger::Http,
        request,
        depth: 0,
    };
    answer(state.invoker.run(admission, call, settle(scope)).await)
}

/// Largest body of a request to an async route (it waits in the database).
pub const MAX_ASYNC_REQUEST_BYTES: usize = 256 * 1024;
/// Requests to an app's async routes that may wait at once; past them, 429.
pub const MAX_PENDING_ASYNC: i64 = 1_000;

/// Queues a request to an async route and answers `202 {"accepted_at", "execution_id"}`
/// (its status and answer: `GET /api/v1/apps/{app}/executions/{id}`).
async fn enqueue(
    state: &AppState,
    app: &crate::invoke::AppEntry,
    route: crate::routing::RouteMatch,
    method: String,
    path: String,
    request: HttpRequest,
) -> ApiResult<Response> {
    let (parts, body) = request.into_parts();
    let body = read_body(body, MAX_ASYNC_REQUEST_BYTES, state.body_read_timeout).await?;
    let request = Request {
        method,
        path,
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: guest_headers(&parts.headers, Caller::Public),
        params: route.params,
        body,
        event: None,
    };
    let queued = serde_json::to_string(&crate::events::QueuedRequest::new(&request))
        .map_err(ApiError::internal)?;
    let accepted_at = crate::storage::now_ms();
    let id = state
        .db
        .enqueue_async(
            &app.id,
            &route.function,
            &queued,
            MAX_PENDING_ASYNC,
            accepted_at,
        )
        .await?
        .ok_or_else(|| {
            ApiError::quota_exceeded(format!(
                "app {} has {MAX_PENDING_ASYNC} async requests waiting; retry",
                app.name
            ))
        })?;
    let answer = serde_json::json!({ "accepted_at": accepted_at, "execution_id": id.to_string() });
    Ok((StatusCode::ACCEPTED, axum::Json(answer)).into_response())
}

/// The settling step of an HTTP invocation: the guest's response as the HTTP answer
/// ([`finish`]), or `function_failed` with the reason it cannot be sent.
pub fn settle(
    cookies: &CookieScope,
) -> impl FnOnce(picloud_runtime::Response, &mut Vec<LogLine>) -> Result<Response, Failure> + '_ {
    move |guest, logs| finish(guest, cookies, logs).map_err(Failure::unsendable)
}

/// An HTTP invocation's outcome as its answer: the response tagged with its invocation
/// id, or the failure's error answer.
pub fn answer(outcome: Result<Answered<Response>, Failure>) -> ApiResult<Response> {
    let Answered {
        invocation_id,
        mut answer,
    } = outcome?;
    answer.headers_mut().insert(
        INVOCATION_ID_HEADER,
        HeaderValue::from_str(&invocation_id).expect("uuid is a valid header value"),
    );
    Ok(answer)
}

impl Answer for Response {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

/// [`read_limited`] within `timeout`: a body that has not arrived by then is a 408.
pub async fn read_body(body: Body, limit: usize, timeout: Duration) -> ApiResult<Vec<u8>> {
    tokio::time::timeout(timeout, read_limited(body, limit))
        .await
        .map_err(|_| ApiError::request_timeout(timeout))?
}

/// Reads a body of at most `limit` bytes; a larger one is answered 413 (after draining
/// it, up to a bound, so the client reads the answer).
pub async fn read_limited(mut body: Body, limit: usize) -> ApiResult<Vec<u8>> {
    // Sized by a declared length (up to the limit) so the buffer is not grown by copies.
    let declared = body.size_hint().exact().unwrap_or(0);
    let mut buf = Vec::with_capacity(usize::try_from(declared).unwrap_or(limit).min(limit));
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
    Ok(buf)
}

/// The request headers a guest receives from `caller`, as (lower-case name, value)
/// pairs: all but [`NOT_FOR_GUESTS`] and those `connection` names, and on the admin
/// path also but [`ADMIN_CREDENTIALS`].
pub fn guest_headers(headers: &HeaderMap, caller: Caller) -> Vec<(String, String)> {
    let hop_by_hop: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            let withheld = NOT_FOR_GUESTS.contains(&name)
                || hop_by_hop.iter().any(|h| h == name)
                || (caller == Caller::Admin && ADMIN_CREDENTIALS.contains(&name));
            !withheld
        })
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Turns a guest's response into the HTTP answer, or says why it cannot be one (the
/// client then gets 502 `function_failed`): a status of 200 or more, a body and headers
/// within their limits, valid header names and values. Framing headers are dropped,
/// and so are cookies outside `cookies` (with a warning in `logs`, the invocation's log);
/// `x-content-type-options: nosniff` is added unless the guest set that header.
pub fn finish(
    guest: picloud_runtime::Response,
    cookies: &CookieScope,
    logs: &mut Vec<LogLine>,
) -> Result<Response, String> {
    let status = StatusCode::from_u16(guest.status)
        .ok()
        .filter(|s| s.as_u16() >= 200)
        .ok_or_else(|| format!("the function answered an invalid status {}", guest.status))?;
    if guest.body.len() > MAX_RESPONSE_BYTES {
        return Err(format!(
            "the function's response body is larger than {MAX_RESPONSE_BYTES} bytes"
        ));
    }
    if guest.headers.len() > MAX_RESPONSE_HEADERS {
        return Err(format!(
            "the function answered {} headers, more than {MAX_RESPONSE_HEADERS}",
            guest.headers.len()
        ));
    }
    let header_bytes: usize = guest.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
    if header_bytes > MAX_RESPONSE_HEADER_BYTES {
        return Err(format!(
            "the function answered {header_bytes} bytes of headers, more than {MAX_RESPONSE_HEADER_BYTES}"
        ));
    }
    let mut headers = HeaderMap::with_capacity(guest.headers.len() + 2);
    for (name, value) in guest.headers {
        let name = HeaderName::try_from(name.as_str())
            .map_err(|_| format!("the function answered an invalid header name {name:?}"))?;
        let mut value = HeaderValue::try_from(value)
            .map_err(|_| format!("the function answered an invalid value for header {name}"))?;
        if FRAMING.contains(&name.as_str()) {
            continue;
        }
        if name == header::SET_COOKIE {
            let cookie = String::from_utf8_lossy(value.as_bytes());
            match cookies.admit(&cookie) {
                Ok(None) => {}
                Ok(Some(scoped)) => {
                    value = HeaderValue::try_from(scoped)
                        .map_err(|_| "a scoped cookie is not a header value".to_owned())?;
                }
                Err(reason) => {
                    let cookie_name = cookie.split(['=', ';']).next().unwrap_or("").trim();
                    logs.push(LogLine {
                        level: "warn".into(),
                        message: format!(
                            "PiCloud dropped the response's Set-Cookie of {cookie_name:?}: {reason}"
                        ),
                        fields: None,
                        at_ms: u64::try_from(crate::storage::now_ms()).unwrap_or(0),
                    });
                    continue;
                }
            }
        }
        headers.append(name, value);
    }
    if !headers.contains_key(header::X_CONTENT_TYPE_OPTIONS) {
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    let mut response = Response::new(Body::from(guest.body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}
