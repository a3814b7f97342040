//! Secrets (issue 13): sealed at rest per app and name, reachable from Rhai scripts, the
//! admin API and the CLI; a value never shows in a record, listing, error or the
//! database file; a wrong master key is refused at start; keys rotate with `rekey`.

use crate::support::{Backend, SECRET_KEY, TOKEN, TestDb, TestServer, assert_error};
use picloud::server::{ServeArgs, Server};
use reqwest::Method;
use serde_json::{Value, json};

/// One script for every secrets call: `?op=get|set|list|delete&name=N`, `set` takes
/// the body as the value; errors are answered as text `error: …`.
const SECRETS_SCRIPT: &str = r#"
let op = ctx.request.query.op;
let name = ctx.request.query.name;
let out = ();
try {
    if op == "get" {
        let v = secrets::get(name);
        out = if v == () { "absent" } else { v };
    } else if op == "set" {
        secrets::set(name, ctx.request.body);
        out = "set";
    } else if op == "list" {
        out = secrets::list();
    } else if op == "delete" {
        out = `${secrets::delete(name)}`;
    } else {
        out = `unknown op ${op}`;
    }
} catch (e) {
    out = `error: ${e}`;
}
out
"#;

/// A value no code path may show.
const CANARY: &str = "canary-7f3a9c-sk_live_do_not_leak";

fn args(dir: &std::path::Path, db: Option<&TestDb>, key: Option<&str>) -> ServeArgs {
    ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: db.map(|d| d.url.clone()),
        admin_token: Some(TOKEN.into()),
        secret_key: key.map(str::to_owned),
        ..ServeArgs::with_data_dir(dir.to_owned())
    }
}

/// What answers `POST /s` in the round-trip test: [`SECRETS_SCRIPT`], or the
/// `example-secrets` component (`picloud_sdk::secrets`), which speaks the same protocol.
#[derive(Clone, Copy)]
enum Guest {
    Rhai,
    Component,
}

async fn deploy_secrets_script(server: &TestServer, app: &str) {
    deploy_guest(server, app, Guest::Rhai).await;
}

async fn deploy_guest(server: &TestServer, app: &str, guest: Guest) {
    let (kind, body) = match guest {
        Guest::Rhai => ("rhai", SECRETS_SCRIPT.as_bytes().to_vec()),
        Guest::Component => (
            "component",
            std::fs::read(picloud_example_artifacts::SECRETS).unwrap(),
        ),
    };
    let response = server
        .api(
            Method::POST,
            &format!("/apps/{app}/functions/vault/versions?kind={kind}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    server.route(app, "POST", "/s", "vault").await;
}

/// The script's answer to `op` on secret `name` of `app` (with `body` for `set`).
async fn call(server: &TestServer, app: &str, op: &str, name: &str, body: &str) -> String {
    let response = server
        .http
        .post(format!("{}/fn/{app}/s", server.url))
        .query(&[("op", op), ("name", name)])
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn set_by_api(server: &TestServer, app: &str, name: &str, value: &str) -> reqwest::Response {
    server
        .api(Method::PUT, &format!("/apps/{app}/secrets/{name}"))
        .json(&json!({ "value": value }))
        .send()
        .await
        .unwrap()
}

async fn round_trip_scoped_to_the_app(backend: Backend, guest: Guest) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(args(dir.path(), Some(&db), None)).await;
    for app in ["shop", "other"] {
        server.create_app(app).await;
        deploy_guest(&server, app, guest).await;
    }
    // Set by the admin API, read by the script; set by the script, listed by the API.
    assert_eq!(
        set_by_api(&server, "shop", "stripe", "sk_1").await.status(),
        204
    );
    assert_eq!(call(&server, "shop", "get", "stripe", "").await, "sk_1");
    assert_eq!(call(&server, "shop", "set", "mail.key", "m-2").await, "set");
    assert_eq!(call(&server, "shop", "get", "mail.key", "").await, "m-2");
    let names: Value = serde_json::from_str(&call(&server, "shop", "list", "", "").await).unwrap();
    assert_eq!(names, json!(["mail.key", "stripe"]));
    let listed = server.admin(Method::GET, "/apps/shop/secrets", None).await;
    assert_eq!(listed[0]["name"], "mail.key");
    assert!(listed[0]["updated_at"].as_i64().unwrap() > 0);
    assert_eq!(
        listed[0].as_object().unwrap().len(),
        2,
        "names and times only: {listed}"
    );
    // Another app sees none of them.
    assert_eq!(call(&server, "other", "get", "stripe", "").await, "absent");
    assert_eq!(call(&server, "other", "list", "", "").await, "[]");
    assert_eq!(
        call(&server, "other", "delete", "stripe", "").await,
        "false"
    );
    // Overwrite, delete.
    assert_eq!(call(&server, "shop", "set", "stripe", "sk_2").await, "set");
    assert_eq!(call(&server, "shop", "get", "stripe", "").await, "sk_2");
    assert_eq!(call(&server, "shop", "delete", "stripe", "").await, "true");
    assert_eq!(call(&server, "shop", "get", "stripe", "").await, "absent");
    let missing = server
        .api(Method::DELETE, "/apps/shop/secrets/stripe")
        .send()
        .await
        .unwrap();
    assert_error(missing, 404, "not_found").await;
    // Bad names and oversized values are refused with a clear error.
    let bad = call(&server, "shop", "set", "a/b", "v").await;
    assert!(
        bad.starts_with("error: ") && bad.contains("secret name"),
        "{bad}"
    );
    let big = "x".repeat(64 * 1024 + 1);
    let refused = call(&server, "shop", "set", "big", &big).await;
    assert!(refused.contains("at most 65536 bytes"), "{refused}");
    assert_error(
        set_by_api(&server, "shop", "a b", "v").await,
        400,
        "bad_request",
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_round_trip_and_stay_inside_their_app_on_sqlite() {
    round_trip_scoped_to_the_app(Backend::Sqlite, Guest::Rhai).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_round_trip_and_stay_inside_their_app_on_postgresql() {
    round_trip_scoped_to_the_app(Backend::Postgres, Guest::Rhai).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_keeps_secrets_through_the_rust_sdk_on_sqlite() {
    round_trip_scoped_to_the_app(Backend::Sqlite, Guest::Component).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_keeps_secrets_through_the_rust_sdk_on_postgresql() {
    round_trip_scoped_to_the_app(Backend::Postgres, Guest::Component).await;
}

/// Every byte of every file under `dir` (the SQLite database and its WAL included).
fn all_bytes_under(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            bytes.extend(all_bytes_under(&path));
        } else {
            bytes.extend(std::fs::read(&path).unwrap_or_default());
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_value_never_shows_in_records_listings_errors_or_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(args(dir.path(), None, None)).await;
    server.create_app("shop").await;
    deploy_secrets_script(&server, "shop").await;
    let mut seen = String::new();
    // Set through both paths, read, list, and fail in every way a value can take part in.
    assert_eq!(
        set_by_api(&server, "shop", "api", CANARY).await.status(),
        204
    );
    seen += &call(&server, "shop", "set", "script", CANARY).await;
    seen += &call(&server, "shop", "list", "", "").await;
    seen += &call(&server, "shop", "set", "bad/name", CANARY).await;
    let oversized = format!("{CANARY}{}", "x".repeat(70_000));
    seen += &call(&server, "shop", "set", "big", &oversized).await;
    seen += &set_by_api(&server, "shop", "bad name", CANARY)
        .await
        .text()
        .await
        .unwrap();
    seen += &set_by_api(&server, "shop", "big", &oversized)
        .await
        .text()
        .await
        .unwrap();
    seen += &server
        .admin(Method::GET, "/apps/shop/secrets", None)
        .await
        .to_string();
    let records = server
        .admin(Method::GET, "/apps/shop/invocations?limit=100", None)
        .await;
    assert!(records.as_array().unwrap().len() >= 4);
    seen += &records.to_string();
    seen += &server
        .admin(Method::GET, "/apps/shop/changes", None)
        .await
        .to_string();
    assert!(!seen.contains(CANARY), "the value leaked: {seen}");
    // Reading it back is the one place it appears (the script answers it on purpose).
    assert_eq!(call(&server, "shop", "get", "api", "").await, CANARY);
    server.stop().await;
    let stored = all_bytes_under(dir.path());
    assert!(
        !contains(&stored, CANARY),
        "the value is in the data directory in plain text"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_value_moved_to_another_app_does_not_open() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(args(dir.path(), Some(&db), None)).await;
    for app in ["shop", "thief"] {
        server.create_app(app).await;
        deploy_secrets_script(&server, app).await;
    }
    assert_eq!(
        set_by_api(&server, "shop", "stripe", "sk_1").await.status(),
        204
    );
    assert_eq!(
        set_by_api(&server, "thief", "stripe", "mine")
            .await
            .status(),
        204
    );
    // Someone with write access to the database copies shop's ciphertext to thief.
    let raw = db.open().await;
    sqlx::query(
        "UPDATE secrets SET sealed = (SELECT s.sealed FROM secrets s JOIN apps a \
         ON a.id = s.app_id WHERE a.name = 'shop' AND s.name = 'stripe') \
         WHERE app_id = (SELECT id FROM apps WHERE name = 'thief')",
    )
    .execute(raw.pool())
    .await
    .unwrap();
    let answer = call(&server, "thief", "get", "stripe", "").await;
    assert!(
        answer.starts_with("error: ") && answer.contains("cannot be opened"),
        "{answer}"
    );
    assert!(!answer.contains("sk_1"));
    assert_eq!(call(&server, "shop", "get", "stripe", "").await, "sk_1");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused_at_start_and_keys_rotate_with_rekey() {
    let dir = tempfile::tempdir().unwrap();
    let new_key = "bmV3LWtleS1uZXcta2V5LW5ldy1rZXktbmV3LWtleSE=";
    // First start: the embedded default generates its key into a private file.
    let server = TestServer::start_with(args(dir.path(), None, None)).await;
    let key_file = dir.path().join("secret-key");
    let old_key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_owned();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    server.create_app("shop").await;
    deploy_secrets_script(&server, "shop").await;
    assert_eq!(call(&server, "shop", "set", "stripe", "sk_1").await, "set");
    server.stop().await;

    // Another key: refused at start, naming the way out, not at the first read.
    let refused = Server::start(&args(dir.path(), None, Some(new_key)))
        .await
        .err()
        .expect("a wrong key is refused");
    assert!(
        refused.to_string().contains("PICLOUD_SECRET_KEY_PREVIOUS"),
        "{refused}"
    );
    assert!(
        Server::start(&args(dir.path(), None, Some("short")))
            .await
            .is_err()
    );

    // The new key with the old one as previous: old values open; rekey reseals them.
    let server = TestServer::start_with(ServeArgs {
        secret_key_previous: Some(old_key),
        ..args(dir.path(), None, Some(new_key))
    })
    .await;
    assert_eq!(call(&server, "shop", "get", "stripe", "").await, "sk_1");
    let rekeyed = server.admin(Method::POST, "/secrets/rekey", None).await;
    assert_eq!(rekeyed["rekeyed"], 1, "{rekeyed}");
    server.stop().await;

    // The new key alone now opens everything.
    let server = TestServer::start_with(args(dir.path(), None, Some(new_key))).await;
    assert_eq!(call(&server, "shop", "get", "stripe", "").await, "sk_1");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_needs_an_explicit_key() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut args = args(dir.path(), Some(&db), None);
    args.secret_key = None;
    let refused = Server::start(&args).await.err().expect("no key is refused");
    assert!(
        refused
            .to_string()
            .contains("PICLOUD_SECRET_KEY is required"),
        "{refused}"
    );
    args.secret_key = Some(SECRET_KEY.into());
    assert!(Server::start(&args).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_a_secret_from_stdin_and_lists_names_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    server.create_app("shop").await;
    let url = server.url.clone();
    let run = move |args: &'static [&'static str], stdin: &'static str| {
        let url = url.clone();
        async move { crate::support::picloud_cli(&url, TOKEN, args, stdin).await }
    };
    let set = run(&["secrets", "set", "shop", "stripe"], "sk_cli\n").await;
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&set.stdout).trim(),
        "set secret stripe"
    );
    let list = run(&["secrets", "list", "shop"], "").await;
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.starts_with("stripe  "), "{listed}");
    assert!(!listed.contains("sk_cli"));
    // The value arrived without its trailing newline.
    deploy_secrets_script(&server, "shop").await;
    assert_eq!(call(&server, "shop", "get", "stripe", "").await, "sk_cli");
    let deleted = run(&["secrets", "delete", "shop", "stripe"], "").await;
    assert_eq!(
        String::from_utf8_lossy(&deleted.stdout).trim(),
        "deleted secret stripe"
    );
    let again = run(&["secrets", "delete", "shop", "stripe"], "").await;
    assert!(!again.status.success());
    server.stop().await;
}
