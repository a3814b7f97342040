//! Events (issue 14), per backend (SQLite in a temp dir, and a fresh PostgreSQL database
//! at `PICLOUD_TEST_POSTGRES` or the local default), through the real server in-process:
//!
//! - throughput: a Rhai function writes 100 kv entries per request; a change trigger on
//!   their collection runs a trivial Rhai handler (`"ok"`) for each. Events per second
//!   from the first write to the last delivery done (goal ≥ 2,000/s on SQLite), beside
//!   the same writes to a collection no trigger watches (on SQLite each write is a commit
//!   and so a disk flush: the writes alone bound the events);
//! - the dispatcher alone: 5,000 documents imported in one transaction (no writer
//!   competing), events per second until all are delivered;
//! - latency: one write at a time (each after the last one's handler ran); the handler
//!   stores `time::now()`, and write → handler start is that minus the event's `at`
//!   (ms granularity; goal p50 ≤ 5 ms);
//! - realtime fan-out: 1,000 subscribers of one topic over SSE on loopback; one publish
//!   (a function's `pubsub::publish`, then one `publish_durable`), time from sending the
//!   request to the last subscriber receiving the message.
//!
//! Run with `cargo bench -p picloud --bench events`.

mod support;

use picloud::server::ServeArgs;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{TOKEN, admin, start_server};

/// Events of the throughput run: requests × writes per request.
const REQUESTS: usize = 50;
const WRITES_PER_REQUEST: usize = 100;
/// Writes of the latency run.
const LATENCY_SAMPLES: usize = 200;
/// Subscribers of the fan-out run.
const SUBSCRIBERS: usize = 1_000;

async fn deploy(http: &reqwest::Client, base: &str, name: &str, script: &str, route: Option<&str>) {
    admin(
        http,
        base,
        Method::POST,
        &format!("/apps/bench/functions/{name}/versions?kind=rhai"),
        script.to_owned().into(),
        false,
    )
    .await;
    if let Some(route) = route {
        let (method, path) = route.split_once(' ').unwrap();
        let body = json!({ "method": method, "path": path, "function": name });
        admin(
            http,
            base,
            Method::POST,
            "/apps/bench/routes",
            body.to_string().into(),
            true,
        )
        .await;
    }
}

/// Sends the [`REQUESTS`] write requests to `POST /fn/bench/{route}/{b}` from four
/// writers (`PICLOUD_BENCH_WRITERS`); the handlers share the app's running cap with them, so a writer answered
/// 429 tries again.
async fn write_all(http: &reqwest::Client, base: &str, route: &str) {
    let writers: usize = std::env::var("PICLOUD_BENCH_WRITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let mut writes = Vec::new();
    for w in 0..writers {
        let (http, url) = (http.clone(), format!("{base}/fn/bench/{route}"));
        writes.push(tokio::spawn(async move {
            for b in (w..REQUESTS).step_by(writers) {
                loop {
                    let r = http.post(format!("{url}/{b}")).send().await.unwrap();
                    match r.status().as_u16() {
                        200 => break,
                        429 => tokio::time::sleep(Duration::from_millis(20)).await,
                        other => panic!("{other}: {}", r.text().await.unwrap()),
                    }
                }
            }
        }));
    }
    for w in writes {
        w.await.unwrap();
    }
}

async fn trigger(http: &reqwest::Client, base: &str, name: &str, function: &str, collection: &str) {
    let body = json!({ "name": name, "kind": "change", "function": function,
                       "source": "kv", "collection": collection });
    admin(
        http,
        base,
        Method::POST,
        "/apps/bench/triggers",
        body.to_string().into(),
        true,
    )
    .await;
}

/// Deliveries done so far, read from the database (a pool of the bench's own).
async fn done(pool: &sqlx::AnyPool) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) AS n FROM deliveries WHERE status = 'done'")
        .fetch_one(pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

async fn run(backend: &str, url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let db_url = url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("picloud.db").display()
        )
    });
    let base = start_server(ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: Some(db_url.clone()),
        admin_token: Some(TOKEN.into()),
        secret_key: Some("dGVzdC1zZWNyZXQta2V5LW9mLTMyLWJ5dGVzLSEhISE=".into()),
        ..ServeArgs::with_data_dir(dir.path().to_owned())
    })
    .await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&db_url)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    admin(
        &http,
        &base,
        Method::POST,
        "/apps",
        json!({ "name": "bench" }).to_string().into(),
        true,
    )
    .await;
    // Generous limits: the bench measures the event path, not admission.
    let limits = json!({ "daily_fuel": 1_000_000_000_000_000_u64 });
    admin(
        &http,
        &base,
        Method::PUT,
        "/apps/bench/limits",
        limits.to_string().into(),
        true,
    )
    .await;
    // Writes `WRITES_PER_REQUEST` kv entries into `collection` per request.
    let writer = |collection: &str| {
        format!(
            r#"for i in 0..{WRITES_PER_REQUEST} {{ kv::set("{collection}", `${{ctx.request.params.b}}-${{i}}`, i); }} "ok""#
        )
    };
    deploy(&http, &base, "writer", &writer("e"), Some("POST /write/:b")).await;
    // The same writes to a collection no trigger watches: what the writes alone cost.
    deploy(
        &http,
        &base,
        "plain",
        &writer("plain"),
        Some("POST /plain/:b"),
    )
    .await;
    deploy(&http, &base, "noop", r#""ok""#, None).await;
    deploy(
        &http,
        &base,
        "stamp",
        r#"kv::set("lat", ctx.event.key, time::now()); "ok""#,
        None,
    )
    .await;
    deploy(
        &http,
        &base,
        "one",
        r#"kv::set("l", ctx.request.params.k, 1); "ok""#,
        Some("POST /one/:k"),
    )
    .await;
    trigger(&http, &base, "noop", "noop", "e").await;
    let body = json!({ "name": "imported", "kind": "change", "function": "noop",
                       "source": "docs", "collection": "imported" });
    admin(
        &http,
        &base,
        Method::POST,
        "/apps/bench/triggers",
        body.to_string().into(),
        true,
    )
    .await;
    trigger(&http, &base, "stamp", "stamp", "l").await;

    // Throughput: first the writes alone, then the same writes with a trigger.
    let events = (REQUESTS * WRITES_PER_REQUEST) as i64;
    let start = Instant::now();
    write_all(&http, &base, "plain").await;
    let alone = start.elapsed();
    println!(
        "{backend}: {events} kv writes ({WRITES_PER_REQUEST} per request) with no trigger: {:.2} s, {:.0} writes/s",
        alone.as_secs_f64(),
        events as f64 / alone.as_secs_f64()
    );
    let start = Instant::now();
    write_all(&http, &base, "write").await;
    let written = start.elapsed();
    while done(&pool).await < events {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "deliveries finished"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let total = start.elapsed();
    println!(
        "{backend}: {events} events (kv writes, {WRITES_PER_REQUEST} per request) written in {:.2} s, \
         all delivered to a trivial handler in {:.2} s: {:.0} events/s (goal ≥ 2,000/s on SQLite), \
         {:.2}× the writes alone",
        written.as_secs_f64(),
        total.as_secs_f64(),
        events as f64 / total.as_secs_f64(),
        (events as f64 / total.as_secs_f64()) / (events as f64 / alone.as_secs_f64())
    );

    // The dispatcher alone: 5,000 documents imported in one transaction (the storage
    // layer's bulk import, with their change events), then delivered.
    let db = picloud::storage::Db::open(&db_url).await.unwrap();
    let app = db.get_app("bench").await.unwrap().unwrap();
    let docs: Vec<(String, String)> = (0..events)
        .map(|i| (format!("d{i}"), json!({ "n": i }).to_string()))
        .collect();
    let before = done(&pool).await;
    let start = Instant::now();
    db.docs_import(&app.id, "imported", &docs).await.unwrap();
    let imported = start.elapsed();
    while done(&pool).await < before + events {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "deliveries finished"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let total = start.elapsed();
    println!(
        "{backend}: {events} events imported in one transaction ({:.2} s), delivered to a trivial \
         handler {:.2} s after the import began: {:.0} events/s through the dispatcher alone",
        imported.as_secs_f64(),
        total.as_secs_f64(),
        events as f64 / (total - imported).as_secs_f64()
    );
    db.close().await;

    // Latency: write → handler start, one event at a time.
    let mut latencies = Vec::with_capacity(LATENCY_SAMPLES);
    for k in 0..LATENCY_SAMPLES {
        let before = done(&pool).await;
        let r = http
            .post(format!("{base}/fn/bench/one/{k}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        while done(&pool).await <= before {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        use sqlx::Row;
        let row = sqlx::query(
            "SELECT d.event AS event FROM deliveries d WHERE d.trigger_name = 'stamp' \
             ORDER BY d.id DESC LIMIT 1",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let event: Value =
            serde_json::from_str(&row.try_get::<String, _>("event").unwrap()).unwrap();
        let key = event["key"].as_str().unwrap().to_owned();
        assert_eq!(key, k.to_string());
        let at = event["at"].as_i64().unwrap();
        let stamped = sqlx::query(
            "SELECT CAST(value AS TEXT) AS value FROM kv_entries WHERE collection = 'lat' AND key = $1",
        )
        .bind(&key)
        .fetch_one(&pool)
        .await
        .unwrap();
        let stamped: String = stamped.try_get("value").unwrap();
        let stamped: i64 = stamped.trim().parse().unwrap();
        latencies.push(stamped - at);
    }
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!(
        "{backend}: write → handler start over {LATENCY_SAMPLES} single writes: p50 {} ms, p99 {} ms, max {} ms (goal p50 ≤ 5 ms)",
        pct(0.5),
        pct(0.99),
        latencies[latencies.len() - 1]
    );

    fan_out(backend, &http, &base).await;
}

/// One publish to [`SUBSCRIBERS`] SSE subscribers: time to the last delivery.
async fn fan_out(backend: &str, http: &reqwest::Client, base: &str) {
    admin(
        http,
        base,
        Method::PUT,
        "/apps/bench/topics/ticks",
        json!({ "external": true }).to_string().into(),
        true,
    )
    .await;
    deploy(
        http,
        base,
        "token",
        r#"#{ token: pubsub::subscriber_token("ticks", 600) }"#,
        Some("GET /token"),
    )
    .await;
    deploy(
        http,
        base,
        "tick",
        r#"if ctx.request.params.kind == "durable" { pubsub::publish_durable("ticks", #{ n: 1 }) } else { pubsub::publish("ticks", #{ n: 1 }) } "ok""#,
        Some("POST /tick/:kind"),
    )
    .await;
    let token: Value = http
        .get(format!("{base}/fn/bench/token"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    for kind in ["realtime", "durable"] {
        let ready = std::sync::Arc::new(tokio::sync::Barrier::new(SUBSCRIBERS + 1));
        let mut subscribers = Vec::with_capacity(SUBSCRIBERS);
        for _ in 0..SUBSCRIBERS {
            // A client each: one connection per subscriber, as browsers have.
            let client = reqwest::Client::new();
            let (url, ready) = (
                format!("{base}/rt/bench/ticks?token={token}"),
                ready.clone(),
            );
            subscribers.push(tokio::spawn(async move {
                let mut response = client.get(url).send().await.unwrap();
                assert_eq!(response.status(), 200);
                ready.wait().await;
                let mut seen = String::new();
                while !seen.contains("data:") {
                    let chunk = response.chunk().await.unwrap().expect("the stream goes on");
                    seen.push_str(std::str::from_utf8(&chunk).unwrap());
                }
                Instant::now()
            }));
        }
        ready.wait().await;
        let start = Instant::now();
        let r = http
            .post(format!("{base}/fn/bench/tick/{kind}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let answered = start.elapsed();
        let mut arrivals = Vec::with_capacity(SUBSCRIBERS);
        for s in subscribers {
            arrivals.push(s.await.unwrap() - start);
        }
        arrivals.sort_unstable();
        println!(
            "{backend}: one {kind} publish to {SUBSCRIBERS} SSE subscribers: the publishing request answered in {:.1} ms; first delivery {:.1} ms, median {:.1} ms, last {:.1} ms after the request was sent",
            answered.as_secs_f64() * 1e3,
            arrivals[0].as_secs_f64() * 1e3,
            arrivals[SUBSCRIBERS / 2].as_secs_f64() * 1e3,
            arrivals[SUBSCRIBERS - 1].as_secs_f64() * 1e3,
        );
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        run("sqlite", None).await;
        use sqlx::Connection;
        let base = std::env::var("PICLOUD_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let Ok(mut admin) = sqlx::PgConnection::connect(&base).await else {
            println!("postgres: not reachable at {base}, skipped");
            return;
        };
        let name = format!("picloud_bench_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
        run("postgres", Some(url)).await;
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    });
}
