//! Test harness: throwaway databases on both backends and a real server on a free port.

use picloud::server::{ServeArgs, Server};
use picloud::storage::Db;
use serde_json::Value;
use std::path::Path;
use tempfile::TempDir;

/// PostgreSQL server used by the tests; a fresh database is created per test.
pub fn postgres_base_url() -> String {
    std::env::var("PICLOUD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test: a SQLite file in a temp dir, or a fresh
/// PostgreSQL database dropped when this is dropped.
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
    _dir: TempDir,
}

impl TestDb {
    /// A fresh database, or `None` (with a loud message) when PostgreSQL is not reachable
    /// outside CI. In CI (`CI` set) an unreachable PostgreSQL fails the test.
    pub async fn new(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => Some(Self {
                url: format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()),
                pg_name: None,
                _dir: dir,
            }),
            Backend::Postgres => {
                use sqlx::Connection;
                let base = postgres_base_url();
                let mut admin = match sqlx::PgConnection::connect(&base).await {
                    Ok(c) => c,
                    Err(e) if std::env::var_os("CI").is_none() => {
                        eprintln!(
                            "!!! SKIPPING a PostgreSQL test: cannot connect to {base}: {e} (CI fails here instead)"
                        );
                        return None;
                    }
                    Err(e) => panic!("PostgreSQL at {base} is required in CI: {e}"),
                };
                let name = format!("picloud_t_{}", uuid::Uuid::new_v4().simple());
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                let url = match base.rsplit_once('/') {
                    Some((server, _)) => format!("{server}/{name}"),
                    None => panic!("{base} has no database part"),
                };
                Some(Self {
                    url,
                    pg_name: Some(name),
                    _dir: dir,
                })
            }
        }
    }

    pub async fn open(&self) -> Db {
        Db::open(&self.url)
            .await
            .expect("database opens and migrates")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let base = postgres_base_url();
        // Dropped outside any async context: a small runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut admin) = sqlx::PgConnection::connect(&base).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

pub const TOKEN: &str = "test-admin-token-0123456789";
/// The secrets master key of test servers on PostgreSQL (where one is required): the
/// base64 of 32 bytes.
pub const SECRET_KEY: &str = "dGVzdC1zZWNyZXQta2V5LW9mLTMyLWJ5dGVzLSEhISE=";

/// A running server on a free loopback port.
pub struct TestServer {
    pub url: String,
    /// The dashboard's own origin (`http://127.0.0.1:PORT`), when it has one.
    pub dashboard_url: Option<String>,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(data_dir: &Path, database_url: Option<String>) -> Self {
        Self::start_with(ServeArgs {
            listen: "127.0.0.1:0".parse().unwrap(),
            dashboard_listen: picloud::server::DashboardListen(Some(
                "127.0.0.1:0".parse().unwrap(),
            )),
            database_url,
            admin_token: Some(TOKEN.into()),
            ..ServeArgs::with_data_dir(data_dir.to_owned())
        })
        .await
    }

    pub async fn start_with(mut args: ServeArgs) -> Self {
        if args.database_url.is_some() && args.secret_key.is_none() {
            args.secret_key = Some(SECRET_KEY.into());
        }
        let server = Server::start(&args).await.expect("server starts");
        let url = format!("http://{}", server.local_addr().unwrap());
        let dashboard_url = server.dashboard_addr().map(|a| format!("http://{a}"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(async {
                    let _ = rx.await;
                })
                .await
                .expect("server runs");
        });
        Self {
            url,
            dashboard_url,
            http: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// A server running elsewhere (another process) at `url`; `stop` leaves it be.
    pub fn remote(url: String) -> Self {
        Self {
            url,
            dashboard_url: None,
            http: reqwest::Client::new(),
            shutdown: None,
            task: None,
        }
    }

    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/api/v1{path}", self.url))
            .bearer_auth(TOKEN)
    }

    /// An admin API call that must succeed; its JSON answer.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.api(method.clone(), path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(
            status.is_success(),
            "{method} {path} answered {status}: {text}"
        );
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    pub async fn create_app(&self, name: &str) {
        self.admin(
            reqwest::Method::POST,
            "/apps",
            Some(serde_json::json!({ "name": name })),
        )
        .await;
    }

    /// Deploys `bytes` as `app/function` and binds `route` ("GET /p") to it.
    pub async fn deploy(
        &self,
        app: &str,
        function: &str,
        bytes: Vec<u8>,
        route: Option<&str>,
    ) -> Value {
        let response = self
            .api(
                reqwest::Method::POST,
                &format!("/apps/{app}/functions/{function}/versions"),
            )
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "deploy answered {body}");
        if let Some(route) = route {
            let (method, path) = route.split_once(' ').unwrap();
            self.admin(
                reqwest::Method::POST,
                &format!("/apps/{app}/routes"),
                Some(serde_json::json!({ "method": method, "path": path, "function": function })),
            )
            .await;
        }
        body
    }

    /// Binds `method path` of `app` to `function`.
    pub async fn route(&self, app: &str, method: &str, path: &str, function: &str) {
        self.admin(
            reqwest::Method::POST,
            &format!("/apps/{app}/routes"),
            Some(serde_json::json!({ "method": method, "path": path, "function": function })),
        )
        .await;
    }

    /// The newest invocation record of `app`.
    pub async fn last_record(&self, app: &str) -> Value {
        let records = self
            .admin(
                reqwest::Method::GET,
                &format!("/apps/{app}/invocations?limit=1"),
                None,
            )
            .await;
        records[0].clone()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }
}

pub fn hello() -> Vec<u8> {
    std::fs::read(picloud_example_artifacts::HELLO).unwrap()
}

pub fn kv_counter() -> Vec<u8> {
    std::fs::read(picloud_example_artifacts::KV_COUNTER).unwrap()
}

/// Asserts an error answer: status and the stable code of SPEC §3.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let (actual, url) = (response.status().as_u16(), response.url().clone());
    let body: Value = response.json().await.expect("error answers are JSON");
    assert_eq!(actual, status, "status of {url}: {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{body}");
    body
}

/// A real SMTP server on loopback: aiosmtpd running `smtp_sink.py`, which writes every
/// message it accepts (envelope, headers, MIME parts) to a directory. It writes before
/// it answers `250`, so a send that returned is already there. Stopped when dropped.
pub struct SmtpSink {
    pub port: u16,
    tls: Option<SinkTls>,
    dir: TempDir,
    child: std::process::Child,
}

impl SmtpSink {
    /// A sink (requiring AUTH with `login` when given), or `None` with a loud message
    /// when python3 with aiosmtpd is missing outside CI. In CI (`CI` set) a missing
    /// aiosmtpd fails the test: `.ci/run` installs it.
    pub fn start(login: Option<(&str, &str)>) -> Option<Self> {
        Self::start_with(login, None)
    }

    /// A sink speaking TLS with `certs`' server certificate: from the first byte
    /// ([`SinkTls::Implicit`], smtps) or after STARTTLS, which it then requires.
    pub fn start_with(
        login: Option<(&str, &str)>,
        tls: Option<(SinkTls, &TestCerts)>,
    ) -> Option<Self> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let available = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !available {
            if std::env::var_os("CI").is_some() {
                panic!("python3 with aiosmtpd is required in CI (.ci/run installs it)");
            }
            eprintln!(
                "!!! SKIPPING an email test: python3 with aiosmtpd is missing \
                 (pip install aiosmtpd; CI fails here instead)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/all/smtp_sink.py");
        let mut command = Command::new("python3");
        command.arg(&script).arg(dir.path());
        if let Some((user, password)) = login {
            command.args(["--login", user, password]);
        }
        if let Some((mode, certs)) = tls {
            let mode = match mode {
                SinkTls::Implicit => "implicit",
                SinkTls::StartTls => "starttls",
            };
            command
                .args(["--tls", mode])
                .arg(certs.dir.path().join("server.pem"))
                .arg(certs.dir.path().join("server.key"));
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 starts");
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let port = first
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("smtp_sink.py printed {first:?}, not its port"));
        let tls = tls.map(|(mode, _)| mode);
        Some(Self {
            port,
            tls,
            dir,
            child,
        })
    }

    /// `smtp://127.0.0.1:PORT`, `smtps://…` for implicit TLS, `…?tls=required` for
    /// STARTTLS.
    pub fn url(&self) -> String {
        match self.tls {
            None => format!("smtp://127.0.0.1:{}", self.port),
            Some(SinkTls::Implicit) => format!("smtps://127.0.0.1:{}", self.port),
            Some(SinkTls::StartTls) => format!("smtp://127.0.0.1:{}?tls=required", self.port),
        }
    }

    /// The messages received so far, oldest first: `tls` (the TLS version or null),
    /// `mail_from`, `rcpt_to`, `login`,
    /// `headers` (`[name, value]` as received), `content_type`, `parts`
    /// (`content_type`, decoded `text`) and `raw`.
    pub fn received(&self) -> Vec<Value> {
        let mut paths: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How an [`SmtpSink`] speaks TLS.
#[derive(Clone, Copy, Debug)]
pub enum SinkTls {
    /// TLS from the first byte (smtps, port 465 style).
    Implicit,
    /// Plain until STARTTLS, which the sink requires before mail.
    StartTls,
}

/// A private CA and a server certificate it signed for `127.0.0.1` and `localhost`,
/// as PEM files in a temporary directory: `ca.pem` (what a client trusts),
/// `server.pem` (the server's chain), `server.key`.
pub struct TestCerts {
    dir: TempDir,
}

impl TestCerts {
    pub fn generate() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "PiCloud test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        Self { dir }
    }

    /// The CA certificate a client is told to trust.
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }
}

/// The values of header `name` (any case) of a message an [`SmtpSink`] received.
/// Runs the real `picloud` CLI against `url` with `token` and `args`, writing `stdin` to
/// it (off the async runtime, so an in-process server keeps serving).
pub async fn picloud_cli(
    url: &str,
    token: &str,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    use std::io::Write;
    let (url, token, stdin) = (url.to_owned(), token.to_owned(), stdin.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_picloud"))
            .args(&args)
            .env("PICLOUD_URL", url)
            .env("PICLOUD_TOKEN", token)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// Whether `output` succeeded, and its stdout then stderr as text.
pub fn outcome(output: std::process::Output) -> (bool, String) {
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap() + &String::from_utf8(output.stderr).unwrap(),
    )
}

pub fn header<'a>(message: &'a Value, name: &str) -> Vec<&'a str> {
    message["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|h| h[1].as_str().unwrap())
        .collect()
}
