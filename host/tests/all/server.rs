//! The real server over HTTP: deploy → invoke → logs, hostile guests, bad uploads,
//! errors of the data plane and the admin API, restarts.

use crate::support::{Backend, TOKEN, TestDb, TestServer, assert_error, hello, kv_counter};
use picloud::server::ServeArgs;
use picloud_example_artifacts::hostile_guest;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

async fn sqlite_server() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    (dir, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_function_answers_on_its_route_and_its_invocation_is_logged() {
    let (_dir, server) = sqlite_server().await;
    server.create_app("shop").await;
    let deployed = server
        .deploy("shop", "hello", hello(), Some("GET /hello/:who"))
        .await;
    assert_eq!(deployed["version"], 1);
    assert_eq!(deployed["kind"], "component");
    assert_eq!(deployed["sha256"].as_str().unwrap().len(), 64);

    let response = server.get("/fn/shop/hello/x?name=Ada").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    let invocation_id = response.headers()["x-picloud-invocation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(response.text().await.unwrap(), "Hello, Ada!");

    let invocations = server
        .admin(Method::GET, "/apps/shop/invocations", None)
        .await;
    let record = &invocations[0];
    assert_eq!(record["id"], invocation_id.as_str());
    assert_eq!(
        (
            record["function"].as_str(),
            record["status"].as_str(),
            record["http_status"].as_i64()
        ),
        (Some("hello"), Some("ok"), Some(200))
    );
    assert!(record["fuel_used"].as_i64().unwrap() > 0);
    assert!(record["peak_memory"].as_i64().unwrap() > 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_also_reachable_by_host_name() {
    let (_dir, server) = sqlite_server().await;
    server.create_app("shop").await;
    server.deploy("shop", "hello", hello(), Some("GET /")).await;
    let response = server
        .http
        .get(format!("{}/?name=host", server.url))
        .header("host", "shop.localhost:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "Hello, host!");
    let unknown = server
        .http
        .get(format!("{}/", server.url))
        .header("host", "nope.localhost")
        .send()
        .await
        .unwrap();
    assert_error(unknown, 404, "no_route").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_paths_are_percent_decoded_and_undecodable_ones_are_refused() {
    let (_dir, server) = sqlite_server().await;
    server.create_app("shop").await;
    server
        .deploy("shop", "counter", kv_counter(), Some("ANY /*path"))
        .await;
    let body: Value = server
        .get("/fn/sh%6Fp/caf%C3%A9/a%2Fb")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["path"], "/café/a/b");
    server.deploy("shop", "hello", hello(), Some("GET /")).await;
    for root in ["/fn/shop", "/fn/shop/"] {
        let answer = server.get(root).await.text().await.unwrap();
        assert_eq!(answer, "Hello, world!", "{root} is the app's /");
    }
    assert_error(server.get("/fn/shop/%FF").await, 400, "bad_request").await;
    // What is not a function's stays the admin API's and health's.
    assert_eq!(server.get("/healthz").await.text().await.unwrap(), "ok");
    assert_eq!(server.get("/fn/").await.status(), 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_state_is_per_app_and_logs_carry_the_guest_lines() {
    let (_dir, server) = sqlite_server().await;
    for app in ["one", "two"] {
        server.create_app(app).await;
        server
            .deploy(app, "counter", kv_counter(), Some("ANY /*path"))
            .await;
    }
    for expected in 1..=3 {
        let body: Value = server.get("/fn/one/a").await.json().await.unwrap();
        assert_eq!(body, json!({ "path": "/a", "count": expected }));
    }
    let body: Value = server.get("/fn/two/a").await.json().await.unwrap();
    assert_eq!(body["count"], 1, "app two has a counter of its own");

    let invocations = server
        .admin(
            Method::GET,
            "/apps/one/invocations?function=counter&limit=1",
            None,
        )
        .await;
    assert_eq!(invocations.as_array().unwrap().len(), 1);
    assert_eq!(
        invocations[0]["logs"][0]["message"],
        "/a has been called 3 times"
    );
    assert_eq!(invocations[0]["logs"][0]["level"], "info");
    server.stop().await;
}

/// The hostile guests of the acceptance list, each with the status and code it earns.
fn hostile_cases() -> Vec<(&'static str, Vec<u8>, u16, &'static str)> {
    vec![
        (
            "spin",
            hostile_guest("", "(loop $l (br $l)) unreachable"),
            507,
            "fuel_exhausted",
        ),
        (
            "clock",
            hostile_guest(
                r#"(import "picloud:sdk/runtime@0.1.0" "now" (func $now (result i64)))"#,
                "(loop $l (drop (call $now)) (br $l)) unreachable",
            ),
            504,
            "timeout",
        ),
        (
            "grow",
            hostile_guest("", "(drop (memory.grow (i32.const 16384))) (i32.const 0)"),
            507,
            "memory_exhausted",
        ),
        (
            "recurse",
            hostile_guest(
                "",
                &format!("(call $handle {})", "(i32.const 0) ".repeat(15)),
            ),
            502,
            "function_failed",
        ),
        (
            "trap",
            hostile_guest("", "unreachable"),
            502,
            "function_failed",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_guests_end_with_their_limit_error_and_the_next_request_succeeds() {
    let (_dir, server) = sqlite_server().await;
    server.create_app("evil").await;
    server.create_app("good").await;
    server.deploy("good", "hello", hello(), Some("GET /")).await;
    server
        .deploy("evil", "hello", hello(), Some("GET /hello"))
        .await;
    // Fuel high enough that the clock guest meets its 400 ms deadline first, low enough
    // that the spinning guest runs out quickly.
    server
        .admin(
            Method::PUT,
            "/apps/evil/limits",
            Some(json!({ "fuel": 200_000_000, "timeout_ms": 400 })),
        )
        .await;
    for (name, guest, status, code) in hostile_cases() {
        // The clock guest must meet its deadline; the others must end by their own
        // limit well before theirs, however loaded the machine is.
        let (fuel, timeout_ms) = if name == "clock" {
            (1u64 << 50, 400)
        } else {
            (200_000_000, 20_000)
        };
        server
            .admin(
                Method::PUT,
                "/apps/evil/limits",
                Some(json!({ "fuel": fuel, "timeout_ms": timeout_ms })),
            )
            .await;
        server
            .deploy("evil", name, guest, Some(&format!("GET /{name}")))
            .await;
        let body = assert_error(server.get(&format!("/fn/evil/{name}")).await, status, code).await;
        assert!(body["error"]["invocation_id"].as_str().is_some(), "{body}");

        assert_eq!(
            server.get("/fn/evil/hello").await.text().await.unwrap(),
            "Hello, world!",
            "same app after {name}"
        );
        assert_eq!(
            server.get("/fn/good/").await.text().await.unwrap(),
            "Hello, world!",
            "other app after {name}"
        );
    }
    let failed = server
        .admin(Method::GET, "/apps/evil/invocations?status=error", None)
        .await;
    let codes: Vec<&str> = failed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["error_code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "function_failed",
            "function_failed",
            "memory_exhausted",
            "timeout",
            "fuel_exhausted"
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_with_a_message_and_nothing_is_stored() {
    let (_dir, server) = sqlite_server().await;
    server.create_app("shop").await;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "random bytes",
            b"\x7fELF not wasm at all".to_vec(),
            400,
            "not a WebAssembly file",
        ),
        ("empty body", Vec::new(), 400, "empty"),
        (
            "core module",
            wat::parse_str("(module (func (export \"_start\")))").unwrap(),
            400,
            "core WebAssembly module",
        ),
        (
            "50 MiB",
            vec![0u8; 50 * 1024 * 1024],
            413,
            "larger than the limit",
        ),
    ];
    for (what, bytes, status, message) in cases {
        let response = server
            .api(Method::POST, "/apps/shop/functions/f/versions")
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{what}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"]["message"].as_str().unwrap().contains(message),
            "{what}: {body}"
        );
    }
    assert_eq!(
        server
            .admin(Method::GET, "/apps/shop/functions", None)
            .await,
        json!([])
    );
    assert_error(
        server
            .api(Method::GET, "/apps/shop/functions/f")
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_apps_routes_and_oversized_bodies_get_json_errors() {
    let (_dir, server) = sqlite_server().await;
    assert_error(server.get("/fn/nope/x").await, 404, "no_route").await;
    server.create_app("shop").await;
    server
        .deploy("shop", "hello", hello(), Some("POST /hello"))
        .await;
    assert_error(server.get("/fn/shop/missing").await, 404, "no_route").await;
    assert_error(server.get("/fn/shop/hello").await, 404, "no_route").await;
    let big = server
        .http
        .post(format!("{}/fn/shop/hello", server.url))
        .body(vec![b'x'; 10 * 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_error(big, 413, "payload_too_large").await;
    let fine = server
        .http
        .post(format!("{}/fn/shop/hello", server.url))
        .body(vec![b'x'; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(fine.status(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_a_valid_bearer_token() {
    let (_dir, server) = sqlite_server().await;
    let url = format!("{}/api/v1/apps", server.url);
    assert_error(
        server.http.get(&url).send().await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    assert_error(
        server
            .http
            .get(&url)
            .bearer_auth("wrong-token")
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    assert_error(
        server
            .http
            .get(&url)
            .header("authorization", format!("Basic {TOKEN}"))
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(
        server
            .http
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(server.get("/healthz").await.status(), 200);
    assert_eq!(server.get("/readyz").await.status(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_and_route_input_is_validated() {
    let (_dir, server) = sqlite_server().await;
    let bad = server
        .api(Method::POST, "/apps")
        .json(&json!({ "name": "Not Valid" }))
        .send()
        .await
        .unwrap();
    assert_error(bad, 400, "bad_request").await;
    server.create_app("shop").await;
    let dup = server
        .api(Method::POST, "/apps")
        .json(&json!({ "name": "shop" }))
        .send()
        .await
        .unwrap();
    assert_error(dup, 409, "conflict").await;
    let limits = server
        .api(Method::PUT, "/apps/shop/limits")
        .json(&json!({ "fuel": 0 }))
        .send()
        .await
        .unwrap();
    assert_error(limits, 400, "bad_request").await;
    server
        .deploy("shop", "hello", hello(), Some("GET /a/:id"))
        .await;
    for (route, status, code) in [
        (
            json!({ "method": "GET", "path": "/a/:id", "function": "hello" }),
            409,
            "conflict",
        ),
        (
            json!({ "method": "GET", "path": "/a/:other", "function": "hello" }),
            409,
            "conflict",
        ),
        (
            json!({ "method": "FETCH", "path": "/b", "function": "hello" }),
            400,
            "bad_request",
        ),
        (
            json!({ "method": "GET", "path": "/b", "function": "missing" }),
            404,
            "not_found",
        ),
    ] {
        let response = server
            .api(Method::POST, "/apps/shop/routes")
            .json(&route)
            .send()
            .await
            .unwrap();
        assert_error(response, status, code).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_takes_over_and_rollback_brings_the_old_one_back() {
    let (_dir, server) = sqlite_server().await;
    server.create_app("shop").await;
    server.deploy("shop", "f", hello(), Some("GET /f")).await;
    assert_eq!(
        server.get("/fn/shop/f").await.text().await.unwrap(),
        "Hello, world!"
    );
    let second = server.deploy("shop", "f", kv_counter(), None).await;
    assert_eq!(second["version"], 2);
    let body: Value = server.get("/fn/shop/f").await.json().await.unwrap();
    assert_eq!(body["count"], 1);
    let after = server
        .admin(Method::POST, "/apps/shop/functions/f/rollback", None)
        .await;
    assert_eq!(after["active_version"], 1);
    assert_eq!(after["versions"].as_array().unwrap().len(), 2);
    assert_eq!(
        server.get("/fn/shop/f").await.text().await.unwrap(),
        "Hello, world!"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_functions_answer_from_the_compile_cache_without_recompiling() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    server.create_app("shop").await;
    server.deploy("shop", "hello", hello(), Some("GET /")).await;
    assert_eq!(
        server.admin(Method::GET, "/runtime/cache", None).await["compiled"],
        1
    );
    server.stop().await;

    let server = TestServer::start(dir.path(), None).await;
    assert_eq!(
        server
            .get("/fn/shop/?name=again")
            .await
            .text()
            .await
            .unwrap(),
        "Hello, again!"
    );
    let stats = server.admin(Method::GET, "/runtime/cache", None).await;
    assert_eq!(
        (stats["compiled"].as_u64(), stats["disk_hits"].as_u64()),
        (Some(0), Some(1)),
        "{stats}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_one_is_generated_into_a_private_file() {
    let dir = tempfile::tempdir().unwrap();
    let args = ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServeArgs::with_data_dir(dir.path().to_owned())
    };
    let server = TestServer::start_with(args.clone()).await;
    let path = dir.path().join("admin-token");
    let token = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let ok = server
        .http
        .get(format!("{}/api/v1/apps", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    server.stop().await;
    // A restart keeps the same token rather than generating another.
    let server = TestServer::start_with(args).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), token);
    server.stop().await;
}

/// A server whose apps run one invocation at a time, with `queued` more waiting for at
/// most `wait_ms`.
async fn one_at_a_time(dir: &std::path::Path, queued: u32, wait_ms: u64) -> TestServer {
    TestServer::start_with(ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: Some(TOKEN.into()),
        max_concurrency_per_app: Some(1),
        max_queued_per_app: Some(queued),
        admission_wait_ms: wait_ms,
        ..ServeArgs::with_data_dir(dir.to_owned())
    })
    .await
}

/// Waits until app `app` has `running` invocations running and `queued` waiting.
async fn until_load(server: &TestServer, app: &str, running: u64, queued: u64) {
    for _ in 0..500 {
        let load = server
            .admin(Method::GET, &format!("/apps/{app}/load"), None)
            .await;
        if load["running"] == running && load["queued"] == queued {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("app {app} never had {running} running and {queued} queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_running_cap_waits_its_turn_and_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let server = one_at_a_time(dir.path(), 32, 60_000).await;
    server.create_app("shop").await;
    server.deploy("shop", "hello", hello(), Some("GET /")).await;
    let calls = (0..24).map(|_| server.get("/fn/shop/"));
    for response in futures_util::future::join_all(calls).await {
        assert_eq!(response.status(), 200);
    }
    let load = server.admin(Method::GET, "/apps/shop/load", None).await;
    assert_eq!(load["running"], 0, "{load}");
    assert_eq!(load["queued"], 0, "{load}");
    assert_eq!(load["max_running"], 1, "{load}");
    assert_eq!(load["max_queued"], 32, "{load}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_refused_429_once_the_queue_is_full_or_the_wait_is_over() {
    let dir = tempfile::tempdir().unwrap();
    let server = one_at_a_time(dir.path(), 1, 2_000).await;
    server.create_app("busy").await;
    server.create_app("calm").await;
    server
        .admin(
            Method::PUT,
            "/apps/busy/limits",
            Some(json!({ "fuel": 1u64 << 50, "timeout_ms": 10_000 })),
        )
        .await;
    let slow = hostile_guest(
        r#"(import "picloud:sdk/runtime@0.1.0" "now" (func $now (result i64)))"#,
        "(loop $l (drop (call $now)) (br $l)) unreachable",
    );
    server.deploy("busy", "slow", slow, Some("GET /slow")).await;
    server.deploy("calm", "hello", hello(), Some("GET /")).await;
    let url = format!("{}/fn/busy/slow", server.url);
    // One holds the only slot until its 10 s deadline ...
    let running = tokio::spawn(server.http.get(&url).send());
    until_load(&server, "busy", 1, 0).await;
    // ... one waits for it, and is refused when its 2 s are over ...
    let waiting = tokio::spawn(server.http.get(&url).send());
    until_load(&server, "busy", 1, 1).await;
    // ... and one more finds the queue full: refused at once.
    let refused = server.http.get(&url).send().await.unwrap();
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_error(refused, 429, "quota_exceeded").await;
    // Another app is served meanwhile.
    assert_eq!(server.get("/fn/calm/").await.status(), 200);

    let waited = waiting.await.unwrap().unwrap();
    assert_eq!(waited.headers()["retry-after"], "1");
    assert_error(waited, 429, "quota_exceeded").await;
    assert_eq!(running.await.unwrap().unwrap().status(), 504);
    until_load(&server, "busy", 0, 0).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_the_same_way_on_postgresql() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Some(db.url.clone())).await;
    server.create_app("shop").await;
    server
        .deploy("shop", "counter", kv_counter(), Some("GET /*path"))
        .await;
    server.get("/fn/shop/x").await;
    let body: Value = server.get("/fn/shop/x").await.json().await.unwrap();
    assert_eq!(body["count"], 2);
    let invocations = server
        .admin(Method::GET, "/apps/shop/invocations", None)
        .await;
    assert_eq!(invocations.as_array().unwrap().len(), 2);
    server.stop().await;
}
