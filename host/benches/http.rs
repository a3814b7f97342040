//! End-to-end HTTP latency over loopback against the real server, started in-process on
//! a tokio multi-thread runtime with an embedded SQLite database in a temp directory.
//! One keep-alive `reqwest` client sends one request at a time and reads the whole body.
//!
//! - `http/fn_hello`: `GET /fn/bench/hello?name=bench`, routed to the example-hello
//!   component: routing, admission, a fresh wasm instance, the call, the response and
//!   the (batched) invocation record.
//! - `http/healthz`: `GET /healthz` on the same server, no wasm: the cost of the HTTP
//!   stack alone, as a baseline for `fn_hello` measured in the same run.
//!
//! Run with `cargo bench -p picloud --bench http`.

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use picloud::server::ServeArgs;
use serde_json::{Value, json};
use std::hint::black_box;

const TOKEN: &str = "bench-admin-token-0123456789";

/// An admin API call that must succeed.
async fn admin(http: &reqwest::Client, base: &str, path: &str, body: reqwest::Body, json: bool) {
    let mut request = http
        .post(format!("{base}/api/v1{path}"))
        .bearer_auth(TOKEN)
        .body(body);
    if json {
        request = request.header("content-type", "application/json");
    }
    let response = request.send().await.expect("admin call is answered");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "POST {path} answered {status}: {text}");
}

fn json_body(value: Value) -> reqwest::Body {
    value.to_string().into()
}

/// GET `url` and return the body, which must come with a 200.
async fn get(http: &reqwest::Client, url: &str) -> bytes::Bytes {
    let response = http.get(url).send().await.expect("request is answered");
    assert_eq!(response.status(), 200, "GET {url}");
    response.bytes().await.expect("body is read")
}

fn bench_http(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime builds");
    let dir = tempfile::tempdir().expect("temp dir");
    let hello = std::fs::read(picloud_example_artifacts::HELLO).expect("example-hello is built");

    let (base, http) = tokio.block_on(async {
        let base = support::start_server(ServeArgs {
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_token: Some(TOKEN.into()),
            ..ServeArgs::with_data_dir(dir.path().to_owned())
        })
        .await;

        let http = reqwest::Client::new();
        admin(
            &http,
            &base,
            "/apps",
            json_body(json!({ "name": "bench" })),
            true,
        )
        .await;
        admin(
            &http,
            &base,
            "/apps/bench/functions/hello/versions",
            hello.into(),
            false,
        )
        .await;
        let route = json!({ "method": "GET", "path": "/hello", "function": "hello" });
        admin(&http, &base, "/apps/bench/routes", json_body(route), true).await;

        // Check the answers once, so the numbers are for requests that work.
        let body = get(&http, &format!("{base}/fn/bench/hello?name=bench")).await;
        assert_eq!(&body[..], b"Hello, bench!");
        assert_eq!(&get(&http, &format!("{base}/healthz")).await[..], b"ok");
        (base, http)
    });

    let hello_url = format!("{base}/fn/bench/hello?name=bench");
    let healthz_url = format!("{base}/healthz");
    let (http, hello_url, healthz_url) = (&http, hello_url.as_str(), healthz_url.as_str());
    let mut group = c.benchmark_group("http");
    group.bench_function("fn_hello", |b| {
        b.to_async(&tokio)
            .iter(|| async move { black_box(get(http, hello_url).await) })
    });
    group.bench_function("healthz", |b| {
        b.to_async(&tokio)
            .iter(|| async move { black_box(get(http, healthz_url).await) })
    });
    group.finish();
}

criterion_group!(benches, bench_http);
criterion_main!(benches);
