//! Outbound http (issue 13): Rhai scripts and components calling a loopback upstream
//! through the real server, the SSRF guard, caps, the per-app allow-list and the
//! invocation log.

use crate::support::{Backend, TestDb, TestServer, assert_error};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use picloud::outbound::{Lookup, Outbound, OutboundConfig, Resolver, Scope};
use picloud::server::ServeArgs;
use picloud_runtime::GuestError;
use picloud_runtime::http::OutgoingRequest;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A token the scripts send as a header value: it must never reach a log or record.
const CANARY: &str = "canary-token-7f3a9c";
/// The upstream's body of `/hello`: a response body, never in a log or record.
const HELLO: &str = "hello from upstream";
/// The response cap of the test servers.
const MAX_RESPONSE: u64 = 64 * 1024;
/// The per-invocation call cap of the test servers.
const MAX_CALLS: u32 = 20;

/// A loopback HTTP server the guests call; it counts the requests it receives.
struct Upstream {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start() -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let app = axum::Router::new()
            .route("/hello", get(|| async { ([("x-upstream", "yes")], HELLO) }))
            .route("/echo", any(echo))
            .route("/redirect/{n}", any(redirect))
            .route("/to", any(to))
            .route(
                "/big/{n}",
                get(|Path(n): Path<usize>| async move { "a".repeat(n) }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                    "late"
                }),
            )
            .layer(axum::middleware::map_request(
                move |request: axum::extract::Request| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async move { request }
                },
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Answers what arrived: method, body and headers (names and values).
async fn echo(method: Method, headers: HeaderMap, body: String) -> axum::Json<Value> {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    axum::Json(json!({ "method": method.as_str(), "body": body, "headers": headers }))
}

/// `/redirect/n`: n more redirects, then `landed`.
async fn redirect(Path(n): Path<u32>) -> axum::response::Response {
    if n == 0 {
        return "landed".into_response();
    }
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("/redirect/{}", n - 1))],
    )
        .into_response()
}

/// `/to?url=…&status=…`: a redirect to `url`.
async fn to(Query(q): Query<HashMap<String, String>>) -> axum::response::Response {
    let status = q.get("status").and_then(|s| s.parse().ok()).unwrap_or(302);
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::LOCATION, q["url"].clone())],
    )
        .into_response()
}

/// A server whose guests may reach `upstream` on loopback when `allow` (the operator's
/// CIDR list), with the upstream's port allowed beside 80 and 443.
async fn start(
    dir: &std::path::Path,
    db: Option<&TestDb>,
    upstream: &Upstream,
    allow: bool,
) -> TestServer {
    TestServer::start_with(ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: db.map(|d| d.url.clone()),
        admin_token: Some(crate::support::TOKEN.into()),
        outbound_allow_cidrs: if allow {
            vec!["127.0.0.1/32".parse().unwrap()]
        } else {
            Vec::new()
        },
        outbound_ports: vec![80, 443, upstream.addr.port()],
        outbound_max_response_bytes: MAX_RESPONSE,
        outbound_max_calls: MAX_CALLS,
        ..ServeArgs::with_data_dir(dir.to_owned())
    })
    .await
}

/// Deploys Rhai `source` as `app/name` on `POST /name`.
async fn script(server: &TestServer, app: &str, name: &str, source: &str) {
    let response = server
        .api(
            Method::POST,
            &format!("/apps/{app}/functions/{name}/versions?kind=rhai"),
        )
        .body(source.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    server.route(app, "POST", &format!("/{name}"), name).await;
}

/// Calls `app/name` with `body` and answers its JSON.
async fn call(server: &TestServer, app: &str, name: &str, body: Value) -> Value {
    let response = server
        .http
        .post(format!("{}/fn/{app}/{name}", server.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    if status != 200 {
        let record = server.last_record(app).await;
        panic!("{name}: {status} {text}; its record: {record}");
    }
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// A script answering, for each URL of the request's JSON array, the status of a GET
/// or the error it threw.
const TRY_EACH: &str = r#"
    let out = [];
    for url in ctx.request.json {
        let answer = ();
        try { answer = http::get(url).status; } catch (e) { answer = e; }
        out.push(answer);
    }
    out
"#;

/// The one error a [`TRY_EACH`] answer holds for `url`.
fn error_of(answer: &Value, i: usize) -> &str {
    answer[i]
        .as_str()
        .unwrap_or_else(|| panic!("call {i} did not fail: {answer}"))
}

async fn database(backend: Backend) -> Option<Option<TestDb>> {
    match backend {
        Backend::Sqlite => Some(None),
        Backend::Postgres => Some(Some(TestDb::new(Backend::Postgres).await?)),
    }
}

async fn scripts_fetch_from_an_allowed_server(backend: Backend) {
    let Some(db) = database(backend).await else {
        return;
    };
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), db.as_ref(), &upstream, true).await;
    server.create_app("shop").await;
    let source = r#"
        let base = ctx.request.json.base;
        let hello = http::get(base + "/hello");
        let posted = http::post(base + "/echo", #{ n: 1 }, #{ "x-token": ctx.request.json.token });
        let put = http::request(#{ method: "put", url: base + "/echo", body: "text", headers: #{} });
        let followed = http::get(base + "/redirect/3");
        let see_other = http::request(#{ method: "POST", url: base + "/to?status=303&url=/echo", body: "dropped" });
        let kept = http::request(#{ method: "POST", url: base + "/to?status=307&url=/echo", body: "kept" });
        #{
            hello: #{ status: hello.status, body: hello.body, upstream: hello.headers["x-upstream"] },
            posted: posted.json,
            put: put.json,
            followed: followed.body,
            see_other: [see_other.json.method, see_other.json.body],
            kept: [kept.json.method, kept.json.body],
        }
    "#;
    script(&server, "shop", "fetch", source).await;
    let answer = call(
        &server,
        "shop",
        "fetch",
        json!({ "base": upstream.url(""), "token": CANARY }),
    )
    .await;
    assert_eq!(
        answer["hello"],
        json!({ "status": 200, "body": HELLO, "upstream": "yes" })
    );
    assert_eq!(answer["posted"]["method"], "POST");
    assert_eq!(answer["posted"]["body"], r#"{"n":1}"#);
    assert_eq!(answer["posted"]["headers"]["x-token"], CANARY);
    assert_eq!(
        answer["posted"]["headers"]["content-type"],
        "application/json"
    );
    assert_eq!(answer["put"]["method"], "PUT");
    assert_eq!(answer["put"]["body"], "text");
    assert_eq!(answer["followed"], "landed");
    assert_eq!(answer["see_other"], json!(["GET", ""]));
    assert_eq!(answer["kept"], json!(["POST", "kept"]));

    // Every hop is in the invocation's log: method, host, port, status, duration; no
    // body, no header value, no path.
    let record = server.last_record("shop").await;
    let lines: Vec<&Value> = record["logs"].as_array().unwrap().iter().collect();
    let port = upstream.addr.port();
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    let hop = |method: &str, status: u16| format!("http {method} 127.0.0.1:{port} -> {status} in ");
    for (method, status, count) in [
        ("GET", 200, 3),
        ("POST", 200, 2),
        ("PUT", 200, 1),
        ("GET", 302, 3),
        ("POST", 303, 1),
        ("POST", 307, 1),
    ] {
        let prefix = hop(method, status);
        assert_eq!(
            messages.iter().filter(|m| m.starts_with(&prefix)).count(),
            count,
            "{prefix}: {messages:#?}"
        );
    }
    assert_eq!(messages.len(), 11, "{messages:#?}");
    let fields: Value = serde_json::from_str(lines[0]["fields"].as_str().unwrap()).unwrap();
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["host"], "127.0.0.1");
    assert_eq!(fields["port"], port);
    assert_eq!(fields["status"], 200);
    assert!(fields["duration_ms"].is_u64(), "{fields}");
    let text = record.to_string();
    for secret in [CANARY, HELLO, "landed", "/redirect", "/echo", "kept"] {
        assert!(
            !text.contains(secret),
            "{secret:?} is in the record: {text}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_fetch_get_post_request_and_redirects_from_an_allowed_server_on_sqlite() {
    scripts_fetch_from_an_allowed_server(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_fetch_get_post_request_and_redirects_from_an_allowed_server_on_postgresql() {
    scripts_fetch_from_an_allowed_server(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_size_timeout_and_call_count_are_capped() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), None, &upstream, true).await;
    server.create_app("shop").await;
    script(&server, "shop", "each", TRY_EACH).await;

    let answer = call(
        &server,
        "shop",
        "each",
        json!([
            upstream.url("/redirect/10"),
            upstream.url("/redirect/11"),
            upstream.url(&format!("/big/{MAX_RESPONSE}")),
            upstream.url(&format!("/big/{}", MAX_RESPONSE + 1)),
        ]),
    )
    .await;
    assert_eq!(answer[0], 200, "{answer}");
    assert!(
        error_of(&answer, 1).contains("limit: more than 10 redirects"),
        "{answer}"
    );
    assert_eq!(answer[2], 200, "{answer}");
    assert!(
        error_of(&answer, 3).contains(&format!(
            "limit: the response of 127.0.0.1 is larger than the limit of {MAX_RESPONSE} bytes"
        )),
        "{answer}"
    );

    let slow = r#"
        let answer = "answered";
        try {
            http::request(#{ url: ctx.request.json.url, timeout_ms: 300 });
        } catch (e) { answer = e; }
        answer
    "#;
    script(&server, "shop", "slow", slow).await;
    let answer = call(
        &server,
        "shop",
        "slow",
        json!({ "url": upstream.url("/slow") }),
    )
    .await;
    assert!(
        answer
            .as_str()
            .unwrap()
            .contains("limit: the request to 127.0.0.1 did not finish within 300 ms"),
        "{answer}"
    );

    let many = r#"
        let n = 0;
        let error = ();
        while error == () {
            try { http::get(ctx.request.json.url); n += 1; } catch (e) { error = e; }
        }
        [n, error]
    "#;
    script(&server, "shop", "many", many).await;
    let answer = call(
        &server,
        "shop",
        "many",
        json!({ "url": upstream.url("/hello") }),
    )
    .await;
    assert_eq!(answer[0], MAX_CALLS, "{answer}");
    assert!(
        answer[1].as_str().unwrap().contains(&format!(
            "limit: an invocation may make at most {MAX_CALLS} outbound http calls"
        )),
        "{answer}"
    );
    server.stop().await;
}

/// Every SSRF vector: literal addresses in any notation, names, ports, schemes. None of
/// them reaches the upstream, and no answer names an address a name resolved to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_and_every_ssrf_vector_are_denied_without_the_operator_allow_list() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), None, &upstream, false).await;
    server.create_app("shop").await;
    script(&server, "shop", "each", TRY_EACH).await;
    let port = upstream.addr.port();
    let cases: Vec<(String, &str)> = vec![
        (upstream.url("/hello"), "it is a loopback address"),
        (
            format!("http://localhost:{port}/hello"),
            "it resolves to a loopback address",
        ),
        (
            format!("http://2130706433:{port}/hello"),
            "it is a loopback address",
        ),
        (
            format!("http://0x7f.1:{port}/hello"),
            "it is a loopback address",
        ),
        (
            format!("http://0177.0.0.1:{port}/hello"),
            "it is a loopback address",
        ),
        (
            format!("http://127.1:{port}/hello"),
            "it is a loopback address",
        ),
        (
            format!("http://[::1]:{port}/hello"),
            "it is a loopback address",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/hello"),
            "it is an IPv4-mapped IPv6 address",
        ),
        (
            format!("http://[::127.0.0.1]:{port}/hello"),
            "it is an IPv4-compatible IPv6 address",
        ),
        (
            format!("http://0.0.0.0:{port}/hello"),
            "it is an unspecified address",
        ),
        (
            format!("http://[::]:{port}/hello"),
            "it is an unspecified address",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".into(),
            "it is a link-local address",
        ),
        (
            "http://10.0.0.1/".into(),
            "it is a private address (RFC 1918)",
        ),
        (
            "http://172.16.0.1/".into(),
            "it is a private address (RFC 1918)",
        ),
        (
            "https://192.168.1.1/".into(),
            "it is a private address (RFC 1918)",
        ),
        (
            "http://100.64.0.1/".into(),
            "it is a shared (carrier-grade NAT) address",
        ),
        ("http://224.0.0.1/".into(), "it is a multicast address"),
        (
            "http://255.255.255.255/".into(),
            "it is the broadcast address",
        ),
        ("http://192.0.2.1/".into(), "it is a documentation address"),
        ("http://198.18.0.1/".into(), "it is a benchmarking address"),
        (
            "http://240.0.0.1/".into(),
            "it is a reserved special-purpose address",
        ),
        (
            "http://[fd00::1]/".into(),
            "it is an IPv6 unique local address",
        ),
        ("http://[fe80::1]/".into(), "it is a link-local address"),
        ("http://[ff02::1]/".into(), "it is a multicast address"),
        (
            "http://[2001:db8::1]/".into(),
            "it is a documentation address",
        ),
        ("http://[64:ff9b::7f00:1]/".into(), "it is a NAT64 address"),
        (
            "http://[2002:7f00:1::]/".into(),
            "it is a 6to4 address (2002::/16) embedding a loopback address",
        ),
        (
            "http://[2001:0:7f00:1::f7f7:f7f7]/".into(),
            "it is a Teredo address (2001::/32) embedding a loopback address",
        ),
        (
            "http://8.8.8.8:22/".into(),
            "outbound http to port 22 is not allowed",
        ),
        (
            "http://example.com:6379/".into(),
            "outbound http to port 6379 is not allowed",
        ),
    ];
    // Denied calls count toward the per-invocation cap too: a few invocations.
    let mut errors = Vec::new();
    for chunk in cases.chunks(MAX_CALLS as usize) {
        let urls: Vec<&str> = chunk.iter().map(|(u, _)| u.as_str()).collect();
        let answer = call(&server, "shop", "each", json!(urls)).await;
        for (i, (url, expected)) in chunk.iter().enumerate() {
            let error = error_of(&answer, i).to_owned();
            assert!(error.contains("denied: "), "{url}: {error}");
            assert!(error.contains(expected), "{url}: {error}");
            errors.push(error);
        }
    }
    // The name's answer says what the name resolves to, not the address.
    let localhost = &errors[1];
    assert!(
        !localhost.contains("127.0.0.1") && !localhost.contains("::1"),
        "{localhost}"
    );

    let answer = call(
        &server,
        "shop",
        "each",
        json!([
            "file:///etc/passwd",
            "gopher://127.0.0.1:70/",
            "http://[::1/",
            "not a url"
        ]),
    )
    .await;
    for i in 0..4 {
        assert!(error_of(&answer, i).contains("invalid: "), "{answer}");
    }
    assert_eq!(upstream.hits(), 0, "a denied call reached the upstream");

    // Refused calls are in the log too.
    let record = server.last_record("shop").await;
    let messages: Vec<&str> = record["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["message"].as_str())
        .collect();
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert!(
        messages
            .iter()
            .all(|m| m.starts_with("http GET ") && m.contains(" -> invalid in ")),
        "{messages:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_from_an_allowed_server_to_a_denied_address_is_denied() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), None, &upstream, true).await;
    server.create_app("shop").await;
    script(&server, "shop", "each", TRY_EACH).await;
    let port = upstream.addr.port();
    let via = |target: &str| {
        let mut url = reqwest::Url::parse(&upstream.url("/to")).unwrap();
        url.query_pairs_mut().append_pair("url", target);
        url.to_string()
    };
    let cases = [
        (
            via(&format!("http://127.0.0.2:{port}/hello")),
            "it is a loopback address",
        ),
        (
            via(&format!("http://[::1]:{port}/hello")),
            "it is a loopback address",
        ),
        (
            via(&format!("http://2130706434:{port}/hello")),
            "it is a loopback address",
        ),
        (
            via("http://169.254.169.254/latest/meta-data/"),
            "it is a link-local address",
        ),
        (
            via("http://10.0.0.1/"),
            "it is a private address (RFC 1918)",
        ),
        (
            via(&format!(
                "http://127.0.0.1:{}/",
                port.wrapping_add(1).max(1)
            )),
            "is not allowed",
        ),
        (via("file:///etc/passwd"), "invalid: only http and https"),
    ];
    let urls: Vec<&str> = cases.iter().map(|(u, _)| u.as_str()).collect();
    let answer = call(&server, "shop", "each", json!(urls)).await;
    for (i, (url, expected)) in cases.iter().enumerate() {
        let error = error_of(&answer, i);
        assert!(error.contains(expected), "{url}: {error}");
    }
    // Each call reached the upstream once (its redirect), never the target.
    assert_eq!(upstream.hits(), cases.len());
    let record = server.last_record("shop").await;
    let messages: Vec<&str> = record["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["message"].as_str())
        .collect();
    let redirects = messages
        .iter()
        .filter(|m| m.contains(&format!("127.0.0.1:{port} -> 302 in ")))
        .count();
    let denied = messages
        .iter()
        .filter(|m| m.contains(" -> denied in "))
        .count();
    let invalid = messages
        .iter()
        .filter(|m| m.contains(" -> invalid in "))
        .count();
    assert_eq!((redirects, denied, invalid), (7, 6, 1), "{messages:#?}");
    server.stop().await;
}

async fn the_app_allow_list_restricts_hosts(backend: Backend) {
    let Some(db) = database(backend).await else {
        return;
    };
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), db.as_ref(), &upstream, true).await;
    server.create_app("shop").await;
    server.create_app("other").await;
    script(&server, "shop", "each", TRY_EACH).await;
    script(&server, "other", "each", TRY_EACH).await;
    let hello = upstream.url("/hello");

    assert_eq!(
        server.admin(Method::GET, "/apps/shop/outbound", None).await,
        json!({ "allow_hosts": null })
    );
    let set = server
        .admin(
            Method::PUT,
            "/apps/shop/outbound",
            Some(json!({ "allow_hosts": ["API.Example.com", "*.example.org"] })),
        )
        .await;
    assert_eq!(
        set,
        json!({ "allow_hosts": ["*.example.org", "api.example.com"] })
    );
    let answer = call(&server, "shop", "each", json!([hello])).await;
    assert!(
        error_of(&answer, 0).contains("denied: 127.0.0.1 is not on this app's outbound allow-list"),
        "{answer}"
    );
    // Another app is not restricted.
    assert_eq!(
        call(&server, "other", "each", json!([hello])).await,
        json!([200])
    );

    // The allow-list narrows the guard, never widens it.
    server
        .admin(
            Method::PUT,
            "/apps/shop/outbound",
            Some(json!({ "allow_hosts": ["127.0.0.1", "10.0.0.1"] })),
        )
        .await;
    let answer = call(&server, "shop", "each", json!([hello, "http://10.0.0.1/"])).await;
    assert_eq!(answer[0], 200, "{answer}");
    assert!(error_of(&answer, 1).contains("private address"), "{answer}");

    for bad in [
        json!({ "allow_hosts": ["a.com/path"] }),
        json!({ "allow_hosts": ["*.10.0.0.1"] }),
        json!({ "hosts": [] }),
    ] {
        let response = server
            .api(Method::PUT, "/apps/shop/outbound")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_client_error(),
            "{bad}: {}",
            response.status()
        );
    }
    assert_error(
        server
            .api(Method::PUT, "/apps/nope/outbound")
            .json(&json!({ "allow_hosts": null }))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;

    server
        .admin(
            Method::PUT,
            "/apps/shop/outbound",
            Some(json!({ "allow_hosts": null })),
        )
        .await;
    assert_eq!(
        call(&server, "shop", "each", json!([hello])).await,
        json!([200])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_restricts_an_app_to_its_allow_list_of_hosts_on_sqlite() {
    the_app_allow_list_restricts_hosts(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_restricts_an_app_to_its_allow_list_of_hosts_on_postgresql() {
    the_app_allow_list_restricts_hosts(Backend::Postgres).await;
}

/// Names answered by a table: the resolver seam.
struct FakeResolver(HashMap<&'static str, Vec<IpAddr>>);

impl Resolver for FakeResolver {
    fn lookup(&self, host: &str) -> Lookup {
        let found = self.0.get(host).cloned().unwrap_or_default();
        Box::pin(async move { Ok(found) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_resolving_to_a_denied_address_are_denied_and_allowed_ones_connect_to_the_checked_address()
 {
    let upstream = Upstream::start().await;
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let resolver = FakeResolver(HashMap::from([
        ("internal.test", vec![ip("10.0.0.5")]),
        ("metadata.test", vec![ip("169.254.169.254")]),
        ("mixed.test", vec![ip("127.0.0.1"), ip("10.0.0.5")]),
        ("mapped.test", vec![ip("::ffff:127.0.0.1")]),
        ("upstream.test", vec![ip("127.0.0.1")]),
        ("nowhere.test", vec![]),
    ]));
    let outbound = Outbound::with_resolver(
        OutboundConfig {
            allow_cidrs: vec!["127.0.0.1/32".parse().unwrap()],
            ports: vec![upstream.addr.port()],
            ..OutboundConfig::default()
        },
        Arc::new(resolver),
    )
    .unwrap();
    let port = upstream.addr.port();
    let get = |host: &str| OutgoingRequest {
        method: "GET".into(),
        url: format!("http://{host}:{port}/hello"),
        headers: Vec::new(),
        body: Vec::new(),
        timeout_ms: None,
    };
    let mut log = Vec::new();
    for (host, rule) in [
        ("internal.test", "a private address (RFC 1918)"),
        ("metadata.test", "a link-local address"),
        ("mixed.test", "a private address (RFC 1918)"),
        ("mapped.test", "an IPv4-mapped IPv6 address, ::ffff:0:0/96"),
    ] {
        match outbound.fetch(get(host), &Scope::default(), &mut log).await {
            Err(GuestError::Denied(message)) => {
                assert_eq!(
                    message,
                    format!("outbound http to {host} is denied: it resolves to {rule}")
                );
            }
            other => panic!("{host}: {other:?}"),
        }
    }
    assert!(matches!(
        outbound.fetch(get("nowhere.test"), &Scope::default(), &mut log).await,
        Err(GuestError::Unavailable(m)) if m == "nowhere.test does not resolve"
    ));
    assert_eq!(upstream.hits(), 0);

    // The checked address is the one connected to: the fake name reaches the upstream.
    let answer = outbound
        .fetch(get("upstream.test"), &Scope::default(), &mut log)
        .await
        .unwrap();
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (200, HELLO.as_bytes())
    );
    assert_eq!(upstream.hits(), 1);
    let outcomes: Vec<&str> = log
        .iter()
        .map(|l| l.message.rsplit_once(" -> ").unwrap().1)
        .map(|rest| rest.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["denied", "denied", "denied", "denied", "failed", "200"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_fetches_through_the_sdk_behind_the_same_guard() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), None, &upstream, true).await;
    server.create_app("shop").await;
    let component = std::fs::read(picloud_example_artifacts::HTTP_FETCH).unwrap();
    server
        .deploy("shop", "fetch", component, Some("POST /fetch"))
        .await;
    let fetch = |body: Value| call(&server, "shop", "fetch", body);

    assert_eq!(
        fetch(json!({ "url": upstream.url("/hello"), "n": 2 })).await,
        json!({ "status": 200, "body": HELLO, "calls": 2 })
    );
    assert_eq!(
        fetch(json!({ "url": upstream.url("/redirect/2"), "method": "POST", "body": "x" })).await,
        json!({ "status": 200, "body": "landed", "calls": 1 })
    );
    let denied = fetch(json!({ "url": upstream.url("/to?url=http://169.254.169.254/") })).await;
    assert_eq!(
        denied["error"],
        "denied: outbound http to 169.254.169.254 is denied: it is a link-local address"
    );
    let big = fetch(json!({ "url": upstream.url(&format!("/big/{}", MAX_RESPONSE + 1)) })).await;
    assert!(
        big["error"].as_str().unwrap().starts_with("limit: "),
        "{big}"
    );
    let many = fetch(json!({ "url": upstream.url("/hello"), "n": MAX_CALLS + 1 })).await;
    assert_eq!(many["calls"], MAX_CALLS, "{many}");
    assert!(
        many["error"].as_str().unwrap().starts_with("limit: "),
        "{many}"
    );

    let record = server.last_record("shop").await;
    let lines = record["logs"].as_array().unwrap();
    assert_eq!(lines.len(), MAX_CALLS as usize, "{record}");
    assert!(!record.to_string().contains(HELLO));
    server.stop().await;
}
