//! Email (issue 13): Rhai scripts and components sending through a real SMTP server on
//! loopback (aiosmtpd), asserting on what it received; header injection, caps, the
//! daily count on both backends, unconfigured servers, the per-app From address.

use crate::support::{
    Backend, SinkTls, SmtpSink, TOKEN, TestCerts, TestDb, TestServer, assert_error, header,
};
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
async fn email_goes_over_tls_only_to_a_relay_whose_certificate_is_trusted() {
    let certs = TestCerts::generate();
    let Some(smtps) = SmtpSink::start_with(None, Some((SinkTls::Implicit, &certs))) else {
        return;
    };
    let login = Some(("mailer", "secret"));
    let starttls = SmtpSink::start_with(login, Some((SinkTls::StartTls, &certs))).unwrap();
    let plain = SmtpSink::start(None).unwrap();
    // One data directory for the servers below: the app and its function stay.
    let dir = tempfile::tempdir().unwrap();
    let with = |url: String, trusted: bool| ServeArgs {
        smtp_url: Some(url),
        smtp_ca_file: trusted.then(|| certs.ca_file()),
        ..args(dir.path(), None, None)
    };
    let one = json!([{ "to": "ada@example.com", "subject": "Hi", "text": "over TLS" }]);
    let starttls_url = format!(
        "smtp://mailer:secret@127.0.0.1:{}?tls=required",
        starttls.port
    );

    // smtps:// (TLS from the first byte), the relay's CA given by --smtp-ca-file.
    let server = TestServer::start_with(with(smtps.url(), true)).await;
    server.create_app("shop").await;
    deploy_sender(&server, "shop").await;
    assert!(is_message_id(&send(&server, "shop", one.clone()).await[0]));
    let received = smtps.received();
    assert!(
        received[0]["tls"].as_str().unwrap().starts_with("TLSv1."),
        "{received:#?}"
    );
    assert_eq!(
        received[0]["parts"][0]["text"].as_str().unwrap().trim_end(),
        "over TLS"
    );
    server.stop().await;

    // STARTTLS with AUTH: the credentials go after the upgrade (the sink refuses mail
    // before it).
    let server = TestServer::start_with(with(starttls_url.clone(), true)).await;
    assert!(is_message_id(&send(&server, "shop", one.clone()).await[0]));
    let received = starttls.received();
    assert!(
        received[0]["tls"].as_str().unwrap().starts_with("TLSv1."),
        "{received:#?}"
    );
    assert_eq!(received[0]["login"], "mailer");
    server.stop().await;

    // The same relays without --smtp-ca-file: their certificate is not trusted, so
    // nothing leaves, for either mode.
    let unreachable = "error: email::send: unavailable: the mail server cannot be reached";
    for url in [smtps.url(), starttls_url] {
        let server = TestServer::start_with(with(url.clone(), false)).await;
        assert_eq!(
            send(&server, "shop", one.clone()).await[0],
            unreachable,
            "{url}"
        );
        server.stop().await;
    }
    assert_eq!(smtps.received().len(), 1);
    assert_eq!(starttls.received().len(), 1);

    // ?tls=required to a relay that offers no STARTTLS: no fallback to plain text.
    let url = format!("smtp://127.0.0.1:{}?tls=required", plain.port);
    let server = TestServer::start_with(with(url, true)).await;
    assert_eq!(send(&server, "shop", one.clone()).await[0], unreachable);
    assert!(plain.received().is_empty());
    let settings = server.admin(Method::GET, "/apps/shop/email", None).await;
    assert_eq!(
        settings["sent_today"], 2,
        "only the two delivered messages count"
    );
    server.stop().await;

    // A CA file with a URL that uses no TLS is a mistake the server refuses to start
    // with, rather than ignoring the trust it was given.
    let error = Server::start(&with(plain.url(), true))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("--smtp-ca-file is for a relay reached over TLS"),
        "{error}"
    );
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

/// `sha256=<hex of HMAC-SHA256(secret, body)>`, as a provider's relay signs.
fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts `body` to the webhook of `app/trigger` with `signature` (none: no header).
async fn post_inbound(
    server: &TestServer,
    app: &str,
    trigger: &str,
    body: &[u8],
    signature: Option<&str>,
) -> reqwest::Response {
    let mut request = server
        .http
        .post(format!(
            "{}/api/v1/email-inbound/{app}/{trigger}",
            server.url
        ))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("X-PiCloud-Signature", signature);
    }
    request.send().await.unwrap()
}

/// The inbound email events of `app`'s outbox, oldest first.
async fn inbound_events(server: &TestServer, app: &str) -> Vec<Value> {
    let changes = server
        .admin(Method::GET, &format!("/apps/{app}/changes"), None)
        .await;
    changes
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["source"] == "email")
        .cloned()
        .collect()
}

async fn inbound_webhook(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(args(dir.path(), Some(&db), None)).await;
    for app in ["shop", "other"] {
        server.create_app(app).await;
    }
    let created = server
        .admin(
            Method::POST,
            "/apps/shop/email/triggers",
            Some(json!({ "name": "support" })),
        )
        .await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64, "{created}");
    assert_eq!(created["url"], "/api/v1/email-inbound/shop/support");
    for (body, status) in [
        (json!({ "name": "support" }), 409),
        (json!({ "name": "a/b" }), 400),
    ] {
        let response = server
            .api(Method::POST, "/apps/shop/email/triggers")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{body}");
    }
    let listed = server
        .admin(Method::GET, "/apps/shop/email/triggers", None)
        .await;
    assert_eq!(listed[0]["name"], "support");
    assert!(!listed.to_string().contains(&secret), "{listed}");

    // A change trigger of source `email` runs for the webhook's messages.
    for (name, script) in [
        ("on_mail", r#"kv::set("mail", "last", ctx.event); "ok""#),
        ("mail", r#"#{ v: kv::get("mail", "last") }"#),
    ] {
        let response = server
            .api(
                Method::POST,
                &format!("/apps/shop/functions/{name}/versions?kind=rhai"),
            )
            .body(script)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    server.route("shop", "GET", "/mail", "mail").await;
    server
        .admin(
            Method::POST,
            "/apps/shop/triggers",
            Some(
                json!({ "name": "support-mail", "kind": "change", "source": "email",
                         "collection": "support", "function": "on_mail" }),
            ),
        )
        .await;

    // A good signature: 202, and the event is in the outbox in the seed's shape.
    let message = json!({
        "from": "Ada <ada@example.com>",
        "to": "support@shop.test",
        "cc": ["boss@shop.test"],
        "subject": "Order 42?",
        "text": "Where is it?",
        "html": "<p>Where is it?</p>",
        "message_id": "<m-42@example.com>",
        "received_at": "2026-03-01T10:00:00+01:00"
    });
    let body = serde_json::to_vec(&message).unwrap();
    let response = post_inbound(
        &server,
        "shop",
        "support",
        &body,
        Some(&sign(&secret, &body)),
    )
    .await;
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["accepted_at"], "2026-03-01T09:00:00.000Z");
    // … and its trigger ran with the message as `ctx.event`.
    let start = std::time::Instant::now();
    let event = loop {
        let read: Value = server.get("/fn/shop/mail").await.json().await.unwrap();
        let event = read["v"].clone();
        if !event.is_null() {
            break event;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(90),
            "the email trigger never ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(event["source"], "email", "{event}");
    assert_eq!(event["webhook"], "support");
    assert_eq!(event["trigger"], "support-mail");
    assert_eq!(event["subject"], "Order 42?");
    assert_eq!(event["text"], "Where is it?");
    assert!(
        event["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{event}"
    );
    let events = inbound_events(&server, "shop").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (
            &events[0]["op"],
            &events[0]["collection"],
            &events[0]["key"]
        ),
        (
            &json!("receive"),
            &json!("support"),
            &json!("<m-42@example.com>")
        )
    );
    let event: Value = serde_json::from_str(events[0]["value"].as_str().unwrap()).unwrap();
    assert_eq!(
        event,
        json!({
            "from": "Ada <ada@example.com>",
            "to": ["support@shop.test"],
            "cc": ["boss@shop.test"],
            "subject": "Order 42?",
            "text": "Where is it?",
            "html": "<p>Where is it?</p>",
            "received_at": "2026-03-01T09:00:00.000Z",
            "message_id": "<m-42@example.com>"
        })
    );
    // Without received_at or message_id: stamped on arrival, null id.
    let minimal = br#"{"from": "a@example.com", "to": ["support@shop.test"]}"#;
    let response = post_inbound(
        &server,
        "shop",
        "support",
        minimal,
        Some(&sign(&secret, minimal)),
    )
    .await;
    assert_eq!(response.status(), 202);
    let events = inbound_events(&server, "shop").await;
    let event: Value = serde_json::from_str(events[1]["value"].as_str().unwrap()).unwrap();
    assert_eq!(event["message_id"], Value::Null);
    assert_eq!(event["html"], Value::Null);
    assert!(
        event["received_at"].as_str().unwrap().ends_with('Z'),
        "{event}"
    );

    // Bad signatures: one generic 401, nothing stored.
    let tampered = body.iter().copied().chain(*b" ").collect::<Vec<u8>>();
    let wrong_key = sign(&"0".repeat(64), &body);
    let other_body = sign(&secret, minimal);
    let upper = sign(&secret, &body).replace("sha256=", "SHA256=");
    for signature in [
        None,
        Some(wrong_key.as_str()),
        Some(other_body.as_str()),
        Some("sha256="),
        Some("sha256=not-hex"),
        Some(upper.as_str()),
        Some(&secret),
    ] {
        let response = post_inbound(&server, "shop", "support", &body, signature).await;
        let error = assert_error(response, 401, "unauthorized").await;
        assert_eq!(
            error["error"]["message"],
            "a valid X-PiCloud-Signature is required"
        );
    }
    let response = post_inbound(
        &server,
        "shop",
        "support",
        &tampered,
        Some(&sign(&secret, &body)),
    )
    .await;
    assert_error(response, 401, "unauthorized").await;

    // Unknown app, unknown trigger, another app's trigger name: 404.
    for (app, trigger) in [("nope", "support"), ("shop", "nope"), ("other", "support")] {
        let response =
            post_inbound(&server, app, trigger, &body, Some(&sign(&secret, &body))).await;
        assert_error(response, 404, "not_found").await;
    }

    // Signed, but not a message: 422.
    let many: Vec<String> = (0..101).map(|i| format!("r{i}@example.com")).collect();
    for bad in [
        json!("just a string"),
        json!({ "to": "support@shop.test" }),
        json!({ "from": "a@example.com" }),
        json!({ "from": "not an address", "to": "support@shop.test" }),
        json!({ "from": "a@example.com", "to": [] }),
        json!({ "from": "a@example.com", "to": "x\r\nBcc: y@evil.test" }),
        json!({ "from": "a@example.com", "to": many }),
        json!({ "from": "a@example.com", "to": "s@shop.test", "received_at": "yesterday" }),
        json!({ "from": "a@example.com", "to": "s@shop.test", "attachments": [] }),
        json!({ "from": "a@example.com", "to": "s@shop.test", "subject": "x".repeat(999) }),
    ] {
        let body = serde_json::to_vec(&bad).unwrap();
        let response = post_inbound(
            &server,
            "shop",
            "support",
            &body,
            Some(&sign(&secret, &body)),
        )
        .await;
        assert_error(response, 422, "invalid_event").await;
    }
    let not_json = b"{not json";
    let response = post_inbound(
        &server,
        "shop",
        "support",
        not_json,
        Some(&sign(&secret, not_json)),
    )
    .await;
    assert_error(response, 422, "invalid_event").await;
    // Past the size cap: refused before anything else.
    let huge = vec![b' '; 2 * 1024 * 1024 + 1];
    let response = post_inbound(
        &server,
        "shop",
        "support",
        &huge,
        Some(&sign(&secret, &huge)),
    )
    .await;
    assert_eq!(response.status(), 413);
    assert_eq!(inbound_events(&server, "shop").await.len(), 2);

    // The key is nowhere: not in listings, not stored in clear.
    let changes = server.admin(Method::GET, "/apps/shop/changes", None).await;
    assert!(!changes.to_string().contains(&secret));

    // A deleted trigger is gone.
    let response = server
        .api(Method::DELETE, "/apps/shop/email/triggers/support")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = post_inbound(
        &server,
        "shop",
        "support",
        &body,
        Some(&sign(&secret, &body)),
    )
    .await;
    assert_error(response, 404, "not_found").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbound_webhook_stores_signed_messages_and_refuses_the_rest_on_sqlite() {
    inbound_webhook(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbound_webhook_stores_signed_messages_and_refuses_the_rest_on_postgresql() {
    inbound_webhook(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_an_inbound_trigger_and_its_key_survives_a_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (_, old_key) = picloud::vault::MasterKey::generate();
    let (_, new_key) = picloud::vault::MasterKey::generate();
    let with_keys = |key: &str, previous: Option<&str>| ServeArgs {
        secret_key: Some(key.to_owned()),
        secret_key_previous: previous.map(str::to_owned),
        ..args(dir.path(), None, None)
    };
    let server = TestServer::start_with(with_keys(&old_key, None)).await;
    server.create_app("shop").await;
    let cli = |args: &'static [&'static str]| {
        let url = server.url.clone();
        tokio::task::spawn_blocking(move || {
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_picloud"))
                .args(args)
                .env("PICLOUD_URL", url)
                .env("PICLOUD_TOKEN", TOKEN)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        })
    };
    let created = cli(&["email", "add-trigger", "shop", "orders"])
        .await
        .unwrap();
    assert!(
        created.contains(&format!(
            "POST {}/api/v1/email-inbound/shop/orders",
            server.url
        )),
        "{created}"
    );
    let secret = created
        .lines()
        .find_map(|l| l.trim().strip_prefix("signing secret (shown once): "))
        .unwrap_or_else(|| panic!("no secret in {created}"))
        .to_owned();
    assert_eq!(
        cli(&["email", "triggers", "shop"]).await.unwrap().trim(),
        "orders"
    );
    let shown = cli(&["email", "from", "shop", "Shop <orders@shop.test>"])
        .await
        .unwrap();
    assert_eq!(
        shown.trim(),
        "email is not configured on this server (no --smtp-url); shop sent 0 today"
    );
    let settings = server.admin(Method::GET, "/apps/shop/email", None).await;
    assert_eq!(settings["from"], "Shop <orders@shop.test>");

    let body = br#"{"from": "a@example.com", "to": "orders@shop.test", "subject": "hi"}"#;
    let accepted = |server: &TestServer| {
        let signature = sign(&secret, body);
        let server = server.url.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{server}/api/v1/email-inbound/shop/orders"))
                .header("X-PiCloud-Signature", signature)
                .body(body.to_vec())
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(accepted(&server).await, 202);
    server.stop().await;

    // A new master key with the old one as previous still verifies; rekey reseals the
    // trigger's key, and then the old master key is no longer needed.
    let server = TestServer::start_with(with_keys(&new_key, Some(&old_key))).await;
    assert_eq!(accepted(&server).await, 202);
    let rekeyed = server.admin(Method::POST, "/secrets/rekey", None).await;
    assert_eq!(rekeyed["rekeyed"], 1, "{rekeyed}");
    server.stop().await;
    let server = TestServer::start_with(with_keys(&new_key, None)).await;
    assert_eq!(accepted(&server).await, 202);
    assert_eq!(inbound_events(&server, "shop").await.len(), 3);
    server.stop().await;
}
