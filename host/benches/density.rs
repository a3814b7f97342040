//! Hosting density of Rhai functions: 1,000 distinct scripts on one real server.
//!
//! The `picloud` binary of this build (release, under `cargo bench`) runs as a child
//! process with SQLite in a temp directory, so its RSS and data directory are its own
//! and a restart is a real one. One run reports:
//!
//! - deploy latency per script (`POST …/versions?kind=rhai`, one at a time): median,
//!   p99 and max, after a first deploy that prepared the shared Rhai shim (reported
//!   apart: on a fresh data directory it compiles the shim);
//! - disk per function: growth of the data directory over the 1,000 deploys, and the
//!   whole directory divided by 1,000;
//! - server RSS per function, idle after each function was called once: growth over
//!   the 1,000 first calls, divided by 1,000 (and the totals);
//! - restart with 1,000 functions: from spawning the server to the first function's
//!   first response, and to all 1,000 answered once (8 concurrent clients);
//! - a cold request (a fresh instance parsing its script) next to a warm one, for a
//!   small script and one of ~100 KiB.
//!
//! Run with `cargo bench -p picloud --bench density`.

use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-admin-token-0123456789";
/// Functions deployed.
const FUNCTIONS: usize = 1000;
/// Apps they are spread over.
const APPS: usize = 10;
/// Concurrent clients when every function is called after the restart.
const CONCURRENCY: usize = 8;

/// Function `i`: a small handler of its own (distinct source, so nothing is shared by
/// content), with a function definition and a map answer.
fn script(i: usize) -> String {
    format!(
        r#"// function {i}
fn scale(x) {{ x * {k} + {i} }}
let q = ctx.request.query;
let n = if "n" in q {{ parse_int(q.n) }} else {{ {i} }};
#{{ function: {i}, app: ctx.app, scaled: scale(n), tags: ["density", "f{i}"] }}
"#,
        k = i % 7 + 1
    )
}

fn app_of(i: usize) -> String {
    format!("app{}", i % APPS)
}

fn name_of(i: usize) -> String {
    format!("f{i}")
}

/// The server as a child process.
struct Picloud {
    child: Child,
    api: Api,
}

/// Requests to a server.
#[derive(Clone)]
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Picloud {
    /// Spawns `picloud serve` on `dir` and a free port (not waiting for it), with
    /// `warm_instances` when given.
    fn spawn(dir: &Path, http: &reqwest::Client, warm_instances: Option<u32>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_picloud"));
        command
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir)
            .env("PICLOUD_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(n) = warm_instances {
            command.env("PICLOUD_WARM_INSTANCES", n.to_string());
        }
        Self {
            child: command.spawn().expect("picloud serve starts"),
            api: Api {
                base: format!("http://127.0.0.1:{port}"),
                http: http.clone(),
            },
        }
    }

    /// Resident set size of the server process, from /proc.
    fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/<pid>/status is readable");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS is listed");
        kib * 1024
    }

    /// Stops the server with SIGTERM (a graceful shutdown) and waits for it.
    fn stop(mut self) {
        let pid = i32::try_from(self.child.id()).unwrap();
        #[allow(unsafe_code)]
        // SAFETY: sends a signal to our own child process, which has not been reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        self.child.wait().expect("the server exits");
    }
}

impl Api {
    async fn wait_ready(&self) {
        let http = &self.http;
        let url = format!("{}/readyz", self.base);
        for _ in 0..6000 {
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the server did not get ready");
    }

    async fn admin(&self, path: &str, body: reqwest::Body, json: bool) {
        let mut request = self
            .http
            .post(format!("{}/api/v1{path}", self.base))
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

    async fn deploy(&self, app: &str, name: &str, source: String) {
        self.admin(
            &format!("/apps/{app}/functions/{name}/versions?kind=rhai"),
            source.into(),
            false,
        )
        .await;
    }

    fn url(&self, i: usize) -> String {
        format!("{}/fn/{}/{}", self.base, app_of(i), name_of(i))
    }

    /// Calls function `i` through its route; checks the answer.
    async fn call(&self, i: usize) {
        let url = self.url(i);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .expect("request is answered");
        let status = response.status();
        let body: serde_json::Value = response.json().await.expect("JSON answer");
        assert_eq!(status, 200, "{url}: {body}");
        assert_eq!(body["function"], i, "{url}: {body}");
    }
}

/// Bytes of all files below `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => disk_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Calls every function once with `CONCURRENCY` clients.
async fn call_all(api: &Api) {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (next, api) = (next.clone(), api.clone());
        clients.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= FUNCTIONS {
                    break;
                }
                api.call(i).await;
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.expect("client finishes");
    }
}

/// Median latency of `n` requests of `url` (which must answer 200).
async fn median_latency(http: &reqwest::Client, url: &str, n: usize) -> Duration {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let response = http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        response.bytes().await.unwrap();
        times.push(start.elapsed());
    }
    times.sort();
    times[n / 2]
}

/// A script of about `bytes` bytes: many small functions, one of them called.
fn large_script(bytes: usize) -> String {
    let mut source = String::new();
    let mut i = 0;
    while source.len() < bytes {
        source.push_str(&format!(
            "fn helper_{i}(x) {{ let y = x * {i} + 1; if y > 100 {{ y - 100 }} else {{ y + {i} }} }}\n"
        ));
        i += 1;
    }
    source.push_str("#{ value: helper_7(3) }\n");
    source
}

async fn run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let http = reqwest::Client::new();
    let server = Picloud::spawn(dir.path(), &http, None);
    let api = server.api.clone();
    api.wait_ready().await;
    for a in 0..APPS {
        let app = json!({ "name": format!("app{a}") }).to_string();
        api.admin("/apps", app.into(), true).await;
    }
    // The first Rhai deploy prepares the shared shim (compiles it on a fresh data dir).
    let start = Instant::now();
    api.deploy("app0", "warmup", "#{ ok: true }".into()).await;
    let first_deploy = start.elapsed();
    let disk_before = disk_bytes(dir.path());

    let mut deploys = Vec::with_capacity(FUNCTIONS);
    for i in 0..FUNCTIONS {
        let start = Instant::now();
        api.deploy(&app_of(i), &name_of(i), script(i)).await;
        deploys.push(start.elapsed());
    }
    let disk_after = disk_bytes(dir.path());
    deploys.sort();
    for i in 0..FUNCTIONS {
        let route =
            json!({ "method": "GET", "path": format!("/{}", name_of(i)), "function": name_of(i) });
        let path = format!("/apps/{}/routes", app_of(i));
        api.admin(&path, route.to_string().into(), true).await;
    }

    // RSS: settled after the deploys, then after every function was called once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_deployed = server.rss_bytes();
    for i in 0..FUNCTIONS {
        api.call(i).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_called = server.rss_bytes();

    // Warm requests, a small script and a large one.
    let large = large_script(100 * 1024);
    api.deploy("app0", "large", large.clone()).await;
    let route = json!({ "method": "GET", "path": "/large", "function": "large" });
    api.admin("/apps/app0/routes", route.to_string().into(), true)
        .await;
    let warm_small = median_latency(&http, &api.url(0), 200).await;
    let warm_large = median_latency(&http, &format!("{}/fn/app0/large", api.base), 200).await;
    server.stop();

    // Restart: time to the first answer, then to every function answered once.
    let start = Instant::now();
    let server = Picloud::spawn(dir.path(), &http, None);
    let api = server.api.clone();
    loop {
        if let Ok(r) = http.get(api.url(0)).send().await
            && r.status().is_success()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no answer after a restart"
        );
    }
    let first_response = start.elapsed();
    call_all(&api).await;
    let all_answered = start.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_restarted = server.rss_bytes();
    server.stop();

    // Cold requests: with no warm instances, every request is a fresh instance of the
    // shared shim that parses its script.
    let server = Picloud::spawn(dir.path(), &http, Some(0));
    let api = server.api.clone();
    api.wait_ready().await;
    let cold_small = median_latency(&http, &api.url(0), 200).await;
    let cold_large = median_latency(&http, &format!("{}/fn/app0/large", api.base), 50).await;
    server.stop();

    let n = FUNCTIONS as u64;
    println!(
        "density: {FUNCTIONS} distinct Rhai functions in {APPS} apps, one server (release, SQLite)"
    );
    println!(
        "  deploy latency per script: median {:.2} ms, p99 {:.2} ms, max {:.2} ms (first Rhai deploy of a fresh server, preparing the shared shim: {:.0} ms)",
        ms(percentile(&deploys, 0.5)),
        ms(percentile(&deploys, 0.99)),
        ms(*deploys.last().unwrap()),
        ms(first_deploy)
    );
    println!(
        "  disk per function: {:.1} KiB growth over the deploys; whole data dir {:.1} MiB = {:.1} KiB/function",
        disk_after.saturating_sub(disk_before) as f64 / 1024.0 / n as f64,
        mib(disk_after),
        disk_after as f64 / 1024.0 / n as f64
    );
    println!(
        "  server RSS: {:.1} MiB after the deploys, {:.1} MiB after each function was called once: {:.3} MiB/function; whole RSS / {FUNCTIONS} = {:.3} MiB",
        mib(rss_deployed),
        mib(rss_called),
        mib(rss_called.saturating_sub(rss_deployed)) / n as f64,
        mib(rss_called) / n as f64
    );
    println!(
        "  restart with {FUNCTIONS} functions: first response after {:.0} ms, all {FUNCTIONS} answered once after {:.0} ms; RSS then {:.1} MiB",
        ms(first_response),
        ms(all_answered),
        mib(rss_restarted)
    );
    println!(
        "  request latency (median): small script warm {:.3} ms, cold (fresh instance, parse) {:.3} ms; {} KiB script warm {:.3} ms, cold {:.3} ms",
        ms(warm_small),
        ms(cold_small),
        large.len() / 1024,
        ms(warm_large),
        ms(cold_large)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; this bench takes no options.
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime builds");
    tokio.block_on(run());
}
