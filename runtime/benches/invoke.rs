//! In-process cost of one invocation of the example-hello component: a fresh `Store`
//! (fuel, epoch deadline, memory limiter, WASI context), instantiation from the cached
//! instance-pre, and the call of `handler.handle` for `GET /?name=bench`, through
//! `Runtime<Unavailable>::invoke` with `Limits::default()`. Compilation happens once,
//! before measuring; no HTTP, database or SDK services are involved.
//!
//! - `invoke/hello`: on a tokio multi-thread runtime (as the server runs it).
//! - `invoke/hello_current_thread`: the same on a current-thread runtime, which leaves
//!   out cross-thread wake-ups.
//!
//! Run with `cargo bench -p picloud-runtime --bench invoke`.

use criterion::{Criterion, criterion_group, criterion_main};
use picloud_example_artifacts::HELLO;
use picloud_runtime::{Invocation, Limits, Request, Runtime, RuntimeConfig, Unavailable};
use std::hint::black_box;

fn invocation() -> Invocation {
    Invocation {
        app: "bench".into(),
        function: "hello".into(),
        version: 1,
        invocation_id: "inv-bench".into(),
        trigger: "http".into(),
        event: None,
    }
}

fn request() -> Request {
    Request {
        method: "GET".into(),
        path: "/".into(),
        query: "name=bench".into(),
        headers: vec![],
        params: vec![],
        body: vec![],
        event: None,
    }
}

fn bench_invoke(c: &mut Criterion) {
    let runtime: Runtime<Unavailable> =
        Runtime::new(&RuntimeConfig::default()).expect("runtime builds");
    let bytes = std::fs::read(HELLO).expect("example-hello is built");
    let compiled = runtime.compile(&bytes).expect("example-hello compiles");

    let multi = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime builds");
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime builds");

    // Check the answer once, so the numbers are for a call that works.
    let outcome = multi.block_on(runtime.invoke(
        &compiled,
        invocation(),
        request(),
        Limits::default(),
        Unavailable,
    ));
    let response = outcome.result.expect("hello succeeds");
    assert_eq!(response.body, b"Hello, bench!");

    let (rt, compiled) = (&runtime, &compiled);
    let mut group = c.benchmark_group("invoke");
    group.bench_function("hello", |b| {
        b.to_async(&multi).iter(|| async move {
            let outcome = rt
                .invoke(
                    compiled,
                    invocation(),
                    request(),
                    Limits::default(),
                    Unavailable,
                )
                .await;
            black_box(outcome.result.expect("hello succeeds"))
        })
    });
    group.bench_function("hello_current_thread", |b| {
        b.to_async(&current).iter(|| async move {
            let outcome = rt
                .invoke(
                    compiled,
                    invocation(),
                    request(),
                    Limits::default(),
                    Unavailable,
                )
                .await;
            black_box(outcome.result.expect("hello succeeds"))
        })
    });
    group.finish();
}

criterion_group!(benches, bench_invoke);
criterion_main!(benches);
