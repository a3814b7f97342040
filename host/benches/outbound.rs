//! Outbound http per call, against a loopback upstream (axum, `GET /hello`, 19 bytes):
//!
//! - guest: the `example-http-fetch` component makes n `http::fetch` calls per
//!   invocation through the real runtime and the server's http service (the SSRF guard,
//!   the shared client, the invocation log lines); with n = 100 the instantiation is
//!   amortised and the per-call cost shows, n = 1 includes instantiating the component;
//! - outbound: the same calls through `Outbound::fetch` from the host (the guard and
//!   the log lines, no guest);
//! - reqwest: the same GET made with a plain keep-alive `reqwest::Client` from the host,
//!   the baseline.
//!
//! Secrets per call: the `example-secrets` component makes n `secrets::get` calls per
//! invocation (the vault: a row read and an AES-256-GCM open) against n `kv::get` calls
//! of a value of the same size (a row read), through the real runtime and services on
//! SQLite.
//!
//! A plain timing harness (median of several rounds); everything is printed in one run,
//! with the ratios. Run with `cargo bench -p picloud --bench outbound`.

use picloud::outbound::{Outbound, OutboundConfig, Scope};
use picloud::services::HostSdk;
use picloud::services::http::{CallLog, HttpService};
use picloud::storage::Db;
use picloud::vault::{Keys, MasterKey};
use picloud_example_artifacts::{HTTP_FETCH, SECRETS};
use picloud_runtime::http::OutgoingRequest;
use picloud_runtime::{Invocation, LimitOverrides, Limits, Request, Runtime, RuntimeConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Median time of `rounds` runs of `f`, each doing `ops` operations; per operation.
async fn per_op<F, Fut>(rounds: usize, ops: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    f().await; // warm-up
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        f().await;
        times.push(started.elapsed() / ops as u32);
    }
    times.sort();
    times[rounds / 2]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn invocation() -> Invocation {
    Invocation {
        app: "bench".into(),
        function: "fetch".into(),
        version: 1,
        invocation_id: "inv-bench".into(),
        trigger: "http".into(),
        event: None,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let upstream = axum::Router::new().route(
            "/hello",
            axum::routing::get(|| async { "hello from upstream" }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, upstream).await.unwrap() });
        let url = format!("http://{addr}/hello");

        let dir = tempfile::tempdir().unwrap();
        let db_url = format!("sqlite://{}?mode=rwc", dir.path().join("b.db").display());
        let db = Db::open(&db_url).await.unwrap();
        let app = db
            .create_app("bench", &LimitOverrides::default())
            .await
            .unwrap()
            .id;
        let outbound = Arc::new(
            Outbound::new(OutboundConfig {
                allow_cidrs: vec!["127.0.0.1/32".parse().unwrap()],
                ports: vec![addr.port()],
                max_calls: 1000,
                ..OutboundConfig::default()
            })
            .unwrap(),
        );
        let runtime: Runtime<HostSdk> = Runtime::new(&RuntimeConfig::default()).unwrap();
        let compiled = runtime
            .compile(&std::fs::read(HTTP_FETCH).unwrap())
            .unwrap();
        let plain = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();

        for (n, rounds) in [(100, 21), (1, 301)] {
            let (runtime, compiled, db, app, outbound, url) =
                (&runtime, &compiled, &db, &app, &outbound, &url);
            let guest = per_op(rounds, n, || async move {
                let sdk = HostSdk::new(db, app).with_http(HttpService::new(
                    outbound.clone(),
                    None,
                    None,
                    CallLog::default(),
                ));
                let request = Request {
                    method: "POST".into(),
                    path: "/".into(),
                    query: String::new(),
                    headers: vec![],
                    params: vec![],
                    body: format!(r#"{{"url":"{url}","n":{n}}}"#).into_bytes(),
                    event: None,
                };
                let outcome = runtime
                    .invoke(compiled, invocation(), request, Limits::default(), sdk)
                    .await;
                let response = outcome.result.expect("http-fetch succeeds");
                let body = String::from_utf8_lossy(&response.body).into_owned();
                assert!(body.contains(r#""status":200"#), "{body}");
            })
            .await;
            let host = per_op(rounds, n, || async move {
                for _ in 0..n {
                    let mut log = Vec::new();
                    let answer = outbound
                        .fetch(
                            OutgoingRequest {
                                method: "GET".into(),
                                url: url.clone(),
                                headers: vec![],
                                body: vec![],
                                timeout_ms: None,
                            },
                            &Scope::default(),
                            &mut log,
                        )
                        .await
                        .unwrap();
                    assert_eq!(answer.status, 200);
                }
            })
            .await;
            let plain = &plain;
            let direct = per_op(rounds, n, || async move {
                for _ in 0..n {
                    let response = plain.get(url).send().await.unwrap();
                    assert_eq!(response.status(), 200);
                    response.bytes().await.unwrap();
                }
            })
            .await;
            println!(
                "http fetch ×{n} per invocation: guest {} per call, outbound (host) {}, reqwest {} \
                 → guest/reqwest {:.2}×, outbound/reqwest {:.2}×",
                us(guest),
                us(host),
                us(direct),
                guest.as_secs_f64() / direct.as_secs_f64(),
                host.as_secs_f64() / direct.as_secs_f64(),
            );
        }

        // secrets::get vs kv::get, both from the same component.
        let keys = Keys::new(MasterKey::generate().0, None);
        let db = db.with_secret_keys(Arc::new(keys));
        let secrets = runtime
            .compile(&std::fs::read(SECRETS).unwrap())
            .unwrap();
        let value = "sk_live_".to_owned() + &"x".repeat(56);
        db.kv_set(&app, "bench", "k", &serde_json::to_string(&value).unwrap(), None)
            .await
            .unwrap();
        let call = |query: String, body: String| {
            let (runtime, secrets, db, app) = (&runtime, &secrets, &db, &app);
            async move {
                let request = Request {
                    method: "POST".into(),
                    path: "/".into(),
                    query,
                    headers: vec![],
                    params: vec![],
                    body: body.into_bytes(),
                    event: None,
                };
                let outcome = runtime
                    .invoke(
                        secrets,
                        invocation(),
                        request,
                        Limits::default(),
                        HostSdk::new(db, app),
                    )
                    .await;
                String::from_utf8(outcome.result.expect("example-secrets answers").body).unwrap()
            }
        };
        assert_eq!(call("op=set&name=k".into(), value.clone()).await, "set");
        for (n, rounds) in [(100, 21), (1, 301)] {
            let secret = per_op(rounds, n, || async {
                let answer = call(format!("op=get&name=k&repeat={n}"), String::new()).await;
                assert_eq!(answer, value);
            })
            .await;
            let kv = per_op(rounds, n, || async {
                let answer = call(format!("op=kv-get&name=k&repeat={n}"), String::new()).await;
                assert_eq!(answer, format!("{value:?}"));
            })
            .await;
            println!(
                "secrets::get ×{n} per invocation: {} per call, kv::get {} → secrets/kv {:.2}× (goal ≤ 1.2×)",
                us(secret),
                us(kv),
                secret.as_secs_f64() / kv.as_secs_f64(),
            );
        }
        db.close().await;
    });
}
