//! The CLI for people (issue 16): `init` → `deploy` from picloud.toml → change → deploy
//! again → `deployments list` → `rollback`; `login`/`logout`; bad and hostile manifests.
//! The real binary against a real server.

use crate::support::{Backend, TOKEN, TestDb, TestServer};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One run of the CLI: in `cwd`, with the user config at `config` (never the real
/// one), `token` as PICLOUD_TOKEN when given, `url` as PICLOUD_URL when given.
struct Run<'a> {
    url: Option<&'a str>,
    token: Option<&'a str>,
    config: &'a Path,
    cwd: &'a Path,
    stdin: &'a str,
}

impl Run<'_> {
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        use std::io::Write;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_picloud"));
        command
            .args(args)
            .env_remove("PICLOUD_URL")
            .env_remove("PICLOUD_TOKEN")
            .env_remove("PICLOUD_SDK_PATH")
            .env("PICLOUD_CONFIG", self.config)
            .current_dir(self.cwd)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(url) = self.url {
            command.env("PICLOUD_URL", url);
        }
        if let Some(token) = self.token {
            command.env("PICLOUD_TOKEN", token);
        }
        let stdin = self.stdin.to_owned();
        let output = tokio::task::spawn_blocking(move || {
            let mut child = command.spawn().unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        (
            output.status.success(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    }

    /// A run that must succeed: its stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args).await;
        assert!(ok, "picloud {args:?} failed: {err}{out}");
        out
    }

    /// A run that must fail with a one-line error: that line.
    async fn fails(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args).await;
        assert!(!ok, "picloud {args:?} should fail, printed: {out}");
        assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
        assert!(err.starts_with("error: "), "{err}");
        err
    }
}

/// A run with the admin token.
fn operator<'a>(url: &'a str, config: &'a Path, cwd: &'a Path) -> Run<'a> {
    Run {
        url: Some(url),
        token: Some(TOKEN),
        config,
        cwd,
        stdin: "",
    }
}

async fn call(server: &TestServer, path: &str) -> String {
    let response = server.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

async fn a_project_is_created_deployed_changed_and_rolled_back(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data"), Some(db.url.clone())).await;
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config.toml");
    let at = |cwd| operator(&server.url, &config, cwd);
    let cli = at(work.path());
    let created = cli.ok(&["init", "--template", "rhai", "demo"]).await;
    assert!(created.contains("created demo"), "{created}");
    let project: PathBuf = work.path().join("demo");
    assert!(project.join("picloud.toml").is_file());
    // A second function with an async route, a trigger and limits.
    std::fs::write(project.join("echo.rhai"), "`echo ${ctx.request.body}`\n").unwrap();
    let mut manifest = std::fs::read_to_string(project.join("picloud.toml")).unwrap();
    manifest.push_str(
        r#"
[[functions]]
name = "echo"
source = "echo.rhai"
routes = ["POST /echo", { route = "POST /echo-later", async = true }]

[[triggers]]
name = "nightly"
kind = "cron"
schedule = "0 3 * * *"
function = "echo"

[limits]
fuel = 50000000
timeout_ms = 4000
"#,
    );
    std::fs::write(project.join("picloud.toml"), &manifest).unwrap();

    let cli = at(&project);
    let out = cli.ok(&["deploy"]).await;
    for line in [
        "created app demo",
        "demo/hello: deployed version 1 (rhai",
        "demo/echo: deployed version 1 (rhai",
        "added route GET /hello → hello",
        "added route POST /echo → echo",
        "added route POST /echo-later → echo (async)",
        "created trigger nightly → echo",
        "set limits",
    ] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
    assert_eq!(
        call(&server, "/fn/demo/hello?name=Ada").await,
        "Hello, Ada!"
    );
    let app = server.admin(reqwest::Method::GET, "/apps/demo", None).await;
    assert_eq!(app["limits"]["fuel"], 50_000_000, "{app}");
    assert_eq!(app["limits"]["timeout_ms"], 4000, "{app}");
    let routes = server
        .admin(reqwest::Method::GET, "/apps/demo/routes", None)
        .await;
    let later = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "/echo-later")
        .unwrap();
    assert_eq!(later["dispatch"], "async", "{routes}");

    // Nothing changed: nothing sent again.
    let out = cli.ok(&["deploy", "--json"]).await;
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["created_app"], false, "{report}");
    assert!(
        report["functions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["status"] == "unchanged"),
        "{report}"
    );
    assert_eq!(report["routes"]["unchanged"], 3, "{report}");
    assert_eq!(report["triggers"]["unchanged"], 1, "{report}");
    assert_eq!(report["limits"], Value::Null, "{report}");

    // One script changed: only it is uploaded.
    edit(
        &project.join("hello.rhai"),
        "`Hello, ${name}!`",
        "`Goodbye, ${name}!`",
    );
    let out = cli.ok(&["deploy"]).await;
    assert!(out.contains("demo/hello: deployed version 2"), "{out}");
    assert!(out.contains("demo/echo: unchanged (version 1)"), "{out}");
    assert!(!out.contains("added route"), "{out}");
    assert_eq!(
        call(&server, "/fn/demo/hello?name=Ada").await,
        "Goodbye, Ada!"
    );

    let out = cli.ok(&["deployments", "list", "demo/hello"]).await;
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("* 2 "), "{out}");
    assert!(lines[1].starts_with("  1 "), "{out}");
    let listed: Value = serde_json::from_str(
        &cli.ok(&["deployments", "list", "demo/hello", "--json"])
            .await,
    )
    .unwrap();
    assert_eq!(listed["active_version"], 2, "{listed}");
    assert_eq!(listed["versions"].as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed["versions"][0]["active"], true, "{listed}");

    let out = cli.ok(&["rollback", "demo/hello"]).await;
    assert_eq!(out.trim(), "demo/hello: version 1 is active now (was 2)");
    assert_eq!(
        call(&server, "/fn/demo/hello?name=Ada").await,
        "Hello, Ada!"
    );
    let out = cli.ok(&["rollback", "demo/hello", "2", "--json"]).await;
    let rolled: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rolled["active_version"], 2, "{rolled}");
    let err = cli.fails(&["rollback", "demo/hello", "7"]).await;
    assert!(err.contains("no version 7"), "{err}");

    // Routes and triggers of the project's functions that it no longer lists go; the
    // app's other routes stay.
    server.route("demo", "GET", "/by-hand", "hello").await;
    std::fs::write(work.path().join("other.rhai"), "\"other\"").unwrap();
    at(work.path())
        .ok(&[
            "deploy",
            "other.rhai",
            "--app",
            "demo",
            "--route",
            "GET /other",
        ])
        .await;
    edit(
        &project.join("picloud.toml"),
        r#"routes = ["POST /echo", { route = "POST /echo-later", async = true }]"#,
        r#"routes = ["POST /echo"]"#,
    );
    let mut manifest = std::fs::read_to_string(project.join("picloud.toml")).unwrap();
    let cut = manifest.find("\n[[triggers]]").unwrap();
    manifest.truncate(cut);
    std::fs::write(project.join("picloud.toml"), &manifest).unwrap();
    let out = cli.ok(&["deploy"]).await;
    assert!(
        out.contains("removed route POST /echo-later → echo"),
        "{out}"
    );
    assert!(out.contains("removed route GET /by-hand → hello"), "{out}");
    assert!(out.contains("removed trigger nightly → echo"), "{out}");
    let routes = server
        .admin(reqwest::Method::GET, "/apps/demo/routes", None)
        .await;
    let mut paths: Vec<&str> = routes
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(paths, ["/echo", "/hello", "/other"], "{routes}");
    let triggers = server
        .admin(reqwest::Method::GET, "/apps/demo/triggers", None)
        .await;
    assert_eq!(triggers.as_array().unwrap().len(), 0, "{triggers}");
    server.stop().await;
}

on_both_backends!(a_project_is_created_deployed_changed_and_rolled_back);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_saves_the_token_for_commands_without_one() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), None).await;
    server.create_app("shop").await;
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("cfg/picloud/config.toml");
    let run = |url: Option<&'static str>, stdin: &'static str| Run {
        url,
        token: None,
        config: &config,
        cwd: work.path(),
        stdin,
    };
    let url: &'static str = Box::leak(server.url.clone().into_boxed_str());

    // A wrong token: a clear error and nothing saved.
    let err = run(Some(url), "not-the-token\n").fails(&["login"]).await;
    assert!(
        err.contains("refused this token (401); nothing saved"),
        "{err}"
    );
    assert!(!config.exists());
    assert!(!config.parent().unwrap().exists());

    let out = run(Some(url), &format!("{TOKEN}\n").leak()[..])
        .ok(&["login"])
        .await;
    assert!(out.starts_with(&format!("logged in to {url}")), "{out}");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "config mode {mode:o}");
    let dir_mode = std::fs::metadata(config.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700, "config dir mode {dir_mode:o}");

    // Without --token, and even without --url: the saved ones.
    assert_eq!(
        run(Some(url), "").ok(&["apps", "list"]).await.trim(),
        "shop"
    );
    assert_eq!(run(None, "").ok(&["apps", "list"]).await.trim(), "shop");
    // A flag wins over the config.
    let err = Run {
        token: Some("wrong-token"),
        ..run(None, "")
    }
    .fails(&["apps", "list"])
    .await;
    assert!(err.contains("refused the token (401)"), "{err}");
    // The saved token goes only to the server it was saved for.
    let other = url.replace("127.0.0.1", "localhost");
    let err = run(Some(Box::leak(other.into_boxed_str())), "")
        .fails(&["apps", "list"])
        .await;
    assert!(err.contains("refused the token (401)"), "{err}");

    let out = run(None, "").ok(&["logout", "--json"]).await;
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["removed"], true, "{out}");
    assert!(!config.exists());
    let err = run(Some(url), "").fails(&["apps", "list"]).await;
    assert!(err.contains("refused the token (401)"), "{err}");
    server.stop().await;
}

/// Writes a project with `manifest` (and a hello.rhai) under a fresh dir; its path.
fn project(root: &Path, name: &str, manifest: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("picloud.toml"), manifest).unwrap();
    std::fs::write(dir.join("hello.rhai"), "\"hi\"").unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_hostile_manifests_are_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data"), None).await;
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    let config = root.join("config.toml");
    std::fs::write(root.join("outside.rhai"), "\"secret\"").unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "syntax",
            "app = \"a\"\n[[functions]\nname = \"x\"\n",
            "line 2",
        ),
        (
            "unknown-field",
            "app = \"a\"\n\n[[functions]]\nnmae = \"hello\"\nsource = \"hello.rhai\"\n",
            "line 4: unknown field `nmae`",
        ),
        (
            "missing-app",
            "[[functions]]\nname = \"x\"\n",
            "missing field `app`",
        ),
        (
            "bad-route",
            "app = \"a\"\n[[functions]]\nname = \"hello\"\nsource = \"hello.rhai\"\nroutes = [\"FETCH /x\"]\n",
            "functions[0].routes[0]: method \"FETCH\"",
        ),
        (
            "route-table",
            "app = \"a\"\n[[functions]]\nname = \"hello\"\nsource = \"hello.rhai\"\nroutes = [{ route = \"GET /x\", sync = true }]\n",
            "unknown field `sync`",
        ),
        (
            "limits",
            "app = \"a\"\n[limits]\nfuel = 1\ncpu = 2\n",
            "line 4: unknown field `cpu`",
        ),
        (
            "source-and-build",
            "app = \"a\"\n[[functions]]\nname = \"hello\"\nsource = \"hello.rhai\"\nbuild = \"true\"\n",
            "not both",
        ),
        (
            "no-source",
            "app = \"a\"\n[[functions]]\nname = \"hello\"\n",
            "give `source`",
        ),
        // Hostile: names that would climb URL paths, paths that leave the project.
        (
            "app-name",
            "app = \"../tokens\"\n",
            "app: app name \"../tokens\" must be",
        ),
        (
            "function-name",
            "app = \"a\"\n[[functions]]\nname = \"../../tokens\"\nsource = \"hello.rhai\"\n",
            "functions[0].name: function name \"../../tokens\" must be",
        ),
        (
            "dotdot-source",
            "app = \"a\"\n[[functions]]\nname = \"hello\"\nsource = \"../outside.rhai\"\n",
            "functions[0].source \"../outside.rhai\" is outside the project",
        ),
        (
            "sneaky-source",
            "app = \"a\"\n[[functions]]\nname = \"hello\"\nsource = \"sub/../../outside.rhai\"\n",
            "is outside the project",
        ),
        (
            "absolute-artifact",
            "app = \"a\"\n[[functions]]\nname = \"hello\"\nbuild = \"true\"\nartifact = \"/etc/passwd\"\n",
            "functions[0].artifact \"/etc/passwd\" is outside the project",
        ),
        (
            "symlink-out",
            "app = \"a\"\n[[functions]]\nname = \"hello\"\nsource = \"link.rhai\"\n",
            "leads outside the project",
        ),
        (
            "build-fails",
            "app = \"a\"\n[[functions]]\nname = \"hello\"\nbuild = \"echo building; exit 3\"\nartifact = \"out.wasm\"\n",
            "the build of hello failed",
        ),
        (
            "no-artifact",
            "app = \"a\"\n[[functions]]\nname = \"hello\"\nbuild = \"true\"\nartifact = \"out.wasm\"\n",
            "function hello: its build made no out.wasm (check `artifact`)",
        ),
        (
            "trigger-field",
            "app = \"a\"\n[[triggers]]\nname = \"t\"\nfunction = \"f\"\nschedul = \"* * * * *\"\n",
            "unknown field `schedul`",
        ),
    ];
    for (name, manifest, expected) in cases {
        let dir = project(root, name, manifest);
        if *name == "symlink-out" {
            std::os::unix::fs::symlink(root.join("outside.rhai"), dir.join("link.rhai")).unwrap();
        }
        let cli = Run {
            url: Some(&server.url),
            token: Some(TOKEN),
            config: &config,
            cwd: &dir,
            stdin: "",
        };
        let err = if ["build-fails", "no-artifact"].contains(name) {
            // The build's own output comes first, on stderr; then the one error line.
            let (ok, _, err) = cli.run(&["deploy"]).await;
            assert!(!ok && err.starts_with("building hello: "), "{err}");
            err.trim().lines().last().unwrap().to_owned()
        } else {
            cli.fails(&["deploy"]).await
        };
        assert!(err.contains(expected), "{name}: {expected:?} in {err}");
        assert!(
            err.contains("picloud.toml"),
            "{name}: names the file: {err}"
        );
    }
    // None of them created anything.
    let apps = server.admin(reqwest::Method::GET, "/apps", None).await;
    assert_eq!(apps.as_array().unwrap().len(), 0, "{apps}");

    // No manifest at all; FILE options without FILE.
    let cli = Run {
        url: Some(&server.url),
        token: Some(TOKEN),
        config: &config,
        cwd: root,
        stdin: "",
    };
    let err = cli.fails(&["deploy"]).await;
    assert!(err.contains("no picloud.toml here"), "{err}");
    let err = cli.fails(&["deploy", "--app", "a"]).await;
    assert!(err.contains("go with FILE"), "{err}");
    let err = cli
        .fails(&["deploy", "--manifest", "missing/picloud.toml"])
        .await;
    assert!(err.contains("no missing/picloud.toml here"), "{err}");
    // init refuses a directory that is not empty.
    std::fs::create_dir_all(root.join("taken")).unwrap();
    std::fs::write(root.join("taken/keep.txt"), "mine").unwrap();
    let err = cli.fails(&["init", "taken"]).await;
    assert!(err.contains("is not empty"), "{err}");
    assert_eq!(std::fs::read_dir(root.join("taken")).unwrap().count(), 1);
    let err = cli.fails(&["init", "Bad_Name"]).await;
    assert!(err.contains("app name"), "{err}");
    server.stop().await;
}

/// `init --template rust` writes a crate on the repo's guest SDK and a manifest that
/// builds it (the build itself is not run here: a cold wasm32 build of the SDK's
/// dependencies is too slow for this suite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_rust_writes_a_component_crate_on_the_sdk() {
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config.toml");
    let cli = Run {
        url: None,
        token: None,
        config: &config,
        cwd: work.path(),
        stdin: "",
    };
    let out = cli
        .ok(&["init", "--template", "rust", "my-fn", "--json"])
        .await;
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["app"], "my-fn", "{out}");
    let project = work.path().join("my-fn");
    let cargo: toml::Table =
        toml::from_str(&std::fs::read_to_string(project.join("Cargo.toml")).unwrap()).unwrap();
    assert_eq!(cargo["package"]["name"].as_str(), Some("my-fn"));
    assert_eq!(
        cargo["lib"]["crate-type"].as_array().unwrap()[0].as_str(),
        Some("cdylib")
    );
    let sdk = PathBuf::from(
        cargo["dependencies"]["picloud-sdk"]["path"]
            .as_str()
            .unwrap(),
    );
    let sdk_manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(sdk.join("Cargo.toml")).unwrap()).unwrap();
    assert_eq!(
        sdk_manifest["package"]["name"].as_str(),
        Some("picloud-sdk")
    );
    assert_eq!(
        sdk.canonicalize().unwrap(),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../guest-sdk")
            .canonicalize()
            .unwrap()
    );
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(project.join("picloud.toml")).unwrap()).unwrap();
    assert_eq!(manifest["app"].as_str(), Some("my-fn"));
    let function = &manifest["functions"].as_array().unwrap()[0];
    assert!(
        function["build"]
            .as_str()
            .unwrap()
            .starts_with("cargo build --release --target wasm32-wasip2"),
        "{function}"
    );
    assert_eq!(
        function["artifact"].as_str(),
        Some("target/wasm32-wasip2/release/my_fn.wasm")
    );
    assert!(project.join("src/lib.rs").is_file());

    // --sdk-path names another checkout; one without a Cargo.toml is refused.
    let err = cli
        .fails(&[
            "init",
            "--template",
            "rust",
            "other",
            "--sdk-path",
            "/nonexistent",
        ])
        .await;
    assert!(
        err.contains("--sdk-path /nonexistent has no Cargo.toml"),
        "{err}"
    );
    assert!(!work.path().join("other").exists());
}

/// Every client command prints one JSON document with --json.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_answers_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data"), None).await;
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config.toml");
    std::fs::write(work.path().join("hi.rhai"), "\"hi\"").unwrap();
    std::fs::write(work.path().join("f.txt"), "file").unwrap();
    let cli = operator(&server.url, &config, work.path());
    let commands: &[&[&str]] = &[
        &["apps", "create", "shop"],
        &["apps", "list"],
        &["apps", "limits", "shop", "--fuel", "1000000"],
        &["outbound", "shop"],
        &["deploy", "hi.rhai", "--app", "shop", "--route", "GET /hi"],
        &["deployments", "list", "shop/hi"],
        &["invoke", "shop/hi"],
        &["logs", "shop"],
        &["usage", "shop"],
        &["routes", "list", "shop"],
        &["files", "put", "shop", "a.txt", "f.txt"],
        &["files", "list", "shop"],
        &["files", "get", "shop", "a.txt"],
        &["files", "delete", "shop", "a.txt"],
        &["indexes", "create", "shop", "c", "f"],
        &["indexes", "list", "shop"],
        &["secrets", "list", "shop"],
        &["triggers", "list", "shop"],
        &["dead-letters", "list", "shop"],
        &["topics", "list", "shop"],
        &["users", "list", "shop"],
        &["tokens", "list"],
        &["init", "proj"],
        &["logout"],
    ];
    for args in commands {
        let mut args = args.to_vec();
        args.push("--json");
        let out = cli.ok(&args).await;
        let parsed: Result<Value, _> = serde_json::from_str(&out);
        assert!(parsed.is_ok(), "picloud {args:?} printed no JSON: {out}");
    }
    cli.ok(&["files", "put", "shop", "b.txt", "f.txt"]).await;
    let got: Value =
        serde_json::from_str(&cli.ok(&["files", "get", "shop", "b.txt", "--json"]).await).unwrap();
    assert_eq!(got["base64"], "ZmlsZQ==", "{got}");
    let called: Value =
        serde_json::from_str(&cli.ok(&["invoke", "shop/hi", "--json"]).await).unwrap();
    assert_eq!(called["status"], 200, "{called}");
    assert_eq!(called["body"], "hi", "{called}");
    server.stop().await;
}
