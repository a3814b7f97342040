//! End users: what a login and a session check cost.
//!
//! - login: `users::login` through the `example-users` component, the real runtime and
//!   the server's users service on SQLite — dominated by argon2id (m = 19,456 KiB,
//!   t = 2, p = 1); the median of 31 logins, and the bare hash (`Passwords::hash`) for
//!   comparison;
//! - verify: n `users::verify` calls per invocation against n `kv::get` calls (goal:
//!   `verify` ≤ 2× a `kv::get`), n = 100 (the per-call cost) and n = 1 (with the
//!   instantiation).
//!
//! A plain timing harness (median of several rounds); everything is printed in one run,
//! with the ratios. Run with `cargo bench -p picloud --bench users`.

use picloud::services::HostSdk;
use picloud::services::users::{ARGON2_M_KIB, ARGON2_P, ARGON2_T, Passwords};
use picloud::storage::Db;
use picloud_example_artifacts::USERS;
use picloud_runtime::{Invocation, LimitOverrides, Limits, Request, Runtime, RuntimeConfig};
use serde_json::{Value, json};
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

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db_url = format!("sqlite://{}?mode=rwc", dir.path().join("b.db").display());
        let db = Db::open(&db_url).await.unwrap();
        let app = db
            .create_app("bench", &LimitOverrides::default())
            .await
            .unwrap()
            .id;
        let runtime: Runtime<HostSdk> = Runtime::new(&RuntimeConfig::default()).unwrap();
        let users = runtime.compile(&std::fs::read(USERS).unwrap()).unwrap();
        let call = |body: Value| {
            let (runtime, users, db, app) = (&runtime, &users, &db, &app);
            async move {
                let request = Request {
                    method: "POST".into(),
                    path: "/".into(),
                    query: String::new(),
                    headers: vec![],
                    params: vec![],
                    body: body.to_string().into_bytes(),
                    event: None,
                };
                let invocation = Invocation {
                    app: "bench".into(),
                    function: "users".into(),
                    version: 1,
                    invocation_id: "inv-bench".into(),
                    trigger: "http".into(),
                    event: None,
                };
                let outcome = runtime
                    .invoke(users, invocation, request, Limits::default(), HostSdk::new(db, app))
                    .await;
                let body = outcome.result.expect("example-users answers").body;
                serde_json::from_slice::<Value>(&body).unwrap()
            }
        };
        let created = call(json!({ "op": "create", "user": { "email": "ada@example.com", "password": "correct horse battery", "roles": ["admin"] } })).await;
        assert!(created["ok"]["id"].is_string(), "{created}");

        let login = json!({ "op": "login", "email": "ada@example.com", "password": "correct horse battery" });
        let logged_in = per_op(31, 1, || async {
            let answer = call(login.clone()).await;
            assert!(answer["ok"].is_string(), "{answer}");
        })
        .await;
        let passwords = Passwords::shared();
        let app_id: Arc<str> = app.as_str().into();
        let hash = per_op(31, 1, || async {
            passwords.hash(&app_id, "correct horse battery").await.unwrap();
        })
        .await;
        println!(
            "login (argon2id m={ARGON2_M_KIB} KiB, t={ARGON2_T}, p={ARGON2_P}): median {:.1} ms \
             through a component; the hash alone {:.1} ms",
            logged_in.as_secs_f64() * 1e3,
            hash.as_secs_f64() * 1e3,
        );

        let token = call(login.clone()).await["ok"].as_str().unwrap().to_owned();
        db.kv_set(&app, "bench", "k", &json!({ "id": "x".repeat(36), "roles": ["admin"] }).to_string(), None)
            .await
            .unwrap();
        for (n, rounds) in [(100, 21), (1, 301)] {
            let verify = per_op(rounds, n, || async {
                let answer = call(json!({ "op": "verify", "token": token, "repeat": n })).await;
                assert_eq!(answer["ok"]["email"], "ada@example.com", "{answer}");
            })
            .await;
            let kv = per_op(rounds, n, || async {
                let answer = call(json!({ "op": "kv-get", "key": "k", "repeat": n })).await;
                assert_eq!(answer["ok"]["roles"], json!(["admin"]), "{answer}");
            })
            .await;
            println!(
                "users::verify ×{n} per invocation: {} per call, kv::get {} → verify/kv {:.2}× (goal ≤ 2×)",
                us(verify),
                us(kv),
                verify.as_secs_f64() / kv.as_secs_f64(),
            );
        }
        db.close().await;
    });
}
