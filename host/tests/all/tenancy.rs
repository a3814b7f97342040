//! Fair tenancy (issue 17): daily fuel quotas, admission under bursts.

use crate::support::{Backend, TestDb, TestServer, assert_error, hello};
use picloud::quota::Clock;
use picloud::server::ServeArgs;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// A database of `backend` for one test (`None`: PostgreSQL is not reachable locally).
async fn database(backend: Backend) -> Option<Option<TestDb>> {
    match backend {
        Backend::Sqlite => Some(None),
        Backend::Postgres => Some(Some(TestDb::new(Backend::Postgres).await?)),
    }
}

/// A server on `dir` (and `db`, else SQLite in `dir`) counting days by `clock`.
async fn start(dir: &std::path::Path, db: Option<&TestDb>, clock: &Clock) -> TestServer {
    TestServer::start_with(ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: db.map(|d| d.url.clone()),
        admin_token: Some(crate::support::TOKEN.into()),
        clock: clock.clone(),
        ..ServeArgs::with_data_dir(dir.to_owned())
    })
    .await
}

async fn quota_is_refused_until_midnight_and_survives_a_restart(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::default();
    let Some(db) = database(backend).await else {
        return;
    };
    let server = start(dir.path(), db.as_ref(), &clock).await;
    for app in ["metered", "free"] {
        server.create_app(app).await;
        server.deploy(app, "hello", hello(), Some("GET /")).await;
    }
    // A quota of 1 fuel: the first invocation starts (nothing used yet), and uses more.
    let app = server
        .admin(
            Method::PUT,
            "/apps/metered/limits",
            Some(json!({ "daily_fuel": 1 })),
        )
        .await;
    assert_eq!(app["effective_limits"]["daily_fuel"], 1);
    assert_eq!(server.get("/fn/metered/").await.status(), 200);

    let refused = server.get("/fn/metered/").await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let seconds_left = picloud::quota::seconds_to_midnight(clock.now_ms());
    assert!(
        retry_after.abs_diff(seconds_left) <= 5,
        "Retry-After {retry_after} is the time to midnight UTC ({seconds_left} s)"
    );
    let body = assert_error(refused, 429, "quota_exceeded").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("daily fuel quota"),
        "{body}"
    );
    assert_eq!(
        server.get("/fn/free/").await.status(),
        200,
        "other apps are not affected"
    );

    // The day's count is in the database: a restarted server refuses too.
    server.stop().await;
    let server = start(dir.path(), db.as_ref(), &clock).await;
    assert_error(server.get("/fn/metered/").await, 429, "quota_exceeded").await;

    // The next UTC day has a quota of its own.
    clock.advance(Duration::from_secs(24 * 60 * 60));
    assert_eq!(server.get("/fn/metered/").await.status(), 200);
    assert_error(server.get("/fn/metered/").await, 429, "quota_exceeded").await;
    let usage = server
        .admin(Method::GET, "/apps/metered/usage?days=2", None)
        .await;
    let invocations: Vec<i64> = usage
        .as_array()
        .unwrap()
        .iter()
        .map(|day| day["invocations"].as_i64().unwrap())
        .collect();
    assert_eq!(
        invocations,
        [1, 1],
        "refused requests are not invocations: {usage}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_past_its_daily_fuel_quota_is_refused_until_midnight_utc_on_sqlite() {
    quota_is_refused_until_midnight_and_survives_a_restart(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_past_its_daily_fuel_quota_is_refused_until_midnight_utc_on_postgresql() {
    quota_is_refused_until_midnight_and_survives_a_restart(Backend::Postgres).await;
}

async fn daily_fuel_is_exact_under_concurrency(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::default();
    let Some(db) = database(backend).await else {
        return;
    };
    let server = start(dir.path(), db.as_ref(), &clock).await;
    server.create_app("busy").await;
    server.deploy("busy", "hello", hello(), Some("GET /")).await;
    server
        .admin(
            Method::PUT,
            "/apps/busy/limits",
            Some(json!({ "daily_fuel": 1u64 << 60 })),
        )
        .await;
    // Waves of concurrent invocations, below the app's concurrency cap.
    for _ in 0..6 {
        let calls = (0..16).map(|_| server.get("/fn/busy/"));
        for response in futures_util::future::join_all(calls).await {
            assert_eq!(response.status(), 200);
        }
    }
    let records = server
        .admin(Method::GET, "/apps/busy/invocations?limit=1000", None)
        .await;
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 96);
    let fuel: i64 = records
        .iter()
        .map(|r| r["fuel_used"].as_i64().unwrap())
        .sum();
    let usage: Value = server
        .admin(Method::GET, "/apps/busy/usage?days=1", None)
        .await;
    assert_eq!(usage[0]["invocations"], 96);
    assert_eq!(usage[0]["fuel_used"].as_i64().unwrap(), fuel, "{usage}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_fuel_count_is_exact_under_concurrent_invocations_on_sqlite() {
    daily_fuel_is_exact_under_concurrency(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_fuel_count_is_exact_under_concurrent_invocations_on_postgresql() {
    daily_fuel_is_exact_under_concurrency(Backend::Postgres).await;
}
