//! Fair tenancy (issue 17): how a victim app fares beside CPU-bound aggressor apps.
//!
//! One PiCloud server in-process (tokio multi-thread runtime, one worker per core, an
//! embedded SQLite database in a temp dir) and a load generator on a thread of its own
//! (one current-thread runtime, like `wrk -t1`), over loopback:
//! - the victim, app `victim`: `GET /fn/victim/hello` (example-hello), 4 connections;
//! - aggressors, each an app of its own, 16 connections each:
//!   `rhai-loop` (`let x = 0; loop { x += 1; }`, ends at Rhai's operation limit),
//!   `wasm-loop` (a component spinning until its fuel runs out),
//!   `rhai-fib` (a CPU-heavy Rhai `fib(22)` that completes).
//!
//! Each scenario runs for [`MEASURE`] after [`WARM_UP`], first with the fair scheduler
//! (the default) and then with it off (`cpu_slots: 0`, invocations in tokio's order), each
//! on a fresh server. It prints the victim's requests/s, p50 and p99 latency, the ratios
//! to the victim alone, and every aggressor's own completed requests/s (fairness must not
//! starve the aggressors either).
//!
//! Run with `cargo bench -p picloud --bench fairness`.

mod support;

use support::{TOKEN, admin};

use picloud::server::ServeArgs;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Load before measuring (warm instances, compile caches, connections).
const WARM_UP: Duration = Duration::from_millis(700);
/// Length of one measurement.
const MEASURE: Duration = Duration::from_secs(4);
/// Connections of the victim (as `wrk -c4`).
const VICTIM_CONNECTIONS: usize = 4;
/// Connections of each aggressor (as `wrk -c16`).
const AGGRESSOR_CONNECTIONS: usize = 16;

const RHAI_LOOP: &str = "let x = 0; loop { x += 1; }";
const RHAI_FIB: &str =
    "fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } }\nfib(22).to_string()";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Aggressor {
    RhaiLoop,
    WasmLoop,
    RhaiFib,
}

impl Aggressor {
    fn app(self) -> &'static str {
        match self {
            Aggressor::RhaiLoop => "rhai-loop",
            Aggressor::WasmLoop => "wasm-loop",
            Aggressor::RhaiFib => "rhai-fib",
        }
    }
}

/// What one group of connections achieved.
#[derive(Default)]
struct Load {
    answered: u64,
    latencies_us: Vec<u32>,
}

impl Load {
    fn per_second(&self) -> f64 {
        self.answered as f64 / MEASURE.as_secs_f64()
    }
    fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        self.latencies_us.sort_unstable();
        let at = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[at]) / 1000.0
    }
}

/// Creates app `app` with function `f` (bytes of `kind`) on route `GET /f`.
async fn deploy(http: &reqwest::Client, base: &str, app: &str, kind: &str, bytes: Vec<u8>) {
    admin(
        http,
        base,
        reqwest::Method::POST,
        "/apps",
        json!({ "name": app }).to_string().into(),
        true,
    )
    .await;
    admin(
        http,
        base,
        reqwest::Method::POST,
        &format!("/apps/{app}/functions/f/versions?kind={kind}"),
        bytes.into(),
        false,
    )
    .await;
    let route = json!({ "method": "GET", "path": "/f", "function": "f" });
    admin(
        http,
        base,
        reqwest::Method::POST,
        &format!("/apps/{app}/routes"),
        route.to_string().into(),
        true,
    )
    .await;
}

/// Starts a server (fair scheduler on or off) with the victim and every aggressor.
async fn start(dir: &std::path::Path, fair: bool) -> String {
    let base = support::start_server(ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: Some(TOKEN.into()),
        cpu_slots: if fair { None } else { Some(0) },
        ..ServeArgs::with_data_dir(dir.to_owned())
    })
    .await;
    let http = reqwest::Client::new();
    let hello = std::fs::read(picloud_example_artifacts::HELLO).expect("example-hello is built");
    deploy(&http, &base, "victim", "component", hello).await;
    deploy(&http, &base, "rhai-loop", "rhai", RHAI_LOOP.into()).await;
    let spin = picloud_example_artifacts::hostile_guest("", "(loop $l (br $l)) unreachable");
    deploy(&http, &base, "wasm-loop", "component", spin).await;
    deploy(&http, &base, "rhai-fib", "rhai", RHAI_FIB.into()).await;
    let answer = http
        .get(format!("{base}/fn/victim/f"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    base
}

/// Drives `connections` keep-alive connections at `url` until `stop`; latencies and
/// answers are counted from `measure_from` on.
async fn drive(
    url: String,
    connections: usize,
    measure_from: Instant,
    stop: Arc<AtomicBool>,
) -> Load {
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (url, stop) = (url.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut load = Load::default();
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let Ok(response) = http.get(&url).send().await else {
                        continue;
                    };
                    let _ = response.bytes().await;
                    // Throughput counts answers that arrive while measuring; latency
                    // only requests sent while measuring (a long runner's answer may
                    // come from a request sent during the warm-up).
                    if Instant::now() >= measure_from && !stop.load(Ordering::Relaxed) {
                        load.answered += 1;
                        if sent >= measure_from {
                            load.latencies_us.push(
                                u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX),
                            );
                        }
                    }
                }
                load
            })
        })
        .collect();
    let mut total = Load::default();
    for task in tasks {
        let load = task.await.expect("load task runs");
        total.answered += load.answered;
        total.latencies_us.extend(load.latencies_us);
    }
    total
}

/// One scenario: the victim beside `aggressors`; answers the victim's load and each
/// aggressor's.
fn scenario(base: &str, aggressors: &[Aggressor]) -> (Load, Vec<(Aggressor, Load)>) {
    let base = base.to_owned();
    let aggressors = aggressors.to_vec();
    // The load generator has a thread and runtime of its own, as wrk would.
    std::thread::spawn(move || {
        let client = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("client runtime");
        client.block_on(async move {
            let stop = Arc::new(AtomicBool::new(false));
            let measure_from = Instant::now() + WARM_UP;
            let victim = tokio::spawn(drive(
                format!("{base}/fn/victim/f"),
                VICTIM_CONNECTIONS,
                measure_from,
                stop.clone(),
            ));
            let others: Vec<_> = aggressors
                .iter()
                .map(|a| {
                    tokio::spawn(drive(
                        format!("{base}/fn/{}/f", a.app()),
                        AGGRESSOR_CONNECTIONS,
                        measure_from,
                        stop.clone(),
                    ))
                })
                .collect();
            tokio::time::sleep(WARM_UP + MEASURE).await;
            stop.store(true, Ordering::Relaxed);
            let victim = victim.await.expect("victim load");
            let mut loads = Vec::new();
            for (a, task) in aggressors.iter().zip(others) {
                loads.push((*a, task.await.expect("aggressor load")));
            }
            (victim, loads)
        })
    })
    .join()
    .expect("load thread")
}

/// What one invocation of `app` costs when it runs alone: wall time (median of 5) and
/// the fuel its record shows.
async fn alone_cost(base: &str, app: &str) -> (Duration, i64, String) {
    let http = reqwest::Client::new();
    let mut times = Vec::new();
    for _ in 0..5 {
        let sent = Instant::now();
        let response = http.get(format!("{base}/fn/{app}/f")).send().await.unwrap();
        let _ = response.bytes().await;
        times.push(sent.elapsed());
    }
    times.sort();
    let records: serde_json::Value = http
        .get(format!("{base}/api/v1/apps/{app}/invocations?limit=1"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let record = &records[0];
    let outcome = record["error_code"].as_str().unwrap_or("ok").to_owned();
    (times[2], record["fuel_used"].as_i64().unwrap_or(0), outcome)
}

fn main() {
    let server = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("server runtime");
    {
        // What each guest costs alone, with the default limits: the victim's fuel is
        // what a typical handler uses; the loops show what a runaway costs.
        let dir = tempfile::tempdir().expect("temp dir");
        let base = server.block_on(start(dir.path(), true));
        println!("== one invocation alone, default limits ==");
        for app in ["victim", "rhai-loop", "wasm-loop", "rhai-fib"] {
            let (time, fuel, outcome) = server.block_on(alone_cost(&base, app));
            println!(
                "{app:<10} {:>9.2} ms  {fuel:>13} fuel  {outcome}",
                time.as_secs_f64() * 1000.0
            );
        }
    }
    let scenarios: &[(&str, &[Aggressor])] = &[
        ("alone", &[]),
        ("+ rhai-loop", &[Aggressor::RhaiLoop]),
        ("+ wasm-loop", &[Aggressor::WasmLoop]),
        ("+ rhai-fib", &[Aggressor::RhaiFib]),
        (
            "+ all three",
            &[Aggressor::RhaiLoop, Aggressor::WasmLoop, Aggressor::RhaiFib],
        ),
    ];
    for fair in [true, false] {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = server.block_on(start(dir.path(), fair));
        println!(
            "\n== fair scheduler {} ==",
            if fair {
                "on (default)"
            } else {
                "off (cpu_slots 0)"
            }
        );
        println!(
            "{:<14} {:>10} {:>8} {:>8} {:>9} {:>9}   aggressors (answered/s, p50 ms)",
            "victim", "req/s", "p50 ms", "p99 ms", "x alone", "p99 x"
        );
        let mut alone: Option<(f64, f64)> = None;
        for (name, aggressors) in scenarios {
            let (mut victim, loads) = scenario(&base, aggressors);
            let (rate, p50, p99) = (
                victim.per_second(),
                victim.percentile_ms(0.5),
                victim.percentile_ms(0.99),
            );
            let (alone_rate, alone_p99) = *alone.get_or_insert((rate, p99));
            let others: Vec<String> = loads
                .into_iter()
                .map(|(a, mut load)| {
                    format!(
                        "{} {:.1}/s {:.0}",
                        a.app(),
                        load.per_second(),
                        load.percentile_ms(0.5)
                    )
                })
                .collect();
            println!(
                "{name:<14} {rate:>10.0} {p50:>8.2} {p99:>8.2} {:>9.2} {:>9.2}   {}",
                rate / alone_rate,
                p99 / alone_p99,
                others.join(", ")
            );
        }
    }
}
