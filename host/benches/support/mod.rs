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
