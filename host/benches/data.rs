//! The data layer, per backend (SQLite in a temp dir with the server's settings, and a
//! fresh PostgreSQL database at `PICLOUD_TEST_POSTGRES` or the local default):
//!
//! - docs: bulk load of 100,000 documents (one transaction), then single inserts into
//!   the 100k collection, then `find` on 100k documents: an equality on a field (100
//!   matches, first 10 returned) and a range with sort, each without and with a
//!   declared index;
//! - kv from a guest vs directly: the `example-kv-loop` component does n `kv.get` (or
//!   `kv.set`) calls per invocation through the real runtime and the server's kv service;
//!   the same storage calls made directly (`Db::kv_get` / `Db::kv_set`) are the baseline.
//!   With n = 100 the instantiation is amortised and the per-call cost of crossing the
//!   WIT boundary shows; n = 1 includes instantiating the component.
//!
//! A plain timing harness (median of several rounds); everything is printed in one run,
//! with the ratios. Run with `cargo bench -p picloud --bench data`.

use picloud::services::HostSdk;
use picloud::storage::Db;
use picloud_example_artifacts::KV_LOOP;
use picloud_runtime::{Invocation, LimitOverrides, Limits, Request, Runtime, RuntimeConfig};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const DOCS: usize = 100_000;

/// Median time of `rounds` runs of `f`, each doing `ops` operations; per operation.
async fn per_op<F, Fut>(rounds: usize, ops: usize, mut f: F) -> Duration
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    f(usize::MAX).await; // warm-up
    let mut times = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let started = Instant::now();
        f(round).await;
        times.push(started.elapsed() / ops as u32);
    }
    times.sort();
    times[rounds / 2]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

async fn open(backend: &str) -> Option<(Db, Box<dyn std::any::Any>)> {
    match backend {
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("b.db").display());
            Some((Db::open(&url).await.unwrap(), Box::new(dir)))
        }
        _ => {
            use sqlx::Connection;
            let base = std::env::var("PICLOUD_TEST_POSTGRES")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let Ok(mut admin) = sqlx::PgConnection::connect(&base).await else {
                println!("postgres: not reachable at {base}, skipped");
                return None;
            };
            let name = format!("picloud_bench_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .unwrap();
            let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
            struct Drop_(String, String);
            impl Drop for Drop_ {
                fn drop(&mut self) {
                    let (base, name) = (self.0.clone(), self.1.clone());
                    let _ = std::thread::spawn(move || {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .unwrap()
                            .block_on(async {
                                use sqlx::Connection;
                                if let Ok(mut c) = sqlx::PgConnection::connect(&base).await {
                                    let _ = sqlx::query(&format!(
                                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                    ))
                                    .execute(&mut c)
                                    .await;
                                }
                            })
                    })
                    .join();
                }
            }
            Some((Db::open(&url).await.unwrap(), Box::new(Drop_(base, name))))
        }
    }
}

fn doc(i: usize) -> Value {
    json!({
        "category": format!("c{:04}", i % 1000),
        "price": (i * 7919) % 100_000,
        "title": format!("item number {i}"),
        "tags": ["bench", if i.is_multiple_of(2) { "even" } else { "odd" }],
    })
}

async fn bench_docs(backend: &str, db: &Db, app: &str) {
    let docs: Vec<(String, String)> = (0..DOCS)
        .map(|i| (format!("d{i:06}"), doc(i).to_string()))
        .collect();
    let started = Instant::now();
    for chunk in docs.chunks(10_000) {
        db.docs_import(app, "items", chunk).await.unwrap();
    }
    let load = started.elapsed();
    println!(
        "{backend}: docs bulk load of {DOCS}: {:.2} s ({:.0} docs/s)",
        load.as_secs_f64(),
        DOCS as f64 / load.as_secs_f64()
    );

    let mut next = DOCS;
    let insert = per_op(7, 20, |_| {
        let start = next;
        next += 20;
        async move {
            for i in start..start + 20 {
                db.docs_insert(app, "items", &format!("d{i:06}"), &doc(i).to_string())
                    .await
                    .unwrap();
            }
        }
    })
    .await;
    println!(
        "{backend}: docs insert into {DOCS}: {} per document",
        us(insert)
    );

    let equality = json!({"category": "c0042"});
    let range = json!({"price": {"$gte": 50_000, "$lt": 50_100}});
    let sort = vec!["-price".to_owned()];
    let find = |query: Value, sort: Vec<String>| async move {
        let found = db
            .docs_find(app, "items", &query, &sort, 10, 0)
            .await
            .unwrap();
        assert!(!found.is_empty());
    };
    let eq_plain = per_op(5, 1, |_| find(equality.clone(), vec![])).await;
    let range_plain = per_op(5, 1, |_| find(range.clone(), sort.clone())).await;
    db.docs_create_index(app, "items", "category")
        .await
        .unwrap();
    db.docs_create_index(app, "items", "price").await.unwrap();
    let eq_indexed = per_op(51, 1, |_| find(equality.clone(), vec![])).await;
    let range_indexed = per_op(51, 1, |_| find(range.clone(), sort.clone())).await;
    let plan = db.docs_explain(app, "items", &equality, &[]).await.unwrap();
    assert!(
        plan.iter().any(|l| l.contains("docs_ix_")),
        "the index is used: {plan:?}"
    );
    println!(
        "{backend}: docs find on {DOCS}, equality (first 10 of 100): {} without index, {} indexed ({:.0}× faster)",
        us(eq_plain),
        us(eq_indexed),
        eq_plain.as_secs_f64() / eq_indexed.as_secs_f64()
    );
    println!(
        "{backend}: docs find on {DOCS}, range + sort (first 10): {} without index, {} indexed ({:.0}× faster)",
        us(range_plain),
        us(range_indexed),
        range_plain.as_secs_f64() / range_indexed.as_secs_f64()
    );
}

fn invocation() -> Invocation {
    Invocation {
        app: "bench".into(),
        function: "kv-loop".into(),
        version: 1,
        invocation_id: "inv-bench".into(),
        trigger: "http".into(),
        event: None,
    }
}

fn request(op: &str, n: usize) -> Request {
    Request {
        method: "GET".into(),
        path: "/".into(),
        query: format!("op={op}&n={n}"),
        headers: vec![],
        params: vec![],
        body: vec![],
        event: None,
    }
}

async fn bench_kv(backend: &str, db: &Db, app: &str) {
    let runtime: Runtime<HostSdk> = Runtime::new(&RuntimeConfig::default()).unwrap();
    let compiled = runtime.compile(&std::fs::read(KV_LOOP).unwrap()).unwrap();
    db.kv_set(app, "bench", "k", "0", None).await.unwrap();
    for (op, n, rounds) in [
        ("get", 100, 21),
        ("get", 1, 201),
        ("set", 100, 5),
        ("set", 1, 51),
    ] {
        let (runtime, compiled) = (&runtime, &compiled);
        let guest = per_op(rounds, n, |_| async move {
            let outcome = runtime
                .invoke(
                    compiled,
                    invocation(),
                    request(op, n),
                    Limits::default(),
                    HostSdk::new(db, app),
                )
                .await;
            let response = outcome.result.expect("kv-loop succeeds");
            assert_eq!(response.body, n.to_string().as_bytes());
        })
        .await;
        let direct = per_op(rounds, n, |round| async move {
            for i in 0..n {
                if op == "get" {
                    db.kv_get(app, "bench", "k").await.unwrap();
                } else {
                    let value = (round.wrapping_add(i)).to_string();
                    db.kv_set(app, "bench", "k", &value, None).await.unwrap();
                }
            }
        })
        .await;
        println!(
            "{backend}: kv {op} ×{n} per invocation: guest {} per call, direct {} per call → guest/direct {:.2}×",
            us(guest),
            us(direct),
            guest.as_secs_f64() / direct.as_secs_f64()
        );
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
        for backend in ["sqlite", "postgres"] {
            let Some((db, _guard)) = open(backend).await else {
                continue;
            };
            let app = db
                .create_app("bench", &LimitOverrides::default())
                .await
                .unwrap()
                .id;
            bench_kv(backend, &db, &app).await;
            bench_docs(backend, &db, &app).await;
            db.close().await;
        }
    });
}
