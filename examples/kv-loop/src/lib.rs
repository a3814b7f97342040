//! Runs `n` kv operations per request, for the storage benches: `GET /?op=get&n=100`
//! reads key `k` of collection `bench` n times; `op=set` writes it n times. Answers the
//! number of operations done.

use picloud_sdk::{Error, Request, Response, Result, kv};

picloud_sdk::handler!(handle);

fn handle(request: Request) -> Result<Response> {
    let n: u32 = request
        .query_param("n")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let op = request.query_param("op").unwrap_or_else(|| "get".into());
    for i in 0..n {
        match op.as_str() {
            "get" => {
                kv::get::<serde_json::Value>("bench", "k")?;
            }
            "set" => kv::set("bench", "k", &i)?,
            other => return Err(Error::Invalid(format!("unknown op {other:?}"))),
        }
    }
    Ok(Response::text(n.to_string()))
}
