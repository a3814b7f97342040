//! Rhai scripts through the real server: deployed with `kind=rhai`, run by the Rhai shim
//! under the same limits as every guest.

use crate::support::{TestServer, assert_error};
use reqwest::Method;
use serde_json::{Value, json};

async fn server() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    (dir, server)
}

async fn deploy_script(
    server: &TestServer,
    app: &str,
    name: &str,
    kind: &str,
    source: &str,
) -> reqwest::Response {
    server
        .api(
            Method::POST,
            &format!("/apps/{app}/functions/{name}/versions?kind={kind}"),
        )
        .body(source.to_owned())
        .send()
        .await
        .unwrap()
}

/// The error message of the newest invocation record of `app`: the detail a public
/// error body leaves out (SPEC §3).
async fn last_error_message(server: &TestServer, app: &str) -> String {
    server.last_record(app).await["error_message"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_sees_ctx_and_its_value_becomes_the_response() {
    let (_dir, server) = server().await;
    server.create_app("shop").await;
    let script = r#"
        let r = ctx.request;
        #{ method: r.method, path: r.path, id: r.params.id, q: r.query.q, app: ctx.app,
           json: r.json, has_id: ctx.invocation_id != "" }
    "#;
    assert_eq!(
        deploy_script(&server, "shop", "echo", "rhai", script)
            .await
            .status(),
        201
    );
    server.route("shop", "POST", "/orders/:id", "echo").await;
    let response = server
        .http
        .post(format!("{}/fn/shop/orders/7?q=a%20b", server.url))
        .json(&json!({ "n": 1.5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "method": "POST", "path": "/orders/7", "id": "7", "q": "a b", "app": "shop", "json": { "n": 1.5 }, "has_id": true })
    );

    for (name, source, status, content_type, body) in [
        (
            "text",
            r#""plain""#,
            200,
            Some("text/plain; charset=utf-8"),
            "plain",
        ),
        ("unit", "()", 204, None, ""),
        (
            "custom",
            r#"#{ status: 418, headers: #{ "x-tea": "yes" }, body: "short and stout" }"#,
            418,
            None,
            "short and stout",
        ),
    ] {
        assert_eq!(
            deploy_script(&server, "shop", name, "rhai", source)
                .await
                .status(),
            201
        );
        server.route("shop", "GET", &format!("/{name}"), name).await;
        let response = server.get(&format!("/fn/shop/{name}")).await;
        assert_eq!(response.status(), status, "{name}");
        if let Some(content_type) = content_type {
            assert_eq!(response.headers()["content-type"], content_type, "{name}");
        }
        if name == "custom" {
            assert_eq!(response.headers()["x-tea"], "yes");
        }
        assert_eq!(response.text().await.unwrap(), body, "{name}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_todo_example_creates_lists_gets_and_deletes() {
    let (_dir, server) = server().await;
    server.create_app("demo").await;
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/todo/todo.rhai"
    ))
    .unwrap();
    assert_eq!(
        deploy_script(&server, "demo", "todos", "rhai", &source)
            .await
            .status(),
        201
    );
    for (method, path) in [
        ("GET", "/todos"),
        ("POST", "/todos"),
        ("GET", "/todos/:id"),
        ("PATCH", "/todos/:id"),
        ("DELETE", "/todos/:id"),
    ] {
        server.route("demo", method, path, "todos").await;
    }
    let url = format!("{}/fn/demo/todos", server.url);
    let created = server
        .http
        .post(&url)
        .json(&json!({ "title": "write tests" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(
        created.json::<Value>().await.unwrap(),
        json!({ "id": "1", "n": 1, "title": "write tests", "done": false })
    );
    server
        .http
        .post(&url)
        .json(&json!({ "title": "ship" }))
        .send()
        .await
        .unwrap();
    let bad = server
        .http
        .post(&url)
        .json(&json!({ "nope": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let list: Value = server.get("/fn/demo/todos").await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let one: Value = server.get("/fn/demo/todos/2").await.json().await.unwrap();
    assert_eq!(one["title"], "ship");
    let patched = server
        .http
        .patch(format!("{url}/2"))
        .json(&json!({ "done": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    assert_eq!(patched.json::<Value>().await.unwrap()["done"], true);
    let done: Value = server
        .get("/fn/demo/todos?done=true")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        done,
        json!([{ "id": "2", "n": 2, "title": "ship", "done": true }])
    );
    let open: Value = server
        .get("/fn/demo/todos?done=false")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(open[0]["title"], "write tests");
    assert_eq!(
        server
            .http
            .delete(format!("{url}/1"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(server.get("/fn/demo/todos/1").await.status(), 404);
    let list: Value = server.get("/fn/demo/todos").await.json().await.unwrap();
    assert_eq!(
        list,
        json!([{ "id": "2", "n": 2, "title": "ship", "done": true }])
    );

    let logs = server
        .admin(Method::GET, "/apps/demo/invocations?limit=100", None)
        .await;
    let lines: Vec<&str> = logs
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["logs"].as_array().unwrap())
        .filter_map(|l| l["message"].as_str())
        .collect();
    assert!(lines.contains(&"created todo 1"), "{lines:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_does_not_compile_is_refused_with_its_line_and_column() {
    let (_dir, server) = server().await;
    server.create_app("shop").await;
    let response = deploy_script(&server, "shop", "broken", "rhai", "let x = 1;\nlet = 2;\n").await;
    let body = assert_error(response, 400, "bad_request").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("line 2"), "{message}");
    assert_eq!(
        server
            .admin(Method::GET, "/apps/shop/functions", None)
            .await,
        json!([])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thrown_error_is_a_function_failure_with_the_message_in_the_log() {
    let (_dir, server) = server().await;
    server.create_app("shop").await;
    deploy_script(&server, "shop", "boom", "rhai", r#"throw "out of stock";"#).await;
    server.route("shop", "GET", "/boom", "boom").await;
    assert_error(server.get("/fn/shop/boom").await, 502, "function_failed").await;
    let message = last_error_message(&server, "shop").await;
    assert!(message.contains("out of stock"), "{message}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_of_the_same_app_are_imported_and_changes_apply_at_once() {
    let (_dir, server) = server().await;
    server.create_app("shop").await;
    server.create_app("other").await;
    assert_eq!(
        deploy_script(
            &server,
            "shop",
            "pricing",
            "module",
            "fn total(n) { n * 2 }"
        )
        .await
        .status(),
        201
    );
    deploy_script(
        &server,
        "shop",
        "cart",
        "rhai",
        r#"import "pricing" as p; p::total(21)"#,
    )
    .await;
    server.route("shop", "GET", "/cart", "cart").await;
    assert_eq!(
        server.get("/fn/shop/cart").await.text().await.unwrap(),
        "42"
    );

    deploy_script(
        &server,
        "shop",
        "pricing",
        "module",
        "fn total(n) { n * 3 }",
    )
    .await;
    assert_eq!(
        server.get("/fn/shop/cart").await.text().await.unwrap(),
        "63",
        "the new module version applies"
    );

    // Another app cannot import shop's module.
    deploy_script(
        &server,
        "other",
        "thief",
        "rhai",
        r#"import "pricing" as p; p::total(1)"#,
    )
    .await;
    server.route("other", "GET", "/", "thief").await;
    assert_error(server.get("/fn/other/").await, 502, "function_failed").await;

    // Cycles end with a clear error.
    deploy_script(
        &server,
        "shop",
        "a",
        "module",
        r#"import "b" as b; fn f() { 1 }"#,
    )
    .await;
    deploy_script(
        &server,
        "shop",
        "b",
        "module",
        r#"import "a" as a; fn g() { 2 }"#,
    )
    .await;
    deploy_script(
        &server,
        "shop",
        "cycle",
        "rhai",
        r#"import "a" as a; a::f()"#,
    )
    .await;
    server.route("shop", "GET", "/cycle", "cycle").await;
    assert_error(server.get("/fn/shop/cycle").await, 502, "function_failed").await;
    let message = last_error_message(&server, "shop").await;
    assert!(message.contains("cycl"), "{message}");

    let refused = server
        .api(Method::POST, "/apps/shop/routes")
        .json(&json!({ "method": "GET", "path": "/m", "function": "pricing" }))
        .send()
        .await
        .unwrap();
    assert_error(refused, 400, "bad_request").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_script_is_stopped_and_the_next_request_succeeds() {
    let (_dir, server) = server().await;
    server.create_app("shop").await;
    deploy_script(&server, "shop", "spin", "rhai", "loop { }").await;
    deploy_script(&server, "shop", "ok", "rhai", r#""fine""#).await;
    server.route("shop", "GET", "/spin", "spin").await;
    server.route("shop", "GET", "/ok", "ok").await;
    // Rhai's operation limit ends it first, with a clear message; fuel and the wall
    // clock stay behind it as the hard stop.
    assert_error(server.get("/fn/shop/spin").await, 502, "function_failed").await;
    let message = last_error_message(&server, "shop").await;
    assert!(message.contains("limit of 1000000 operations"), "{message}");
    assert_eq!(
        server.get("/fn/shop/ok").await.text().await.unwrap(),
        "fine"
    );
    assert_error(server.get("/fn/shop/spin").await, 502, "function_failed").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_versions_roll_back_like_components() {
    let (_dir, server) = server().await;
    server.create_app("shop").await;
    deploy_script(&server, "shop", "greet", "rhai", r#""v1""#).await;
    server.route("shop", "GET", "/greet", "greet").await;
    deploy_script(&server, "shop", "greet", "rhai", r#""v2""#).await;
    assert_eq!(
        server.get("/fn/shop/greet").await.text().await.unwrap(),
        "v2"
    );
    let after = server
        .admin(Method::POST, "/apps/shop/functions/greet/rollback", None)
        .await;
    assert_eq!(
        (after["active_version"].as_i64(), after["kind"].as_str()),
        (Some(1), Some("rhai"))
    );
    assert_eq!(
        server.get("/fn/shop/greet").await.text().await.unwrap(),
        "v1"
    );
    server.stop().await;
}

/// A script that echoes its tag, logs it, and on request throws or fills ~80 MiB.
const WARM_PROBE: &str = r#"
let q = ctx.request.query;
log::info(`tag ${q.tag}`);
if "throw" in q { throw "asked to fail"; }
let seen = [];
seen.push(q.tag);
let filled = 0;
if "big" in q {
    let chunk = "x";
    for i in 0..23 { chunk += chunk; }
    // Separate variables: Rhai's string size limit counts all strings of an array.
    let c1 = chunk + 1; let c2 = chunk + 2; let c3 = chunk + 3;
    let c4 = chunk + 4; let c5 = chunk + 5; let c6 = chunk + 6;
    let c7 = chunk + 7; let c8 = chunk + 8; let c9 = chunk + 9;
    let kept = [c1 != "", c2 != "", c3 != "", c4 != "", c5 != "", c6 != "", c7 != "", c8 != "", c9 != ""];
    filled = kept.len();
}
#{ id: ctx.invocation_id, seen: seen, filled: filled }
"#;

async fn warm_stats(server: &TestServer) -> (u64, u64) {
    let stats = server.admin(Method::GET, "/runtime/cache", None).await;
    (
        stats["warm_reuses"].as_u64().unwrap(),
        stats["warm_idle"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_instances_are_reused_in_turn_and_keep_nothing_of_earlier_requests() {
    let (_dir, server) = server().await;
    server.create_app("shop").await;
    let deployed = deploy_script(&server, "shop", "probe", "rhai", WARM_PROBE).await;
    assert_eq!(deployed.status(), 201);
    server.route("shop", "GET", "/probe", "probe").await;

    let call = |query: &'static str| {
        let server = &server;
        async move {
            let response = server.get(&format!("/fn/shop/probe?{query}")).await;
            let status = response.status().as_u16();
            let id = response
                .headers()
                .get("x-picloud-invocation-id")
                .map(|id| id.to_str().unwrap().to_owned());
            let body = response.text().await.unwrap();
            let body = serde_json::from_str::<Value>(&body).unwrap_or(Value::String(body));
            (status, id.unwrap_or_default(), body)
        }
    };

    // The first request instantiates; the instance is kept afterwards.
    let (status, id_a, body) = call("tag=a").await;
    assert_eq!((status, &body["seen"]), (200, &json!(["a"])));
    assert_eq!(body["id"], id_a.as_str());
    assert_eq!(warm_stats(&server).await, (0, 1));

    // The second runs in the kept instance and sees only its own request.
    let (status, id_b, body) = call("tag=b").await;
    assert_eq!((status, &body["seen"]), (200, &json!(["b"])));
    assert_eq!(body["id"], id_b.as_str());
    assert_ne!(id_a, id_b);
    assert_eq!(warm_stats(&server).await, (1, 1));

    // A thrown error is a clean return: the instance stays usable.
    let (status, _, body) = call("tag=c&throw=1").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("function_failed"))
    );
    assert_eq!(warm_stats(&server).await, (2, 1));

    // An instance that grew past the warm memory bound is not kept: the next request
    // starts from a fresh one, with a small memory again.
    let (status, _, body) = call("tag=d&big=1").await;
    assert_eq!((status, &body["filled"]), (200, &json!(9)), "{body}");
    assert_eq!(warm_stats(&server).await, (3, 0));
    let (status, _, body) = call("tag=e").await;
    assert_eq!((status, &body["seen"]), (200, &json!(["e"])));
    assert_eq!(warm_stats(&server).await, (3, 1));

    // Every record has its own log line only, and its own memory figure.
    let records = server
        .admin(Method::GET, "/apps/shop/invocations?limit=10", None)
        .await;
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 5);
    for record in records {
        let lines: Vec<&str> = record["logs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l["message"].as_str())
            .collect();
        assert_eq!(lines.len(), 1, "{record}");
        assert!(lines[0].starts_with("tag "), "{record}");
    }
    let peak = |tag: &str| {
        records
            .iter()
            .find(|r| r["logs"][0]["message"] == format!("tag {tag}").as_str())
            .unwrap()["peak_memory"]
            .as_u64()
            .unwrap()
    };
    let mib = 1024 * 1024;
    assert!(peak("d") > 64 * mib, "the big request's peak {}", peak("d"));
    assert!(
        peak("e") < 32 * mib,
        "a fresh instance's peak {}",
        peak("e")
    );
    assert!(
        peak("b") < 32 * mib,
        "a reused instance's peak {}",
        peak("b")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_reuse_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(picloud::server::ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: Some(crate::support::TOKEN.into()),
        warm_instances: 0,
        ..picloud::server::ServeArgs::with_data_dir(dir.path().to_owned())
    })
    .await;
    server.create_app("shop").await;
    deploy_script(&server, "shop", "probe", "rhai", WARM_PROBE).await;
    server.route("shop", "GET", "/probe", "probe").await;
    for tag in ["a", "b", "c"] {
        let body: Value = server
            .get(&format!("/fn/shop/probe?tag={tag}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["seen"], json!([tag]));
    }
    assert_eq!(warm_stats(&server).await, (0, 0));
    server.stop().await;
}
