//! Answers `Hello, <name>!` with the `name` query parameter (default `world`).

use picloud_sdk::{Request, Response, Result};

picloud_sdk::handler!(handle);

fn handle(request: Request) -> Result<Response> {
    let name = request
        .query_param("name")
        .unwrap_or_else(|| "world".to_owned());
    Ok(Response::text(format!("Hello, {name}!")))
}
