//! Rhai functions on the one shared Rhai shim: every script of every app runs on the
//! same compiled shim, each in instances of its own function version that parse its
//! script on their first request. Isolation, redeploys, the limits that follow the
//! app's, and the garbage collection of compiled code.

use crate::support::{TestServer, assert_error, hello};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;

async fn deploy_script(server: &TestServer, app: &str, name: &str, kind: &str, source: &str) {
    let response = server
        .api(
            Method::POST,
            &format!("/apps/{app}/functions/{name}/versions?kind={kind}"),
        )
        .body(source.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(status, 201, "{}", response.text().await.unwrap());
}

async fn get_json(server: &TestServer, path: &str) -> Value {
    let response = server.get(path).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn warm_reuses(server: &TestServer) -> u64 {
    server.admin(Method::GET, "/runtime/cache", None).await["warm_reuses"]
        .as_u64()
        .unwrap()
}

/// The same source in both apps: what it sees must come from its own app only.
const SAME_SOURCE: &str = r#"
import "m" as m;
fn label() { "same" }
#{ app: ctx.app, imported: m::WHO, tagged: m::tag(label()), kv: kv::get("c", "k") }
"#;

/// Each app's own script: same names, different definitions.
fn own_source(app: &str) -> String {
    format!(
        r#"
        const MINE = "{app}";
        fn whoami() {{ "{app}" }}
        let seen = [];
        seen.push(MINE);
        #{{ mine: MINE, named: whoami(), seen: seen }}
        "#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_of_two_apps_see_only_their_own_globals_modules_and_data_warm_and_cold() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    for app in ["a", "b"] {
        server.create_app(app).await;
        let module = format!(r#"export const WHO = "{app}"; fn tag(x) {{ x + "@{app}" }}"#);
        deploy_script(&server, app, "m", "module", &module).await;
        deploy_script(&server, app, "same", "rhai", SAME_SOURCE).await;
        deploy_script(&server, app, "own", "rhai", &own_source(app)).await;
        let setup = format!(r#"kv::set("c", "k", "kv of {app}"); ()"#);
        deploy_script(&server, app, "setup", "rhai", &setup).await;
        server.route(app, "GET", "/same", "same").await;
        server.route(app, "GET", "/own", "own").await;
        server.route(app, "POST", "/setup", "setup").await;
        let response = server
            .http
            .post(format!("{}/fn/{app}/setup", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }
    let expected = |app: &str| {
        (
            json!({ "app": app, "imported": app, "tagged": format!("same@{app}"), "kv": format!("kv of {app}") }),
            json!({ "mine": app, "named": app, "seen": [app] }),
        )
    };

    // Cold: each function's first request parses its script in a new instance.
    // Warm: the next ones run in the instance kept for that function version only.
    for round in 0..3 {
        for app in ["a", "b"] {
            let (same, own) = expected(app);
            assert_eq!(
                get_json(&server, &format!("/fn/{app}/same")).await,
                same,
                "round {round}"
            );
            assert_eq!(
                get_json(&server, &format!("/fn/{app}/own")).await,
                own,
                "round {round}"
            );
        }
    }
    // Two rounds of four functions ran in kept instances.
    assert_eq!(warm_reuses(&server).await, 8);
    server.stop().await;

    // Cold again after a restart, now with no warm instances at all: every request
    // parses its script in a fresh instance of the shared shim.
    let server = TestServer::start_with(picloud::server::ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: Some(crate::support::TOKEN.into()),
        warm_instances: 0,
        ..picloud::server::ServeArgs::with_data_dir(dir.path().to_owned())
    })
    .await;
    for app in ["b", "a", "b", "a"] {
        let (same, own) = expected(app);
        assert_eq!(get_json(&server, &format!("/fn/{app}/own")).await, own);
        assert_eq!(get_json(&server, &format!("/fn/{app}/same")).await, same);
    }
    assert_eq!(warm_reuses(&server).await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeployed_script_answers_with_the_new_code_on_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    server.create_app("shop").await;
    deploy_script(&server, "shop", "greet", "rhai", r#"fn v() { "v1" } v()"#).await;
    server.route("shop", "GET", "/greet", "greet").await;
    let greet = || async { server.get("/fn/shop/greet").await.text().await.unwrap() };
    // The second request runs in the warm instance of version 1.
    assert_eq!(greet().await, "v1");
    assert_eq!(greet().await, "v1");
    assert_eq!(warm_reuses(&server).await, 1);

    deploy_script(&server, "shop", "greet", "rhai", r#"fn v() { "v2" } v()"#).await;
    assert_eq!(greet().await, "v2");
    assert_eq!(greet().await, "v2");
    server
        .admin(Method::POST, "/apps/shop/functions/greet/rollback", None)
        .await;
    assert_eq!(greet().await, "v1");
    server.stop().await;
}

/// The compiled-code files of the disk cache.
fn cached_code(data_dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(data_dir.join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".cwasm"))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_code_no_function_version_refers_to_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    server.create_app("a").await;
    server.create_app("b").await;
    // Rhai functions of both apps share the one compiled shim: no file of their own.
    for (app, name) in [("a", "r1"), ("a", "r2"), ("b", "r1")] {
        deploy_script(&server, app, name, "rhai", &format!(r#""{app}/{name}""#)).await;
    }
    let shim_only = cached_code(dir.path());
    assert_eq!(shim_only.len(), 1, "{shim_only:?}");
    // One component, deployed as two functions: one compiled file.
    server.deploy("a", "hello", hello(), None).await;
    server.deploy("b", "hello", hello(), None).await;
    let with_hello = cached_code(dir.path());
    assert_eq!(with_hello.len(), 2, "{with_hello:?}");

    // Deleting Rhai functions leaves the shim; deleting one of the two functions of the
    // component leaves its code, which the other still runs.
    for (app, name) in [("a", "r1"), ("a", "r2"), ("a", "hello")] {
        let response = server
            .api(Method::DELETE, &format!("/apps/{app}/functions/{name}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }
    assert_eq!(cached_code(dir.path()), with_hello);
    // Deleting the app of the last one removes it.
    server.admin(Method::DELETE, "/apps/b", None).await;
    assert_eq!(cached_code(dir.path()), shim_only);
    server.stop().await;

    // At start, code of other wasmtime builds and earlier PiCloud versions' per-script
    // snapshots go too.
    let cache = dir.path().join("cache");
    std::fs::write(cache.join("0123abcd-0000000000000000.cwasm"), b"old").unwrap();
    std::fs::create_dir_all(cache.join("snapshots")).unwrap();
    std::fs::write(cache.join("snapshots").join("0123abcd.wasm"), b"old").unwrap();
    let server = TestServer::start(dir.path(), None).await;
    assert_eq!(cached_code(dir.path()), shim_only);
    assert!(!cache.join("snapshots").exists());
    server.stop().await;
}

/// Rhai's own `fibonacci` example at n = 25: 242,785 calls, about 2.4 million
/// operations — more than the default limit of a million.
const FIB_25: &str = r#"
fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } }
fib(25)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_heavy_script_ends_at_the_operation_limit_and_runs_once_fuel_is_raised() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    server.create_app("math").await;
    deploy_script(&server, "math", "fib", "rhai", FIB_25).await;
    server.route("math", "GET", "/fib", "fib").await;

    // At the default fuel (10⁹) the operation limit (10⁶) ends it, with Rhai's clear
    // error before the fuel backstop, as a limit of the script.
    assert_error(server.get("/fn/math/fib").await, 502, "function_failed").await;
    let record = server.last_record("math").await;
    assert_eq!(record["error_code"], "function_failed", "{record}");
    let message = record["error_message"].as_str().unwrap();
    assert!(
        message.starts_with("the function returned an error: limit: the script exceeded its limit of 1000000 operations"),
        "{message}"
    );

    // With 10× the fuel, the operation limit is 10× too, and the script completes
    // (in a new instance: the kept one was made under the old limits).
    server
        .admin(
            Method::PUT,
            "/apps/math/limits",
            Some(json!({ "fuel": 10_000_000_000u64 })),
        )
        .await;
    let response = server.get("/fn/math/fib").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "75025");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thrown_error_is_the_scripts_failure_not_an_internal_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    server.create_app("shop").await;
    deploy_script(&server, "shop", "boom", "rhai", r#"throw "out of stock";"#).await;
    deploy_script(
        &server,
        "shop",
        "oops",
        "rhai",
        "let x = 1; x.no_such_method()",
    )
    .await;
    server.route("shop", "GET", "/boom", "boom").await;
    server.route("shop", "GET", "/oops", "oops").await;

    let body = assert_error(server.get("/fn/shop/boom").await, 502, "function_failed").await;
    assert!(!body.to_string().contains("internal"), "{body}");
    let record = server.last_record("shop").await;
    assert_eq!(
        record["error_message"],
        "the function returned an error: invalid: out of stock (line 1, column 1)"
    );

    assert_error(server.get("/fn/shop/oops").await, 502, "function_failed").await;
    let message = server.last_record("shop").await["error_message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.starts_with(
            "the function returned an error: invalid: Function not found: no_such_method"
        ),
        "{message}"
    );
    server.stop().await;
}
