//! Events through the real server on both backends: change triggers run their function
//! with `ctx.event`, failing handlers are retried and dead-lettered, dead-letter triggers
//! fire (a failing one is never itself dead-lettered), replay after a fix, one key's
//! events run in order, and the trigger API refuses what it cannot run.

use crate::support::{Backend, SECRET_KEY, TOKEN, TestDb, TestServer, assert_error};
use picloud::server::ServeArgs;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

on_both_backends!(
    a_change_trigger_runs_its_function_with_the_event,
    a_failing_handler_is_retried_then_dead_lettered_and_replayed_after_a_fix,
    the_events_of_one_key_run_one_at_a_time_in_order,
    a_cron_trigger_fires_once_per_tick_on_two_servers_of_one_database,
    a_trigger_loop_ends_at_the_depth_limit,
    an_async_route_answers_202_then_its_result_is_readable,
    a_delivery_cut_short_by_a_crash_runs_again_after_a_restart,
    one_apps_backlog_does_not_hold_up_another_apps_events,
);

/// A server on a fresh database of `backend`, with app `shop`.
async fn server(backend: Backend) -> Option<(TestServer, TestDb, tempfile::TempDir)> {
    let db = TestDb::new(backend).await?;
    let dir = tempfile::tempdir().unwrap();
    let url = (backend == Backend::Postgres).then(|| db.url.clone());
    let server = TestServer::start(dir.path(), url).await;
    server.create_app("shop").await;
    Some((server, db, dir))
}

/// Deploys Rhai `script` as `shop/name`, on `route` when given.
async fn rhai(server: &TestServer, name: &str, script: &str, route: Option<&str>) {
    let response = server
        .api(
            Method::POST,
            &format!("/apps/shop/functions/{name}/versions?kind=rhai"),
        )
        .body(script.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    if let Some(route) = route {
        let (method, path) = route.split_once(' ').unwrap();
        server.route("shop", method, path, name).await;
    }
}

/// Reads kv entries back over HTTP: `GET /fn/shop/kv/{collection}/{key}` answers
/// `{"v": value}` (null when absent).
const READER: &str = r#"#{ v: kv::get(ctx.request.params.c, ctx.request.params.k) }"#;

/// (An app busy with a backlog may answer 429 for a while: the read is tried again.)
async fn read(server: &TestServer, collection: &str, key: &str) -> Value {
    let start = Instant::now();
    loop {
        let response = server
            .get(&format!("/fn/shop/kv/{collection}/{}", urlencode(key)))
            .await;
        if response.status() == 429 && start.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(response.status(), 200);
        return response.json::<Value>().await.unwrap()["v"].clone();
    }
}

fn urlencode(s: &str) -> String {
    s.replace('%', "%25")
        .replace(':', "%3A")
        .replace('/', "%2F")
}

/// Polls `read` until the entry exists (90 s at most: under a loaded test run, a second
/// server's first Rhai run compiles the Rhai shim first).
async fn eventually(server: &TestServer, collection: &str, key: &str) -> Value {
    let start = Instant::now();
    loop {
        let v = read(server, collection, key).await;
        if !v.is_null() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{collection}/{key} never appeared"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn trigger(server: &TestServer, body: Value) -> Value {
    server
        .admin(Method::POST, "/apps/shop/triggers", Some(body))
        .await
}

/// The invocation records of `function` of `shop`, newest first.
async fn records(server: &TestServer, function: &str) -> Vec<Value> {
    // Filtered by the server: other functions' records (a test polling through a
    // reader makes many) do not push these out of the page.
    let all = server
        .admin(
            Method::GET,
            &format!("/apps/shop/invocations?function={function}&limit=200"),
            None,
        )
        .await;
    all.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["function"] == function)
        .cloned()
        .collect()
}

/// The records of `function` once there are `n` (90 s at most; records are written
/// in batches).
async fn records_eventually(server: &TestServer, function: &str, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let found = records(server, function).await;
        if found.len() >= n {
            return found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{function} has {} records, not {n}",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_change_trigger_runs_its_function_with_the_event(backend: Backend) {
    let Some((server, _db, _dir)) = server(backend).await else {
        return;
    };
    rhai(&server, "reader", READER, Some("GET /kv/:c/:k")).await;
    rhai(
        &server,
        "writer",
        r#"kv::set("orders", "o1", #{ total: 5 });
           kv::set("other", "x", 1);
           kv::increment("orders", "n");
           kv::delete("orders", "o1");
           "ok""#,
        Some("POST /write"),
    )
    .await;
    rhai(
        &server,
        "on_order",
        r#"kv::set("seen", `${ctx.event.op}:${ctx.event.key}`, ctx.event); "ok""#,
        None,
    )
    .await;
    // A component too: examples/kv-counter counts its calls by path ("/" for events).
    server
        .deploy("shop", "counter", crate::support::kv_counter(), None)
        .await;
    trigger(
        &server,
        json!({ "name": "count-sets", "kind": "change", "function": "counter",
                "source": "kv", "collection": "orders", "ops": ["set"] }),
    )
    .await;
    let created = trigger(
        &server,
        json!({ "name": "orders", "kind": "change", "function": "on_order",
                "source": "kv", "collection": "orders", "ops": ["set", "delete"] }),
    )
    .await;
    assert_eq!(created["max_attempts"], 3, "{created}");
    assert_eq!(created["backoff_ms"], 1000);

    let response = server
        .http
        .post(format!("{}/fn/shop/write", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let set = eventually(&server, "seen", "set:o1").await;
    assert_eq!(set["source"], "kv");
    assert_eq!(set["op"], "set");
    assert_eq!(set["collection"], "orders");
    assert_eq!(set["key"], "o1");
    assert_eq!(set["value"], json!({ "total": 5 }));
    assert_eq!(set["trigger"], "orders");
    assert!(set["id"].as_str().is_some_and(|id| !id.is_empty()), "{set}");
    assert!(set["at"].as_i64().is_some(), "{set}");
    let deleted = eventually(&server, "seen", "delete:o1").await;
    assert_eq!(deleted["value"], Value::Null);
    assert_ne!(deleted["id"], set["id"], "each event has its own id");
    // Another collection and an operation the trigger did not ask for: no delivery.
    assert_eq!(read(&server, "seen", "set:x").await, Value::Null);
    assert_eq!(read(&server, "seen", "increment:n").await, Value::Null);
    assert_eq!(eventually(&server, "counters", "/").await, json!(1));
    let counted = records_eventually(&server, "counter", 1).await;
    assert_eq!(counted[0]["trigger"], "change");
    let handled = records(&server, "on_order").await;
    assert_eq!(handled.len(), 2, "{handled:?}");
    assert!(
        handled
            .iter()
            .all(|r| r["trigger"] == "change" && r["status"] == "ok")
    );
    server.stop().await;
}

async fn a_failing_handler_is_retried_then_dead_lettered_and_replayed_after_a_fix(
    backend: Backend,
) {
    let Some((server, _db, _dir)) = server(backend).await else {
        return;
    };
    rhai(&server, "reader", READER, Some("GET /kv/:c/:k")).await;
    rhai(
        &server,
        "writer",
        r#"kv::set("jobs", "j1", #{ n: 1 }); "ok""#,
        Some("POST /write"),
    )
    .await;
    rhai(
        &server,
        "fix",
        r#"kv::set("cfg", "fixed", true); "ok""#,
        Some("POST /fix"),
    )
    .await;
    rhai(
        &server,
        "flaky",
        r#"if kv::get("cfg", "fixed") == () { throw "not yet" }
           kv::set("done", ctx.event.key, ctx.event.id); "ok""#,
        None,
    )
    .await;
    rhai(
        &server,
        "on_dead",
        r#"kv::set("dead", ctx.event.original.key, ctx.event); "ok""#,
        None,
    )
    .await;
    rhai(
        &server,
        "bad_dead",
        r#"throw "the handler fails too""#,
        None,
    )
    .await;
    trigger(
        &server,
        json!({ "name": "jobs", "kind": "change", "function": "flaky", "source": "kv",
                "collection": "jobs", "max_attempts": 2, "backoff_ms": 50 }),
    )
    .await;
    trigger(
        &server,
        json!({ "name": "dead", "kind": "dead-letter", "function": "on_dead" }),
    )
    .await;
    trigger(
        &server,
        json!({ "name": "dead-too", "kind": "dead-letter", "function": "bad_dead",
                "max_attempts": 2, "backoff_ms": 50 }),
    )
    .await;

    let write = server
        .http
        .post(format!("{}/fn/shop/write", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 200);

    // The dead-letter handler fires with the dead letter (not only a row exists).
    let dead = eventually(&server, "dead", "j1").await;
    assert_eq!(dead["source"], "dead-letter");
    assert_eq!(dead["original"]["key"], "j1");
    assert_eq!(dead["original"]["collection"], "jobs");
    assert_eq!(dead["attempts"], 2);
    assert_eq!(dead["failed_trigger"], "jobs");
    assert!(
        dead["last_error"].as_str().unwrap().contains("not yet"),
        "{dead}"
    );
    let tries = records(&server, "flaky").await;
    assert_eq!(tries.len(), 2, "two attempts: {tries:?}");
    assert!(
        tries
            .iter()
            .all(|r| r["trigger"] == "change" && r["status"] == "error")
    );
    let handled = records(&server, "on_dead").await;
    assert_eq!(handled[0]["trigger"], "dead-letter");

    // The failing dead-letter handler runs its attempts and is not dead-lettered.
    let start = Instant::now();
    while records(&server, "bad_dead").await.len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "bad_dead ran twice"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(records(&server, "bad_dead").await.len(), 2);
    let letters = server
        .admin(Method::GET, "/apps/shop/dead-letters", None)
        .await;
    let letters = letters.as_array().unwrap();
    assert_eq!(letters.len(), 1, "only the original event: {letters:?}");
    let letter = &letters[0];
    assert_eq!(letter["trigger"], "jobs");
    assert_eq!(letter["status"], "dead");
    assert_eq!(letter["attempts"], 2);
    assert_eq!(letter["event"]["key"], "j1");
    let id = letter["id"].as_i64().unwrap();
    let shown = server
        .admin(Method::GET, &format!("/apps/shop/dead-letters/{id}"), None)
        .await;
    assert_eq!(shown["id"], id);

    // Another app cannot settle it through the SDK: not found, as for an unknown id.
    server.create_app("other").await;
    let settle =
        r#"try { dead_letters::resolve(ctx.request.params.id); "resolved" } catch (e) { `${e}` }"#;
    let response = server
        .api(
            Method::POST,
            "/apps/other/functions/settle/versions?kind=rhai",
        )
        .body(settle)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    server.route("other", "POST", "/settle/:id", "settle").await;
    for id in [id.to_string(), "999999".to_owned(), "x".to_owned()] {
        let answer = server
            .http
            .post(format!("{}/fn/other/settle/{id}", server.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!answer.contains("resolved"), "{id}: {answer}");
    }
    assert_eq!(
        server
            .admin(Method::GET, "/apps/shop/dead-letters", None)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Fixed, replayed: it runs again with its id, and is no dead letter any more.
    server
        .http
        .post(format!("{}/fn/shop/fix", server.url))
        .send()
        .await
        .unwrap();
    let replay = server
        .api(
            Method::POST,
            &format!("/apps/shop/dead-letters/{id}/replay"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 202);
    let done = eventually(&server, "done", "j1").await;
    assert_eq!(done, letter["event"]["id"], "the same event id on replay");
    let letters = server
        .admin(Method::GET, "/apps/shop/dead-letters", None)
        .await;
    assert_eq!(letters, json!([]));
    // Replaying or resolving what is no dead letter: 404.
    for action in ["replay", "resolve"] {
        let response = server
            .api(
                Method::POST,
                &format!("/apps/shop/dead-letters/{id}/{action}"),
            )
            .send()
            .await
            .unwrap();
        assert_error(response, 404, "not_found").await;
    }
    server.stop().await;
}

async fn the_events_of_one_key_run_one_at_a_time_in_order(backend: Backend) {
    let Some((server, _db, _dir)) = server(backend).await else {
        return;
    };
    rhai(&server, "reader", READER, Some("GET /kv/:c/:k")).await;
    rhai(
        &server,
        "writer",
        r#"for i in 0..20 { kv::set("counter", "k", i); } "ok""#,
        Some("POST /write"),
    )
    .await;
    // Read-modify-write with no transaction: lost or reordered updates show if two
    // deliveries of the key ever overlap or run out of order.
    rhai(
        &server,
        "append",
        r#"let seen = kv::get("log", "k") ?? [];
           seen.push(ctx.event.value);
           kv::set("log", "k", seen);
           if seen.len() == 20 { kv::set("log", "complete", true) }
           "ok""#,
        None,
    )
    .await;
    trigger(
        &server,
        json!({ "name": "append", "kind": "change", "function": "append",
                "source": "kv", "collection": "counter" }),
    )
    .await;
    let write = server
        .http
        .post(format!("{}/fn/shop/write", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 200);
    eventually(&server, "log", "complete").await;
    let log = read(&server, "log", "k").await;
    assert_eq!(log, json!((0..20).collect::<Vec<_>>()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trigger_api_refuses_what_it_cannot_run() {
    let Some((server, _db, _dir)) = server(Backend::Sqlite).await else {
        return;
    };
    rhai(&server, "f", "\"ok\"", None).await;
    let post = |body: Value| {
        server
            .api(Method::POST, "/apps/shop/triggers")
            .json(&body)
            .send()
    };
    let base = json!({ "name": "t", "kind": "change", "function": "f", "source": "kv" });
    let with = |patch: Value| {
        let mut body = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    for (patch, says) in [
        (json!({ "kind": "hourly" }), "kind"),
        (json!({ "kind": "cron" }), "no source"),
        (
            json!({ "kind": "cron", "source": null }),
            "needs a schedule",
        ),
        (
            json!({ "kind": "cron", "source": null, "schedule": "61 * * * *" }),
            "not a cron expression",
        ),
        (
            json!({ "kind": "cron", "source": null, "schedule": "0 0 * * * *" }),
            "5: minute",
        ),
        (json!({ "schedule": "* * * * *" }), "only a cron trigger"),
        (json!({ "source": null }), "needs a source"),
        (json!({ "source": "queue" }), "source"),
        (json!({ "ops": ["put"] }), "\"put\""),
        (json!({ "ops": [] }), "at least one"),
        (json!({ "collection": "" }), "collection"),
        (json!({ "name": "no spaces" }), "trigger name"),
        (json!({ "max_attempts": 0 }), "max_attempts"),
        (json!({ "backoff_ms": 0 }), "backoff_ms"),
        (
            json!({ "kind": "dead-letter", "ops": ["set"] }),
            "no collection or ops",
        ),
    ] {
        let response = post(with(patch.clone())).await.unwrap();
        let body = assert_error(response, 400, "bad_request").await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{patch}: {message}");
    }
    let response = post(with(json!({ "function": "missing" }))).await.unwrap();
    assert_error(response, 404, "not_found").await;
    let response = server
        .api(Method::POST, "/apps/nope/triggers")
        .json(&base)
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "not_found").await;

    let created = post(base.clone()).await.unwrap();
    assert_eq!(created.status(), 201);
    let again = post(base.clone()).await.unwrap();
    assert_error(again, 409, "conflict").await;
    let list = server.admin(Method::GET, "/apps/shop/triggers", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "t");
    assert_eq!(list[0]["ops"], Value::Null);
    let deleted = server
        .api(Method::DELETE, "/apps/shop/triggers/t")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let deleted = server
        .api(Method::DELETE, "/apps/shop/triggers/t")
        .send()
        .await
        .unwrap();
    assert_error(deleted, 404, "not_found").await;
    server.stop().await;
}

async fn a_cron_trigger_fires_once_per_tick_on_two_servers_of_one_database(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    // Two servers (nodes) on one database when it is PostgreSQL; SQLite has one process.
    let nodes = if backend == Backend::Postgres { 2 } else { 1 };
    let mut servers = Vec::new();
    let mut dirs = Vec::new();
    for _ in 0..nodes {
        let dir = tempfile::tempdir().unwrap();
        let args = ServeArgs {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: Some(db.url.clone()),
            admin_token: Some(TOKEN.into()),
            ..ServeArgs::with_data_dir(dir.path().to_owned())
        };
        let clock = args.clock.clone();
        servers.push((TestServer::start_with(args).await, clock));
        dirs.push(dir);
    }
    let server = &servers[0].0;
    server.create_app("shop").await;
    rhai(server, "reader", READER, Some("GET /kv/:c/:k")).await;
    rhai(
        server,
        "tick",
        r#"kv::increment("ticks", `${ctx.event.tick}`);
           kv::set("last", "event", ctx.event);
           "ok""#,
        None,
    )
    .await;
    // Daily at midnight UTC: the wall clock never reaches a tick during the test; the
    // test's clocks jump to them.
    let created = trigger(
        server,
        json!({ "name": "nightly", "kind": "cron", "function": "tick", "schedule": "0 0 * * *" }),
    )
    .await;
    const DAY: i64 = 86_400_000;
    let first = created["next_tick"].as_i64().unwrap();
    assert_eq!(first % DAY, 0, "midnight: {created}");
    let wall = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let to_first = Duration::from_millis(u64::try_from(first - wall + 1_000).unwrap());

    // Just past the tick: it fires once, whichever node takes it.
    for (_, clock) in &servers {
        clock.advance(to_first);
    }
    let event = eventually(server, "last", "event").await;
    assert_eq!(event["source"], "cron");
    assert_eq!(event["tick"], first);
    assert_eq!(event["schedule"], "0 0 * * *");
    assert_eq!(event["trigger"], "nightly");
    let fired = records_eventually(server, "tick", 1).await;
    assert_eq!(fired[0]["trigger"], "cron");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(read(server, "ticks", &first.to_string()).await, json!(1));
    assert_eq!(records(server, "tick").await.len(), 1);

    // Down for three days (the clocks jump): the three missed ticks fire once, for the
    // first of them, and the next is the first after now.
    for (_, clock) in &servers {
        clock.advance(Duration::from_millis(3 * DAY as u64));
    }
    let second = first + DAY;
    let start = Instant::now();
    while read(server, "ticks", &second.to_string()).await.is_null() {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the missed tick fired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    records_eventually(server, "tick", 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(records(server, "tick").await.len(), 2);
    for missed in [first + 2 * DAY, first + 3 * DAY] {
        assert_eq!(
            read(server, "ticks", &missed.to_string()).await,
            Value::Null
        );
    }
    let listed = server.admin(Method::GET, "/apps/shop/triggers", None).await;
    assert_eq!(listed[0]["next_tick"], first + 4 * DAY, "{listed}");
    for (server, _) in servers {
        server.stop().await;
    }
}

async fn one_apps_backlog_does_not_hold_up_another_apps_events(backend: Backend) {
    let Some((server, db, dir)) = server(backend).await else {
        return;
    };
    server.create_app("quiet").await;
    rhai(&server, "reader", READER, Some("GET /kv/:c/:k")).await;
    rhai(
        &server,
        "slow",
        r#"let x = 0; for i in 0..20000 { x += i; } kv::increment("n", "done"); "ok""#,
        None,
    )
    .await;
    trigger(
        &server,
        json!({ "name": "bulk", "kind": "change", "function": "slow",
                "source": "docs", "collection": "bulk" }),
    )
    .await;
    for (name, script, route) in [
        ("write", r#"kv::set("in", "k", 1); "ok""#, "POST /write"),
        ("handle", r#"kv::set("out", "k", 1); "ok""#, "POST /unused"),
        ("reader", READER, "GET /kv/:c/:k"),
    ] {
        let response = server
            .api(
                Method::POST,
                &format!("/apps/quiet/functions/{name}/versions?kind=rhai"),
            )
            .body(script)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let (method, path) = route.split_once(' ').unwrap();
        server.route("quiet", method, path, name).await;
    }
    server
        .admin(
            Method::POST,
            "/apps/quiet/triggers",
            Some(
                json!({ "name": "in", "kind": "change", "function": "handle",
                         "source": "kv", "collection": "in" }),
            ),
        )
        .await;

    // 300 events of shop, then one of quiet: quiet's runs while shop's backlog drains
    // (claims pass over an app running its share), not after it. Counted in the order
    // the invocations started, so a loaded machine slows both alike.
    // Shop's 300 arrive at once: imported in one transaction (the storage layer's bulk
    // import, on a connection of the test's own).
    let url = match backend {
        Backend::Postgres => db.url.clone(),
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("picloud.db").display()),
    };
    let store = picloud::storage::Db::open(&url).await.unwrap();
    let shop = store.get_app("shop").await.unwrap().unwrap();
    let docs: Vec<(String, String)> = (0..300)
        .map(|i| (format!("d{i}"), json!({ "n": i }).to_string()))
        .collect();
    store.docs_import(&shop.id, "bulk", &docs).await.unwrap();
    store.close().await;
    let response = server
        .http
        .post(format!("{}/fn/quiet/write", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(eventually_n(&server, "n", "done", 300).await, 300);
    let started = |records: &Value, function: &str| -> Vec<i64> {
        records
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["function"] == function && r["status"] == "ok")
            .map(|r| r["started_at"].as_i64().unwrap())
            .collect()
    };
    let start = Instant::now();
    let (shop, quiet) = loop {
        let shop = server
            .admin(
                Method::GET,
                "/apps/shop/invocations?function=slow&limit=1000",
                None,
            )
            .await;
        let quiet = server
            .admin(Method::GET, "/apps/quiet/invocations?function=handle", None)
            .await;
        let (shop, quiet) = (started(&shop, "slow"), started(&quiet, "handle"));
        if shop.len() >= 300 && quiet.len() == 1 {
            break (shop, quiet[0]);
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{} of shop's and {} of quiet's records",
            shop.len(),
            quiet.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let before = shop.iter().filter(|at| **at < quiet).count();
    assert!(
        before < 150,
        "{before} of shop's 300 deliveries started before quiet's one"
    );
    server.stop().await;
}

/// Polls kv counter `collection/key` until it reaches `n` (90 s at most).
async fn eventually_n(server: &TestServer, collection: &str, key: &str, n: i64) -> i64 {
    let start = Instant::now();
    loop {
        let v = read(server, collection, key).await.as_i64().unwrap_or(0);
        if v >= n {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{collection}/{key} is {v}, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_trigger_loop_ends_at_the_depth_limit(backend: Backend) {
    let Some((server, _db, _dir)) = server(backend).await else {
        return;
    };
    rhai(&server, "reader", READER, Some("GET /kv/:c/:k")).await;
    rhai(
        &server,
        "start",
        r#"kv::increment("loop", "n"); "ok""#,
        Some("POST /start"),
    )
    .await;
    // Each run writes what triggers the next: a loop only the depth limit ends.
    rhai(
        &server,
        "again",
        r#"kv::increment("loop", "n"); "ok""#,
        None,
    )
    .await;
    trigger(
        &server,
        json!({ "name": "loop", "kind": "change", "function": "again",
                "source": "kv", "collection": "loop" }),
    )
    .await;
    let start = server
        .http
        .post(format!("{}/fn/shop/start", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 200);
    // The request's write (depth 0) and the writes of runs at depths 1 to 8; the event
    // of depth 8 is dropped.
    let began = Instant::now();
    while read(&server, "loop", "n").await != json!(9) {
        assert!(
            began.elapsed() < Duration::from_secs(90),
            "the chain ran 8 times"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(read(&server, "loop", "n").await, json!(9), "and no further");
    assert_eq!(records(&server, "again").await.len(), 8);
    assert_eq!(
        server
            .admin(Method::GET, "/apps/shop/dead-letters", None)
            .await,
        json!([]),
        "a dropped event is not dead-lettered"
    );
    server.stop().await;
}

async fn an_async_route_answers_202_then_its_result_is_readable(backend: Backend) {
    use base64::Engine as _;
    let Some((server, _db, _dir)) = server(backend).await else {
        return;
    };
    rhai(
        &server,
        "job",
        r#"kv::set("async", "last", ctx.request.json); #{ got: ctx.request.json.n, path: ctx.request.params.id }"#,
        None,
    )
    .await;
    let route = server
        .admin(
            Method::POST,
            "/apps/shop/routes",
            Some(json!({ "method": "POST", "path": "/jobs/:id", "function": "job", "dispatch": "async" })),
        )
        .await;
    assert_eq!(route["dispatch"], "async");
    let response = server
        .http
        .post(format!("{}/fn/shop/jobs/j7", server.url))
        .json(&json!({ "n": 7 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    assert!(accepted["accepted_at"].as_i64().is_some(), "{accepted}");
    let id = accepted["execution_id"].as_str().unwrap().to_owned();

    let start = Instant::now();
    let execution = loop {
        let execution = server
            .admin(Method::GET, &format!("/apps/shop/executions/{id}"), None)
            .await;
        if execution["status"] != "pending" {
            break execution;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "{execution}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(execution["status"], "done", "{execution}");
    assert_eq!(execution["function"], "job");
    assert!(
        execution["finished_at"].as_i64().unwrap() >= accepted["accepted_at"].as_i64().unwrap()
    );
    let result = &execution["result"];
    assert_eq!(result["status"], 200);
    let body = base64::engine::general_purpose::STANDARD
        .decode(result["body_base64"].as_str().unwrap())
        .unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body, json!({ "got": 7, "path": "j7" }));
    let record = server.last_record("shop").await;
    assert_eq!(record["trigger"], "async");

    // A body past the async cap is refused before anything is queued; unknown
    // executions and another app's are not found.
    let big = server
        .http
        .post(format!("{}/fn/shop/jobs/big", server.url))
        .body(vec![b'x'; 300 * 1024])
        .send()
        .await
        .unwrap();
    assert_error(big, 413, "payload_too_large").await;
    server.create_app("other").await;
    for path in [
        "/apps/shop/executions/999999".to_owned(),
        "/apps/shop/executions/nope".to_owned(),
        format!("/apps/other/executions/{id}"),
    ] {
        let response = server.api(Method::GET, &path).send().await.unwrap();
        assert_error(response, 404, "not_found").await;
    }
    server.stop().await;
}

/// `picloud serve` as a process of its own on `data_dir` (and `database`, if any),
/// answering once it is up.
async fn spawn_server(
    data_dir: &std::path::Path,
    database: Option<&str>,
) -> (std::process::Child, TestServer) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_picloud"));
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--event-claim-secs",
            "2",
            "--dashboard-listen",
            "off",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .env("PICLOUD_ADMIN_TOKEN", TOKEN)
        .env("PICLOUD_SECRET_KEY", SECRET_KEY)
        .env("PICLOUD_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(url) = database {
        command.args(["--database-url", url]);
    }
    let child = command.spawn().unwrap();
    let server = TestServer::remote(format!("http://127.0.0.1:{port}"));
    let start = Instant::now();
    loop {
        let up = server.api(Method::GET, "/apps").send().await;
        if up.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "picloud serve started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, server)
}

async fn a_delivery_cut_short_by_a_crash_runs_again_after_a_restart(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let database = (backend == Backend::Postgres).then_some(db.url.as_str());
    let (mut child, server) = spawn_server(dir.path(), database).await;
    server.create_app("shop").await;
    server
        .admin(
            Method::PUT,
            "/apps/shop/limits",
            Some(json!({ "fuel": 1_000_000_000_000_u64, "timeout_ms": 120_000 })),
        )
        .await;
    rhai(&server, "reader", READER, Some("GET /kv/:c/:k")).await;
    rhai(
        &server,
        "writer",
        r#"kv::set("jobs", "j1", 1); "ok""#,
        Some("POST /write"),
    )
    .await;
    // The first run marks that it started, then spins until the process is killed.
    rhai(
        &server,
        "handler",
        r#"if kv::get("c", "started") == () { kv::set("c", "started", true); loop {} }
           kv::set("done", ctx.event.key, ctx.event.id); "ok""#,
        None,
    )
    .await;
    trigger(
        &server,
        json!({ "name": "jobs", "kind": "change", "function": "handler", "source": "kv",
                "collection": "jobs" }),
    )
    .await;
    let write = server
        .http
        .post(format!("{}/fn/shop/write", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 200);
    eventually(&server, "c", "started").await;
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, server) = spawn_server(dir.path(), database).await;
    let done = eventually(&server, "done", "j1").await;
    assert!(done.as_str().is_some_and(|id| !id.is_empty()), "{done}");
    child.kill().unwrap();
    child.wait().unwrap();
}
