//! The real `picloud` binary against a real server: the README tour, and one-line errors.

use crate::support::{TOKEN, TestServer, hello};
use std::process::Output;

/// Runs the CLI (off the async runtime, so the in-process server keeps serving).
async fn picloud(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_picloud"));
    command
        .args(args)
        .env("PICLOUD_URL", url)
        .env_remove("PICLOUD_TOKEN")
        .current_dir(std::env::temp_dir());
    if let Some(token) = token {
        command.env("PICLOUD_TOKEN", token);
    }
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn failure(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "expected a failure, got: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "one-line error: {stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tour_deploy_call_and_read_logs_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    let url = server.url.as_str();

    assert_eq!(
        stdout(&picloud(url, Some(TOKEN), &["apps", "create", "shop"]).await).trim(),
        "created app shop"
    );
    assert_eq!(
        stdout(&picloud(url, Some(TOKEN), &["apps", "list"]).await).trim(),
        "shop"
    );

    let deployed = stdout(
        &picloud(
            url,
            Some(TOKEN),
            &[
                "deploy",
                picloud_example_artifacts::HELLO,
                "--app",
                "shop",
                "--route",
                "GET /hello",
            ],
        )
        .await,
    );
    let sha = picloud_runtime::sha256_hex(&hello());
    assert!(
        deployed.starts_with(&format!(
            "deployed shop/example-hello version 1 (component, sha256 {sha}, "
        )),
        "{deployed}"
    );
    assert!(
        deployed.contains(&format!("GET {url}/fn/shop/hello")),
        "{deployed}"
    );

    let greeting = server
        .get("/fn/shop/hello?name=CLI")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(greeting, "Hello, CLI!");
    assert_eq!(
        stdout(&picloud(url, Some(TOKEN), &["invoke", "shop/example-hello"]).await),
        "Hello, world!\n"
    );

    let logs = stdout(&picloud(url, Some(TOKEN), &["logs", "shop"]).await);
    assert_eq!(logs.lines().count(), 2, "{logs}");
    assert!(
        logs.lines().all(|l| l.contains("example-hello v1  200")),
        "{logs}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(
        &picloud(
            url,
            Some(TOKEN),
            &["logs", "shop", "--json", "--limit", "1"],
        )
        .await,
    ))
    .unwrap();
    assert_eq!(json[0]["trigger"], "manual");

    let deployed: serde_json::Value = serde_json::from_str(&stdout(
        &picloud(
            url,
            Some(TOKEN),
            &[
                "deploy",
                picloud_example_artifacts::HELLO,
                "--app",
                "shop",
                "--name",
                "hi",
                "--json",
            ],
        )
        .await,
    ))
    .unwrap();
    assert_eq!(deployed["deployed"]["version"], 1);
    assert_eq!(deployed["deployed"]["sha256"], sha.as_str());

    let script = dir.path().join("orders.rhai");
    std::fs::write(&script, "#{ order: ctx.request.params.id }").unwrap();
    let deployed = stdout(
        &picloud(
            url,
            Some(TOKEN),
            &[
                "deploy",
                script.to_str().unwrap(),
                "--app",
                "shop",
                "--route",
                "GET /orders/:id",
            ],
        )
        .await,
    );
    assert!(
        deployed.starts_with("deployed shop/orders version 1 (rhai, sha256 "),
        "{deployed}"
    );
    let order: serde_json::Value = server.get("/fn/shop/orders/7").await.json().await.unwrap();
    assert_eq!(order, serde_json::json!({ "order": "7" }));
    let module = dir.path().join("pricing.rhai");
    std::fs::write(&module, "fn total(n) { n * 2 }").unwrap();
    let deployed = stdout(
        &picloud(
            url,
            Some(TOKEN),
            &[
                "deploy",
                module.to_str().unwrap(),
                "--app",
                "shop",
                "--kind",
                "module",
            ],
        )
        .await,
    );
    assert!(
        deployed.starts_with("deployed shop/pricing version 1 (rhai-module, "),
        "{deployed}"
    );
    let broken = dir.path().join("broken.rhai");
    std::fs::write(&broken, "let = ;").unwrap();
    let refused = failure(
        &picloud(
            url,
            Some(TOKEN),
            &["deploy", broken.to_str().unwrap(), "--app", "shop"],
        )
        .await,
    );
    assert!(
        refused.contains("does not compile") && refused.contains("line 1"),
        "{refused}"
    );

    assert_eq!(
        stdout(&picloud(url, Some(TOKEN), &["apps", "delete", "shop"]).await).trim(),
        "deleted app shop"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    let url = server.url.as_str();

    let unreachable = failure(&picloud("http://127.0.0.1:9", Some(TOKEN), &["apps", "list"]).await);
    assert!(
        unreachable.contains("cannot reach PiCloud at http://127.0.0.1:9"),
        "{unreachable}"
    );

    let bad_token = failure(&picloud(url, Some("not-the-token"), &["apps", "list"]).await);
    assert!(bad_token.contains("refused the token"), "{bad_token}");

    let unknown_app = failure(
        &picloud(
            url,
            Some(TOKEN),
            &["deploy", picloud_example_artifacts::HELLO, "--app", "ghost"],
        )
        .await,
    );
    assert!(
        unknown_app.contains("no app called \"ghost\""),
        "{unknown_app}"
    );

    picloud(url, Some(TOKEN), &["apps", "create", "shop"]).await;
    let not_wasm = dir.path().join("notes.txt");
    std::fs::write(&not_wasm, "hello").unwrap();
    let refused = failure(
        &picloud(
            url,
            Some(TOKEN),
            &["deploy", not_wasm.to_str().unwrap(), "--app", "shop"],
        )
        .await,
    );
    assert!(refused.contains("not a WebAssembly file"), "{refused}");

    let missing = failure(
        &picloud(
            url,
            Some(TOKEN),
            &["deploy", "/no/such/file.wasm", "--app", "shop"],
        )
        .await,
    );
    assert!(
        missing.contains("cannot read /no/such/file.wasm"),
        "{missing}"
    );

    let bad_route = failure(
        &picloud(
            url,
            Some(TOKEN),
            &[
                "deploy",
                picloud_example_artifacts::HELLO,
                "--app",
                "shop",
                "--route",
                "GET nope",
            ],
        )
        .await,
    );
    assert!(bad_route.contains("must start with '/'"), "{bad_route}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_indexes_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    let url = server.url.as_str();
    let run = |args: &'static [&'static str]| picloud(url, Some(TOKEN), args);
    stdout(&run(&["apps", "create", "shop"]).await);

    let local = dir.path().join("report.csv");
    std::fs::write(&local, "a,b\n1,2\n").unwrap();
    let local_s: &'static str = Box::leak(local.display().to_string().into_boxed_str());
    let args: &'static [&'static str] = Box::leak(Box::new([
        "files",
        "put",
        "shop",
        "reports/q3 ü.csv",
        local_s,
        "--content-type",
        "text/csv",
    ]));
    let put = stdout(&run(args).await);
    assert!(put.starts_with("stored reports/q3 ü.csv (8 bytes"), "{put}");

    let listed = stdout(&run(&["files", "list", "shop", "--prefix", "reports/", "--json"]).await);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["path"], "reports/q3 ü.csv");
    assert_eq!(listed[0]["content_type"], "text/csv");

    let got = stdout(&run(&["files", "get", "shop", "reports/q3 ü.csv"]).await);
    assert_eq!(got, "a,b\n1,2\n");
    let missing = failure(&run(&["files", "get", "shop", "nope.txt"]).await);
    assert!(missing.contains("no file"), "{missing}");
    let escape = failure(&run(&["files", "get", "shop", "../x"]).await);
    assert!(escape.contains(".."), "{escape}");
    assert_eq!(
        stdout(&run(&["files", "delete", "shop", "reports/q3 ü.csv"]).await).trim(),
        "deleted reports/q3 ü.csv"
    );
    assert_eq!(
        stdout(&run(&["files", "list", "shop"]).await).trim(),
        "app shop has no files"
    );

    assert_eq!(
        stdout(&run(&["indexes", "create", "shop", "orders", "customer.id"]).await).trim(),
        "indexed orders.customer.id"
    );
    assert_eq!(
        stdout(&run(&["indexes", "list", "shop"]).await).trim(),
        "orders customer.id"
    );
    let bad = failure(&run(&["indexes", "create", "shop", "orders", "a b"]).await);
    assert!(bad.contains("invalid field path"), "{bad}");
    stdout(&run(&["indexes", "delete", "shop", "orders", "customer.id"]).await);
    assert_eq!(
        stdout(&run(&["indexes", "list", "shop"]).await).trim(),
        "app shop has no indexes"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_usage_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    let url = server.url.as_str();
    server.create_app("shop").await;
    server.deploy("shop", "hello", hello(), Some("GET /")).await;

    let shown = stdout(&picloud(url, Some(TOKEN), &["apps", "limits", "shop"]).await);
    assert!(shown.contains("daily_fuel unlimited"), "{shown}");
    let set = stdout(
        &picloud(
            url,
            Some(TOKEN),
            &[
                "apps",
                "limits",
                "shop",
                "--daily-fuel",
                "1",
                "--timeout-ms",
                "5000",
            ],
        )
        .await,
    );
    assert!(
        set.contains("timeout_ms 5000") && set.contains("daily_fuel 1"),
        "{set}"
    );
    // Setting one limit keeps the others.
    let json = stdout(
        &picloud(
            url,
            Some(TOKEN),
            &["apps", "limits", "shop", "--fuel", "7000000", "--json"],
        )
        .await,
    );
    let limits: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (
            &limits["fuel"],
            &limits["timeout_ms"],
            &limits["daily_fuel"]
        ),
        (
            &serde_json::json!(7_000_000),
            &serde_json::json!(5000),
            &serde_json::json!(1)
        )
    );

    assert_eq!(server.get("/fn/shop/").await.status(), 200);
    assert_eq!(
        server.get("/fn/shop/").await.status(),
        429,
        "the daily quota of 1 fuel is used"
    );
    let usage = stdout(&picloud(url, Some(TOKEN), &["usage", "shop", "--days", "1"]).await);
    let today = usage.lines().nth(1).unwrap_or_default();
    assert!(
        today.split_whitespace().nth(1) == Some("1"),
        "one invocation today (the refused one is not one): {usage}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_prints_new_invocations_as_they_are_recorded() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    server.create_app("shop").await;
    server
        .deploy("shop", "hello", hello(), Some("GET /hello"))
        .await;
    assert_eq!(server.get("/fn/shop/hello?name=before").await.status(), 200);
    // The first record is written in a batch: wait for it.
    let start = std::time::Instant::now();
    while server
        .admin(reqwest::Method::GET, "/apps/shop/invocations", None)
        .await
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(start.elapsed() < std::time::Duration::from_secs(30));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_picloud"))
        .args(["logs", "shop", "--follow", "--json", "--limit", "5"])
        .env("PICLOUD_URL", &server.url)
        .env("PICLOUD_TOKEN", TOKEN)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let next = async |lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>| {
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.recv())
            .await
            .expect("a line within 30 s")
            .expect("the CLI is still running");
        serde_json::from_str::<serde_json::Value>(&line).unwrap()
    };
    // What was there already, then each new invocation once, oldest first.
    let first = next(&mut lines).await;
    assert_eq!(first["function"], "hello");
    for name in ["one", "two"] {
        assert_eq!(
            server
                .get(&format!("/fn/shop/hello?name={name}"))
                .await
                .status(),
            200
        );
    }
    let one = next(&mut lines).await;
    let two = next(&mut lines).await;
    assert!(first["id"].as_str() < one["id"].as_str(), "{first} {one}");
    assert!(one["id"].as_str() < two["id"].as_str(), "{one} {two}");
    assert_eq!(two["trigger"], "http");
    // Nothing printed twice.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(2500), lines.recv())
            .await
            .is_err(),
        "no further lines"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    server.stop().await;
}
