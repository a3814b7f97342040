//! What a client or a guest can do to the HTTP exchange: credentials reaching guests,
//! response framing, header floods, slow clients, origins and cookies.

use crate::support::{TOKEN, TestServer, assert_error, hello};
use picloud::server::ServeArgs;
use picloud_example_artifacts::hostile_guest;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    (dir, server)
}

/// Deploys a Rhai script as `app/name` and routes `method path` to it.
async fn deploy_rhai(server: &TestServer, app: &str, name: &str, source: &str, route: &str) {
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
    let (method, path) = route.split_once(' ').unwrap();
    server
        .admin(
            Method::POST,
            &format!("/apps/{app}/routes"),
            Some(json!({ "method": method, "path": path, "function": name })),
        )
        .await;
}

/// A script answering the request headers it received, as a JSON object.
const ECHO_HEADERS: &str = "ctx.request.headers";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_invoke_path_never_hands_picloud_credentials_to_the_guest() {
    let (_dir, server) = server().await;
    server.create_app("shop").await;
    deploy_rhai(&server, "shop", "echo", ECHO_HEADERS, "GET /echo").await;
    let response = server
        .api(Method::POST, "/apps/shop/functions/echo/invoke")
        .header("cookie", "session=admin-dashboard")
        .header("proxy-authorization", "Basic cHJveHk6c2VjcmV0")
        .header("x-trace", "t-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen: Value = response.json().await.unwrap();
    let names: Vec<&str> = seen
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for credential in ["authorization", "cookie", "proxy-authorization"] {
        assert!(
            !names.contains(&credential),
            "{credential} reached the guest: {seen}"
        );
    }
    assert!(
        !seen.to_string().contains(TOKEN),
        "the admin token reached the guest: {seen}"
    );
    assert_eq!(seen["x-trace"], "t-1", "other headers still pass: {seen}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_plane_hands_the_guest_the_clients_headers_but_not_hop_by_hop_ones() {
    let (_dir, server) = server().await;
    server.create_app("shop").await;
    deploy_rhai(&server, "shop", "echo", ECHO_HEADERS, "GET /echo").await;
    let seen: Value = server
        .http
        .get(format!("{}/fn/shop/echo", server.url))
        .header("authorization", "Bearer the-clients-own")
        .header("cookie", "cart=3")
        .header("proxy-authorization", "Basic cHJveHk6c2VjcmV0")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "for the next hop only")
        .header("te", "trailers")
        .header("x-trace", "t-2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The client's own credentials are the client's business with the function.
    assert_eq!(seen["authorization"], "Bearer the-clients-own", "{seen}");
    assert_eq!(seen["cookie"], "cart=3", "{seen}");
    assert_eq!(seen["x-trace"], "t-2", "{seen}");
    // A proxy's credential and what describes this connection only do not pass.
    for name in ["proxy-authorization", "connection", "x-hop", "te"] {
        assert!(seen.get(name).is_none(), "{name} reached the guest: {seen}");
    }
    server.stop().await;
}

/// One HTTP/1.1 response read off a raw connection.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Reads exactly one response (framed by `content-length`) from `stream`; bytes after it
/// stay in `buf` for the next call. An error when the connection ends first.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<RawResponse> {
    let eof = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed");
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(eof());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    buf.drain(..head_end + 4);
    while buf.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(eof());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf.drain(..length).collect();
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.url.strip_prefix("http://").unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_cannot_frame_the_response_so_a_forged_one_cannot_desynchronise_keep_alive() {
    let (_dir, server) = server().await;
    server.create_app("evil").await;
    let forged = "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged";
    deploy_rhai(
        &server,
        "evil",
        "forge",
        &format!(
            r#"#{{ status: 200, body: {forged:?},
                  headers: #{{ "content-length": "0", "Transfer-Encoding": "identity",
                              "connection": "keep-alive", "keep-alive": "timeout=999",
                              "upgrade": "h2c", "te": "trailers", "trailer": "x-sum",
                              "proxy-connection": "keep-alive" }} }}"#
        ),
        "GET /forge",
    )
    .await;
    deploy_rhai(&server, "evil", "ok", r#""fine""#, "GET /ok").await;

    let mut stream = connect(&server).await;
    let mut buf = Vec::new();
    stream
        .write_all(b"GET /fn/evil/forge HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let first = read_response(&mut stream, &mut buf).await.unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-length"), [forged.len().to_string()]);
    assert_eq!(first.body, forged.as_bytes(), "the forgery is only a body");
    for framing in [
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
    ] {
        assert!(first.header(framing).is_empty(), "{framing}: {first:?}");
    }
    stream
        .write_all(b"GET /fn/evil/ok HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let second = read_response(&mut stream, &mut buf).await.unwrap();
    assert_eq!((second.status, second.body.as_slice()), (200, &b"fine"[..]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_answering_30000_headers_gets_a_clean_502_and_the_server_keeps_serving() {
    let (_dir, server) = server().await;
    server.create_app("evil").await;
    deploy_rhai(
        &server,
        "evil",
        "flood",
        r#"let h = #{}; for i in 0..30000 { h["x-h" + i] = "v"; } #{ status: 200, headers: h, body: "" }"#,
        "GET /flood",
    )
    .await;
    deploy_rhai(&server, "evil", "ok", r#""fine""#, "GET /ok").await;
    assert_error(server.get("/fn/evil/flood").await, 502, "function_failed").await;
    let record = server.last_record("evil").await;
    assert_eq!(
        (
            &record["status"],
            &record["error_code"],
            &record["http_status"]
        ),
        (&json!("error"), &json!("function_failed"), &json!(502)),
        "{record}"
    );
    assert_eq!(
        server.get("/fn/evil/ok").await.text().await.unwrap(),
        "fine"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_or_oversized_guest_headers_are_a_502_recorded_as_the_client_saw_it() {
    let (_dir, server) = server().await;
    server.create_app("evil").await;
    let cases = [
        (
            "name",
            r#"#{ status: 200, headers: #{ "bad name": "v" }, body: "x" }"#,
        ),
        (
            "value",
            r#"#{ status: 200, headers: #{ "x-split": "a\r\nset-cookie: injected=1" }, body: "x" }"#,
        ),
        (
            "count",
            r#"let h = #{}; for i in 0..90 { h["x-h" + i] = "v"; } #{ status: 200, headers: h, body: "x" }"#,
        ),
        (
            "bytes",
            r#"let v = "v"; while v.len() < 70000 { v += v; } #{ status: 200, headers: #{ "x-big": v }, body: "x" }"#,
        ),
    ];
    for (name, source) in cases {
        deploy_rhai(&server, "evil", name, source, &format!("GET /{name}")).await;
        let body = assert_error(
            server.get(&format!("/fn/evil/{name}")).await,
            502,
            "function_failed",
        )
        .await;
        let record = server.last_record("evil").await;
        assert_eq!(record["id"], body["error"]["invocation_id"], "{name}");
        assert_eq!(
            (
                &record["status"],
                &record["error_code"],
                &record["http_status"]
            ),
            (&json!("error"), &json!("function_failed"), &json!(502)),
            "{name}: {record}"
        );
    }
    // 90 headers of ordinary size are fine: 89 and the content-type the shim adds (the
    // "count" case above is 90 and that content-type).
    deploy_rhai(
        &server,
        "evil",
        "ninety",
        r#"let h = #{}; for i in 0..89 { h["x-h" + i] = "v"; } #{ status: 200, headers: h, body: "x" }"#,
        "GET /ninety",
    )
    .await;
    let response = server.get("/fn/evil/ninety").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-h88"], "v");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_status_is_a_502_and_the_record_says_error_function_failed_502() {
    let (_dir, server) = server().await;
    server.create_app("evil").await;
    // `result<response, error>` at 64: tag 0 (ok) at 64, status (u16) at 68, empty
    // header and body lists after it (the memory is zero).
    let status_99 = hostile_guest(
        "",
        "(i32.store16 (i32.const 68) (i32.const 99)) (i32.const 64)",
    );
    server
        .deploy("evil", "ninety-nine", status_99, Some("GET /99"))
        .await;
    deploy_rhai(&server, "evil", "switching", "#{ status: 101 }", "GET /101").await;
    for path in ["/fn/evil/99", "/fn/evil/101"] {
        let body = assert_error(server.get(path).await, 502, "function_failed").await;
        let record = server.last_record("evil").await;
        assert_eq!(record["id"], body["error"]["invocation_id"], "{path}");
        assert_eq!(
            (
                &record["status"],
                &record["error_code"],
                &record["http_status"]
            ),
            (&json!("error"), &json!("function_failed"), &json!(502)),
            "{path}: {record}"
        );
        assert!(
            record["error_message"].as_str().unwrap().contains("status"),
            "{record}"
        );
    }
    server.stop().await;
}

/// A server with `--header-read-timeout-secs 1 --body-read-timeout-secs 5` and one
/// invocation per app at a time.
async fn impatient_server() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: Some(TOKEN.into()),
        header_read_timeout_secs: 1,
        body_read_timeout_secs: 15,
        max_concurrency_per_app: Some(1),
        max_queued_per_app: Some(0),
        ..ServeArgs::with_data_dir(dir.path().to_owned())
    })
    .await;
    (dir, server)
}

/// Whether the server ended the connection: a read answers end-of-file or an error.
/// Waits at most `bound`.
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(bound, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_its_headers_slower_than_the_header_timeout_is_disconnected() {
    let (_dir, server) = impatient_server().await;
    let mut slow = connect(&server).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // One byte every 200 ms of a header that never ends; the server must hang up after
    // its 1 s header timeout. The bound of 60 bytes (12 s) only keeps a failing test
    // from running forever.
    let mut disconnected = false;
    for _ in 0..60 {
        if slow.write_all(b"x").await.is_err() {
            disconnected = true;
            break;
        }
        if closed_within(&mut slow, Duration::from_millis(200)).await {
            disconnected = true;
            break;
        }
    }
    assert!(disconnected, "a slow header kept its connection");
    // An idle connection that sends nothing is closed too.
    let mut idle = connect(&server).await;
    assert!(
        closed_within(&mut idle, Duration::from_secs(12)).await,
        "an idle connection stayed open"
    );
    assert_eq!(server.get("/healthz").await.text().await.unwrap(), "ok");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_is_read_only_after_admission_and_a_stalled_one_is_answered_408() {
    let (_dir, server) = impatient_server().await;
    server.create_app("shop").await;
    deploy_rhai(
        &server,
        "shop",
        "size",
        "ctx.request.body.len()",
        "POST /size",
    )
    .await;

    let probe = || async {
        server
            .http
            .post(format!("{}/fn/shop/size", server.url))
            .body("abc")
            .send()
            .await
            .unwrap()
    };
    // Warm the function first, so a probe holds the app's one slot for milliseconds.
    assert_eq!(probe().await.text().await.unwrap(), "3");

    // The app runs one invocation at a time, and a stalled upload holds that slot once it
    // is admitted: its body is read under admission, not buffered ahead of it. Until the
    // stalled request is admitted a probe may still run; and if the stalled request
    // arrives while a probe holds the slot it is refused itself, so the test starts over
    // with a new one. (The bounds only keep a failing test from running forever; the body
    // timeout is long enough that a loaded machine sees the refusal before the 408.)
    let mut held = None;
    'attempt: for _ in 0..10 {
        let mut stalled = connect(&server).await;
        stalled
            .write_all(
                b"POST /fn/shop/size HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nonly ten b",
            )
            .await
            .unwrap();
        let mut buf = Vec::new();
        for _ in 0..40 {
            let response = probe().await;
            if response.status() == 429 {
                assert_error(response, 429, "quota_exceeded").await;
                held = Some((stalled, buf));
                break 'attempt;
            }
            assert_eq!(response.text().await.unwrap(), "3");
            let early = tokio::time::timeout(
                Duration::from_millis(50),
                read_response(&mut stalled, &mut buf),
            )
            .await;
            if let Ok(answer) = early {
                let answer = answer.unwrap();
                assert_eq!(answer.status, 429, "{answer:?}");
                continue 'attempt;
            }
        }
        panic!("the stalled upload was neither admitted nor refused");
    }
    let (mut stalled, mut buf) = held.expect("a request beside the stalled upload is refused 429");

    let answer = read_response(&mut stalled, &mut buf).await.unwrap();
    assert_eq!(answer.status, 408, "{answer:?}");
    let error: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(error["error"]["code"], "request_timeout");

    // The slot is free again.
    assert_eq!(probe().await.text().await.unwrap(), "3");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_is_kept_to_the_apps_own_host_or_path() {
    let (_dir, server) = server().await;
    server.create_app("shop").await;
    deploy_rhai(
        &server,
        "shop",
        "cookie",
        r#"#{ status: 200, headers: #{ "Set-Cookie": ctx.request.query.c }, body: "" }"#,
        "GET /cookie",
    )
    .await;
    let by_host = |cookie: &'static str| {
        server
            .http
            .get(format!("{}/cookie", server.url))
            .header("host", "shop.localhost:8080")
            .query(&[("c", cookie)])
            .send()
    };
    let by_path = |cookie: &'static str| {
        server
            .http
            .get(format!("{}/fn/shop/cookie", server.url))
            .query(&[("c", cookie)])
            .send()
    };
    let set_cookie = |response: reqwest::Response| -> Vec<String> {
        assert_eq!(response.status(), 200);
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    // By host name the app's host is shop.localhost: a cookie for it (or for that
    // host only) passes, one for a wider or another domain does not.
    for (cookie, expected) in [
        ("a=1", Some("a=1")),
        (
            "b=2; Domain=shop.localhost",
            Some("b=2; Domain=shop.localhost"),
        ),
        (
            "c=3; domain=.SHOP.localhost; Path=/",
            Some("c=3; domain=.SHOP.localhost; Path=/"),
        ),
        ("d=4; Domain=localhost", None),
        ("e=5; Domain=other.localhost", None),
        ("f=6; Domain=shop.localhost; Domain=localhost", None),
    ] {
        let got = set_cookie(by_host(cookie).await.unwrap());
        assert_eq!(
            got,
            expected.into_iter().collect::<Vec<_>>(),
            "host: {cookie}"
        );
    }
    // Under /fn/shop/ all apps share one origin: no Domain at all, a Path inside
    // /fn/shop only, and a cookie without a Path is scoped to /fn/shop.
    for (cookie, expected) in [
        ("a=1", Some("a=1; Path=/fn/shop")),
        ("b=2; Path=/fn/shop/cart", Some("b=2; Path=/fn/shop/cart")),
        ("c=3; path=/fn/shop", Some("c=3; path=/fn/shop")),
        ("d=4; Path=/", None),
        ("e=5; Path=/fn/shopping", None),
        ("f=6; Domain=localhost; Path=/fn/shop", None),
    ] {
        let got = set_cookie(by_path(cookie).await.unwrap());
        assert_eq!(
            got,
            expected.into_iter().collect::<Vec<_>>(),
            "path: {cookie}"
        );
    }
    let record = server.last_record("shop").await;
    let warned = record["logs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["level"] == "warn" && l["message"].as_str().unwrap().contains("Set-Cookie"));
    assert!(
        warned,
        "the dropped cookie is in the invocation log: {record}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_answers_forbid_sniffing_framing_and_caching_and_cookies_are_no_credential() {
    let (_dir, server) = server().await;
    let authorised = server.api(Method::GET, "/apps").send().await.unwrap();
    let unauthorised = server
        .http
        .get(format!("{}/api/v1/apps", server.url))
        .header(
            "cookie",
            format!("token={TOKEN}; authorization=Bearer {TOKEN}"),
        )
        .send()
        .await
        .unwrap();
    let unknown = server
        .api(Method::GET, "/no-such-thing")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            authorised.status().as_u16(),
            unauthorised.status().as_u16(),
            unknown.status().as_u16()
        ),
        (200, 401, 404)
    );
    for response in [&authorised, &unauthorised, &unknown] {
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{headers:?}");
        assert_eq!(headers["content-security-policy"], "frame-ancestors 'none'");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["cache-control"], "no-store");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_plane_answers_are_nosniff_unless_the_guest_says_otherwise() {
    let (_dir, server) = server().await;
    server.create_app("shop").await;
    server
        .deploy("shop", "hello", hello(), Some("GET /hello"))
        .await;
    deploy_rhai(
        &server,
        "shop",
        "own",
        r#"#{ status: 200, headers: #{ "X-Content-Type-Options": "nosniff" }, body: "" }"#,
        "GET /own",
    )
    .await;
    for path in ["/fn/shop/hello", "/fn/shop/own", "/fn/shop/nope"] {
        let response = server.get(path).await;
        let values: Vec<_> = response
            .headers()
            .get_all("x-content-type-options")
            .iter()
            .collect();
        assert_eq!(values, ["nosniff"], "{path}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_are_percent_decoded_exactly_once_on_both_entry_points() {
    let (_dir, server) = server().await;
    server.create_app("shop").await;
    deploy_rhai(
        &server,
        "shop",
        "file",
        "#{ name: ctx.request.params.name, path: ctx.request.path }",
        "GET /files/:name",
    )
    .await;
    for (raw, name, path) in [
        ("/files/a%252Fb", "a%2Fb", "/files/a%2Fb"),
        ("/files/a%2Fb", "a/b", "/files/a/b"),
        ("/files/caf%C3%A9", "café", "/files/café"),
    ] {
        let by_path: Value = server
            .get(&format!("/fn/shop{raw}"))
            .await
            .json()
            .await
            .unwrap();
        let by_host: Value = server
            .http
            .get(format!("{}{raw}", server.url))
            .header("host", "shop.localhost")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            by_path,
            json!({ "name": name, "path": path }),
            "/fn/shop{raw}"
        );
        assert_eq!(by_host, by_path, "{raw} by host name");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_error_bodies_are_generic_and_the_detail_is_in_the_record() {
    let (_dir, server) = server().await;
    server.create_app("shop").await;
    deploy_rhai(
        &server,
        "shop",
        "boom",
        r#"throw "db password is hunter2";"#,
        "GET /boom",
    )
    .await;
    let body = assert_error(server.get("/fn/shop/boom").await, 502, "function_failed").await;
    assert!(!body.to_string().contains("hunter2"), "{body}");
    let record = server.last_record("shop").await;
    assert_eq!(record["id"], body["error"]["invocation_id"]);
    assert!(
        record["error_message"]
            .as_str()
            .unwrap()
            .contains("hunter2"),
        "{record}"
    );
    // The admin path answers the operator, who may read the record anyway: the detail.
    let admin = server
        .api(Method::POST, "/apps/shop/functions/boom/invoke")
        .send()
        .await
        .unwrap();
    let body = assert_error(admin, 502, "function_failed").await;
    assert!(body.to_string().contains("hunter2"), "{body}");
    // No route says nothing about whether the app exists.
    let unknown_app = assert_error(server.get("/fn/nope/boom").await, 404, "no_route").await;
    let unknown_route = assert_error(server.get("/fn/shop/nope").await, 404, "no_route").await;
    assert_eq!(
        unknown_app["error"]["message"],
        unknown_route["error"]["message"]
    );
    server.stop().await;
}
