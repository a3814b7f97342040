//! End-to-end HTTP latency over loopback against the real server, started in-process on
//! a tokio multi-thread runtime with an embedded SQLite database in a temp directory.
//! One keep-alive `reqwest` client sends one request at a time and reads the whole body.
//!
//! - `http/fn_hello`: `GET /fn/bench/hello?name=bench`, routed to the example-hello
//!   component: routing, admission, a fresh wasm instance, the call, the response and
//!   the (batched) invocation record.
//! - `http/fn_hello_cpu_slots_0`: the same on a second server with the fair CPU
//!   scheduler off (`cpu_slots: Some(0)`): what the scheduler costs a lone app.
//! - `http/healthz`: `GET /healthz` on the same server, no wasm: the cost of the HTTP
//!   stack alone, as a baseline for `fn_hello` measured in the same run.
//! - Then requests/second of 8 concurrent clients, alternating the two servers: the
//!   lone app's throughput with the scheduler on and off.
//!
//! Run with `cargo bench -p picloud --bench http`.

mod support;

use support::{TOKEN, admin};

use criterion::{Criterion, criterion_group, criterion_main};
use picloud::server::ServeArgs;
use serde_json::{Value, json};
use std::hint::black_box;

fn json_body(value: Value) -> reqwest::Body {
    value.to_string().into()
}

/// GET `url` and return the body, which must come with a 200.
async fn get(http: &reqwest::Client, url: &str) -> bytes::Bytes {
    let response = http.get(url).send().await.expect("request is answered");
    assert_eq!(response.status(), 200, "GET {url}");
    response.bytes().await.expect("body is read")
}

/// Starts a server with `cpu_slots` (`Some(0)`: the fair scheduler off), deploys
/// example-hello on `GET /hello` of app `bench`, checks it answers; answers the base URL.
async fn start(dir: &std::path::Path, http: &reqwest::Client, cpu_slots: Option<usize>) -> String {
    let hello = std::fs::read(picloud_example_artifacts::HELLO).expect("example-hello is built");
    let base = support::start_server(ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: Some(TOKEN.into()),
        cpu_slots,
        ..ServeArgs::with_data_dir(dir.to_owned())
    })
    .await;
    admin(
        http,
        &base,
        reqwest::Method::POST,
        "/apps",
        json_body(json!({ "name": "bench" })),
        true,
    )
    .await;
    admin(
        http,
        &base,
        reqwest::Method::POST,
        "/apps/bench/functions/hello/versions",
        hello.into(),
        false,
    )
    .await;
    let route = json!({ "method": "GET", "path": "/hello", "function": "hello" });
    admin(
        http,
        &base,
        reqwest::Method::POST,
        "/apps/bench/routes",
        json_body(route),
        true,
    )
    .await;
    // Check the answers once, so the numbers are for requests that work.
    let body = get(http, &format!("{base}/fn/bench/hello?name=bench")).await;
    assert_eq!(&body[..], b"Hello, bench!");
    assert_eq!(&get(http, &format!("{base}/healthz")).await[..], b"ok");
    base
}

/// Requests per second of `CONCURRENCY` clients sending `total` GETs of `url` in all.
async fn rps(http: &reqwest::Client, url: &str, total: usize) -> f64 {
    let per_client = total / CONCURRENCY;
    let start = std::time::Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (http, url) = (http.clone(), url.to_owned());
        clients.spawn(async move {
            for _ in 0..per_client {
                black_box(get(&http, &url).await);
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.expect("client task finishes");
    }
    (per_client * CONCURRENCY) as f64 / start.elapsed().as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Concurrent clients of the requests/second comparison.
const CONCURRENCY: usize = 8;
/// Requests per round of it, and rounds (alternating the servers).
const RPS_REQUESTS: usize = 8000;
const RPS_ROUNDS: usize = 5;

fn bench_http(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime builds");
    let dir = tempfile::tempdir().expect("temp dir");
    let unfair_dir = tempfile::tempdir().expect("temp dir");
    let http = reqwest::Client::new();
    let (base, unfair_base) = tokio.block_on(async {
        (
            start(dir.path(), &http, None).await,
            start(unfair_dir.path(), &http, Some(0)).await,
        )
    });

    let hello_url = format!("{base}/fn/bench/hello?name=bench");
    let unfair_url = format!("{unfair_base}/fn/bench/hello?name=bench");
    let healthz_url = format!("{base}/healthz");
    let http = &http;
    let mut group = c.benchmark_group("http");
    for (name, url) in [
        ("fn_hello", &hello_url),
        ("fn_hello_cpu_slots_0", &unfair_url),
        ("healthz", &healthz_url),
    ] {
        let url = url.as_str();
        group.bench_function(name, |b| {
            b.to_async(&tokio)
                .iter(|| async move { black_box(get(http, url).await) })
        });
    }
    group.finish();

    // A lone app's throughput with the fair scheduler on (the default) and off.
    tokio.block_on(async {
        rps(http, &hello_url, RPS_REQUESTS / 4).await;
        rps(http, &unfair_url, RPS_REQUESTS / 4).await;
        let (mut fair, mut unfair) = (Vec::new(), Vec::new());
        for _ in 0..RPS_ROUNDS {
            fair.push(rps(http, &hello_url, RPS_REQUESTS).await);
            unfair.push(rps(http, &unfair_url, RPS_REQUESTS).await);
        }
        println!("http rps ({CONCURRENCY} clients): fair {fair:.0?}, cpu_slots 0 {unfair:.0?}");
        let (f, u) = (median(&mut fair), median(&mut unfair));
        println!(
            "http rps median, fn_hello: fair scheduler {f:.0} req/s, off (cpu_slots 0) {u:.0} req/s; \
             on/off = {:.3} (goal >= 0.95)",
            f / u
        );
    });
}

criterion_group!(benches, bench_http);
criterion_main!(benches);
