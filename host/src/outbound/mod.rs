//! Outbound HTTP for guests (`picloud:sdk/http`): one shared client behind the SSRF
//! guard.
//!
//! Every hop of a call is checked before it is sent:
//! - the URL is parsed by the `url` crate (WHATWG), which turns odd IPv4 notations
//!   (`2130706433`, `0x7f.1`, `0177.0.0.1`) into the address they mean;
//! - the scheme is `http` or `https`, the port one of the operator's (default 80, 443,
//!   8080, 8443), the host on the app's allow-list when it has one;
//! - a literal IP address is checked against the [`guard`] rules; a name is resolved by
//!   the client's resolver ([`GuardedResolver`] over the [`Resolver`] seam), which
//!   checks **every** address it found and hands the connector only checked ones, so the
//!   address connected to is one that was checked (no second resolution: no DNS
//!   rebinding). No proxy is ever used (a proxy would resolve the name itself).
//!
//! Redirects are followed here, not by the client, at most [`MAX_REDIRECTS`], each hop
//! checked like the first. A denied call answers `denied(...)` naming the rule, never the
//! address a name resolved to. Every hop becomes one line of the invocation's log:
//! method, host, port, status and duration — no URL path or query, no header values,
//! no bodies.

pub mod guard;

use bytes::Bytes;
use guard::{Denial, Guard};
use ipnet::IpNet;
use picloud_runtime::http::{IncomingResponse, OutgoingRequest};
use picloud_runtime::{GuestError, LogLine};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Ports guests may connect to unless the operator says otherwise.
pub const DEFAULT_PORTS: [u16; 4] = [80, 443, 8080, 8443];
/// Largest response body a guest receives; a longer one ends the call with `limit`.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 10 * 1024 * 1024;
/// Largest request body a guest may send.
pub const MAX_REQUEST_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Longest a call may take (all hops and the body), unless the operator says otherwise;
/// a call never outlives its invocation either.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Calls one invocation may make, unless the operator says otherwise.
pub const DEFAULT_MAX_CALLS: u32 = 50;
/// Redirects followed per call; one more ends the call with `limit`.
pub const MAX_REDIRECTS: usize = 10;
/// Longest URL, in bytes.
pub const MAX_URL_BYTES: usize = 8 * 1024;
/// Most request headers per call.
pub const MAX_HEADERS: usize = 100;
/// Largest total of request header names and values, in bytes.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Request headers a guest may not set: the client frames the request and picks the
/// connection itself (`host` follows the URL, so a call cannot name one host and reach
/// another); a guest setting them is answered `invalid`.
pub const REFUSED_HEADERS: [&str; 11] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "expect",
];
/// Headers dropped when a redirect leaves the origin (scheme, host and port) of the hop
/// before it, as browsers do: credentials stay with the origin they were meant for.
const CREDENTIAL_HEADERS: [&str; 2] = ["authorization", "cookie"];

/// The operator's settings of outbound HTTP (`picloud serve --outbound-…`).
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// Addresses guests may reach although the guard's rules deny them (private
    /// services); tests allow their loopback server this way.
    pub allow_cidrs: Vec<IpNet>,
    /// Ports guests may connect to.
    pub ports: Vec<u16>,
    /// Largest response body, in bytes.
    pub max_response_bytes: u64,
    /// Longest call.
    pub max_timeout: Duration,
    /// Calls per invocation.
    pub max_calls: u32,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            allow_cidrs: Vec::new(),
            ports: DEFAULT_PORTS.to_vec(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            max_calls: DEFAULT_MAX_CALLS,
        }
    }
}

/// A future of the addresses of a name.
pub type Lookup = Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;

/// The resolver seam: how names become addresses. The guard checks what it answers.
pub trait Resolver: Send + Sync + 'static {
    /// Every address of `host` (a DNS name, never an IP literal).
    fn lookup(&self, host: &str) -> Lookup;
}

/// The system's resolver (`getaddrinfo`, on tokio's blocking pool).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup(&self, host: &str) -> Lookup {
        let target = format!("{host}:0");
        Box::pin(async move {
            let found = tokio::net::lookup_host(target).await?;
            Ok(found.map(|a| a.ip()).collect())
        })
    }
}

/// A name whose addresses include one the guard denies.
#[derive(Debug)]
struct Blocked(Denial);

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "it resolves to {}", self.0)
    }
}

impl std::error::Error for Blocked {}

/// A name that has no address.
#[derive(Debug)]
struct Unresolved;

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the name does not resolve")
    }
}

impl std::error::Error for Unresolved {}

/// The client's resolver: looks a name up once and fails unless the guard allows every
/// address found; the connector then connects to those addresses only.
pub struct GuardedResolver {
    resolver: Arc<dyn Resolver>,
    guard: Arc<Guard>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let lookup = self.resolver.lookup(name.as_str());
        let guard = self.guard.clone();
        Box::pin(async move {
            // The errors are boxed as themselves (not as a `Box` of them), so `failure`
            // finds them in the client's error chain.
            let addresses = lookup.await.map_err(|e| {
                tracing::debug!(error = %e, "outbound name lookup failed");
                Unresolved
            })?;
            if addresses.is_empty() {
                return Err(Unresolved.into());
            }
            for ip in &addresses {
                guard.check(*ip).map_err(Blocked)?;
            }
            let addrs: reqwest::dns::Addrs =
                Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Outbound HTTP of the whole process: the guard, the settings and one client (its
/// connection pool shared by all invocations; pooled connections were made to checked
/// addresses).
pub struct Outbound {
    client: reqwest::Client,
    guard: Arc<Guard>,
    config: OutboundConfig,
}

/// Who is calling: what the app may reach and until when.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// The app's allow-list of hosts (exact names, or `*.example.com` for the
    /// subdomains of example.com); `None`: any host the guard lets through.
    pub allow_hosts: Option<&'a [String]>,
    /// The end of the invocation; no call outlives it.
    pub deadline: Option<Instant>,
}

impl Outbound {
    /// Outbound HTTP with the system resolver.
    pub fn new(config: OutboundConfig) -> anyhow::Result<Self> {
        Self::with_resolver(config, Arc::new(SystemResolver))
    }

    /// Outbound HTTP resolving names with `resolver` (tests give a fake one).
    pub fn with_resolver(
        config: OutboundConfig,
        resolver: Arc<dyn Resolver>,
    ) -> anyhow::Result<Self> {
        let guard = Arc::new(Guard::new(config.allow_cidrs.clone()));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                resolver,
                guard: guard.clone(),
            }))
            .user_agent(concat!("PiCloud/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            client,
            guard,
            config,
        })
    }

    /// The operator's settings.
    pub fn config(&self) -> &OutboundConfig {
        &self.config
    }

    /// Sends `request` for a guest, following redirects, and reads the whole answer.
    /// Each hop adds a line to `log`, and so does a call refused before its first hop.
    pub async fn fetch(
        &self,
        request: OutgoingRequest,
        scope: &Scope<'_>,
        log: &mut Vec<LogLine>,
    ) -> Result<IncomingResponse, GuestError> {
        let logged = log.len();
        let refused = Hop {
            method: request.method.chars().take(16).collect(),
            host: reqwest::Url::parse(&request.url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default(),
            port: 0,
            started: Instant::now(),
        };
        let answer = self.send(request, scope, log).await;
        if let Err(error) = &answer
            && log.len() == logged
        {
            log.push(refused.line(outcome_of(error), None));
        }
        answer
    }

    async fn send(
        &self,
        request: OutgoingRequest,
        scope: &Scope<'_>,
        log: &mut Vec<LogLine>,
    ) -> Result<IncomingResponse, GuestError> {
        let OutgoingRequest {
            method,
            url,
            headers,
            body,
            timeout_ms,
        } = request;
        let mut method = parse_method(&method)?;
        let mut headers = parse_headers(&headers)?;
        if body.len() > MAX_REQUEST_BODY_BYTES {
            return Err(GuestError::Limit(format!(
                "the request body is {} bytes; the limit is {MAX_REQUEST_BODY_BYTES}",
                body.len()
            )));
        }
        let mut body = Bytes::from(body);
        if url.len() > MAX_URL_BYTES {
            return Err(GuestError::Invalid(format!(
                "the URL is {} bytes; the limit is {MAX_URL_BYTES}",
                url.len()
            )));
        }
        let mut url = reqwest::Url::parse(&url)
            .map_err(|e| GuestError::Invalid(format!("{url:?} is not a valid URL: {e}")))?;

        let now = Instant::now();
        let timeout = match timeout_ms {
            Some(0) => return Err(GuestError::Invalid("timeout_ms must be at least 1".into())),
            Some(ms) => Duration::from_millis(ms.into()).min(self.config.max_timeout),
            None => self.config.max_timeout,
        };
        let mut ends = now + timeout;
        if let Some(deadline) = scope.deadline {
            ends = ends.min(deadline);
        }
        if ends <= now {
            return Err(GuestError::Limit(
                "the invocation has no time left for an outbound call".into(),
            ));
        }
        let allowed_ms = (ends - now).as_millis();

        let mut redirects = 0;
        loop {
            let hop = Hop {
                method: method.as_str().to_owned(),
                host: url.host_str().unwrap_or_default().to_owned(),
                port: url.port_or_known_default().unwrap_or(0),
                started: Instant::now(),
            };
            if let Err(error) = self.check_target(&url, scope) {
                log.push(hop.line(outcome_of(&error), None));
                return Err(error);
            }
            let host = hop.host.clone();
            let sent = self
                .client
                .request(method.clone(), url.clone())
                .headers(headers.clone())
                .body(body.clone())
                .send();
            let response = match tokio::time::timeout_at(ends, sent).await {
                Err(_) => {
                    log.push(hop.line("timeout", None));
                    return Err(timed_out(&host, allowed_ms));
                }
                Ok(Err(e)) => {
                    let error = failure(&host, &e);
                    log.push(hop.line(outcome_of(&error), None));
                    return Err(error);
                }
                Ok(Ok(response)) => response,
            };
            let status = response.status();
            let location = status
                .is_redirection()
                .then(|| response.headers().get(reqwest::header::LOCATION))
                .flatten()
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned);
            if let Some(location) = location {
                log.push(hop.line("redirect", Some(status.as_u16())));
                if redirects == MAX_REDIRECTS {
                    return Err(GuestError::Limit(format!(
                        "more than {MAX_REDIRECTS} redirects, the last from {host}"
                    )));
                }
                redirects += 1;
                let next = url.join(&location).map_err(|_| {
                    GuestError::Unavailable(format!(
                        "{host} redirected to a location that is not a valid URL"
                    ))
                })?;
                redirect_request(status.as_u16(), &mut method, &mut headers, &mut body);
                if !same_origin(&url, &next) {
                    for name in CREDENTIAL_HEADERS {
                        headers.remove(name);
                    }
                }
                url = next;
                continue;
            }
            let answer = tokio::time::timeout_at(
                ends,
                read_body(response, self.config.max_response_bytes, &host),
            )
            .await;
            return match answer {
                Err(_) => {
                    log.push(hop.line("timeout", Some(status.as_u16())));
                    Err(timed_out(&host, allowed_ms))
                }
                Ok(Err(e)) => {
                    log.push(hop.line(outcome_of(&e), Some(status.as_u16())));
                    Err(e)
                }
                Ok(Ok(answer)) => {
                    log.push(hop.line("ok", Some(status.as_u16())));
                    Ok(answer)
                }
            };
        }
    }

    /// Checks one hop's URL before it is sent: scheme, port, the app's allow-list and a
    /// literal address.
    fn check_target(&self, url: &reqwest::Url, scope: &Scope<'_>) -> Result<(), GuestError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(GuestError::Invalid(format!(
                "only http and https URLs can be fetched, not {}:",
                url.scheme()
            )));
        }
        let Some(host) = url.host() else {
            return Err(GuestError::Invalid("the URL has no host".into()));
        };
        let name = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(0);
        if !self.config.ports.contains(&port) {
            let ports: Vec<String> = self.config.ports.iter().map(u16::to_string).collect();
            return Err(GuestError::Denied(format!(
                "outbound http to port {port} is not allowed (allowed ports: {})",
                ports.join(", ")
            )));
        }
        if let Some(allow) = scope.allow_hosts
            && !allow.iter().any(|pattern| host_matches(pattern, &name))
        {
            return Err(GuestError::Denied(format!(
                "{name} is not on this app's outbound allow-list"
            )));
        }
        let literal = match host {
            url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            url::Host::Domain(_) => None,
        };
        if let Some(ip) = literal {
            self.guard.check(ip).map_err(|rule| {
                GuestError::Denied(format!("outbound http to {name} is denied: it is {rule}"))
            })?;
        }
        Ok(())
    }
}

/// Whether host `name` (as the URL parser normalised it) matches allow-list entry
/// `pattern`: the same name, or for `*.example.com` any name under example.com.
pub fn host_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => name
            .strip_suffix(parent)
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        None => pattern == name,
    }
}

/// Normalises one entry of an app's allow-list (`api.example.com`, `*.example.com`,
/// `203.0.113.7`, `[2001:db8::1]`) the way URLs' hosts are, or says why it is not one.
pub fn normalize_host_pattern(pattern: &str) -> Result<String, String> {
    let (wildcard, host) = match pattern.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    let parsed = url::Host::parse(host)
        .map_err(|e| format!("{pattern:?} is not a host name or address: {e}"))?;
    if host.is_empty() || (!host.starts_with('[') && host.contains(['/', ':', '@', '?', '#', '*']))
    {
        return Err(format!("{pattern:?} is not a host name or address"));
    }
    let normalized = parsed.to_string();
    if wildcard {
        if !matches!(parsed, url::Host::Domain(_)) {
            return Err(format!("{pattern:?}: only names take a *. prefix"));
        }
        Ok(format!("*.{normalized}"))
    } else {
        Ok(normalized)
    }
}

/// One hop as the invocation log records it.
struct Hop {
    method: String,
    host: String,
    port: u16,
    started: Instant,
}

impl Hop {
    /// The log line of this hop: `outcome` is `ok`, `redirect`, `denied`, `invalid`,
    /// `timeout`, `limit` or `failed`.
    fn line(&self, outcome: &str, status: Option<u16>) -> LogLine {
        let duration_ms = self.started.elapsed().as_millis();
        let shown = status.map_or_else(|| outcome.to_owned(), |s| s.to_string());
        let message = if self.port == 0 {
            format!(
                "http {} {} -> {shown} in {duration_ms} ms",
                self.method, self.host
            )
        } else {
            format!(
                "http {} {}:{} -> {shown} in {duration_ms} ms",
                self.method, self.host, self.port
            )
        };
        let fields = serde_json::json!({
            "method": self.method,
            "host": self.host,
            "port": self.port,
            "status": status,
            "outcome": outcome,
            "duration_ms": duration_ms,
        });
        LogLine {
            level: if matches!(outcome, "ok" | "redirect") {
                "info"
            } else {
                "warn"
            }
            .into(),
            message,
            fields: Some(fields.to_string()),
            at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }
}

/// The outcome a failed call's log line names.
fn outcome_of(error: &GuestError) -> &'static str {
    match error {
        GuestError::Denied(_) => "denied",
        GuestError::Invalid(_) => "invalid",
        GuestError::Limit(_) => "limit",
        _ => "failed",
    }
}

fn timed_out(host: &str, allowed_ms: u128) -> GuestError {
    GuestError::Limit(format!(
        "the request to {host} did not finish within {allowed_ms} ms"
    ))
}

/// A failed send as the guest sees it: a denial names its rule; other failures name
/// what went wrong, not the client's error text (which may carry an address).
fn failure(host: &str, error: &reqwest::Error) -> GuestError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(Blocked(rule)) = e.downcast_ref::<Blocked>() {
            return GuestError::Denied(format!(
                "outbound http to {host} is denied: it resolves to {rule}"
            ));
        }
        if e.downcast_ref::<Unresolved>().is_some() {
            return GuestError::Unavailable(format!("{host} does not resolve"));
        }
        source = e.source();
    }
    tracing::debug!(error = ?error, %host, "outbound request failed");
    if error.is_connect() {
        GuestError::Unavailable(format!("could not connect to {host}"))
    } else {
        GuestError::Unavailable(format!("the request to {host} failed"))
    }
}

fn parse_method(method: &str) -> Result<reqwest::Method, GuestError> {
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| GuestError::Invalid(format!("{method:?} is not an HTTP method")))?;
    if method == reqwest::Method::CONNECT {
        return Err(GuestError::Invalid("CONNECT cannot be sent".into()));
    }
    Ok(method)
}

fn parse_headers(pairs: &[(String, String)]) -> Result<HeaderMap, GuestError> {
    if pairs.len() > MAX_HEADERS {
        return Err(GuestError::Invalid(format!(
            "{} headers; at most {MAX_HEADERS}",
            pairs.len()
        )));
    }
    let bytes: usize = pairs.iter().map(|(n, v)| n.len() + v.len()).sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(GuestError::Invalid(format!(
            "the headers are {bytes} bytes; at most {MAX_HEADER_BYTES}"
        )));
    }
    let mut headers = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| GuestError::Invalid(format!("{name:?} is not a valid header name")))?;
        if REFUSED_HEADERS.contains(&header.as_str()) {
            return Err(GuestError::Invalid(format!(
                "header {header} is set by the host and cannot be given"
            )));
        }
        // Refuses CR, LF, NUL and other control characters: no header injection.
        let value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
            GuestError::Invalid(format!(
                "the value of header {header} contains characters a header cannot hold"
            ))
        })?;
        headers.append(header, value);
    }
    Ok(headers)
}

/// Turns the request into the one a redirect with `status` asks for: 303, and 301/302
/// after a POST, become a GET without a body (as browsers and curl do); 307 and 308
/// repeat the request as it was.
fn redirect_request(
    status: u16,
    method: &mut reqwest::Method,
    headers: &mut HeaderMap,
    body: &mut Bytes,
) {
    let to_get = match status {
        303 => *method != reqwest::Method::HEAD,
        301 | 302 => *method == reqwest::Method::POST,
        _ => false,
    };
    if to_get {
        *method = reqwest::Method::GET;
        *body = Bytes::new();
        headers.remove(reqwest::header::CONTENT_TYPE);
    }
}

fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Reads the answer's body up to `max` bytes.
async fn read_body(
    mut response: reqwest::Response,
    max: u64,
    host: &str,
) -> Result<IncomingResponse, GuestError> {
    let too_large = || {
        GuestError::Limit(format!(
            "the response of {host} is larger than the limit of {max} bytes"
        ))
    };
    if response.content_length().is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if (body.len() + chunk.len()) as u64 > max {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = ?e, %host, "reading an outbound response failed");
                return Err(GuestError::Unavailable(format!(
                    "reading the response of {host} failed"
                )));
            }
        }
    }
    Ok(IncomingResponse {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_entries_match_names_and_subdomains() {
        assert!(host_matches("api.example.com", "api.example.com"));
        assert!(!host_matches("api.example.com", "example.com"));
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "badexample.com"));
        assert_eq!(
            normalize_host_pattern("API.Example.COM").unwrap(),
            "api.example.com"
        );
        assert_eq!(
            normalize_host_pattern("*.Example.com").unwrap(),
            "*.example.com"
        );
        assert_eq!(normalize_host_pattern("[::1]").unwrap(), "[::1]");
        assert_eq!(normalize_host_pattern("127.1").unwrap(), "127.0.0.1");
        assert!(normalize_host_pattern("a.com/x").is_err());
        assert!(normalize_host_pattern("a.com:80").is_err());
        assert!(normalize_host_pattern("").is_err());
        assert!(normalize_host_pattern("*.127.0.0.1").is_err());
    }

    #[test]
    fn the_url_parser_turns_odd_ipv4_notations_into_the_address() {
        for url in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://0x7f000001/",
            "http://127.0.0.1./",
        ] {
            let parsed = reqwest::Url::parse(url).unwrap();
            assert_eq!(
                parsed.host(),
                Some(url::Host::Ipv4("127.0.0.1".parse().unwrap())),
                "{url}"
            );
        }
    }

    #[test]
    fn headers_that_frame_the_request_or_smuggle_lines_are_refused() {
        let pair = |n: &str, v: &str| vec![(n.to_owned(), v.to_owned())];
        assert!(parse_headers(&pair("x-a", "b")).is_ok());
        for (name, value) in [
            ("host", "internal"),
            ("Host", "internal"),
            ("content-length", "5"),
            ("transfer-encoding", "chunked"),
            ("x-a", "b\r\nx-injected: 1"),
            ("x-a", "b\nc"),
            ("x-a\r\n", "b"),
            ("", "b"),
            ("bad name", "b"),
        ] {
            assert!(
                matches!(
                    parse_headers(&pair(name, value)),
                    Err(GuestError::Invalid(_))
                ),
                "{name:?}: {value:?}"
            );
        }
        assert!(parse_method("CONNECT").is_err());
        assert!(parse_method("G T").is_err());
        assert_eq!(parse_method("PATCH").unwrap(), reqwest::Method::PATCH);
    }
}
