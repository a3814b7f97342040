//! End users (issue 15) through the real server, on both backends, from a Rhai script
//! and from a Rust component speaking the same protocol (`examples/users`): the body is
//! `{"op": …, …}`, the answer `{"ok": …}` or `{"error": "…kind: message"}`. Emails go
//! to a real SMTP server on loopback and the tests follow the links they carry.

use crate::support::{Backend, SmtpSink, TOKEN, TestDb, TestServer, assert_error};
use picloud::server::ServeArgs;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The Rhai side of the protocol.
const RHAI_AUTH: &str = r#"
let r = ctx.request.json;
let answer = ();
try {
    let out = switch r.op {
        "create" => users::create(r.user),
        "get" => users::get(r.id),
        "find_by_email" => users::find_by_email(r.email),
        "update" => users::update(r.id, r.update),
        "delete" => users::delete(r.id),
        "list" => users::list(#{ limit: r.limit }),
        "login" => users::login(r.email, r.password),
        "verify" => users::verify(r.token),
        "logout" => users::logout(r.token),
        "request_password_reset" => users::request_password_reset(r.email),
        "reset_password" => users::reset_password(r.token, r.password),
        "request_verification" => users::request_verification(r.id),
        "verify_email" => users::verify_email(r.token),
        "invite" => users::invite(r.email, r.roles),
        "accept_invite" => users::accept_invite(r.token, r.password),
        "add_role" => users::add_role(r.id, r.role),
        "remove_role" => users::remove_role(r.id, r.role),
        "login_many" => { let last = (); for i in 0..r.times { try { last = users::login(r.email, r.password); } catch (e) { last = e; } } last },
        _ => throw `unknown op ${r.op}`
    };
    answer = #{ ok: out };
} catch (e) {
    answer = #{ error: e };
}
answer
"#;

const LINK: &str = "https://shop.example/auth?action={action}&token={token}";
const PASSWORD: &str = "correct horse battery";

#[derive(Clone, Copy, Debug)]
enum Guest {
    Rhai,
    Component,
}

const GUESTS: [Guest; 2] = [Guest::Rhai, Guest::Component];

impl Guest {
    fn function(self) -> &'static str {
        match self {
            Guest::Rhai => "auth-rhai",
            Guest::Component => "auth-wasm",
        }
    }
}

struct Fixture {
    server: TestServer,
    sink: SmtpSink,
    db: TestDb,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn start(backend: Backend) -> Option<Self> {
        let sink = SmtpSink::start(None)?;
        let db = TestDb::new(backend).await?;
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start_with(ServeArgs {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: Some(db.url.clone()),
            admin_token: Some(TOKEN.into()),
            smtp_url: Some(sink.url()),
            email_from: Some("Shop <noreply@shop.test>".into()),
            ..ServeArgs::with_data_dir(dir.path().to_owned())
        })
        .await;
        Some(Self {
            server,
            sink,
            db,
            _dir: dir,
        })
    }

    /// Creates `app` with both guests deployed and the link URL set.
    async fn app(&self, app: &str) {
        self.server.create_app(app).await;
        let response = self
            .server
            .api(
                Method::POST,
                &format!("/apps/{app}/functions/auth-rhai/versions?kind=rhai"),
            )
            .body(RHAI_AUTH)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        self.server
            .route(app, "POST", "/auth-rhai", "auth-rhai")
            .await;
        let wasm = std::fs::read(picloud_example_artifacts::USERS).unwrap();
        self.server
            .deploy(app, "auth-wasm", wasm, Some("POST /auth-wasm"))
            .await;
        self.server
            .admin(
                Method::PUT,
                &format!("/apps/{app}/users/settings"),
                Some(json!({ "link_url": LINK })),
            )
            .await;
    }

    /// What `guest` of `app` answers for `call`.
    async fn call(&self, app: &str, guest: Guest, call: Value) -> Value {
        let response = self
            .server
            .http
            .post(format!("{}/fn/{app}/{}", self.server.url, guest.function()))
            .json(&call)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "{call} answered {status}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// The `ok` of a call that must succeed.
    async fn ok(&self, app: &str, guest: Guest, call: Value) -> Value {
        let answer = self.call(app, guest, call.clone()).await;
        assert!(answer.get("ok").is_some(), "{call} failed: {answer}");
        answer["ok"].clone()
    }

    /// The error of a call that must fail, without Rhai's `users::op: ` prefix.
    async fn err(&self, app: &str, guest: Guest, call: Value) -> String {
        let answer = self.call(app, guest, call.clone()).await;
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{call} should fail, answered {answer}"));
        match error.strip_prefix("users::") {
            Some(rest) => rest.split_once(": ").map_or(rest, |(_, e)| e).to_owned(),
            None => error.to_owned(),
        }
    }

    /// Waits for the `n`th email and answers it.
    async fn email(&self, n: usize) -> Value {
        let started = Instant::now();
        loop {
            let received = self.sink.received();
            if received.len() >= n {
                return received[n - 1].clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "email {n} never came ({} so far)",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The text of `email` and the token of the link in it, checking the link's action.
fn link_token(email: &Value, action: &str) -> String {
    let text = email["parts"][0]["text"]
        .as_str()
        .unwrap()
        .replace("\r\n", "\n");
    let prefix = format!("https://shop.example/auth?action={action}&token=");
    let start = text
        .find(&prefix)
        .unwrap_or_else(|| panic!("no {action} link in {text}"))
        + prefix.len();
    let token: String = text[start..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(token.len(), 64, "{text}");
    token
}

fn new_user(email: &str, roles: Value) -> Value {
    json!({ "op": "create", "user": { "email": email, "password": PASSWORD, "roles": roles, "data": { "name": "Ada" } } })
}

async fn sign_up_verify_log_in_and_out(backend: Backend) {
    let Some(f) = Fixture::start(backend).await else {
        return;
    };
    f.app("shop").await;
    for (n, guest) in GUESTS.into_iter().enumerate() {
        let email = format!("Ada{n}@Example.com");
        let weak = json!({ "op": "create", "user": { "email": email, "password": "password123" } });
        assert!(
            f.err("shop", guest, weak)
                .await
                .starts_with("invalid: this password is one of the most common")
        );
        let user = f
            .ok("shop", guest, new_user(&email, json!(["admin"])))
            .await;
        assert_eq!(user["email"], format!("ada{n}@example.com"), "normalised");
        assert_eq!(user["email_verified"], false);
        assert_eq!(user["data"], json!({ "name": "Ada" }));
        let again = new_user(&format!("ADA{n}@example.COM"), json!([]));
        assert_eq!(
            f.err("shop", guest, again).await,
            "invalid: a user with this email already exists"
        );

        f.ok(
            "shop",
            guest,
            json!({ "op": "request_verification", "id": user["id"] }),
        )
        .await;
        let mail = f.email(n + 1).await;
        assert_eq!(mail["rcpt_to"], json!([format!("ada{n}@example.com")]));
        assert_eq!(mail["mail_from"], "noreply@shop.test");
        let token = link_token(&mail, "verify-email");
        let verified = f
            .ok(
                "shop",
                guest,
                json!({ "op": "verify_email", "token": token }),
            )
            .await;
        assert_eq!(verified["email_verified"], true);
        assert_eq!(
            f.err(
                "shop",
                guest,
                json!({ "op": "verify_email", "token": token })
            )
            .await,
            "denied: invalid or expired token",
            "a token is used once"
        );

        let wrong = json!({ "op": "login", "email": email, "password": "not the password" });
        assert_eq!(
            f.err("shop", guest, wrong).await,
            "denied: invalid email or password"
        );
        let session = f
            .ok(
                "shop",
                guest,
                json!({ "op": "login", "email": email.to_uppercase(), "password": PASSWORD }),
            )
            .await;
        let session = session.as_str().unwrap().to_owned();
        assert!(
            session.starts_with("ses_") && session.len() == 68,
            "{session}"
        );
        let me = f
            .ok("shop", guest, json!({ "op": "verify", "token": session }))
            .await;
        assert_eq!((&me["id"], &me["roles"]), (&user["id"], &json!(["admin"])));
        assert_eq!(me["email_verified"], true);
        f.ok("shop", guest, json!({ "op": "logout", "token": session }))
            .await;
        assert_eq!(
            f.ok("shop", guest, json!({ "op": "verify", "token": session }))
                .await,
            Value::Null
        );
    }
    // Neither a hash nor a password ever leaves the server.
    let listed = f.server.admin(Method::GET, "/apps/shop/users", None).await;
    assert_eq!(listed["users"].as_array().unwrap().len(), 2, "{listed}");
    assert!(!listed.to_string().contains("argon2"), "{listed}");
}

async fn a_reset_ends_every_session_and_tokens_are_single_use(backend: Backend) {
    let Some(f) = Fixture::start(backend).await else {
        return;
    };
    f.app("shop").await;
    let mut mails = 0;
    for (n, guest) in GUESTS.into_iter().enumerate() {
        let email = format!("reset{n}@example.com");
        f.ok("shop", guest, new_user(&email, json!([]))).await;
        let login = json!({ "op": "login", "email": email, "password": PASSWORD });
        let one = f.ok("shop", guest, login.clone()).await;
        let two = f.ok("shop", guest, login.clone()).await;

        // Unknown and known emails get the same answer; only the known one gets mail.
        let unknown = json!({ "op": "request_password_reset", "email": "nobody@example.com" });
        assert_eq!(f.ok("shop", guest, unknown).await, Value::Null);
        let known = json!({ "op": "request_password_reset", "email": email });
        assert_eq!(f.ok("shop", guest, known).await, Value::Null);
        mails += 1;
        let mail = f.email(mails).await;
        assert_eq!(
            mail["rcpt_to"],
            json!([email]),
            "the reset mail goes to the user only"
        );
        let token = link_token(&mail, "reset-password");

        let short = json!({ "op": "reset_password", "token": token, "password": "short" });
        assert!(
            f.err("shop", guest, short)
                .await
                .starts_with("invalid: a password has 8-256")
        );
        let reset =
            json!({ "op": "reset_password", "token": token, "password": "a brand new secret" });
        assert_eq!(
            f.ok("shop", guest, reset.clone()).await,
            Value::Null,
            "a refused password keeps the token"
        );
        assert_eq!(
            f.err("shop", guest, reset).await,
            "denied: invalid or expired token"
        );
        for session in [&one, &two] {
            let verify = json!({ "op": "verify", "token": session });
            assert_eq!(
                f.ok("shop", guest, verify).await,
                Value::Null,
                "sessions end at a reset"
            );
        }
        assert_eq!(
            f.err("shop", guest, login).await,
            "denied: invalid email or password"
        );
        let new_login = json!({ "op": "login", "email": email, "password": "a brand new secret" });
        f.ok("shop", guest, new_login).await;
    }
    assert_eq!(
        f.sink.received().len(),
        mails,
        "no mail for the unknown email"
    );

    // An expired token is refused like a used one.
    let guest = Guest::Rhai;
    f.ok(
        "shop",
        guest,
        json!({ "op": "request_password_reset", "email": "reset0@example.com" }),
    )
    .await;
    let token = link_token(&f.email(mails + 1).await, "reset-password");
    let db = f.db.open().await;
    sqlx::query("UPDATE end_user_tokens SET expires_at = 1")
        .execute(db.pool())
        .await
        .unwrap();
    let reset = json!({ "op": "reset_password", "token": token, "password": "another new secret" });
    assert_eq!(
        f.err("shop", guest, reset).await,
        "denied: invalid or expired token"
    );
    // So is an expired session.
    let login =
        json!({ "op": "login", "email": "reset0@example.com", "password": "a brand new secret" });
    let session = f.ok("shop", guest, login).await;
    let verify = json!({ "op": "verify", "token": session });
    assert_eq!(
        f.ok("shop", guest, verify.clone()).await["email"],
        "reset0@example.com"
    );
    sqlx::query("UPDATE end_user_sessions SET expires_at = 1")
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(f.ok("shop", guest, verify).await, Value::Null);
    db.close().await;
}

async fn an_invitation_creates_a_verified_account_once(backend: Backend) {
    let Some(f) = Fixture::start(backend).await else {
        return;
    };
    f.app("shop").await;
    // By a function, and by an operator through the admin API.
    let invite = json!({ "op": "invite", "email": "Bob@Example.com", "roles": ["viewer"] });
    f.ok("shop", Guest::Component, invite).await;
    let status = f
        .server
        .api(Method::POST, "/apps/shop/users/invite")
        .json(&json!({ "email": "carol@example.com", "roles": ["editor", "viewer"] }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202);
    for (n, (guest, email, roles)) in [
        (Guest::Rhai, "bob@example.com", json!(["viewer"])),
        (
            Guest::Component,
            "carol@example.com",
            json!(["editor", "viewer"]),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mail = f.email(n + 1).await;
        assert_eq!(mail["rcpt_to"], json!([email]));
        let token = link_token(&mail, "accept-invite");
        let accept = json!({ "op": "accept_invite", "token": token, "password": PASSWORD });
        let user = f.ok("shop", guest, accept.clone()).await;
        assert_eq!((&user["email"], &user["roles"]), (&json!(email), &roles));
        assert_eq!(user["email_verified"], true);
        assert_eq!(
            f.err("shop", guest, accept).await,
            "denied: invalid or expired token"
        );
        f.ok(
            "shop",
            guest,
            json!({ "op": "login", "email": email, "password": PASSWORD }),
        )
        .await;
    }
    let existing = json!({ "op": "invite", "email": "bob@example.com", "roles": [] });
    assert_eq!(
        f.err("shop", Guest::Rhai, existing).await,
        "invalid: a user with this email already exists"
    );
}

async fn failed_logins_back_off_per_account(backend: Backend) {
    let Some(f) = Fixture::start(backend).await else {
        return;
    };
    f.app("shop").await;
    let guest = Guest::Component;
    f.ok("shop", guest, new_user("victim@example.com", json!([])))
        .await;
    f.ok("shop", guest, new_user("other@example.com", json!([])))
        .await;
    let wrong = json!({ "op": "login", "email": "victim@example.com", "password": "guess guess" });
    for _ in 0..5 {
        assert_eq!(
            f.err("shop", guest, wrong.clone()).await,
            "denied: invalid email or password"
        );
    }
    let right = json!({ "op": "login", "email": "victim@example.com", "password": PASSWORD });
    let locked = f.err("shop", guest, right.clone()).await;
    assert!(
        locked.starts_with("limit: too many failed logins for this account; retry in"),
        "{locked}"
    );
    // Another account of the app is not slowed.
    f.ok(
        "shop",
        guest,
        json!({ "op": "login", "email": "other@example.com", "password": PASSWORD }),
    )
    .await;
    // The lock is short (1 s after the fifth failure), and a success clears the count.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    f.ok("shop", guest, right.clone()).await;
    assert_eq!(
        f.err("shop", guest, wrong.clone()).await,
        "denied: invalid email or password"
    );
    f.ok("shop", guest, right).await;
}

/// An app with more than 300 failed logins in a minute answers `limit` to every login
/// (even a right one) until the minute ends; another app is not slowed.
async fn an_app_under_password_spraying_backs_off(backend: Backend) {
    let Some(f) = Fixture::start(backend).await else {
        return;
    };
    f.app("shop").await;
    f.app("calm").await;
    let guest = Guest::Rhai;
    for app in ["shop", "calm"] {
        f.ok(app, guest, new_user("ada@example.com", json!([])))
            .await;
    }
    // Eight failures per invocation (its most hashes) until the app backs off; a
    // minute boundary in between only starts the count again.
    let spray = json!({ "op": "login_many", "email": "nobody@example.com", "password": "spray spray", "times": 8 });
    let mut invocations = 0;
    let limited = loop {
        let last = f.ok("shop", guest, spray.clone()).await;
        let last = last.as_str().unwrap().to_owned();
        invocations += 1;
        if last.contains("limit:") {
            break last;
        }
        assert!(
            last.ends_with("denied: invalid email or password"),
            "{last}"
        );
        assert!(
            invocations < 100,
            "no back-off after {invocations} invocations"
        );
    };
    assert!(
        limited.contains("too many failed logins in this app; retry in"),
        "{limited}"
    );
    let right = json!({ "op": "login", "email": "ada@example.com", "password": PASSWORD });
    let error = f.err("shop", guest, right.clone()).await;
    assert!(
        error.starts_with("limit: too many failed logins in this app"),
        "{error}"
    );
    f.ok("calm", guest, right).await;
}

/// The same error for an unknown email and a wrong password, and about the same time:
/// 50 tries of each, interleaved (each wrong password on an account of its own, so no
/// account backs off), medians within 20 %.
async fn unknown_email_and_wrong_password_look_the_same(backend: Backend) {
    let Some(f) = Fixture::start(backend).await else {
        return;
    };
    f.app("shop").await;
    const TRIES: usize = 50;
    for i in 0..TRIES {
        f.server
            .admin(
                Method::POST,
                "/apps/shop/users",
                Some(json!({ "email": format!("u{i}@example.com"), "password": PASSWORD })),
            )
            .await;
    }
    let guest = Guest::Component;
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for i in 0..TRIES {
        for (email, times) in [
            (format!("nobody{i}@example.com"), &mut unknown),
            (format!("u{i}@example.com"), &mut wrong),
        ] {
            let call = json!({ "op": "login", "email": email, "password": "wrong password" });
            let started = Instant::now();
            let error = f.err("shop", guest, call).await;
            times.push(started.elapsed());
            assert_eq!(error, "denied: invalid email or password");
        }
    }
    unknown.sort();
    wrong.sort();
    let (a, b) = (
        unknown[TRIES / 2].as_secs_f64(),
        wrong[TRIES / 2].as_secs_f64(),
    );
    let ratio = a.max(b) / a.min(b);
    eprintln!("login medians: unknown email {a:.4} s, wrong password {b:.4} s, ratio {ratio:.3}");
    assert!(ratio <= 1.2, "unknown {a:.4} s vs wrong password {b:.4} s");
}

async fn users_belong_to_their_app(backend: Backend) {
    let Some(f) = Fixture::start(backend).await else {
        return;
    };
    f.app("a").await;
    f.app("b").await;
    let guest = Guest::Rhai;
    let ada = f
        .ok("a", guest, new_user("ada@example.com", json!(["admin"])))
        .await;
    let session = f
        .ok(
            "a",
            guest,
            json!({ "op": "login", "email": "ada@example.com", "password": PASSWORD }),
        )
        .await;
    for call in [
        json!({ "op": "get", "id": ada["id"] }),
        json!({ "op": "find_by_email", "email": "ada@example.com" }),
        json!({ "op": "verify", "token": session }),
    ] {
        assert_eq!(f.ok("b", guest, call).await, Value::Null);
    }
    let login = json!({ "op": "login", "email": "ada@example.com", "password": PASSWORD });
    assert_eq!(
        f.err("b", guest, login).await,
        "denied: invalid email or password"
    );
    assert_eq!(
        f.ok("b", guest, json!({ "op": "delete", "id": ada["id"] }))
            .await,
        false
    );
    let update = json!({ "op": "update", "id": ada["id"], "update": { "roles": [] } });
    assert_eq!(f.err("b", guest, update).await, "not found");
    let response = f
        .server
        .api(
            Method::GET,
            &format!("/apps/b/users/{}", ada["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "not_found").await;
    // B may have its own ada.
    f.ok("b", guest, new_user("ada@example.com", json!([])))
        .await;
    let me = f
        .ok("a", guest, json!({ "op": "verify", "token": session }))
        .await;
    assert_eq!(me["roles"], json!(["admin"]));
}

/// Values a hostile function (or its callers) passes are capped and checked.
async fn hostile_values_are_refused(backend: Backend) {
    let Some(f) = Fixture::start(backend).await else {
        return;
    };
    f.app("shop").await;
    let guest = Guest::Rhai;
    let ada = f
        .ok("shop", guest, new_user("ada@example.com", json!([])))
        .await;
    let cases = [
        (
            json!({ "op": "create", "user": { "email": "x@example.com\r\nBcc: all@example.com", "password": PASSWORD } }),
            "invalid: \"x@example.com\\r\\nBcc: all@example.com\" is not a valid email address",
        ),
        (
            json!({ "op": "create", "user": { "email": "x@example.com", "password": "x".repeat(257) } }),
            "invalid: a password has 8-256 characters, got 257",
        ),
        (
            json!({ "op": "create", "user": { "email": "x@example.com", "password": PASSWORD, "data": [1] } }),
            "invalid: a user's data is a JSON object",
        ),
        (
            json!({ "op": "create", "user": { "email": "x@example.com", "password": PASSWORD, "data": { "big": "x".repeat(20_000) } } }),
            "invalid: a user's data is at most 16384 bytes of JSON",
        ),
        (
            json!({ "op": "add_role", "id": ada["id"], "role": "a/b" }),
            "invalid: role \"a/b\" must be 1-64 characters of A-Z a-z 0-9 _ - .",
        ),
        (
            json!({ "op": "login", "email": "ada@example.com", "password": "x".repeat(1 << 16) }),
            "denied: invalid email or password",
        ),
        (
            json!({ "op": "verify_email", "token": "f".repeat(10_000) }),
            "denied: invalid or expired token",
        ),
    ];
    for (call, expected) in cases {
        let error = f.err("shop", guest, call.clone()).await;
        assert!(
            error.starts_with(expected),
            "{error} for {}",
            &call.to_string()[..80.min(call.to_string().len())]
        );
    }
    let token = json!({ "op": "verify", "token": "t".repeat(10_000) });
    assert_eq!(f.ok("shop", guest, token).await, Value::Null);
    let roles: Vec<String> = (0..33).map(|i| format!("r{i}")).collect();
    let many = json!({ "op": "update", "id": ada["id"], "update": { "roles": roles } });
    assert_eq!(
        f.err("shop", guest, many).await,
        "invalid: a user has at most 32 roles, got 33"
    );
    // Password hashing is CPU: an invocation does at most 8.
    let many =
        json!({ "op": "login_many", "email": "ada@example.com", "password": PASSWORD, "times": 9 });
    let last = f.ok("shop", guest, many).await;
    assert!(
        last.as_str()
            .unwrap()
            .starts_with("users::login: limit: an invocation hashes at most 8 passwords"),
        "{last}"
    );
    // Without the link URL, emails with links are off, and say how to turn them on.
    f.server
        .admin(
            Method::PUT,
            "/apps/shop/users/settings",
            Some(json!({ "link_url": null })),
        )
        .await;
    let verify = json!({ "op": "request_verification", "id": ada["id"] });
    assert!(
        f.err("shop", guest, verify)
            .await
            .starts_with("unavailable: the app has no link URL")
    );
    let response = f
        .server
        .api(Method::PUT, "/apps/shop/users/settings")
        .json(&json!({ "link_url": "javascript:alert({token})" }))
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "bad_request").await;
}

/// User writes are change events (without secrets): a trigger sends a welcome email.
async fn a_user_trigger_sends_a_welcome_email(backend: Backend) {
    let Some(f) = Fixture::start(backend).await else {
        return;
    };
    f.app("shop").await;
    let welcome = r#"
        let e = ctx.event;
        email::send(#{ to: e.value.email, subject: `Welcome (${e.op})`, text: to_json(e) });
    "#;
    let response = f
        .server
        .api(
            Method::POST,
            "/apps/shop/functions/welcome/versions?kind=rhai",
        )
        .body(welcome)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    f.server
        .admin(
            Method::POST,
            "/apps/shop/triggers",
            Some(json!({ "name": "welcome", "kind": "change", "function": "welcome", "source": "users", "ops": ["create"] })),
        )
        .await;
    let user = f
        .ok(
            "shop",
            Guest::Component,
            new_user("new@example.com", json!(["member"])),
        )
        .await;
    let mail = f.email(1).await;
    assert_eq!(mail["rcpt_to"], json!(["new@example.com"]));
    let event: Value =
        serde_json::from_str(mail["parts"][0]["text"].as_str().unwrap().trim()).unwrap();
    assert_eq!(
        (&event["source"], &event["op"], &event["key"]),
        (&json!("users"), &json!("create"), &user["id"])
    );
    assert_eq!(event["value"]["roles"], json!(["member"]));
    let text = event.to_string();
    assert!(
        !text.contains("argon2") && !text.contains(PASSWORD),
        "{text}"
    );
}

on_both_backends!(
    sign_up_verify_log_in_and_out,
    a_reset_ends_every_session_and_tokens_are_single_use,
    an_invitation_creates_a_verified_account_once,
    failed_logins_back_off_per_account,
    an_app_under_password_spraying_backs_off,
    unknown_email_and_wrong_password_look_the_same,
    users_belong_to_their_app,
    hostile_values_are_refused,
    a_user_trigger_sends_a_welcome_email,
);

/// The CLI: settings, create (password on stdin), list, get by email, invite, delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_manage_users_with_the_cli() {
    let Some(f) = Fixture::start(Backend::Sqlite).await else {
        return;
    };
    f.server.create_app("shop").await;
    let url = f.server.url.clone();
    let run = |args: Vec<&'static str>, stdin: &'static str| {
        let url = url.clone();
        async move {
            crate::support::outcome(crate::support::picloud_cli(&url, TOKEN, &args, stdin).await)
        }
    };
    let (ok, out) = run(vec!["users", "settings", "shop", "--link-url", LINK], "").await;
    assert!(
        ok && out.contains("link URL: https://shop.example/auth"),
        "{out}"
    );
    let (ok, out) = run(
        vec![
            "users",
            "create",
            "shop",
            "Ada@Example.com",
            "--role",
            "admin",
        ],
        "correct horse battery\n",
    )
    .await;
    assert!(
        ok && out.starts_with("created user ") && out.contains("ada@example.com"),
        "{out}"
    );
    let (ok, out) = run(
        vec!["users", "create", "shop", "bob@example.com"],
        "short\n",
    )
    .await;
    assert!(
        !ok && out.contains("a password has 8-256 characters"),
        "{out}"
    );
    let (ok, out) = run(vec!["users", "get", "shop", "ADA@example.com"], "").await;
    assert!(
        ok && out.contains("unverified") && out.contains("admin"),
        "{out}"
    );
    let id = out.split_whitespace().next().unwrap().to_owned();
    let (ok, out) = run(
        vec![
            "users",
            "invite",
            "shop",
            "bob@example.com",
            "--role",
            "viewer",
        ],
        "",
    )
    .await;
    assert!(ok && out.trim() == "invited bob@example.com", "{out}");
    link_token(&f.email(1).await, "accept-invite");
    let (ok, out) = run(vec!["--json", "users", "list", "shop"], "").await;
    assert!(ok, "{out}");
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["users"][0]["id"], json!(id));
    let id: &'static str = Box::leak(id.into_boxed_str());
    let (ok, out) = run(vec!["users", "delete", "shop", id], "").await;
    assert!(ok && out.trim() == format!("deleted user {id}"), "{out}");
    let (ok, out) = run(vec!["users", "delete", "shop", id], "").await;
    assert!(!ok && out.trim().lines().count() == 1, "{out}");
}
