//! Rhai scripts through the real server (the Rhai shim wasm component in wasmtime)
//! against the same scripts run by native Rhai (`picloud_rhai_shim` as a plain Rust
//! library), all in one run so the ratios compare like with like.
//!
//! Setup, as in `benches/http.rs`: the real server starts in-process on a tokio
//! multi-thread runtime with SQLite in a temp directory; scripts are deployed with
//! `POST /api/v1/apps/bench/functions/{name}/versions?kind=rhai` and routed.
//!
//! The native baseline is a small axum server on `127.0.0.1:0`, spawned on the same tokio
//! runtime (same worker threads as PiCloud's server and the client). Its handler builds a
//! [`picloud_rhai_shim::Request`] from the HTTP request the way PiCloud's data plane does
//! (path, raw query, header pairs, route params, body, app, a fresh uuid v7 invocation
//! id) and calls [`picloud_rhai_shim::run`]. `Engine` and `AST` hold `Rc`s and are
//! `!Send`, so each tokio worker thread keeps its own engine and AST cache in a
//! thread-local, built lazily on its first request: the script is compiled once per
//! worker thread, never per request, and nothing `!Send` lives across an `.await`. It
//! calls `run`, which resolves the script's function calls afresh on every request, as
//! plain `Engine::eval_ast_with_scope` does; PiCloud's warm instances keep those
//! resolutions (`run_cached`). The whole process allocates with mimalloc, as the
//! `picloud` binary does (`benches/support`).
//!
//! - PiCloud runs twice: as shipped (Rhai functions reuse warm instances) and with
//!   `warm_instances: 0` (`picloud_no_warm`: a fresh instance from the script's snapshot
//!   for every request), so both candidate designs stay measured.
//! - `rhai_http/{picloud,picloud_no_warm,native_axum}`: latency of one small handler (route param, query,
//!   builds a map, answers JSON) over one keep-alive `reqwest` client, one request at a
//!   time. Then requests/second with 8 concurrent clients, printed with the ratio.
//! - The same requests/second for a script that only answers `{}`: the ratio of what an
//!   invocation costs around the script (data plane, sandbox, `ctx`, the record).
//! - `rhai_fib20/{shim_via_http,native_axum,native_in_process}`: recursive `fib(20)`.
//! - First request after deploy: a custom loop, printed.
//!
//! Run with `cargo bench -p picloud --bench rhai`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request as HttpRequest};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
mod support;

use support::{TOKEN, admin};

use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use picloud::server::ServeArgs;
use picloud_rhai_shim::{AST, Engine, Host, LogLevel, Request, RuntimeInfo};
use picloud_runtime::DEFAULT_MAX_WARM_INSTANCES;
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The small HTTP handler: route param, query, a map answered as JSON. No storage.
const ITEM_SCRIPT: &str = r#"
let r = ctx.request;
let q = r.query;
let page = if "page" in q { parse_int(q.page) } else { 1 };
#{
    id: r.params.id,
    name: if "name" in q { q.name } else { "anonymous" },
    page: page,
    next: page + 1,
    method: r.method,
    tags: ["bench", "rhai"],
}
"#;

/// A script that does next to nothing (answers `{}`): what an invocation costs around
/// the script itself (data plane, sandbox, building `ctx`, the invocation record).
const EMPTY_SCRIPT: &str = "#{}";

/// fib(20), recursively: 21,891 calls.
const FIB_N: i64 = 20;
const FIB_SCRIPT: &str = r#"
fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } }
fib(20)
"#;
const FIB_20: &str = "6765";

/// Concurrent clients of the requests/second measurement.
const CONCURRENCY: usize = 8;
/// Requests per requests/second round.
const RPS_REQUESTS: usize = 4000;
/// Rounds per server (alternating), the median is reported.
const RPS_ROUNDS: usize = 3;
/// Fresh scripts in the first-request-after-deploy loop.
const DEPLOYS: usize = 10;

// ---------------------------------------------------------------------------------------
// The native baseline.

/// A host with no services, as the native library needs one.
struct NativeHost;

impl Host for NativeHost {
    fn log(&self, _: LogLevel, _: &str, _: Option<&str>) {}
    fn runtime_info(&self) -> RuntimeInfo {
        RuntimeInfo::default()
    }
    fn remaining_fuel(&self) -> u64 {
        u64::MAX
    }
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
    fn module_source(&self, _: &str) -> Option<String> {
        None
    }
}

fn native_engine() -> Engine {
    picloud_rhai_shim::build_engine(Rc::new(NativeHost))
}

/// One engine per thread and its compiled scripts by source.
struct NativeCache {
    engine: Engine,
    asts: HashMap<&'static str, AST>,
}

thread_local! {
    static NATIVE: RefCell<Option<NativeCache>> = const { RefCell::new(None) };
}

/// Runs `source` on this thread's engine, compiling it on this thread's first use.
fn run_native(
    source: &'static str,
    request: &Request,
) -> Result<picloud_rhai_shim::Response, String> {
    NATIVE.with_borrow_mut(|native| {
        let native = native.get_or_insert_with(|| NativeCache {
            engine: native_engine(),
            asts: HashMap::new(),
        });
        if !native.asts.contains_key(source) {
            let ast = picloud_rhai_shim::compile(&native.engine, source)?;
            native.asts.insert(source, ast);
        }
        picloud_rhai_shim::run(&native.engine, &native.asts[source], request).map_err(|e| e.message)
    })
}

/// What PiCloud's data plane does around a script run, natively.
async fn native_handle(
    source: &'static str,
    path_params: Vec<(String, String)>,
    request: HttpRequest,
) -> HttpResponse {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let request = Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        params: path_params,
        body: body.to_vec(),
        event: None,
        app: "bench".into(),
        invocation_id: uuid::Uuid::now_v7().to_string(),
    };
    match run_native(source, &request) {
        Ok(script) => {
            let mut response = HttpResponse::new(axum::body::Body::from(script.body));
            *response.status_mut() =
                StatusCode::from_u16(script.status).unwrap_or(StatusCode::BAD_GATEWAY);
            for (name, value) in script.headers {
                if let (Ok(name), Ok(value)) = (
                    HeaderName::try_from(name.as_str()),
                    HeaderValue::try_from(value.as_str()),
                ) {
                    response.headers_mut().append(name, value);
                }
            }
            response
        }
        Err(message) => (StatusCode::BAD_GATEWAY, message).into_response(),
    }
}

/// Starts the native server on the current runtime; answers its base URL.
async fn start_native() -> String {
    let router = Router::new()
        .route(
            "/items/{id}",
            get(|Path(id): Path<String>, request: HttpRequest| {
                native_handle(ITEM_SCRIPT, vec![("id".into(), id)], request)
            }),
        )
        .route(
            "/fib",
            get(|request: HttpRequest| native_handle(FIB_SCRIPT, Vec::new(), request)),
        )
        .route(
            "/empty",
            get(|request: HttpRequest| native_handle(EMPTY_SCRIPT, Vec::new(), request)),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("native server binds");
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("native server runs")
    });
    base
}

// ---------------------------------------------------------------------------------------
// Talking to the servers.

/// Starts PiCloud's server in-process on the current runtime with `warm_instances` and
/// `cpu_slots` (`Some(0)`: the fair scheduler off); answers its base URL.
async fn start_picloud(
    dir: &std::path::Path,
    warm_instances: u32,
    cpu_slots: Option<usize>,
) -> String {
    support::start_server(ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: Some(TOKEN.into()),
        warm_instances,
        cpu_slots,
        ..ServeArgs::with_data_dir(dir.to_owned())
    })
    .await
}

async fn deploy(http: &reqwest::Client, base: &str, name: &str, source: &str) {
    admin(
        http,
        base,
        reqwest::Method::POST,
        &format!("/apps/bench/functions/{name}/versions?kind=rhai"),
        source.to_owned().into(),
        false,
    )
    .await;
}

async fn route(http: &reqwest::Client, base: &str, path: &str, function: &str) {
    let route = json!({ "method": "GET", "path": path, "function": function });
    admin(
        http,
        base,
        reqwest::Method::POST,
        "/apps/bench/routes",
        route.to_string().into(),
        true,
    )
    .await;
}

/// GET `url` and return the body, which must come with a 200.
async fn get_ok(http: &reqwest::Client, url: &str) -> Bytes {
    let response = http.get(url).send().await.expect("request is answered");
    let status = response.status();
    let body = response.bytes().await.expect("body is read");
    assert_eq!(status, 200, "GET {url}: {}", String::from_utf8_lossy(&body));
    body
}

/// Requests per second of `CONCURRENCY` clients sending `total` GETs of `url` in all.
async fn rps(http: &reqwest::Client, url: &str, total: usize) -> f64 {
    let per_client = total / CONCURRENCY;
    let start = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (http, url) = (http.clone(), url.to_owned());
        clients.spawn(async move {
            for _ in 0..per_client {
                black_box(get_ok(&http, &url).await);
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------------------

fn bench_rhai(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime builds");
    let dir = tempfile::tempdir().expect("temp dir");

    let fresh_dir = tempfile::tempdir().expect("temp dir");
    let unfair_dir = tempfile::tempdir().expect("temp dir");
    let (base, fresh_base, unfair_base, native, http) = tokio.block_on(async {
        // The shipped configuration (warm instances for Rhai functions), and the same
        // server with warm reuse off: a fresh instance from the snapshot per request.
        let base = start_picloud(dir.path(), DEFAULT_MAX_WARM_INSTANCES, None).await;
        let fresh_base = start_picloud(fresh_dir.path(), 0, None).await;
        // As shipped but with the fair CPU scheduler off: its cost on a lone app.
        let unfair_base =
            start_picloud(unfair_dir.path(), DEFAULT_MAX_WARM_INSTANCES, Some(0)).await;
        let native = start_native().await;

        let http = reqwest::Client::new();
        for base in [&base, &fresh_base, &unfair_base] {
            admin(
                &http,
                base,
                reqwest::Method::POST,
                "/apps",
                json!({ "name": "bench" }).to_string().into(),
                true,
            )
            .await;
            deploy(&http, base, "item", ITEM_SCRIPT).await;
            route(&http, base, "/items/:id", "item").await;
            deploy(&http, base, "fib", FIB_SCRIPT).await;
            route(&http, base, "/fib", "fib").await;
            deploy(&http, base, "empty", EMPTY_SCRIPT).await;
            route(&http, base, "/empty", "empty").await;
        }
        (base, fresh_base, unfair_base, native, http)
    });

    // Check the answers once, so the numbers are for requests that work, and the same.
    let item_picloud = format!("{base}/fn/bench/items/42?name=bench&page=3");
    let item_native = format!("{native}/items/42?name=bench&page=3");
    let item_fresh = format!("{fresh_base}/fn/bench/items/42?name=bench&page=3");
    let item_unfair = format!("{unfair_base}/fn/bench/items/42?name=bench&page=3");
    let fib_unfair = format!("{unfair_base}/fn/bench/fib");
    let empty_picloud = format!("{base}/fn/bench/empty");
    let empty_native = format!("{native}/empty");
    let fib_picloud = format!("{base}/fn/bench/fib");
    let fib_native = format!("{native}/fib");
    tokio.block_on(async {
        let expected = json!({ "id": "42", "name": "bench", "page": 3, "next": 4,
                               "method": "GET", "tags": ["bench", "rhai"] });
        let a = get_ok(&http, &item_picloud).await;
        let b = get_ok(&http, &item_native).await;
        assert_eq!(serde_json::from_slice::<Value>(&a).unwrap(), expected);
        assert_eq!(a, b, "both servers answer the same bytes");
        assert_eq!(a, get_ok(&http, &item_fresh).await);
        assert_eq!(&get_ok(&http, &empty_picloud).await[..], b"{}");
        assert_eq!(&get_ok(&http, &empty_native).await[..], b"{}");
        assert_eq!(&get_ok(&http, &fib_picloud).await[..], FIB_20.as_bytes());
        assert_eq!(&get_ok(&http, &fib_native).await[..], FIB_20.as_bytes());
    });

    // (a) latency of the small handler.
    let mut group = c.benchmark_group("rhai_http");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, url) in [
        ("picloud", &item_picloud),
        ("picloud_no_warm", &item_fresh),
        ("picloud_cpu_slots_0", &item_unfair),
        ("native_axum", &item_native),
    ] {
        let (http, url) = (&http, url.as_str());
        group.bench_function(name, |b| {
            b.to_async(&tokio)
                .iter(|| async move { black_box(get_ok(http, url).await) })
        });
    }
    group.finish();

    // (a) requests/second with CONCURRENCY clients, alternating the servers.
    tokio.block_on(async {
        let (mut picloud, mut fresh, mut native) = (Vec::new(), Vec::new(), Vec::new());
        let mut unfair = Vec::new();
        rps(&http, &item_picloud, RPS_REQUESTS / 4).await;
        rps(&http, &item_fresh, RPS_REQUESTS / 4).await;
        rps(&http, &item_unfair, RPS_REQUESTS / 4).await;
        rps(&http, &item_native, RPS_REQUESTS / 4).await;
        for _ in 0..RPS_ROUNDS {
            picloud.push(rps(&http, &item_picloud, RPS_REQUESTS).await);
            fresh.push(rps(&http, &item_fresh, RPS_REQUESTS).await);
            unfair.push(rps(&http, &item_unfair, RPS_REQUESTS).await);
            native.push(rps(&http, &item_native, RPS_REQUESTS).await);
        }
        let u = median(&mut unfair);
        println!(
            "rhai_http rps ({CONCURRENCY} concurrent clients, {RPS_REQUESTS} requests x {RPS_ROUNDS} rounds): \
             picloud {picloud:.0?}, picloud_no_warm {fresh:.0?}, native_axum {native:.0?}"
        );
        let (p, f, n) = (median(&mut picloud), median(&mut fresh), median(&mut native));
        println!(
            "rhai_http rps median: picloud {p:.0} req/s, picloud_no_warm {f:.0} req/s, \
             native_axum {n:.0} req/s; picloud/native = {:.3} (goal >= 0.8), \
             picloud_no_warm/native = {:.3}",
            p / n,
            f / n
        );
        println!(
            "rhai_http rps median, fair scheduler on vs off (cpu_slots 0): {p:.0} vs {u:.0} req/s; \
             on/off = {:.3} (goal >= 0.95)",
            p / u
        );

        // The same for the empty script: the ratio of the per-invocation overhead alone.
        let (mut picloud, mut native) = (Vec::new(), Vec::new());
        for _ in 0..RPS_ROUNDS {
            picloud.push(rps(&http, &empty_picloud, RPS_REQUESTS).await);
            native.push(rps(&http, &empty_native, RPS_REQUESTS).await);
        }
        let (p, n) = (median(&mut picloud), median(&mut native));
        println!(
            "rhai_http rps median, empty script: picloud {p:.0} req/s, native_axum {n:.0} req/s; \
             picloud/native = {:.3}",
            p / n
        );
    });

    // (b) fib(20).
    let engine = native_engine();
    let ast = picloud_rhai_shim::compile(&engine, FIB_SCRIPT).expect("fib compiles");
    let fib_request = Request {
        method: "GET".into(),
        path: "/fib".into(),
        app: "bench".into(),
        ..Request::default()
    };
    let answer = picloud_rhai_shim::run(&engine, &ast, &fib_request).expect("fib runs natively");
    assert_eq!(answer.body, FIB_20.as_bytes(), "fib({FIB_N})");
    let mut group = c.benchmark_group("rhai_fib20");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    for (name, url) in [
        ("shim_via_http", &fib_picloud),
        ("shim_via_http_cpu_slots_0", &fib_unfair),
        ("native_axum", &fib_native),
    ] {
        let (http, url) = (&http, url.as_str());
        group.bench_function(name, |b| {
            b.to_async(&tokio)
                .iter(|| async move { black_box(get_ok(http, url).await) })
        });
    }
    group.bench_function("native_in_process", |b| {
        b.iter(|| {
            black_box(picloud_rhai_shim::run(
                &engine,
                &ast,
                black_box(&fib_request),
            ))
        })
    });
    group.finish();

    // (c) first request after deploy.
    tokio.block_on(async {
        // A new version of a function that is already routed: deploy → first response.
        deploy(&http, &base, "fresh", r#"#{ v: -1 }"#).await;
        route(&http, &base, "/fresh", "fresh").await;
        let url = format!("{base}/fn/bench/fresh");
        let _ = get_ok(&http, &url).await;
        let (mut deploys, mut firsts, mut seconds) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..DEPLOYS {
            let source = format!(
                "let x = ctx.request.query; #{{ v: {i}, tag: \"version {i}\", n: {i} * 2 }}"
            );
            let start = Instant::now();
            deploy(&http, &base, "fresh", &source).await;
            let deployed = Instant::now();
            let body = get_ok(&http, &url).await;
            let first = Instant::now();
            let _ = get_ok(&http, &url).await;
            let second = first.elapsed();
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                body["v"],
                json!(i),
                "the first response is the new version's"
            );
            deploys.push(ms(deployed - start));
            firsts.push(ms(first - deployed));
            seconds.push(ms(second));
        }
        let max = firsts.iter().copied().fold(0.0, f64::max);
        println!(
            "first request after redeploy ({DEPLOYS} distinct scripts, routed function): \
             first response median {:.2} ms, max {max:.2} ms (goal <= 10 ms); \
             warm second request median {:.2} ms; deploy call median {:.2} ms",
            median(&mut firsts),
            median(&mut seconds),
            median(&mut deploys)
        );

        // A new function: deploy → route → first response.
        let (mut deploys, mut after_deploy, mut firsts) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..DEPLOYS {
            let name = format!("new{i}");
            let source = format!("#{{ fresh: {i}, tag: \"new function {i}\" }}");
            let start = Instant::now();
            deploy(&http, &base, &name, &source).await;
            let deployed = Instant::now();
            route(&http, &base, &format!("/new{i}"), &name).await;
            let routed = Instant::now();
            let body = get_ok(&http, &format!("{base}/fn/bench/new{i}")).await;
            let first = Instant::now();
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["fresh"], json!(i));
            deploys.push(ms(deployed - start));
            after_deploy.push(ms(first - deployed));
            firsts.push(ms(first - routed));
        }
        let max = firsts.iter().copied().fold(0.0, f64::max);
        let after_deploy_max = after_deploy.iter().copied().fold(0.0, f64::max);
        println!(
            "first request of a new function ({DEPLOYS} distinct scripts): \
             route call returned -> first response median {:.2} ms, max {max:.2} ms; \
             deploy returned -> first response (incl. the route call) median {:.2} ms, \
             max {after_deploy_max:.2} ms; deploy call median {:.2} ms",
            median(&mut firsts),
            median(&mut after_deploy),
            median(&mut deploys)
        );
    });
}

criterion_group!(benches, bench_rhai);
criterion_main!(benches);
