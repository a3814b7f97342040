//! Fetches a URL `n` times per request, for the outbound http tests and benches:
//! `POST /` with `{"url": "...", "n": 3, "method": "GET", "body": "..."}` answers
//! `{"status": 200, "body": "...", "calls": 3}` of the last call, or
//! `{"error": "denied: ...", "calls": 0}` with the first error.

use picloud_sdk::http::{self, HttpRequest};
use picloud_sdk::{Request, Response, Result};
use serde_json::{Value, json};

picloud_sdk::handler!(handle);

fn handle(request: Request) -> Result<Response> {
    let input: Value = request.json()?;
    let n = input["n"].as_u64().unwrap_or(1);
    let fetch = HttpRequest {
        method: input["method"].as_str().unwrap_or("GET").into(),
        url: input["url"].as_str().unwrap_or_default().into(),
        headers: Vec::new(),
        body: input["body"].as_str().unwrap_or_default().into(),
        timeout_ms: input["timeout_ms"].as_u64().map(|t| t as u32),
    };
    let mut last = None;
    for calls in 0..n {
        match http::fetch(&fetch) {
            Ok(answer) => last = Some(answer),
            Err(e) => return Response::json(&json!({ "error": e.text(), "calls": calls })),
        }
    }
    let answer = last.map(|a| json!({ "status": a.status, "body": a.text(), "calls": n }));
    Response::json(&answer.unwrap_or(json!({ "calls": 0 })))
}
