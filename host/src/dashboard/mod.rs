//! The dashboard: server-rendered HTML (maud) under `/dashboard/`, with one small
//! script and one stylesheet embedded in the binary; nothing is fetched from elsewhere.
//!
//! It is served on its **own listener** (`--dashboard-listen`, a port of its own), never
//! on the origin of the data plane: a function's page under `/fn/{app}/` is same-origin
//! with whatever shares its host and port, and could otherwise read dashboard pages
//! with an administrator's cookie (and their CSRF tokens).
//!
//! Sign-in takes an admin API token (any scope; a token limited to one app sees that
//! app). The session is a cookie `picloud_dash` (HttpOnly, SameSite=Strict, Path
//! `/dashboard`) holding the token's hash and an expiry, signed with a key derived from
//! the master key: nothing is stored, every node accepts it, and the token is looked up
//! on every request, so a revoked or expired token ends its sessions. Every form that
//! changes something carries a CSRF token (an HMAC of the session cookie) and must come
//! from this origin.

mod pages;

use crate::auth::{Principal, Scope};
use crate::server::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hmac::{Hmac, Mac};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Name of the session cookie.
pub const COOKIE: &str = "picloud_dash";
/// How long a dashboard session lasts (at most; the token's own expiry ends it sooner).
pub const SESSION_SECS: u64 = 12 * 3600;
/// Purpose of the key that signs sessions (derived from the master key).
const KEY_PURPOSE: &str = "dashboard-session";

const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

/// Every dashboard answer: nothing but this origin's script and style, no framing, no
/// referrer to other sites, no caching of pages that show an app's data.
const SECURITY_HEADERS: [(header::HeaderName, &str); 5] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "same-origin"),
    (header::CACHE_CONTROL, "no-store"),
];

/// The dashboard's routes, for its own listener.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard/") }))
        .route("/dashboard", get(|| async { Redirect::to("/dashboard/") }))
        .route("/dashboard/login", get(login_page).post(login))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/assets/dashboard.css", get(css))
        .route("/dashboard/assets/dashboard.js", get(js))
        .merge(pages::router())
        .fallback(not_found)
        // Uploads (deploys, files) up to the largest artifact; a request without a
        // session is refused before its body is read.
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::control::MAX_ARTIFACT_BYTES + (1 << 20),
        ))
        .with_state(state)
        .layer(axum::middleware::map_response(
            |mut response: Response| async move {
                for (name, value) in SECURITY_HEADERS {
                    // Assets say how long they may be cached; everything else is no-store.
                    if name == header::CACHE_CONTROL && response.headers().contains_key(&name) {
                        continue;
                    }
                    response
                        .headers_mut()
                        .insert(name, HeaderValue::from_static(value));
                }
                response
            },
        ))
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Pages link them as `…?v=<hash of both>`: a new build gets new URLs.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

/// The assets' version in their URLs: the first 12 hex digits of the sha256 of both.
fn asset_version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        use sha2::Digest;
        let digest = Sha256::new().chain_update(CSS).chain_update(JS).finalize();
        hex::encode(digest)[..12].to_owned()
    })
}

async fn not_found(viewer: Option<Viewer>) -> Response {
    Problem::new(StatusCode::NOT_FOUND, "There is no such page.").page(viewer.as_ref())
}

/// The signed-in user of a request: the token's principal and the session's CSRF token.
#[derive(Clone)]
pub struct Viewer {
    /// What the token may do.
    pub principal: Principal,
    /// The CSRF token forms of this session carry.
    pub csrf: String,
}

impl Viewer {
    /// Whether this viewer may do what needs `scope` (on app `app_id` when given).
    pub fn may(&self, scope: Scope, app_id: Option<&str>) -> bool {
        let app_ok = match (&self.principal.app_id, app_id) {
            (None, _) => true,
            (Some(own), Some(app)) => own == app,
            (Some(_), None) => false,
        };
        app_ok && self.principal.scope >= scope
    }

    /// `Ok` when [`Viewer::may`], else the page saying what is missing.
    pub fn require(&self, scope: Scope, app_id: Option<&str>) -> Result<(), Problem> {
        if self.may(scope, app_id) {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                format!(
                    "This needs a token with the {} scope{}; you signed in with a {} token.",
                    scope.as_str(),
                    if self.principal.app_id.is_some() {
                        " over every app"
                    } else {
                        ""
                    },
                    self.principal.scope.as_str()
                ),
            ))
        }
    }
}

fn session_key(state: &AppState) -> Option<[u8; 32]> {
    state
        .db
        .secret_keys()
        .and_then(|keys| keys.derived(KEY_PURPOSE, "").into_iter().next())
}

fn session_keys(state: &AppState) -> Vec<[u8; 32]> {
    state
        .db
        .secret_keys()
        .map(|keys| keys.derived(KEY_PURPOSE, ""))
        .unwrap_or_default()
}

fn mac(key: &[u8; 32], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
        mac.update(b"\0");
    }
    mac.finalize().into_bytes().to_vec()
}

/// A session cookie value for the token whose hash is `token_hash`.
fn seal_session(key: &[u8; 32], token_hash: &str, expires_at: u64) -> String {
    let payload = format!("{token_hash}.{expires_at}");
    let signature = B64URL.encode(mac(key, &[b"session", payload.as_bytes()]));
    format!("{payload}.{signature}")
}

/// The token hash of a valid, unexpired session cookie value.
fn open_session(keys: &[[u8; 32]], value: &str, now_secs: u64) -> Option<String> {
    let (payload, signature) = value.rsplit_once('.')?;
    let signature = B64URL.decode(signature).ok()?;
    let valid = keys.iter().any(|key| {
        bool::from(
            mac(key, &[b"session", payload.as_bytes()])
                .as_slice()
                .ct_eq(&signature),
        )
    });
    let (token_hash, expires_at) = payload.split_once('.')?;
    let expires_at: u64 = expires_at.parse().ok()?;
    (valid && expires_at > now_secs).then(|| token_hash.to_owned())
}

fn csrf_of(key: &[u8; 32], cookie: &str) -> String {
    B64URL.encode(mac(key, &[b"csrf", cookie.as_bytes()]))
}

fn now_secs() -> u64 {
    u64::try_from(crate::storage::now_ms() / 1000).unwrap_or(0)
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Why a request has no viewer: it goes to the sign-in page.
pub struct SignIn;

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        Redirect::to("/dashboard/login").into_response()
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = SignIn;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, SignIn> {
        let cookie = cookie_value(&parts.headers, COOKIE).ok_or(SignIn)?;
        let token_hash = open_session(&session_keys(state), cookie, now_secs()).ok_or(SignIn)?;
        let record = state
            .db
            .token_by_hash(&token_hash)
            .await
            .ok()
            .flatten()
            .ok_or(SignIn)?;
        if record
            .expires_at
            .is_some_and(|at| at <= crate::storage::now_ms())
        {
            return Err(SignIn);
        }
        let key = session_key(state).ok_or(SignIn)?;
        Ok(Self {
            principal: Principal {
                name: record.name,
                scope: Scope::parse(&record.scopes).unwrap_or(Scope::Read),
                app_id: record.app_id,
            },
            csrf: csrf_of(&key, cookie),
        })
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Self as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

/// Checks that a state-changing request comes from this origin (the browser says so in
/// `Origin`, or `Sec-Fetch-Site`) and carries this session's CSRF token.
pub fn check_csrf(
    viewer: &Viewer,
    headers: &HeaderMap,
    presented: Option<&str>,
) -> Result<(), Problem> {
    check_same_origin(headers)?;
    let presented = presented
        .or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))
        .unwrap_or("");
    if bool::from(presented.as_bytes().ct_eq(viewer.csrf.as_bytes())) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "This form has expired or did not come from the dashboard (its CSRF token is missing or wrong). Reload the page and try again.",
        ))
    }
}

fn check_same_origin(headers: &HeaderMap) -> Result<(), Problem> {
    // Browsers say where a request comes from in `Sec-Fetch-Site`; older ones only in
    // `Origin`, compared with the host the request was sent to.
    let same = match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => site == "same-origin" || site == "none",
        None => match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            Some(origin) => {
                let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
                let origin = origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"));
                origin.is_some() && origin == host
            }
            // Neither: not a browser's cross-site form (those carry one or the other);
            // the CSRF token still has to match.
            None => true,
        },
    };
    if same {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "This request came from another site; the dashboard only takes forms from its own pages.",
        ))
    }
}

/// An error shown as a page (or as JSON to the dashboard's script).
pub struct Problem {
    status: StatusCode,
    message: String,
}

impl Problem {
    /// A problem with `status`, said in `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// This problem as a full page.
    pub fn page(self, viewer: Option<&Viewer>) -> Response {
        let title = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            s if s.is_client_error() => "That did not work",
            _ => "Something went wrong",
        };
        let body = html! {
            h1 { (title) }
            p.error role="alert" { (self.message) }
            p { a href="/dashboard/" { "Back to the apps" } }
        };
        (self.status, layout(title, viewer, None, body)).into_response()
    }
}

impl From<crate::control::ControlError> for Problem {
    fn from(e: crate::control::ControlError) -> Self {
        let api: crate::error::ApiError = e.into();
        Self::new(api.status, api.message)
    }
}

impl From<crate::storage::StorageError> for Problem {
    fn from(e: crate::storage::StorageError) -> Self {
        let api: crate::error::ApiError = e.into();
        Self::new(api.status, api.message)
    }
}

impl From<crate::invoke::Failure> for Problem {
    fn from(e: crate::invoke::Failure) -> Self {
        let api: crate::error::ApiError = e.into();
        Self::new(api.status, api.message)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        self.page(None)
    }
}

/// A page: the shared frame around `body`. `app` names the app whose pages are open
/// (for the second row of navigation).
pub fn layout(title: &str, viewer: Option<&Viewer>, app: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · PiCloud" }
                link rel="stylesheet" href={ "/dashboard/assets/dashboard.css?v=" (asset_version()) };
                script src={ "/dashboard/assets/dashboard.js?v=" (asset_version()) } defer {}
            }
            body {
                header.top {
                    a.brand href="/dashboard/" { "PiCloud" }
                    @if let Some(viewer) = viewer {
                        nav {
                            a href="/dashboard/" { "Apps" }
                        }
                        form.signout method="post" action="/dashboard/logout" {
                            (csrf_field(viewer))
                            span.who { (viewer.principal.name) " · " (viewer.principal.scope.as_str()) }
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                @if let Some(app) = app {
                    nav.tabs aria-label="App" {
                        span.app { (app) }
                        @for (label, path) in [("Functions", ""), ("Invocations", "/invocations"), ("Usage", "/usage"), ("Triggers", "/triggers"), ("Secrets", "/secrets"), ("Files", "/files"), ("Users", "/users"), ("Dead letters", "/dead-letters")] {
                            a href={ "/dashboard/apps/" (app) (path) } { (label) }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The hidden field with the session's CSRF token, for every state-changing form.
pub fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="_csrf" value=(viewer.csrf); }
}

async fn login_page(viewer: Option<Viewer>) -> Response {
    if viewer.is_some() {
        return Redirect::to("/dashboard/").into_response();
    }
    login_form(StatusCode::OK, None)
}

fn login_form(status: StatusCode, error: Option<&str>) -> Response {
    let body = html! {
        section.login {
            h1 { "Sign in" }
            p { "Paste an admin API token. The server printed one when it first started (and saved it in "
                code { ".picloud/admin-token" } "); " code { "picloud tokens create" } " makes scoped ones." }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form method="post" action="/dashboard/login" {
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
        }
    };
    (status, layout("Sign in", None, None, body)).into_response()
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Err(problem) = check_same_origin(&headers) {
        return problem.into_response();
    }
    let token_hash = crate::auth::hash(form.token.trim());
    let record = match state.db.token_by_hash(&token_hash).await {
        Ok(record) => record,
        Err(e) => return Problem::from(e).into_response(),
    };
    let valid = record.as_ref().is_some_and(|r| {
        bool::from(r.token_hash.as_bytes().ct_eq(token_hash.as_bytes()))
            && r.expires_at.is_none_or(|at| at > crate::storage::now_ms())
    });
    let Some(key) = session_key(&state) else {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server has no master key",
        )
        .into_response();
    };
    if !valid {
        return login_form(
            StatusCode::UNAUTHORIZED,
            Some("That token is not valid (unknown, revoked or expired)."),
        );
    }
    let record = record.expect("checked above");
    let mut expires_at = now_secs() + SESSION_SECS;
    if let Some(token_expiry) = record.expires_at {
        expires_at = expires_at.min(u64::try_from(token_expiry / 1000).unwrap_or(0));
    }
    let value = seal_session(&key, &token_hash, expires_at);
    let max_age = expires_at.saturating_sub(now_secs());
    let cookie = format!(
        "{COOKIE}={value}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if is_https(&headers) { "; Secure" } else { "" }
    );
    tracing::info!(token = %record.name, "dashboard sign-in");
    let mut response = Redirect::to("/dashboard/").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes() == b"https")
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

async fn logout(viewer: Viewer, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    if let Err(problem) = check_csrf(&viewer, &headers, form.csrf.as_deref()) {
        return problem.page(Some(&viewer));
    }
    let mut response = Redirect::to("/dashboard/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "picloud_dash=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

/// Raw HTML the page builds itself (an SVG chart) — only ever from numbers.
pub fn trusted(markup: String) -> PreEscaped<String> {
    PreEscaped(markup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_only_with_its_key_and_before_its_expiry() {
        let key = [7u8; 32];
        let other = [8u8; 32];
        let value = seal_session(&key, "abc", 1_000);
        assert_eq!(open_session(&[key], &value, 999).as_deref(), Some("abc"));
        assert_eq!(
            open_session(&[other, key], &value, 999).as_deref(),
            Some("abc")
        );
        assert_eq!(open_session(&[key], &value, 1_000), None, "expired");
        assert_eq!(open_session(&[other], &value, 999), None, "another key");
        let forged = value.replace("abc", "abd");
        assert_eq!(open_session(&[key], &forged, 999), None, "edited hash");
        let extended = value.replace(".1000.", ".9000.");
        assert_eq!(open_session(&[key], &extended, 999), None, "edited expiry");
        assert_eq!(open_session(&[key], "garbage", 0), None);
    }

    #[test]
    fn csrf_tokens_differ_per_session() {
        let key = [7u8; 32];
        assert_ne!(csrf_of(&key, "a"), csrf_of(&key, "b"));
        assert_eq!(csrf_of(&key, "a"), csrf_of(&key, "a"));
    }
}
