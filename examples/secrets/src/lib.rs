//! Secrets calls a request describes, for the secrets tests and bench. Speaks the same
//! protocol as the tests' Rhai script: `?op=get|set|list|delete&name=N` (`set` takes the
//! body as the value) answers `absent` or the value, `set`, the JSON list of names, or
//! `true`/`false`; a failed call answers `error: <kind>: <message>`.
//!
//! For the bench, `repeat=N` makes the call N times (the answer is the last one's), and
//! `op=kv-get` reads key `name` of kv collection `bench` instead: the baseline a
//! `secrets::get` is compared with.

use picloud_sdk::{Request, Response, Result, kv, secrets};

picloud_sdk::handler!(handle);

fn handle(request: Request) -> Result<Response> {
    let op = request.query_param("op").unwrap_or_default();
    let name = request.query_param("name").unwrap_or_default();
    let repeat: u32 = request
        .query_param("repeat")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut answer = String::new();
    for _ in 0..repeat {
        answer = match call(&op, &name, &request) {
            Ok(text) => text,
            Err(e) => format!("error: {}", e.text()),
        };
    }
    Ok(Response::text(answer))
}

fn call(op: &str, name: &str, request: &Request) -> Result<String> {
    Ok(match op {
        "get" => secrets::get(name)?.unwrap_or_else(|| "absent".into()),
        "set" => {
            secrets::set(name, request.text()?)?;
            "set".into()
        }
        "list" => serde_json::to_string(&secrets::list()?).expect("names serialise"),
        "delete" => secrets::delete(name)?.to_string(),
        "kv-get" => kv::get::<serde_json::Value>("bench", name)?
            .map_or_else(|| "absent".into(), |v| v.to_string()),
        other => format!("unknown op {other}"),
    })
}
