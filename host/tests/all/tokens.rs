//! Scoped admin tokens (issue 15): every admin endpoint × every scope × a token limited
//! to the app or to another one, through the real server, on both backends.

use crate::support::{Backend, TOKEN, TestDb, TestServer, assert_error};
use picloud::auth::Scope;
use reqwest::Method;
use serde_json::{Value, json};

/// What each endpoint needs, written here independently of `auth::ENDPOINTS` (the test
/// checks that both name the same endpoints). `{app}` is filled in per case; the other
/// parameters name nothing that exists.
const TABLE: &[(&str, &str, Scope)] = {
    use Scope::{Admin, Deploy, Read};
    &[
        ("GET", "/apps", Read),
        ("POST", "/apps", Admin),
        ("GET", "/apps/{app}", Read),
        ("PUT", "/apps/{app}/limits", Admin),
        ("GET", "/apps/{app}/outbound", Read),
        ("PUT", "/apps/{app}/outbound", Admin),
        ("GET", "/apps/{app}/docs/indexes", Read),
        (
            "PUT",
            "/apps/{app}/docs/{collection}/indexes/{field}",
            Deploy,
        ),
        (
            "DELETE",
            "/apps/{app}/docs/{collection}/indexes/{field}",
            Deploy,
        ),
        ("POST", "/apps/{app}/docs/{collection}/explain", Read),
        ("GET", "/apps/{app}/files", Read),
        ("GET", "/apps/{app}/files/{*path}", Read),
        ("PUT", "/apps/{app}/files/{*path}", Deploy),
        ("DELETE", "/apps/{app}/files/{*path}", Deploy),
        ("GET", "/apps/{app}/changes", Read),
        ("GET", "/apps/{app}/email", Read),
        ("PUT", "/apps/{app}/email", Deploy),
        ("GET", "/apps/{app}/email/triggers", Read),
        ("POST", "/apps/{app}/email/triggers", Deploy),
        ("DELETE", "/apps/{app}/email/triggers/{name}", Deploy),
        ("GET", "/apps/{app}/functions", Read),
        ("GET", "/apps/{app}/functions/{name}", Read),
        ("DELETE", "/apps/{app}/functions/{name}", Deploy),
        ("POST", "/apps/{app}/functions/{name}/versions", Deploy),
        ("POST", "/apps/{app}/functions/{name}/rollback", Deploy),
        ("POST", "/apps/{app}/functions/{name}/invoke", Deploy),
        ("GET", "/apps/{app}/invocations", Read),
        ("GET", "/apps/{app}/usage", Read),
        ("GET", "/apps/{app}/load", Read),
        ("GET", "/runtime/cache", Read),
        ("GET", "/apps/{app}/routes", Read),
        ("POST", "/apps/{app}/routes", Deploy),
        ("DELETE", "/apps/{app}/routes/{id}", Deploy),
        ("GET", "/apps/{app}/secrets", Read),
        ("PUT", "/apps/{app}/secrets/{name}", Deploy),
        ("DELETE", "/apps/{app}/secrets/{name}", Deploy),
        ("POST", "/secrets/rekey", Admin),
        ("GET", "/apps/{app}/topics", Read),
        ("GET", "/apps/{app}/topics/{name}", Read),
        ("PUT", "/apps/{app}/topics/{name}", Deploy),
        ("DELETE", "/apps/{app}/topics/{name}", Deploy),
        ("GET", "/apps/{app}/triggers", Read),
        ("POST", "/apps/{app}/triggers", Deploy),
        ("DELETE", "/apps/{app}/triggers/{name}", Deploy),
        ("GET", "/apps/{app}/dead-letters", Read),
        ("GET", "/apps/{app}/dead-letters/{id}", Read),
        ("POST", "/apps/{app}/dead-letters/{id}/replay", Deploy),
        ("POST", "/apps/{app}/dead-letters/{id}/resolve", Deploy),
        ("GET", "/apps/{app}/executions/{id}", Read),
        ("GET", "/apps/{app}/users", Read),
        ("POST", "/apps/{app}/users", Deploy),
        ("POST", "/apps/{app}/users/invite", Deploy),
        ("GET", "/apps/{app}/users/settings", Read),
        ("PUT", "/apps/{app}/users/settings", Deploy),
        ("GET", "/apps/{app}/users/{id}", Read),
        ("PATCH", "/apps/{app}/users/{id}", Deploy),
        ("DELETE", "/apps/{app}/users/{id}", Deploy),
        ("GET", "/tokens", Admin),
        ("POST", "/tokens", Admin),
        ("DELETE", "/tokens/{name}", Admin),
        // Last: an allowed call deletes the app.
        ("DELETE", "/apps/{app}", Admin),
    ]
};

/// `pattern` as a concrete path for `app`.
fn concrete(pattern: &str, app: &str) -> String {
    pattern
        .replace("{app}", app)
        .replace("{collection}", "c")
        .replace("{field}", "f")
        .replace("{*path}", "a/b.txt")
        .replace("{name}", "nothing-here")
        .replace("{id}", "0190a0a0-0000-7000-8000-000000000000")
}

struct Token {
    name: String,
    secret: String,
    scope: Scope,
    limited: bool,
}

async fn create_token(server: &TestServer, name: &str, scope: &str, app: Option<&str>) -> String {
    let created = server
        .admin(
            Method::POST,
            "/tokens",
            Some(json!({ "name": name, "scope": scope, "app": app })),
        )
        .await;
    created["token"].as_str().unwrap().to_owned()
}

async fn call(server: &TestServer, token: &str, method: &str, path: &str) -> (u16, Value) {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = server
        .http
        .request(method.clone(), format!("{}/api/v1{path}", server.url))
        .bearer_auth(token);
    if ![Method::GET, Method::DELETE].contains(&method) {
        request = request.json(&json!({}));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn every_endpoint_checks_scope_and_app(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Some(db.url.clone())).await;
    server.create_app("own").await;
    server.create_app("other").await;

    // The table names exactly the endpoints the server classifies.
    let mut ours: Vec<(&str, &str)> = TABLE.iter().map(|(m, p, _)| (*m, *p)).collect();
    let mut theirs: Vec<(&str, &str)> = picloud::auth::ENDPOINTS
        .iter()
        .map(|(m, p, _)| (*m, *p))
        .collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "the test's table and auth::ENDPOINTS differ");

    // Unlimited tokens first: on `other`, the last allowed call deletes it.
    let mut tokens = Vec::new();
    for (limited, scope) in [
        (false, Scope::Read),
        (false, Scope::Deploy),
        (true, Scope::Read),
        (true, Scope::Deploy),
        (true, Scope::Admin),
        (false, Scope::Admin),
    ] {
        let name = format!("{}-{}", scope.as_str(), if limited { "own" } else { "all" });
        let secret = create_token(&server, &name, scope.as_str(), limited.then_some("own")).await;
        tokens.push(Token {
            name,
            secret,
            scope,
            limited,
        });
    }

    let mut checked = 0;
    for (method, pattern, needs) in TABLE {
        let apps: &[&str] = if pattern.contains("{app}") {
            &["other", "own"]
        } else {
            &[""]
        };
        for app in apps {
            let path = concrete(pattern, app);
            for token in &tokens {
                let (status, body) = call(&server, &token.secret, method, &path).await;
                let what = format!("{} {method} {path} -> {status} {body}", token.name);
                if token.limited && *app == "other" {
                    assert_eq!(status, 404, "{what}");
                    assert_eq!(
                        body["error"]["message"], "no app called \"other\"",
                        "{what}"
                    );
                } else if token.limited && app.is_empty() && (*method, *pattern) != ("GET", "/apps")
                {
                    assert_eq!(status, 403, "{what}");
                } else if token.scope < *needs {
                    assert_eq!(status, 403, "{what}");
                    assert_eq!(body["error"]["code"], "forbidden", "{what}");
                } else {
                    assert!(![401, 403].contains(&status), "{what}");
                    if token.limited {
                        assert_ne!(body["error"]["message"], "no app called \"own\"", "{what}");
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 600, "{checked} calls checked");
    // The last allowed calls deleted both apps (admin-all `other`, admin-own `own`).
    assert_eq!(server.admin(Method::GET, "/apps", None).await, json!([]));
}

async fn tokens_are_shown_once_limited_expiring_and_revocable(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Some(db.url.clone())).await;
    server.create_app("own").await;
    server.create_app("other").await;
    let reader = create_token(&server, "reader", "read", Some("own")).await;
    assert!(reader.starts_with("pc_") && reader.len() == 67, "{reader}");

    // An app-limited token lists its app only.
    let (status, apps) = call(&server, &reader, "GET", "/apps").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = apps
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["own"]);

    // Listings never show a token or its hash.
    let list = server.admin(Method::GET, "/tokens", None).await;
    let text = list.to_string();
    assert!(
        !text.contains(&reader) && !text.contains(&picloud::auth::hash(&reader)),
        "{text}"
    );
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "reader")
        .unwrap()
        .clone();
    assert_eq!(
        (&entry["scope"], &entry["app"]),
        (&json!("read"), &json!("own"))
    );

    // Bad input is refused with a reason.
    for (body, message) in [
        (
            json!({ "name": "x", "scope": "root" }),
            "scope \"root\" is not one of read, deploy, admin",
        ),
        (
            json!({ "name": "a b", "scope": "read" }),
            "token name \"a b\" must be",
        ),
        (
            json!({ "name": "x", "scope": "read", "app": "nope" }),
            "no app called \"nope\"",
        ),
        (
            json!({ "name": "x", "scope": "read", "expires_in_secs": 0 }),
            "expires_in_secs must be",
        ),
    ] {
        let response = server
            .api(Method::POST, "/tokens")
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = response.json::<Value>().await.unwrap();
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(message),
            "{error}"
        );
    }
    let response = server
        .api(Method::POST, "/tokens")
        .json(&json!({ "name": "reader", "scope": "read" }))
        .send()
        .await
        .unwrap();
    assert_error(response, 409, "conflict").await;

    // Expired and revoked tokens are refused like unknown ones.
    let expiring = server
        .admin(
            Method::POST,
            "/tokens",
            Some(json!({ "name": "brief", "scope": "admin", "expires_in_secs": 1 })),
        )
        .await;
    let brief = expiring["token"].as_str().unwrap();
    assert_eq!(call(&server, brief, "GET", "/tokens").await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(call(&server, brief, "GET", "/apps").await.0, 401);
    server.admin(Method::DELETE, "/tokens/reader", None).await;
    assert_eq!(call(&server, &reader, "GET", "/apps").await.0, 401);
    let response = server
        .api(Method::DELETE, "/tokens/admin")
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "bad_request").await;
    assert_eq!(call(&server, TOKEN, "GET", "/tokens").await.0, 200);

    // A token limited to an app goes with the app.
    let deployer = create_token(&server, "deployer", "deploy", Some("other")).await;
    server.admin(Method::DELETE, "/apps/other", None).await;
    assert_eq!(call(&server, &deployer, "GET", "/apps").await.0, 401);
}

on_both_backends!(
    every_endpoint_checks_scope_and_app,
    tokens_are_shown_once_limited_expiring_and_revocable,
);

/// The CLI: create (printed once), use, list, revoke.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_create_and_revoke_tokens_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    server.create_app("shop").await;
    let run = |token: String, args: Vec<String>| {
        let url = server.url.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            crate::support::outcome(crate::support::picloud_cli(&url, &token, &args, "").await)
        }
    };
    let args = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
    let (ok, out) = run(
        TOKEN.into(),
        args("--json tokens create --scope read --app shop --expires 30d --name ci-reader"),
    )
    .await;
    assert!(ok, "{out}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    let lifetime =
        created["expires_at"].as_i64().unwrap() - created["created_at"].as_i64().unwrap();
    let days = (lifetime + 43_200_000) / 86_400_000;
    assert_eq!(days, 30);
    let (ok, out) = run(token.clone(), args("apps list")).await;
    assert!(ok && out.trim() == "shop", "{out}");
    let (ok, out) = run(token.clone(), args("apps create other")).await;
    assert!(!ok && out.contains("limited to one app"), "{out}");
    let (ok, out) = run(TOKEN.into(), args("tokens list")).await;
    assert!(
        ok && out.contains("ci-reader") && out.contains("read") && !out.contains(&token),
        "{out}"
    );
    let (ok, out) = run(
        TOKEN.into(),
        args("tokens create --scope read --expires soon"),
    )
    .await;
    assert!(!ok && out.contains("write a number and a unit"), "{out}");
    let (ok, out) = run(TOKEN.into(), args("tokens revoke ci-reader")).await;
    assert!(ok && out.trim() == "revoked token ci-reader", "{out}");
    let (ok, _) = run(token, args("apps list")).await;
    assert!(!ok);
}
