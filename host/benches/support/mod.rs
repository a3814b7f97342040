//! What the benches share: PiCloud's real server, started in-process, with the
//! allocator of the `picloud` binary (so the whole bench process allocates with it,
//! baselines included).

use picloud::server::{ServeArgs, Server};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Starts the server with `args` on the current tokio runtime and keeps it serving for
/// the rest of the process; answers its base URL.
pub async fn start_server(args: ServeArgs) -> String {
    let server = Server::start(&args).await.expect("server starts");
    let base = format!("http://{}", server.local_addr().unwrap());
    tokio::spawn(async move {
        server
            .serve(std::future::pending())
            .await
            .expect("server runs")
    });
    base
}

/// The admin token the benches' servers are started with.
pub const TOKEN: &str = "bench-admin-token-0123456789";

/// An admin API call (`method` on `/api/v1{path}`) that must succeed; answers the body.
pub async fn admin(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: reqwest::Body,
    json: bool,
) -> String {
    let mut request = http
        .request(method.clone(), format!("{base}/api/v1{path}"))
        .bearer_auth(TOKEN)
        .body(body);
    if json {
        request = request.header("content-type", "application/json");
    }
    let response = request.send().await.expect("admin call is answered");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "{method} {path} answered {status}: {text}"
    );
    text
}
