//! What a guest can do to the host's memory and the instance pool: log floods,
//! instance-slot hoarding.

use crate::support::{TOKEN, TestServer, assert_error, hello};
use picloud::server::ServeArgs;
use picloud_example_artifacts::hostile_guest;
use picloud_runtime::MAX_LOG_BYTES;
use reqwest::Method;
use serde_json::{Value, json};

/// The tests that measure this process's peak memory run one at a time.
static MEASURING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Memory limit of the flooding apps: the guest's own linear memory is resident in this
/// process too (the server runs in it), so it is part of what a flood may add.
const FLOOD_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// How much this process's peak memory may rise during a flood: the guest's memory plus
/// 192 MiB for everything else the process does meanwhile (the server's own work, and
/// other tests of this binary running in parallel). Before the fix a flood kept each
/// line's whole string: 1,000 prints of 8 MiB held 8 GiB.
const FLOOD_PEAK_RISE_BOUND: u64 = FLOOD_MEMORY_BYTES + 192 * 1024 * 1024;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap()
}

/// Resets this process's peak resident memory to its current one (Linux `clear_refs`).
fn reset_peak_memory() -> u64 {
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs resets the peak");
    status_kib("VmRSS:") * 1024
}

fn peak_memory() -> u64 {
    status_kib("VmHWM:") * 1024
}

async fn server() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    (dir, server)
}

/// The one invocation record of `app`.
async fn only_record(server: &TestServer, app: &str) -> Value {
    let records = server
        .admin(Method::GET, &format!("/apps/{app}/invocations"), None)
        .await;
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    records[0].clone()
}

/// Asserts the log of a flood's record: within [`MAX_LOG_BYTES`], every kept line saying
/// how much of it was cut, and a closing line saying that lines were dropped.
fn assert_bounded_flood_log(record: &Value) {
    let lines = record["logs"].as_array().unwrap();
    let (closing, kept) = lines.split_last().expect("log lines");
    let bytes: usize = kept
        .iter()
        .map(|l| l["message"].as_str().unwrap().len() + l["fields"].as_str().map_or(0, str::len))
        .sum();
    assert!(bytes <= MAX_LOG_BYTES, "{bytes} bytes of log kept");
    for line in kept {
        let message = line["message"].as_str().unwrap();
        assert!(
            message.contains(" … [cut: "),
            "{}",
            &message[message.len() - 40..]
        );
    }
    let closing = closing["message"].as_str().unwrap();
    assert!(
        closing.contains("further log lines were dropped"),
        "{closing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rhai_printing_an_8_mib_string_1000_times_ends_in_fuel_exhausted_with_a_bounded_record() {
    let _alone = MEASURING.lock().await;
    let (_dir, server) = server().await;
    server.create_app("flood").await;
    server
        .admin(
            Method::PUT,
            "/apps/flood/limits",
            Some(json!({ "memory_bytes": FLOOD_MEMORY_BYTES })),
        )
        .await;
    // `print` and `log::info` both reach the host through the `log` import. One script
    // for both (each deploy compiles a snapshot of the Rhai shim).
    let script = r#"
        let s = "x";
        while s.len() < 8388608 { s += s; }
        for i in 0..1000 {
            if ctx.request.path == "/print" { print(s) } else { log::info(s) }
        }
        "done"
    "#;
    let response = server
        .api(
            Method::POST,
            "/apps/flood/functions/flood/versions?kind=rhai",
        )
        .body(script)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    server.route("flood", "GET", "/:what", "flood").await;

    for name in ["print", "info"] {
        let before = reset_peak_memory();
        // Each 8 MiB line costs 8 MiB of fuel: the default budget of 10⁹ ends the flood
        // after about 120 lines.
        assert_error(
            server.get(&format!("/fn/flood/{name}")).await,
            507,
            "fuel_exhausted",
        )
        .await;
        let rise = peak_memory().saturating_sub(before);
        assert!(
            rise <= FLOOD_PEAK_RISE_BOUND,
            "{name}: peak memory rose by {} MiB",
            rise >> 20
        );
    }
    let records = server
        .admin(Method::GET, "/apps/flood/invocations", None)
        .await;
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 2);
    for record in records {
        assert_eq!(record["error_code"], "fuel_exhausted");
        assert_bounded_flood_log(record);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_logging_16_mib_messages_in_a_loop_ends_in_fuel_exhausted_with_a_bounded_record() {
    let _alone = MEASURING.lock().await;
    let (_dir, server) = server().await;
    server.create_app("flood").await;
    server
        .admin(
            Method::PUT,
            "/apps/flood/limits",
            Some(json!({ "memory_bytes": FLOOD_MEMORY_BYTES })),
        )
        .await;
    // 256 pages of 64 KiB = 16 MiB of 'a', logged whole at every turn of the loop.
    let guest = hostile_guest(
        r#"(import "picloud:sdk/log@0.1.0" "log" (func $log (param i32 i32 i32 i32 i32 i32)))"#,
        "(drop (memory.grow (i32.const 255)))
         (memory.fill (i32.const 0) (i32.const 97) (i32.const 16777216))
         (loop $flood
            (call $log (i32.const 2) (i32.const 0) (i32.const 16777216)
                       (i32.const 0) (i32.const 0) (i32.const 0))
            (br $flood))
         unreachable",
    );
    server.deploy("flood", "log", guest, Some("GET /log")).await;

    let before = reset_peak_memory();
    assert_error(server.get("/fn/flood/log").await, 507, "fuel_exhausted").await;
    let rise = peak_memory().saturating_sub(before);
    assert!(
        rise <= FLOOD_PEAK_RISE_BOUND,
        "peak memory rose by {} MiB",
        rise >> 20
    );
    let record = only_record(&server, "flood").await;
    assert_eq!(record["error_code"], "fuel_exhausted");
    assert_bounded_flood_log(&record);
    server.stop().await;
}

/// Slots of the instance pool in the saturation test: small, so that filling it is cheap.
const SMALL_POOL: u32 = 8;
/// What one app may hold of [`SMALL_POOL`]: a quarter of the pool is kept for apps that
/// run few invocations.
const ONE_APP_SHARE: usize = 6;

// 16 worker threads: one per hog and more for the server's other tasks, so spinning
// guests are preempted by the OS rather than only at their fuel yields (on two workers
// those let about two requests in at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 16)]
async fn an_app_filling_the_instance_pool_leaves_slots_for_another_app() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: Some(TOKEN.into()),
        max_instances: SMALL_POOL,
        ..ServeArgs::with_data_dir(dir.path().to_owned())
    })
    .await;
    server.create_app("hog").await;
    server.create_app("victim").await;
    server
        .deploy("victim", "hello", hello(), Some("GET /"))
        .await;
    // Spins on a host call until its deadline: fuel never runs out first.
    let spin = hostile_guest(
        r#"(import "picloud:sdk/runtime@0.1.0" "now" (func $now (result i64)))"#,
        "(loop $l (drop (call $now)) (br $l)) unreachable",
    );
    server.deploy("hog", "spin", spin, Some("GET /spin")).await;
    server
        .admin(
            Method::PUT,
            "/apps/hog/limits",
            Some(json!({ "fuel": 1u64 << 50, "timeout_ms": 2000 })),
        )
        .await;

    // Both apps' settings in the server's cache, so that every request below goes
    // straight to admission.
    assert_eq!(server.get("/fn/victim/").await.status(), 200);
    assert_eq!(server.get("/fn/hog/nowhere").await.status(), 404);

    // More hog requests than the pool has slots, all at once.
    let mut hogs = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let (http, url) = (server.http.clone(), format!("{}/fn/hog/spin", server.url));
        hogs.spawn(async move { http.get(url).send().await.unwrap() });
    }
    // The first answer is a refusal (the admitted ones spin for 2 s): the hog holds all
    // it may now. Another app still gets an instance.
    let first = hogs.join_next().await.unwrap().unwrap();
    let victim = server.get("/fn/victim/").await;
    assert_eq!(victim.status(), 200);
    assert_eq!(victim.text().await.unwrap(), "Hello, world!");

    let mut answers = vec![first];
    while let Some(answer) = hogs.join_next().await {
        answers.push(answer.unwrap());
    }
    let mut timeouts = 0;
    for answer in answers {
        let code = match answer.status().as_u16() {
            504 => "timeout",
            429 => "quota_exceeded",
            other => panic!("a hog request answered {other}"),
        };
        timeouts += usize::from(code == "timeout");
        assert_error(answer, if code == "timeout" { 504 } else { 429 }, code).await;
    }
    assert_eq!(timeouts, ONE_APP_SHARE, "hog invocations that ran");
    server.stop().await;
}
