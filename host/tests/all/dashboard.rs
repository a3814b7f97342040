//! The dashboard (issue 16): its own origin, sign-in by token, sessions, CSRF, scopes,
//! deploys with their compile errors, rollback, escaping — over HTTP on both backends —
//! and the whole flow in a real headless Chromium (WebDriver), with screenshots, page
//! weights and first-paint times.

use crate::support::{Backend, TOKEN, TestDb, TestServer};
use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A dashboard client that follows no redirects, so each answer is seen as it is.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn dashboard(server: &TestServer) -> String {
    server
        .dashboard_url
        .clone()
        .expect("test servers have a dashboard")
}

/// Signs in with `token`; the session cookie (`name=value`).
async fn sign_in(server: &TestServer, token: &str) -> String {
    let response = client()
        .post(format!("{}/dashboard/login", dashboard(server)))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "sign-in with a valid token");
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    cookie.split(';').next().unwrap().to_owned()
}

/// GET `path` with `cookie`: status, `Location`, body.
async fn get(server: &TestServer, cookie: &str, path: &str) -> (u16, String, String) {
    let response = client()
        .get(format!("{}{path}", dashboard(server)))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, response.text().await.unwrap())
}

/// The CSRF token in a page.
fn csrf_in(page: &str) -> String {
    let at = page
        .find(r#"name="_csrf" value=""#)
        .expect("the page has a form")
        + 20;
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

/// POSTs a form as the dashboard's own page would (same Origin).
async fn post_form(
    server: &TestServer,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String, String) {
    let origin = dashboard(server);
    let response = client()
        .post(format!("{origin}{path}"))
        .header(COOKIE, cookie)
        .header("origin", &origin)
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, response.text().await.unwrap())
}

/// Uploads `content` as `file_name` through the deploy form, as its script does.
async fn upload(
    server: &TestServer,
    cookie: &str,
    csrf: &str,
    app: &str,
    file_name: &str,
    content: Vec<u8>,
    name: &str,
) -> (u16, Value) {
    let origin = dashboard(server);
    let form = reqwest::multipart::Form::new()
        .text("name", name.to_owned())
        .text("kind", "")
        .part(
            "file",
            reqwest::multipart::Part::bytes(content).file_name(file_name.to_owned()),
        );
    let response = client()
        .post(format!("{origin}/dashboard/apps/{app}/deploy"))
        .header(COOKIE, cookie)
        .header("origin", &origin)
        .header("accept", "application/json")
        .header("x-csrf-token", csrf)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
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

on_both_backends!(
    the_dashboard_has_its_own_origin_and_signs_in_with_a_token,
    every_form_needs_this_sessions_csrf_token_and_this_origin,
    a_session_can_do_what_its_token_can,
    deploys_show_compile_errors_and_roll_back,
);

async fn the_dashboard_has_its_own_origin_and_signs_in_with_a_token(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Some(db.url.clone())).await;
    let http = client();

    // Not on the functions' origin, and the dashboard's origin serves no function.
    let on_api = http
        .get(format!("{}/dashboard/", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(on_api.status(), 404);
    server.create_app("shop").await;
    let deployed = server
        .api(Method::POST, "/apps/shop/functions/hi/versions?kind=rhai")
        .body(r#""hi""#)
        .send()
        .await
        .unwrap();
    assert_eq!(deployed.status(), 201);
    server.route("shop", "GET", "/hi", "hi").await;
    let on_api = http
        .get(format!("{}/fn/shop/hi", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(on_api.text().await.unwrap(), "hi");
    let (status, _, _) = get(&server, "", "/fn/shop/hi").await;
    assert_eq!(status, 404, "no function on the dashboard's origin");

    // Without a session: to the sign-in page.
    let (status, location, _) = get(&server, "", "/dashboard/").await;
    assert_eq!((status, location.as_str()), (303, "/dashboard/login"));

    // A wrong token: refused, no cookie.
    let wrong = http
        .post(format!("{}/dashboard/login", dashboard(&server)))
        .form(&[("token", "pc_not-a-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    assert!(wrong.text().await.unwrap().contains("not valid"));

    // The right one: an HttpOnly, SameSite=Strict cookie scoped to /dashboard that
    // holds no token.
    let response = http
        .post(format!("{}/dashboard/login", dashboard(&server)))
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/dashboard", "Max-Age="] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains(TOKEN));
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    let page = client()
        .get(format!("{}/dashboard/", dashboard(&server)))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["cache-control"], "no-store");
    let body = page.text().await.unwrap();
    // The script and stylesheet have versioned URLs and may be cached; pages may not.
    for kind in ["css", "js"] {
        let at = body
            .find(&format!("/dashboard/assets/dashboard.{kind}?v="))
            .unwrap();
        let url = &body[at..at + body[at..].find('"').unwrap()];
        let asset = http
            .get(format!("{}{url}", dashboard(&server)))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), 200, "{url}");
        assert!(
            asset.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        assert!(asset.headers().contains_key("content-security-policy"));
    }
    assert!(body.contains(r#"href="/dashboard/apps/shop""#), "{body}");

    // A cookie edited by hand (its token hash or expiry) is no session.
    let (name, value) = cookie.split_once('=').unwrap();
    let mut parts: Vec<&str> = value.split('.').collect();
    let later = (parts[1].parse::<u64>().unwrap() + 86_400).to_string();
    parts[1] = &later;
    let extended = format!("{name}={}", parts.join("."));
    let (status, _, _) = get(&server, &extended, "/dashboard/").await;
    assert_eq!(status, 303, "an extended expiry is refused");

    // A revoked token ends its sessions at once.
    let ops = create_token(&server, "ops", "admin", None).await;
    let ops_cookie = sign_in(&server, &ops).await;
    assert_eq!(get(&server, &ops_cookie, "/dashboard/").await.0, 200);
    server.admin(Method::DELETE, "/tokens/ops", None).await;
    assert_eq!(get(&server, &ops_cookie, "/dashboard/").await.0, 303);

    // Sign-out clears the cookie.
    let csrf = csrf_in(&body);
    let (status, location, _) =
        post_form(&server, &cookie, "/dashboard/logout", &[("_csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (303, "/dashboard/login"));
    server.stop().await;
}

async fn every_form_needs_this_sessions_csrf_token_and_this_origin(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Some(db.url.clone())).await;
    let cookie = sign_in(&server, TOKEN).await;
    let (_, _, page) = get(&server, &cookie, "/dashboard/").await;
    let csrf = csrf_in(&page);
    let other_session = sign_in(&server, &create_token(&server, "ops", "admin", None).await).await;
    let (_, _, other_page) = get(&server, &other_session, "/dashboard/").await;
    let other_csrf = csrf_in(&other_page);
    assert_ne!(csrf, other_csrf);

    let exists = async |name: &str| {
        server
            .api(Method::GET, &format!("/apps/{name}"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    };
    // No token, a wrong one, another session's: refused, nothing created.
    for (form, why) in [
        (vec![("name", "a1")], "no token"),
        (vec![("name", "a1"), ("_csrf", "forged")], "a forged token"),
        (
            vec![("name", "a1"), ("_csrf", &other_csrf)],
            "another session's token",
        ),
    ] {
        let (status, _, body) = post_form(&server, &cookie, "/dashboard/apps", &form).await;
        assert_eq!(status, 403, "{why}");
        assert!(body.contains("CSRF"), "{why}: {body}");
    }
    assert!(!exists("a1").await);

    // The right token from another site: refused.
    for (header, value) in [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let response = client()
            .post(format!("{}/dashboard/apps", dashboard(&server)))
            .header(COOKIE, &cookie)
            .header(header, value)
            .form(&[("name", "a1"), ("_csrf", &csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{header}: {value}");
    }
    // Sign-in too is refused from another site (login CSRF).
    let response = client()
        .post(format!("{}/dashboard/login", dashboard(&server)))
        .header("origin", "http://evil.example")
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(!exists("a1").await);

    // Right token, this origin: created.
    let (status, location, _) = post_form(
        &server,
        &cookie,
        "/dashboard/apps",
        &[("name", "a1"), ("_csrf", &csrf)],
    )
    .await;
    assert_eq!((status, location.as_str()), (303, "/dashboard/apps/a1"));
    assert!(exists("a1").await);

    // An upload without the token loses nothing and deploys nothing.
    let (status, answer) = upload(
        &server,
        &cookie,
        "forged",
        "a1",
        "f.rhai",
        b"1".to_vec(),
        "",
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["ok"], false);
    let functions = server.admin(Method::GET, "/apps/a1/functions", None).await;
    assert_eq!(functions, json!([]));
    server.stop().await;
}

async fn a_session_can_do_what_its_token_can(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Some(db.url.clone())).await;
    server.create_app("own").await;
    server.create_app("other").await;

    // read: sees, cannot change.
    let reader = sign_in(
        &server,
        &create_token(&server, "reader", "read", None).await,
    )
    .await;
    let (status, _, page) = get(&server, &reader, "/dashboard/").await;
    assert_eq!(status, 200);
    assert!(page.contains("/dashboard/apps/own") && page.contains("/dashboard/apps/other"));
    assert!(!page.contains("New app"), "no create form for a reader");
    let csrf = csrf_in(&page);
    let (status, _, _) = post_form(
        &server,
        &reader,
        "/dashboard/apps",
        &[("name", "nope"), ("_csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 403);
    let (status, answer) = upload(
        &server,
        &reader,
        &csrf,
        "own",
        "f.rhai",
        br#""x""#.to_vec(),
        "f",
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    let (_, _, app_page) = get(&server, &reader, "/dashboard/apps/own").await;
    assert!(!app_page.contains("deploy-form"), "no upload for a reader");

    // deploy limited to `own`: the other app does not exist for it.
    let deployer = sign_in(
        &server,
        &create_token(&server, "ci", "deploy", Some("own")).await,
    )
    .await;
    let (_, _, page) = get(&server, &deployer, "/dashboard/").await;
    assert!(page.contains("/dashboard/apps/own") && !page.contains("/dashboard/apps/other"));
    let (status_other, _, body_other) = get(&server, &deployer, "/dashboard/apps/other").await;
    let (status_missing, _, body_missing) = get(&server, &deployer, "/dashboard/apps/ghost").await;
    assert_eq!((status_other, status_missing), (404, 404));
    assert_eq!(
        body_other.replace("other", "NAME"),
        body_missing.replace("ghost", "NAME"),
        "another app looks exactly like a missing one"
    );
    for path in [
        "/invocations",
        "/usage",
        "/secrets",
        "/files",
        "/users",
        "/dead-letters",
        "/triggers",
    ] {
        let (status, _, _) = get(&server, &deployer, &format!("/dashboard/apps/other{path}")).await;
        assert_eq!(status, 404, "{path}");
    }
    let csrf = csrf_in(&page);
    let (status, answer) = upload(
        &server,
        &deployer,
        &csrf,
        "other",
        "f.rhai",
        br#""x""#.to_vec(),
        "f",
    )
    .await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = upload(
        &server,
        &deployer,
        &csrf,
        "own",
        "f.rhai",
        br#""x""#.to_vec(),
        "f",
    )
    .await;
    assert_eq!(
        (status, answer["ok"].clone()),
        (200, json!(true)),
        "{answer}"
    );
    // …but may not delete the app or set its limits (admin).
    let (status, _, _) = post_form(
        &server,
        &deployer,
        "/dashboard/apps/own/delete",
        &[("_csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = post_form(
        &server,
        &deployer,
        "/dashboard/apps/own/limits",
        &[("_csrf", &csrf), ("fuel", "1")],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        server.admin(Method::GET, "/apps/own", None).await["limits"]["fuel"],
        Value::Null
    );
    server.stop().await;
}

async fn deploys_show_compile_errors_and_roll_back(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Some(db.url.clone())).await;
    server.create_app("shop").await;
    let cookie = sign_in(&server, TOKEN).await;
    let (_, _, page) = get(&server, &cookie, "/dashboard/apps/shop").await;
    let csrf = csrf_in(&page);

    // A script that does not compile: the error names its line; nothing is deployed.
    let broken = "let a = 1;\nlet b = ;\n";
    let (status, answer) = upload(
        &server,
        &cookie,
        &csrf,
        "shop",
        "broken.rhai",
        broken.into(),
        "",
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("line 2"), "{message}");
    assert_eq!(
        server
            .admin(Method::GET, "/apps/shop/functions", None)
            .await,
        json!([])
    );

    // Bad names and empty files are refused in words.
    for (file_name, content, name, expected) in [
        ("x.rhai", &b"1"[..], "../etc", "function name"),
        ("x.rhai", &b""[..], "", "empty"),
        ("<script>.wasm", &b"\0asm"[..], "", "function name"),
    ] {
        let (status, answer) = upload(
            &server,
            &cookie,
            &csrf,
            "shop",
            file_name,
            content.to_vec(),
            name,
        )
        .await;
        assert_eq!(status, 400, "{file_name}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(expected),
            "{answer}"
        );
    }

    // v1 then v2 (the name comes from the file name), bound to a route.
    let v1 = "log::info(\"<script>alert(1)</script>\"); \"v1\"";
    let (status, answer) =
        upload(&server, &cookie, &csrf, "shop", "greet.rhai", v1.into(), "").await;
    assert_eq!(
        (status, answer["version"].clone()),
        (200, json!(1)),
        "{answer}"
    );
    let (status, answer) = upload(
        &server,
        &cookie,
        &csrf,
        "shop",
        "greet.rhai",
        br#""v2""#.to_vec(),
        "",
    )
    .await;
    assert_eq!(
        (status, answer["version"].clone()),
        (200, json!(2)),
        "{answer}"
    );
    let (status, location, _) = post_form(
        &server,
        &cookie,
        "/dashboard/apps/shop/routes",
        &[
            ("_csrf", &csrf),
            ("method", "GET"),
            ("path", "/greet"),
            ("function", "greet"),
            ("dispatch", "sync"),
        ],
    )
    .await;
    assert_eq!((status, location.as_str()), (303, "/dashboard/apps/shop"));
    let call = async || {
        server
            .http
            .get(format!("{}/fn/shop/greet", server.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert_eq!(call().await, "v2");

    // The function page lists both; rolling back to v1 answers v1 at once.
    let (_, _, page) = get(&server, &cookie, "/dashboard/apps/shop/functions/greet").await;
    assert!(
        page.contains("Roll back to v1") && page.contains("active"),
        "{page}"
    );
    let (status, _, _) = post_form(
        &server,
        &cookie,
        "/dashboard/apps/shop/functions/greet/rollback",
        &[("_csrf", &csrf), ("version", "1")],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(call().await, "v1");
    let (_, _, page) = get(&server, &cookie, "/dashboard/apps/shop/functions/greet").await;
    assert!(page.contains(r#"id="active-version">v1<"#), "{page}");

    // A guest's log line is shown as text, never as markup.
    let start = Instant::now();
    loop {
        let (_, _, page) = get(&server, &cookie, "/dashboard/apps/shop/invocations").await;
        if page.contains("&lt;script&gt;alert(1)&lt;/script&gt;") {
            assert!(!page.contains("<script>alert(1)"));
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the log line never showed: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Limits from the form; a bad number is refused in words.
    let (status, _, body) = post_form(
        &server,
        &cookie,
        "/dashboard/apps/shop/limits",
        &[("_csrf", &csrf), ("fuel", "lots")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("whole number"), "{body}");
    let (status, _, _) = post_form(
        &server,
        &cookie,
        "/dashboard/apps/shop/limits",
        &[
            ("_csrf", &csrf),
            ("fuel", "5000000"),
            ("timeout_ms", ""),
            ("memory_bytes", ""),
            ("daily_fuel", ""),
        ],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(
        server.admin(Method::GET, "/apps/shop", None).await["limits"]["fuel"],
        json!(5_000_000)
    );

    // A component bigger than a form's usual limit deploys (a 3 MiB custom section).
    let mut big = std::fs::read(picloud_example_artifacts::HELLO).unwrap();
    let payload = vec![b'x'; 3 << 20];
    let name = b"padding";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(&payload);
    big.push(0);
    let mut size = section.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            big.push(byte);
            break;
        }
        big.push(byte | 0x80);
    }
    big.extend_from_slice(&section);
    let (status, answer) = upload(&server, &cookie, &csrf, "shop", "big.wasm", big, "").await;
    assert_eq!(
        (status, answer["ok"].clone()),
        (200, json!(true)),
        "{answer}"
    );

    // Files: a path that needs escaping in a URL is listed and downloads as an
    // attachment, never rendered on the dashboard's origin.
    let path = "docs/a b#1?.html";
    let put = server
        .api(Method::PUT, "/apps/shop/files/docs/a%20b%231%3F.html")
        .header("content-type", "text/html")
        .body("<script>alert(1)</script>")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let (_, _, page) = get(&server, &cookie, "/dashboard/apps/shop/files").await;
    let link = "/dashboard/apps/shop/files/raw/docs/a%20b%231%3F.html";
    assert!(
        page.contains(link) && page.contains("docs/a b#1?.html"),
        "{path}: {page}"
    );
    let download = client()
        .get(format!("{}{link}", dashboard(&server)))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(
        download.headers()["content-type"],
        "application/octet-stream"
    );
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(download.text().await.unwrap(), "<script>alert(1)</script>");

    // Usage counts failures by error code as records are written: what the records say.
    for (name, source) in [("boom", r#"throw "boom""#), ("spin", "loop { }")] {
        let (status, answer) = upload(
            &server,
            &cookie,
            &csrf,
            "shop",
            &format!("{name}.rhai"),
            source.into(),
            "",
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        server.route("shop", "GET", &format!("/{name}"), name).await;
    }
    for name in ["boom", "boom", "spin"] {
        let response = server
            .http
            .get(format!("{}/fn/shop/{name}", server.url))
            .send()
            .await
            .unwrap();
        assert!(!response.status().is_success());
    }
    let mut expected = std::collections::BTreeMap::<String, i64>::new();
    let start = Instant::now();
    let usage = loop {
        let records = server
            .admin(Method::GET, "/apps/shop/invocations?limit=1000", None)
            .await;
        let records = records.as_array().unwrap();
        if records.iter().filter(|r| r["status"] == "error").count() >= 3 {
            expected.clear();
            for r in records.iter().filter(|r| r["status"] == "error") {
                *expected
                    .entry(r["error_code"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
            break server
                .admin(Method::GET, "/apps/shop/usage?days=1", None)
                .await;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "records never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(expected.values().sum::<i64>(), 3, "{expected:?}");
    let by_code: std::collections::BTreeMap<String, i64> =
        serde_json::from_value(usage[0]["errors_by_code"].clone()).unwrap();
    assert_eq!(by_code, expected, "{usage}");
    assert_eq!(
        usage[0]["errors"].as_i64().unwrap(),
        expected.values().sum::<i64>()
    );
    let (_, _, page) = get(&server, &cookie, "/dashboard/apps/shop/usage").await;
    for code in expected.keys() {
        assert!(
            page.contains(&format!("<code>{code}</code>")),
            "{code} on the usage page"
        );
    }
    server.stop().await;
}

// ---- the same in a real browser ----

/// chromedriver on a free port, ended when dropped.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_program(names: &[&str]) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// chromedriver and Chromium, or `None` (loudly) outside CI; under CI their absence fails.
async fn start_driver() -> Option<(Driver, std::path::PathBuf)> {
    let driver = find_program(&["chromedriver"]);
    let browser = find_program(&["chromium", "chromium-browser", "google-chrome"]);
    let (Some(driver), Some(browser)) = (driver, browser) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have chromium and chromedriver (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "SKIPPED: the dashboard browser test needs chromium and chromedriver (apt-get install chromium chromium-driver)"
        );
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while reqwest::get(format!("{url}/status")).await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some((Driver { child, url }, browser))
}

/// Where screenshots go: `target/tmp/dashboard-screenshots/`.
fn screenshot_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Page weight (bytes transferred: the document and what it loaded) and first
/// contentful paint (ms) of the page the browser shows.
async fn measure(browser: &fantoccini::Client) -> (u64, f64) {
    let value = browser
        .execute(
            "const nav = performance.getEntriesByType('navigation')[0];
             const sub = performance.getEntriesByType('resource').reduce((s, r) => s + r.transferSize, 0);
             const paint = performance.getEntriesByName('first-contentful-paint')[0];
             return [nav.transferSize + sub, paint ? paint.startTime : -1];",
            vec![],
        )
        .await
        .unwrap();
    (
        value[0].as_u64().unwrap_or(0),
        value[1].as_f64().unwrap_or(-1.0),
    )
}

async fn wait_for<T, F>(what: &str, mut probe: F) -> T
where
    F: AsyncFnMut() -> Option<T>,
{
    let start = Instant::now();
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        // Generous: the first Rhai deploy compiles the shim (slow in a debug build).
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "waited in vain for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_chromium() {
    use fantoccini::Locator::Css;
    let Some((driver, browser_binary)) = start_driver().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    let origin = dashboard(&server);
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": browser_binary,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"],
        }),
    );
    let browser =
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("a Chromium session");
    let shots = screenshot_dir();
    let mut weights = Vec::new();
    let mut record = async |browser: &fantoccini::Client, name: &str| {
        let png = browser.screenshot().await.unwrap();
        std::fs::write(shots.join(format!("{name}.png")), png).unwrap();
        let (bytes, paint) = measure(browser).await;
        eprintln!(
            "dashboard page {name}: {bytes} bytes transferred, first contentful paint {paint:.0} ms"
        );
        weights.push((name.to_owned(), bytes, paint));
    };

    // Sign in.
    browser.goto(&format!("{origin}/dashboard/")).await.unwrap();
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("/dashboard/login")
    );
    record(&browser, "01-sign-in").await;
    browser
        .find(Css("#token"))
        .await
        .unwrap()
        .send_keys(TOKEN)
        .await
        .unwrap();
    browser
        .find(Css("section.login button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    if browser.wait().for_element(Css("#app-name")).await.is_err() {
        panic!(
            "no apps page after signing in: at {} showing {}",
            browser.current_url().await.unwrap(),
            browser.source().await.unwrap()
        );
    }
    record(&browser, "02-apps-empty").await;

    // Create an app.
    browser
        .find(Css("#app-name"))
        .await
        .unwrap()
        .send_keys("shop")
        .await
        .unwrap();
    browser
        .find(Css("section.card button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait().for_element(Css("#dropzone")).await.unwrap();
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("/dashboard/apps/shop")
    );

    // Deploy a component with the file picker.
    let hello = std::fs::canonicalize(picloud_example_artifacts::HELLO).unwrap();
    browser
        .find(Css("#file"))
        .await
        .unwrap()
        .send_keys(hello.to_str().unwrap())
        .await
        .unwrap();
    browser
        .find(Css("#fn-name"))
        .await
        .unwrap()
        .send_keys("hello")
        .await
        .unwrap();
    browser
        .find(Css("#deploy-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("the component's deploy", async || {
        let url = browser.current_url().await.ok()?;
        url.as_str().contains("deployed=hello").then_some(())
    })
    .await;

    // Drop a script on the drop zone: a broken one first — its error shows its line.
    let drop_file = "const [name, text] = arguments;
        const data = new DataTransfer();
        data.items.add(new File([text], name, { type: 'text/plain' }));
        document.getElementById('dropzone').dispatchEvent(
            new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));";
    browser
        .execute(
            drop_file,
            vec![json!("greet.rhai"), json!("let x = 1;\nlet y = ;\n")],
        )
        .await
        .unwrap();
    let error = wait_for("the compile error", async || {
        let status = browser.find(Css("#deploy-status.error")).await.ok()?;
        status.text().await.ok()
    })
    .await;
    assert!(error.contains("line 2"), "{error}");
    record(&browser, "03-compile-error").await;
    browser
        .execute(drop_file, vec![json!("greet.rhai"), json!("\"v1\"")])
        .await
        .unwrap();
    wait_for("the script's deploy", async || {
        let url = browser.current_url().await.ok()?;
        url.as_str().contains("deployed=greet").then_some(())
    })
    .await;
    server.route("shop", "GET", "/hello", "hello").await;
    server.route("shop", "GET", "/greet", "greet").await;
    record(&browser, "04-functions").await;

    // The live tail shows a call as it happens.
    browser
        .goto(&format!("{origin}/dashboard/apps/shop/invocations"))
        .await
        .unwrap();
    wait_for("the tail to connect", async || {
        let state = browser
            .find(Css("#tail-state"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (state == "live").then_some(())
    })
    .await;
    let answer = server
        .http
        .get(format!("{}/fn/shop/hello?name=tail", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(answer, "Hello, tail!");
    let row = wait_for("the invocation in the tail", async || {
        let row = browser.find(Css("#tail-rows tr")).await.ok()?;
        row.text().await.ok()
    })
    .await;
    assert!(row.contains("hello") && row.contains("ok"), "{row}");
    record(&browser, "05-invocations-live-tail").await;

    // Roll back: deploy v2 through the API, then click "Roll back to v1".
    server
        .api(
            Method::POST,
            "/apps/shop/functions/greet/versions?kind=rhai",
        )
        .body("\"v2\"")
        .send()
        .await
        .unwrap();
    let greet = async || {
        server
            .http
            .get(format!("{}/fn/shop/greet", server.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert_eq!(greet().await, "v2");
    browser
        .goto(&format!("{origin}/dashboard/apps/shop/functions/greet"))
        .await
        .unwrap();
    record(&browser, "06-deployments").await;
    browser
        .find(Css("#versions form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("the rollback", async || {
        let active = browser
            .find(Css("#active-version"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (active == "v1").then_some(())
    })
    .await;
    assert_eq!(greet().await, "v1");

    // The usage chart has a bar per day.
    browser
        .goto(&format!("{origin}/dashboard/apps/shop/usage"))
        .await
        .unwrap();
    let bars = browser.find_all(Css("#fuel-chart rect.bar")).await.unwrap();
    assert_eq!(bars.len(), 14);
    let today = browser
        .find(Css("#usage-table tbody tr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !today.contains(" 0 0 0"),
        "today's usage counts the calls: {today}"
    );
    record(&browser, "07-usage").await;

    // The other pages render (screenshots for the record).
    for (name, path) in [
        ("08-app", ""),
        ("09-triggers", "/triggers"),
        ("10-secrets", "/secrets"),
        ("11-files", "/files"),
        ("12-users", "/users"),
        ("13-dead-letters", "/dead-letters"),
    ] {
        browser
            .goto(&format!("{origin}/dashboard/apps/shop{path}"))
            .await
            .unwrap();
        browser.wait().for_element(Css("main h1")).await.unwrap();
        record(&browser, name).await;
    }

    // CSRF: a form whose token was taken out is refused, and nothing changes.
    browser
        .goto(&format!("{origin}/dashboard/apps/shop/secrets"))
        .await
        .unwrap();
    browser
        .execute(
            "const form = document.querySelector('form.row');
             form.querySelector('input[name=_csrf]').remove();
             form.querySelector('input[name=name]').value = 'STOLEN';
             form.querySelector('input[name=value]').value = 'x';
             form.submit();",
            vec![],
        )
        .await
        .unwrap();
    let refused = wait_for("the refusal", async || {
        let text = browser.find(Css("p.error")).await.ok()?.text().await.ok()?;
        Some(text)
    })
    .await;
    assert!(refused.contains("CSRF"), "{refused}");
    let secrets = server.admin(Method::GET, "/apps/shop/secrets", None).await;
    assert_eq!(secrets, json!([]));
    record(&browser, "14-csrf-refused").await;

    browser.close().await.unwrap();
    drop(driver);
    server.stop().await;

    for (name, bytes, _) in &weights {
        assert!(*bytes <= 100 * 1024, "{name} weighs {bytes} bytes");
    }
}
