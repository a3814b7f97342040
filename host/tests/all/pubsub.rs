//! Pub/sub and realtime through the real server on both backends: a durable publish
//! runs the app's pubsub triggers with `ctx.event`; browsers subscribe to external
//! topics over Server-Sent Events with a token a function minted, receive what
//! functions publish, resume durable messages with `Last-Event-ID`, get heartbeats;
//! every way in without a valid token for that app and topic is refused alike.

use crate::support::{Backend, TOKEN, TestDb, TestServer};
use picloud::server::ServeArgs;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

on_both_backends!(
    a_durable_publish_runs_the_pubsub_trigger_with_the_event,
    a_subscriber_receives_what_functions_publish_and_heartbeats,
    a_subscriber_resumes_durable_messages_after_its_last_event_id,
    only_a_valid_token_for_that_app_and_external_topic_subscribes,
    publishes_are_checked_at_the_boundary,
    end_users_subscribe_with_their_session_until_they_log_out,
);

// Caps hold per node whatever the backend, so once, on SQLite: an app's own cap answers
// 429 (the app's quota), the node's 503 (the server is full, whichever app asks); a
// subscriber that leaves gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_are_capped_per_app_and_per_node() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: Some(TOKEN.into()),
        realtime_heartbeat_secs: 1,
        realtime_max_subscribers_per_app: 1,
        realtime_max_subscribers: 2,
        ..ServeArgs::with_data_dir(dir.path().to_owned())
    })
    .await;
    let mut tokens = Vec::new();
    for app in ["a", "b", "c"] {
        server.create_app(app).await;
        rhai(&server, app, "tokens", TOKENS, "GET /token").await;
        topic(&server, app, "prices", true).await;
        tokens.push(token(&server, app, "prices").await);
    }
    let (status, a, _) = subscribe(&server, "a", "prices", Some(&tokens[0]), None).await;
    assert_eq!(status, 200);
    let (status, _, body) = subscribe(&server, "a", "prices", Some(&tokens[0]), None).await;
    assert_eq!(status, 429, "app a has its one subscriber: {body}");
    assert!(body.contains("most realtime subscribers"), "{body}");
    let (status, _b, _) = subscribe(&server, "b", "prices", Some(&tokens[1]), None).await;
    assert_eq!(status, 200, "another app still subscribes");
    let (status, _, body) = subscribe(&server, "c", "prices", Some(&tokens[2]), None).await;
    assert_eq!(status, 503, "the node has its two subscribers: {body}");
    // The server sees a closed stream at its next write (a heartbeat, every second).
    drop(a);
    let start = Instant::now();
    loop {
        let (status, c, _) = subscribe(&server, "c", "prices", Some(&tokens[2]), None).await;
        if status == 200 {
            drop(c);
            break;
        }
        assert_eq!(status, 503);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "a subscriber that left gives its place back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Publishes `?kind=durable|realtime` `{n, from}` on `?topic`.
const PUBLISHER: &str = r#"
let q = ctx.request.query;
let message = #{ n: parse_int(q.n), from: "shop" };
if q.kind == "durable" { pubsub::publish_durable(q.topic, message); } else { pubsub::publish(q.topic, message); }
"ok""#;

/// Mints a subscriber token for `?topic`.
const TOKENS: &str = r#"#{ token: pubsub::subscriber_token(ctx.request.query.topic, 60) }"#;

/// A server (heartbeat every second) on a fresh database of `backend`, with app `shop`
/// and its publisher and token functions; topic `prices` external, `audit` internal.
async fn server(backend: Backend) -> Option<(TestServer, TestDb, tempfile::TempDir)> {
    let db = TestDb::new(backend).await?;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: (backend == Backend::Postgres).then(|| db.url.clone()),
        admin_token: Some(TOKEN.into()),
        realtime_heartbeat_secs: 1,
        ..ServeArgs::with_data_dir(dir.path().to_owned())
    })
    .await;
    server.create_app("shop").await;
    rhai(&server, "shop", "publisher", PUBLISHER, "POST /publish").await;
    rhai(&server, "shop", "tokens", TOKENS, "GET /token").await;
    topic(&server, "shop", "prices", true).await;
    topic(&server, "shop", "audit", false).await;
    Some((server, db, dir))
}

async fn rhai(server: &TestServer, app: &str, name: &str, script: &str, route: &str) {
    let response = server
        .api(
            Method::POST,
            &format!("/apps/{app}/functions/{name}/versions?kind=rhai"),
        )
        .body(script.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let (method, path) = route.split_once(' ').unwrap();
    server.route(app, method, path, name).await;
}

async fn topic(server: &TestServer, app: &str, name: &str, external: bool) -> Value {
    server
        .admin(
            Method::PUT,
            &format!("/apps/{app}/topics/{name}"),
            Some(json!({ "external": external })),
        )
        .await
}

async fn publish(server: &TestServer, app: &str, topic: &str, kind: &str, n: i64) {
    let response = server
        .http
        .post(format!(
            "{}/fn/{app}/publish?topic={topic}&kind={kind}&n={n}",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

async fn token(server: &TestServer, app: &str, topic: &str) -> String {
    let response = server.get(&format!("/fn/{app}/token?topic={topic}")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// One Server-Sent Events block: its comment lines, id and data.
#[derive(Debug, Default)]
struct SseEvent {
    comments: Vec<String>,
    id: Option<String>,
    data: Option<String>,
}

/// A subscriber's stream, read block by block.
struct Subscriber {
    response: reqwest::Response,
    buffer: String,
}

impl Subscriber {
    /// The next block (comment-only blocks included), or `None` when the stream ended;
    /// 30 s at most.
    async fn next(&mut self) -> Option<SseEvent> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                for line in block.lines() {
                    if let Some(comment) = line.strip_prefix(':') {
                        event.comments.push(comment.trim().to_owned());
                    } else if let Some(id) = line.strip_prefix("id:") {
                        event.id = Some(id.trim().to_owned());
                    } else if let Some(data) = line.strip_prefix("data:") {
                        event.data = Some(data.trim().to_owned());
                    }
                }
                return Some(event);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .expect("an event within 30 s")
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next message (skipping heartbeats): its id and data as JSON.
    async fn message(&mut self) -> (Option<String>, Value) {
        loop {
            let event = self.next().await.expect("the stream goes on");
            if let Some(data) = event.data {
                return (event.id, serde_json::from_str(&data).unwrap());
            }
        }
    }
}

/// Opens `GET /rt/{app}/{topic}` with `token` in the query (or none), and
/// `Last-Event-ID` when given; answers the status and, on 200, the subscriber.
async fn subscribe(
    server: &TestServer,
    app: &str,
    topic: &str,
    token: Option<&str>,
    last_event_id: Option<&str>,
) -> (u16, Option<Subscriber>, String) {
    let mut url = format!("{}/rt/{app}/{topic}", server.url);
    if let Some(token) = token {
        url.push_str(&format!("?token={token}"));
    }
    let mut request = server.http.get(url);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status != 200 {
        let text = response.text().await.unwrap();
        return (status, None, text);
    }
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "an event stream"
    );
    (
        status,
        Some(Subscriber {
            response,
            buffer: String::new(),
        }),
        String::new(),
    )
}

/// The entry at `seen/{key}` once it exists (90 s at most).
async fn eventually_seen(server: &TestServer, key: &str) -> Value {
    let start = Instant::now();
    loop {
        let response = server.get(&format!("/fn/shop/seen/{key}")).await;
        assert_eq!(response.status(), 200);
        let v = response.json::<Value>().await.unwrap()["v"].clone();
        if !v.is_null() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "seen/{key} never appeared"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_durable_publish_runs_the_pubsub_trigger_with_the_event(backend: Backend) {
    let Some((server, _db, _dir)) = server(backend).await else {
        return;
    };
    rhai(
        &server,
        "shop",
        "reader",
        r#"#{ v: kv::get("seen", ctx.request.params.k) }"#,
        "GET /seen/:k",
    )
    .await;
    rhai(
        &server,
        "shop",
        "on_order",
        r#"kv::set("seen", `${ctx.event.message.n}`, ctx.event); "ok""#,
        "POST /unused",
    )
    .await;
    let created = server
        .admin(
            Method::POST,
            "/apps/shop/triggers",
            Some(
                json!({ "name": "orders", "kind": "pubsub", "topic": "orders",
                         "function": "on_order" }),
            ),
        )
        .await;
    assert_eq!(created["kind"], "pubsub");
    assert_eq!(created["collection"], "orders", "{created}");

    // Realtime-only publishes and other topics never reach the trigger.
    publish(&server, "shop", "orders", "realtime", 1).await;
    publish(&server, "shop", "other", "durable", 2).await;
    publish(&server, "shop", "orders", "durable", 3).await;
    let event = eventually_seen(&server, "3").await;
    assert_eq!(event["source"], "pubsub");
    assert_eq!(event["topic"], "orders");
    assert_eq!(event["message"], json!({ "n": 3, "from": "shop" }));
    assert_eq!(event["trigger"], "orders");
    assert!(
        event["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{event}"
    );
    assert!(event["published_at"].as_i64().is_some(), "{event}");
    let records = server
        .admin(Method::GET, "/apps/shop/invocations?limit=200", None)
        .await;
    let handled: Vec<&Value> = records
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["function"] == "on_order")
        .collect();
    assert_eq!(handled.len(), 1, "{handled:?}");
    assert_eq!(handled[0]["trigger"], "pubsub");
    for n in ["1", "2"] {
        let response = server.get(&format!("/fn/shop/seen/{n}")).await;
        assert_eq!(response.json::<Value>().await.unwrap()["v"], Value::Null);
    }

    // A pubsub trigger names one valid topic, and nothing else.
    for (body, says) in [
        (
            json!({ "name": "t", "kind": "pubsub", "function": "on_order" }),
            "needs the topic",
        ),
        (
            json!({ "name": "t", "kind": "pubsub", "topic": "a/b", "function": "on_order" }),
            "topic name",
        ),
        (
            json!({ "name": "t", "kind": "pubsub", "topic": "a", "source": "kv",
                    "function": "on_order" }),
            "no source",
        ),
        (
            json!({ "name": "t", "kind": "change", "source": "kv", "topic": "a",
                    "function": "on_order" }),
            "only a pubsub trigger",
        ),
    ] {
        let response = server
            .api(Method::POST, "/apps/shop/triggers")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let text = response.text().await.unwrap();
        assert!(text.contains(says), "{body}: {text}");
    }
    server.stop().await;
}

async fn a_subscriber_receives_what_functions_publish_and_heartbeats(backend: Backend) {
    let Some((server, _db, _dir)) = server(backend).await else {
        return;
    };
    let token = token(&server, "shop", "prices").await;
    assert!(token.starts_with("rt1."), "{token}");
    let (status, subscriber, text) = subscribe(&server, "shop", "prices", Some(&token), None).await;
    assert_eq!(status, 200, "{text}");
    let mut subscriber = subscriber.unwrap();
    // A second subscriber sends the token as a bearer header instead.
    let response = server
        .http
        .get(format!("{}/rt/shop/prices", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let mut second = Subscriber {
        response,
        buffer: String::new(),
    };

    publish(&server, "shop", "prices", "realtime", 1).await;
    publish(&server, "shop", "prices", "durable", 2).await;
    // Other topics are not this stream's.
    publish(&server, "shop", "audit", "durable", 3).await;
    publish(&server, "shop", "prices", "realtime", 4).await;
    for subscriber in [&mut subscriber, &mut second] {
        let (id, data) = subscriber.message().await;
        assert_eq!((id, data), (None, json!({ "n": 1, "from": "shop" })));
        let (id, data) = subscriber.message().await;
        assert_eq!(data, json!({ "n": 2, "from": "shop" }));
        let id: i64 = id.expect("a durable message has an id").parse().unwrap();
        assert!(id > 0);
        let (id, data) = subscriber.message().await;
        assert_eq!((id, data["n"].clone()), (None, json!(4)));
    }
    // Idle: a heartbeat comment comes (every second on this server).
    let event = subscriber.next().await.unwrap();
    assert_eq!(event.comments, ["heartbeat"], "{event:?}");
    assert!(event.data.is_none());
    server.stop().await;
}

async fn a_subscriber_resumes_durable_messages_after_its_last_event_id(backend: Backend) {
    let Some((server, _db, _dir)) = server(backend).await else {
        return;
    };
    let token = token(&server, "shop", "prices").await;
    let (_, subscriber, _) = subscribe(&server, "shop", "prices", Some(&token), None).await;
    let mut subscriber = subscriber.unwrap();
    publish(&server, "shop", "prices", "durable", 1).await;
    let (first, _) = subscriber.message().await;
    let first = first.unwrap();
    drop(subscriber);
    // Missed while away: two durable messages, one realtime-only (gone for good), and
    // one on another topic.
    publish(&server, "shop", "prices", "durable", 2).await;
    publish(&server, "shop", "prices", "realtime", 3).await;
    publish(&server, "shop", "audit", "durable", 4).await;
    publish(&server, "shop", "prices", "durable", 5).await;

    let (status, subscriber, text) =
        subscribe(&server, "shop", "prices", Some(&token), Some(&first)).await;
    assert_eq!(status, 200, "{text}");
    let mut subscriber = subscriber.unwrap();
    let (id2, two) = subscriber.message().await;
    assert_eq!(two["n"], 2);
    let (id5, five) = subscriber.message().await;
    assert_eq!(five["n"], 5);
    let ids: Vec<i64> = [&first, &id2.unwrap(), &id5.unwrap()]
        .iter()
        .map(|id| id.parse().unwrap())
        .collect();
    assert!(ids[0] < ids[1] && ids[1] < ids[2], "{ids:?}");
    // Then live, without a replayed message twice.
    publish(&server, "shop", "prices", "durable", 6).await;
    let (_, six) = subscriber.message().await;
    assert_eq!(six["n"], 6);
    server.stop().await;
}

async fn only_a_valid_token_for_that_app_and_external_topic_subscribes(backend: Backend) {
    let Some((server, _db, _dir)) = server(backend).await else {
        return;
    };
    server.create_app("rival").await;
    rhai(&server, "rival", "tokens", TOKENS, "GET /token").await;
    topic(&server, "rival", "prices", true).await;
    let rival_token = token(&server, "rival", "prices").await;
    let shop_token = token(&server, "shop", "prices").await;
    let (head, _) = shop_token.rsplit_once('.').unwrap();

    // Every bad token is the same 401, which tells nothing of why.
    let mut answers = Vec::new();
    for bad in [
        None,
        Some(rival_token.as_str()),
        Some("rt1.e30.AAAA"),
        Some(&format!("{head}.AAAA")),
        Some("not-a-token"),
    ] {
        let (status, _, text) = subscribe(&server, "shop", "prices", bad, None).await;
        assert_eq!(status, 401, "{bad:?}: {text}");
        answers.push(text);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert!(!answers[0].contains("rival") && !answers[0].contains("signature"));

    // An internal topic, an undeclared one, an unknown app: the same 404, even with a
    // valid token of the app.
    let mut answers = Vec::new();
    for (app, topic) in [
        ("shop", "audit"),
        ("shop", "nothing"),
        ("nobody", "prices"),
        ("shop", "bad%2Fname"),
    ] {
        let (status, _, text) = subscribe(&server, app, topic, Some(&shop_token), None).await;
        assert_eq!(status, 404, "{app}/{topic}: {text}");
        answers.push(text);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");

    // A function cannot mint a token for an internal or undeclared topic.
    for topic in ["audit", "nothing"] {
        let response = server.get(&format!("/fn/shop/token?topic={topic}")).await;
        assert_eq!(response.status(), 502, "{topic}");
    }
    let record = server.last_record("shop").await;
    let logged = record.to_string();
    assert!(logged.contains("not declared external"), "{logged}");

    // Made internal (or deleted), the topic refuses tokens minted before.
    topic(&server, "shop", "prices", false).await;
    let (status, _, _) = subscribe(&server, "shop", "prices", Some(&shop_token), None).await;
    assert_eq!(status, 404);
    server
        .admin(Method::DELETE, "/apps/shop/topics/prices", None)
        .await;
    let listed = server.admin(Method::GET, "/apps/shop/topics", None).await;
    assert_eq!(
        listed,
        json!([{ "name": "audit", "external": false, "sessions": false,
                               "created_at": listed[0]["created_at"] }])
    );
    server.stop().await;
}

/// A topic declared with `sessions` also takes an end user's session token: until the
/// session ends (a logout ends the stream at the next heartbeat).
async fn end_users_subscribe_with_their_session_until_they_log_out(backend: Backend) {
    let Some((server, _db, _dir)) = server(backend).await else {
        return;
    };
    const AUTH: &str = r#"
        let r = ctx.request.json;
        switch r.op { "login" => users::login(r.email, r.password), "logout" => users::logout(r.token) }
    "#;
    server.create_app("rival").await;
    for app in ["shop", "rival"] {
        rhai(&server, app, "auth", AUTH, "POST /auth").await;
        server
            .admin(
                Method::POST,
                &format!("/apps/{app}/users"),
                Some(json!({ "email": "ada@example.com", "password": "correct horse battery" })),
            )
            .await;
    }
    let login = |app: &'static str| {
        let server = &server;
        async move {
            let response = server
                .http
                .post(format!("{}/fn/{app}/auth", server.url))
                .json(&json!({ "op": "login", "email": "ada@example.com", "password": "correct horse battery" }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.text().await.unwrap()
        }
    };
    let session = login("shop").await;
    let rival_session = login("rival").await;
    assert!(session.starts_with("ses_"), "{session}");
    server
        .admin(
            Method::PUT,
            "/apps/shop/topics/chat",
            Some(json!({ "external": true, "sessions": true })),
        )
        .await;
    let response = server
        .api(Method::PUT, "/apps/shop/topics/secret")
        .json(&json!({ "external": false, "sessions": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // Not on a topic without sessions, not another app's session.
    let (status, _, _) = subscribe(&server, "shop", "prices", Some(&session), None).await;
    assert_eq!(status, 401);
    let (status, _, _) = subscribe(&server, "shop", "chat", Some(&rival_session), None).await;
    assert_eq!(status, 401);

    let (status, subscriber, text) = subscribe(&server, "shop", "chat", Some(&session), None).await;
    assert_eq!(status, 200, "{text}");
    let mut subscriber = subscriber.unwrap();
    publish(&server, "shop", "chat", "realtime", 1).await;
    assert_eq!(subscriber.message().await.1["n"], 1);

    let response = server
        .http
        .post(format!("{}/fn/shop/auth", server.url))
        .json(&json!({ "op": "logout", "token": session }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    // The stream ends at a heartbeat (every second here), with nothing but heartbeats
    // before.
    let mut heartbeats = 0;
    while let Some(event) = subscriber.next().await {
        assert!(event.data.is_none(), "{event:?}");
        heartbeats += 1;
        assert!(heartbeats < 5, "the stream went on after the logout");
    }
    let (status, _, _) = subscribe(&server, "shop", "chat", Some(&session), None).await;
    assert_eq!(status, 401);
    server.stop().await;
}

async fn publishes_are_checked_at_the_boundary(backend: Backend) {
    let Some((server, _db, _dir)) = server(backend).await else {
        return;
    };
    rhai(
        &server,
        "shop",
        "hostile",
        r#"
let errors = [];
try { pubsub::publish("a/b", 1); } catch (e) { errors.push(`${e}`) }
try { pubsub::publish_durable("", 1); } catch (e) { errors.push(`${e}`) }
let big = "x";
for i in 0..17 { big += big; }
try { pubsub::publish("t", big); } catch (e) { errors.push(`${e}`) }
try { pubsub::subscriber_token([], 60); } catch (e) { errors.push(`${e}`) }
let many = [];
for i in 0..40 { many.push(`t${i}`) }
try { pubsub::subscriber_token(many, 60); } catch (e) { errors.push(`${e}`) }
let n = 0;
try { for i in 0..1100 { pubsub::publish("t", i); n += 1; } } catch (e) { errors.push(`${e}`) }
errors.push(n);
errors"#,
        "POST /hostile",
    )
    .await;
    let response = server
        .http
        .post(format!("{}/fn/shop/hostile", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let errors: Vec<Value> = response.json().await.unwrap();
    let says = [
        "topic name",
        "topic name",
        "at most 65536 bytes",
        "1-32 topics",
        "1-32 topics",
        "at most 1000 messages",
    ];
    for (error, says) in errors.iter().zip(says) {
        assert!(
            error.as_str().is_some_and(|e| e.contains(says)),
            "{error} should say {says:?}: {errors:?}"
        );
    }
    assert_eq!(errors.len(), says.len() + 1, "{errors:?}");
    // The three publishes before were refused: 1000 went out.
    assert_eq!(errors[says.len()], json!(1000));
    server.stop().await;
}

/// Two servers on one PostgreSQL database: a subscriber of one receives what functions
/// publish on the other (relayed with NOTIFY; a durable message too large for a
/// notification travels as its id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_of_one_node_receives_what_another_node_publishes() {
    let Some((a, db, _dir)) = server(Backend::Postgres).await else {
        return;
    };
    let dir_b = tempfile::tempdir().unwrap();
    let b = TestServer::start_with(ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: Some(db.url.clone()),
        admin_token: Some(TOKEN.into()),
        ..ServeArgs::with_data_dir(dir_b.path().to_owned())
    })
    .await;
    rhai(
        &a,
        "shop",
        "big",
        r#"let big = "x"; for i in 0..14 { big += big; } pubsub::publish_durable("prices", #{ big: big }); "ok""#,
        "POST /big",
    )
    .await;
    // A token minted on node A subscribes on node B (both derive the app's key).
    let token = token(&a, "shop", "prices").await;
    let (status, subscriber, text) = subscribe(&b, "shop", "prices", Some(&token), None).await;
    assert_eq!(status, 200, "{text}");
    let mut subscriber = subscriber.unwrap();
    // Node B's relay listener may still be connecting: publish until one arrives.
    let received = async {
        let mut n = 0;
        loop {
            n += 1;
            publish(&a, "shop", "prices", "realtime", n).await;
            if let Ok((_, data)) =
                tokio::time::timeout(Duration::from_millis(500), subscriber.message()).await
            {
                return data;
            }
        }
    };
    let first = tokio::time::timeout(Duration::from_secs(60), received)
        .await
        .expect("a message relayed from node A within 60 s");
    assert_eq!(first["from"], "shop");
    // From then on each once, in order (skipping any realtime message still in flight).
    publish(&a, "shop", "prices", "durable", 1000).await;
    let response = a
        .http
        .post(format!("{}/fn/shop/big", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (id, data) = loop {
        let (id, data) = subscriber.message().await;
        if data["n"] != Value::Null && data["n"] != json!(1000) {
            continue;
        }
        break (id, data);
    };
    assert_eq!(data["n"], 1000);
    let small_id: i64 = id.unwrap().parse().unwrap();
    let (id, data) = subscriber.message().await;
    assert_eq!(data["big"].as_str().map(str::len), Some(16_384));
    assert!(id.unwrap().parse::<i64>().unwrap() > small_id);
    b.stop().await;
    a.stop().await;
}
