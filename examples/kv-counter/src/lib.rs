//! Counts the requests to each path in kv and answers `{"path": …, "count": n}`.

use picloud_sdk::{Request, Response, Result, kv, log};

picloud_sdk::handler!(handle);

fn handle(request: Request) -> Result<Response> {
    let count = kv::increment("counters", &request.path, 1)?;
    log::info(&format!("{} has been called {count} times", request.path));
    Response::json(&serde_json::json!({ "path": request.path, "count": count }))
}
