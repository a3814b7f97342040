//! Email (issue 13): Rhai scripts and components sending through a real SMTP server on
//! loopback (aiosmtpd), asserting on what it received; header injection, caps, the
//! daily count on both backends, unconfigured servers, the per-app From address.

use crate::support::{Backend, SmtpSink, TOKEN, TestDb, TestServer, assert_error, header};
use picloud::server::{ServeArgs, Server};
use reqwest::Method;
use serde_json::{Value, json};

/// The server's From address in these tests.
const FROM: &str = "PiCloud <noreply@picloud.test>";

/// Sends each message of the request's JSON array (`email::send_html` when it has
/// `html`), answering per message the message id or the error it threw.
const SEND_EACH: &str = r#"
    let out = [];
    for m in ctx.request.json {
        try {
            out.push(if "html" in m { email::send_html(m) } else { email::send(m) });
        } catch (e) {
            out.push(`error: ${e}`);
        }
    }
    out
"#;

fn args(dir: &std::path::Path, db: Option<&TestDb>, smtp: Option<&SmtpSink>) -> ServeArgs {
    ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: db.map(|d| d.url.clone()),
        admin_token: Some(TOKEN.into()),
        smtp_url: smtp.map(SmtpSink::url),
        email_from: Some(FROM.into()),
        ..ServeArgs::with_data_dir(dir.to_owned())
    }
}

/// Deploys [`SEND_EACH`] as `app/mail` on `POST /mail`.
async fn deploy_sender(server: &TestServer, app: &str) {
    let response = server
        .api(
            Method::POST,
            &format!("/apps/{app}/functions/mail/versions?kind=rhai"),
        )
        .body(SEND_EACH)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    server.route(app, "POST", "/mail", "mail").await;
}

/// What [`SEND_EACH`] of `app` answers for `messages`.
async fn send(server: &TestServer, app: &str, messages: Value) -> Vec<String> {
    let response = server
        .http
        .post(format!("{}/fn/{app}/mail", server.url))
        .json(&messages)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn is_message_id(answer: &str) -> bool {
    answer.starts_with('<') && answer.ends_with('>') && answer.contains('@')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_send_text_and_multipart_html_to_a_real_smtp_server() {
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(args(dir.path(), None, Some(&sink))).await;
    server.create_app("shop").await;
    deploy_sender(&server, "shop").await;

    let ids = send(
        &server,
        "shop",
        json!([
            {
                "to": "ada@example.com",
                "subject": "Your receipt",
                "text": "Thanks for your order.",
                "html": "<b>Thanks</b> for your order."
            },
        ]),
    )
    .await;
    assert!(is_message_id(&ids[0]), "{ids:?}");
    let text_only = send(
        &server,
        "shop",
        json!([{
            "to": ["ada@example.com", "Bob <bob@example.org>"],
            "cc": "carol@example.net",
            "bcc": ["dave@example.com"],
            "subject": "Grüße — your receipt",
            "text": "Danke!\nLine two.",
            "reply_to": "support@shop.test"
        }]),
    )
    .await;
    assert!(is_message_id(&text_only[0]), "{text_only:?}");

    let received = sink.received();
    assert_eq!(received.len(), 2, "{received:#?}");
    let html = &received[0];
    assert_eq!(html["mail_from"], "noreply@picloud.test");
    assert_eq!(html["rcpt_to"], json!(["ada@example.com"]));
    assert_eq!(html["content_type"], "multipart/alternative");
    assert_eq!(
        html["parts"],
        json!([
            { "content_type": "text/plain", "text": "Thanks for your order." },
            { "content_type": "text/html", "text": "<b>Thanks</b> for your order." },
        ])
    );
    assert_eq!(header(html, "From"), ["PiCloud <noreply@picloud.test>"]);
    assert_eq!(header(html, "Subject"), ["Your receipt"]);
    assert_eq!(header(html, "Message-ID"), [ids[0].as_str()]);
    assert_eq!(header(html, "Date").len(), 1);

    let plain = &received[1];
    // Every recipient is in the envelope, bcc too; bcc is in no header.
    assert_eq!(
        plain["rcpt_to"],
        json!([
            "ada@example.com",
            "bob@example.org",
            "carol@example.net",
            "dave@example.com"
        ])
    );
    assert_eq!(
        header(plain, "To"),
        ["ada@example.com, Bob <bob@example.org>"]
    );
    assert_eq!(header(plain, "Cc"), ["carol@example.net"]);
    assert!(header(plain, "Bcc").is_empty(), "{plain}");
    assert!(!plain["raw"].as_str().unwrap().contains("dave@"), "{plain}");
    assert_eq!(header(plain, "Reply-To"), ["support@shop.test"]);
    assert_eq!(plain["content_type"], "text/plain");
    let body = plain["parts"][0]["text"].as_str().unwrap();
    assert_eq!(body.trim_end(), "Danke!\r\nLine two.");
    assert_eq!(header(plain, "Message-ID"), [text_only[0].as_str()]);
    // The subject is encoded on the wire (non-ASCII) and arrives intact.
    let subject = header(plain, "Subject")[0];
    assert!(subject.starts_with("=?utf-8?"), "{subject}");

    // The invocation log has one line per send: count, size, outcome — no address,
    // subject or body.
    let record = server.last_record("shop").await;
    let lines = record["logs"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{record}");
    let fields: Value = serde_json::from_str(lines[0]["fields"].as_str().unwrap()).unwrap();
    assert_eq!(fields["recipients"], 4);
    assert_eq!(fields["outcome"], "ok");
    assert!(fields["bytes"].as_u64().unwrap() > 100, "{fields}");
    assert_eq!(fields["message_id"], text_only[0].as_str());
    let shown = record.to_string();
    for private in ["ada", "dave", "Danke", "receipt", "support@"] {
        assert!(!shown.contains(private), "{private} in {shown}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_injection_and_bad_addresses_are_refused_and_never_leave() {
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(ServeArgs {
        email_max_bytes: 4096,
        ..args(dir.path(), None, Some(&sink))
    })
    .await;
    server.create_app("shop").await;
    deploy_sender(&server, "shop").await;
    let base = json!({ "to": "ada@example.com", "subject": "Hi", "text": "x" });
    let with = |field: &str, value: Value| {
        let mut m = base.clone();
        m[field] = value;
        m
    };
    let many: Vec<String> = (0..51).map(|i| format!("r{i}@example.com")).collect();
    let answers = send(
        &server,
        "shop",
        json!([
            with("subject", json!("Hi\r\nBcc: victim@evil.test")),
            with("subject", json!("Hi\nX-Injected: 1")),
            with("to", json!("ada@example.com\r\nBcc: victim@evil.test")),
            with(
                "to",
                json!([
                    "ok@example.com",
                    "\"Ada\r\nBcc: victim@evil.test\" <a@example.com>"
                ])
            ),
            with("cc", json!("c@example.com\nBcc: victim@evil.test")),
            with("bcc", json!(["b@example.com\r"])),
            with("reply_to", json!("r@example.com\r\nBcc: victim@evil.test")),
            with("to", json!("not an address")),
            with("to", json!("ada@")),
            with("to", json!([])),
            with("bcc", json!(many)),
            with("text", json!("x".repeat(5000))),
        ]),
    )
    .await;
    let expected = [
        "email::send: invalid: subject must not contain line breaks (CR, LF) or other control characters",
        "email::send: invalid: subject must not contain line breaks (CR, LF) or other control characters",
        "email::send: invalid: to must not contain line breaks (CR, LF) or other control characters",
        "email::send: invalid: to must not contain line breaks (CR, LF) or other control characters",
        "email::send: invalid: cc must not contain line breaks (CR, LF) or other control characters",
        "email::send: invalid: bcc must not contain line breaks (CR, LF) or other control characters",
        "email::send: invalid: reply_to must not contain line breaks (CR, LF) or other control characters",
        "email::send: invalid: to: \"not an address\" is not a valid email address",
        "email::send: invalid: to: \"ada@\" is not a valid email address",
        "email::send: `to` is required",
        "email::send: limit: a message has at most 50 recipients (to, cc and bcc), got 52",
        "email::send: limit: the message is 5000 bytes; the limit is 4096",
    ];
    for (answer, expected) in answers.iter().zip(expected) {
        assert!(
            answer.starts_with("error: ") && answer.contains(expected),
            "expected {expected:?}, got {answer:?}"
        );
    }
    assert_eq!(answers.len(), expected.len());
    assert!(
        sink.received().is_empty(),
        "refused messages left: {:#?}",
        sink.received()
    );
    // Nothing refused was counted against the day.
    let settings = server.admin(Method::GET, "/apps/shop/email", None).await;
    assert_eq!(settings["sent_today"], 0, "{settings}");
    server.stop().await;
}

async fn the_daily_cap_is_exact(backend: Backend) {
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let args = ServeArgs {
        email_daily_limit: 3,
        ..args(dir.path(), Some(&db), Some(&sink))
    };
    let clock = args.clock.clone();
    let server = TestServer::start_with(args).await;
    for app in ["shop", "other"] {
        server.create_app(app).await;
        deploy_sender(&server, app).await;
    }
    let one = json!([{ "to": "ada@example.com", "subject": "Hi", "text": "x" }]);
    // Five invocations at once, one send each: exactly three pass.
    let calls = (0..5).map(|_| send(&server, "shop", one.clone()));
    let answers: Vec<String> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .collect();
    let sent = answers.iter().filter(|a| is_message_id(a)).count();
    assert_eq!(sent, 3, "{answers:?}");
    for refused in answers.iter().filter(|a| !is_message_id(a)) {
        assert_eq!(
            refused,
            "error: email::send: limit: the app sent its 3 emails of the day; the count renews at midnight UTC"
        );
    }
    assert_eq!(sink.received().len(), 3);
    let settings = server.admin(Method::GET, "/apps/shop/email", None).await;
    assert_eq!(
        (
            settings["sent_today"].clone(),
            settings["daily_limit"].clone()
        ),
        (json!(3), json!(3))
    );
    // Another app has its own count.
    assert!(is_message_id(&send(&server, "other", one.clone()).await[0]));
    // The next UTC day starts a new count.
    clock.advance(std::time::Duration::from_secs(86_400));
    assert!(is_message_id(&send(&server, "shop", one.clone()).await[0]));
    let settings = server.admin(Method::GET, "/apps/shop/email", None).await;
    assert_eq!(settings["sent_today"], 1, "{settings}");
    assert_eq!(sink.received().len(), 5);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_cap_counts_sends_exactly_and_renews_at_midnight_utc_on_sqlite() {
    the_daily_cap_is_exact(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_cap_counts_sends_exactly_and_renews_at_midnight_utc_on_postgresql() {
    the_daily_cap_is_exact(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_sends_from_its_own_address_once_an_operator_sets_one() {
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(args(dir.path(), None, Some(&sink))).await;
    for app in ["shop", "other"] {
        server.create_app(app).await;
        deploy_sender(&server, app).await;
    }
    let settings = server
        .admin(
            Method::PUT,
            "/apps/shop/email",
            Some(json!({ "from": "Shop <orders@shop.test>" })),
        )
        .await;
    assert_eq!(settings["from"], "Shop <orders@shop.test>");
    assert_eq!(settings["sends_from"], "Shop <orders@shop.test>");
    let one = json!([{ "to": "ada@example.com", "subject": "Hi", "text": "x" }]);
    let id = send(&server, "shop", one.clone()).await.remove(0);
    assert!(id.ends_with("@shop.test>"), "{id}");
    send(&server, "other", one.clone()).await;
    let received = sink.received();
    assert_eq!(received[0]["mail_from"], "orders@shop.test");
    assert_eq!(header(&received[0], "From"), ["Shop <orders@shop.test>"]);
    assert_eq!(received[1]["mail_from"], "noreply@picloud.test");

    // Bad addresses (and header injection through them) are refused.
    for bad in ["not an address", "a@b.test\r\nBcc: x@evil.test"] {
        let response = server
            .api(Method::PUT, "/apps/shop/email")
            .json(&json!({ "from": bad }))
            .send()
            .await
            .unwrap();
        assert_error(response, 400, "bad_request").await;
    }
    // Back to the server's address.
    let settings = server
        .admin(
            Method::PUT,
            "/apps/shop/email",
            Some(json!({ "from": null })),
        )
        .await;
    assert_eq!(settings["sends_from"], FROM);
    send(&server, "shop", one).await;
    assert_eq!(sink.received()[2]["mail_from"], "noreply@picloud.test");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_every_send_answers_unavailable_and_from_is_required_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(ServeArgs {
        email_from: None,
        ..args(dir.path(), None, None)
    })
    .await;
    server.create_app("shop").await;
    deploy_sender(&server, "shop").await;
    let answers = send(
        &server,
        "shop",
        json!([{ "to": "ada@example.com", "subject": "Hi", "text": "x" }]),
    )
    .await;
    assert_eq!(
        answers,
        ["error: email::send: unavailable: email not configured"]
    );
    let settings = server.admin(Method::GET, "/apps/shop/email", None).await;
    assert_eq!(settings["configured"], false);
    server.stop().await;

    // An SMTP URL without a From address, or one that does not parse, stops the start.
    let dir = tempfile::tempdir().unwrap();
    let no_from = ServeArgs {
        smtp_url: Some("smtp://127.0.0.1:2525".into()),
        email_from: None,
        ..args(dir.path(), None, None)
    };
    let error = Server::start(&no_from).await.err().unwrap().to_string();
    assert!(error.contains("--email-from"), "{error}");
    let bad_url = ServeArgs {
        smtp_url: Some("http://user:hunter2@127.0.0.1".into()),
        ..args(dir.path(), None, None)
    };
    let error = Server::start(&bad_url).await.err().unwrap().to_string();
    assert!(
        error.contains("--smtp-url is not a valid SMTP URL"),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_url_authenticate_and_a_failed_send_is_not_counted() {
    let Some(sink) = SmtpSink::start(Some(("mailer", "p@ss word"))) else {
        return;
    };
    // One data directory for the three servers below: the app and its function stay,
    // and the Rhai shim is compiled once.
    let dir = tempfile::tempdir().unwrap();
    let with_url = |url: String| ServeArgs {
        smtp_url: Some(url),
        ..args(dir.path(), None, None)
    };
    let url = format!("smtp://mailer:p%40ss%20word@127.0.0.1:{}", sink.port);
    let server = TestServer::start_with(with_url(url)).await;
    server.create_app("shop").await;
    deploy_sender(&server, "shop").await;
    let one = json!([{ "to": "ada@example.com", "subject": "Hi", "text": "x" }]);
    assert!(is_message_id(&send(&server, "shop", one.clone()).await[0]));
    assert_eq!(sink.received()[0]["login"], "mailer");
    server.stop().await;

    // A wrong password: the relay refuses, nothing leaves, nothing more is counted.
    let url = format!("smtp://mailer:wrong@127.0.0.1:{}", sink.port);
    let server = TestServer::start_with(with_url(url)).await;
    let answer = send(&server, "shop", one.clone()).await.remove(0);
    assert!(
        answer.starts_with("error: email::send: invalid: the mail server refused the message (535"),
        "{answer}"
    );
    let settings = server.admin(Method::GET, "/apps/shop/email", None).await;
    assert_eq!(settings["sent_today"], 1);
    assert_eq!(sink.received().len(), 1);
    server.stop().await;

    // A relay that is not there: unavailable, not counted.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let server = TestServer::start_with(with_url(format!("smtp://127.0.0.1:{port}"))).await;
    let answer = send(&server, "shop", one).await.remove(0);
    assert_eq!(
        answer,
        "error: email::send: unavailable: the mail server cannot be reached"
    );
    let record = server.last_record("shop").await;
    assert!(
        record["logs"][0]["message"]
            .as_str()
            .unwrap()
            .contains("-> unavailable"),
        "{record}"
    );
    let settings = server.admin(Method::GET, "/apps/shop/email", None).await;
    assert_eq!(settings["sent_today"], 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_sends_through_the_sdk_with_the_same_checks() {
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(args(dir.path(), None, Some(&sink))).await;
    server.create_app("shop").await;
    let component = std::fs::read(picloud_example_artifacts::EMAIL_SEND).unwrap();
    server
        .deploy("shop", "send", component, Some("POST /send"))
        .await;
    let call = |body: Value| {
        let server = &server;
        async move {
            let response = server
                .http
                .post(format!("{}/fn/shop/send", server.url))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let sent = call(json!({
        "to": ["ada@example.com"],
        "bcc": ["audit@example.com"],
        "subject": "Report",
        "text": "plain",
        "html": "<p>rich</p>"
    }))
    .await;
    let id = sent["message_id"].as_str().unwrap();
    let injected = call(json!({
        "to": ["ada@example.com"],
        "subject": "Report\r\nBcc: victim@evil.test",
        "text": "x"
    }))
    .await;
    assert_eq!(
        injected["error"],
        "invalid: subject must not contain line breaks (CR, LF) or other control characters"
    );
    let received = sink.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(header(&received[0], "Message-ID"), [id]);
    assert_eq!(
        received[0]["rcpt_to"],
        json!(["ada@example.com", "audit@example.com"])
    );
    assert_eq!(received[0]["content_type"], "multipart/alternative");
    assert_eq!(received[0]["parts"][1]["text"], "<p>rich</p>");
    server.stop().await;
}
