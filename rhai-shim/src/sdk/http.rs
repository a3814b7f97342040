//! `http`: outbound HTTP through PiCloud's SSRF guard.
//!
//! Every call answers `#{ status, headers, body, json }`: `headers` is a map with
//! lower-case names, `body` the body as a string, `json` the body parsed as JSON (or `()`
//! when it is not JSON). A non-2xx status is an answer, not an error.
//!
//! A map or array body is sent as JSON (`content-type: application/json`), a string as
//! text (`text/plain; charset=utf-8`), a blob as bytes; a `content-type` header given by
//! the script wins.
//!
//! ```rhai
//! let r = http::get("https://api.example.com/items");
//! let r = http::get("https://api.example.com/items", #{ authorization: "Bearer x" });
//! let r = http::post("https://api.example.com/items", #{ name: "a" });
//! let r = http::post("https://api.example.com/raw", "text", #{ "content-type": "text/csv" });
//! let r = http::put(url, body);  let r = http::patch(url, body);  let r = http::delete(url);
//! let r = http::request(#{ method: "PUT", url: url, headers: #{}, body: "x", timeout_ms: 5000 });
//! if r.status == 200 { r.json.items } else { throw `upstream answered ${r.status}` }
//! ```

use super::{Fields, add_fn, json_arg, pairs_arg, pairs_to_map, sdk_error};
use crate::host::{Host, HttpRequest};
use crate::sdk::RhaiResultOf;
use rhai::{Blob, Dynamic, Map, Module};
use std::rc::Rc;

pub(super) fn register(module: &mut Module, host: &Rc<dyn Host>) {
    let h = host.clone();
    add_fn(module, "get", move |url: &str| {
        fetch(
            &*h,
            "http::get",
            "GET",
            url,
            Vec::new(),
            &Dynamic::UNIT,
            None,
        )
    });
    let h = host.clone();
    add_fn(module, "get", move |url: &str, headers: Dynamic| {
        let headers = pairs_arg("http::get", &headers)?;
        fetch(&*h, "http::get", "GET", url, headers, &Dynamic::UNIT, None)
    });
    let h = host.clone();
    add_fn(module, "delete", move |url: &str| {
        fetch(
            &*h,
            "http::delete",
            "DELETE",
            url,
            Vec::new(),
            &Dynamic::UNIT,
            None,
        )
    });
    let h = host.clone();
    add_fn(module, "delete", move |url: &str, headers: Dynamic| {
        let headers = pairs_arg("http::delete", &headers)?;
        fetch(
            &*h,
            "http::delete",
            "DELETE",
            url,
            headers,
            &Dynamic::UNIT,
            None,
        )
    });

    for (name, method) in [("post", "POST"), ("put", "PUT"), ("patch", "PATCH")] {
        let function = format!("http::{name}");
        let h = host.clone();
        let f = function.clone();
        add_fn(module, name, move |url: &str, body: Dynamic| {
            fetch(&*h, &f, method, url, Vec::new(), &body, None)
        });
        let h = host.clone();
        add_fn(
            module,
            name,
            move |url: &str, body: Dynamic, headers: Dynamic| {
                let headers = pairs_arg(&function, &headers)?;
                fetch(&*h, &function, method, url, headers, &body, None)
            },
        );
    }

    let h = host.clone();
    add_fn(module, "request", move |request: Dynamic| {
        let fields = Fields::of("http::request", &request)?;
        let method = fields
            .string("method")?
            .map_or_else(|| "GET".to_string(), |m| m.to_ascii_uppercase());
        let url = fields.required_string("url")?;
        let headers = fields.pairs("headers")?;
        let body = fields.get("body").unwrap_or(Dynamic::UNIT);
        let timeout_ms = fields.u32("timeout_ms")?;
        fetch(
            &*h,
            "http::request",
            &method,
            &url,
            headers,
            &body,
            timeout_ms,
        )
    });
}

/// Sends one request and turns the answer into a map.
fn fetch(
    host: &dyn Host,
    function: &str,
    method: &str,
    url: &str,
    mut headers: Vec<(String, String)>,
    body: &Dynamic,
    timeout_ms: Option<u32>,
) -> RhaiResultOf<Map> {
    let (body, content_type) = encode_body(function, body)?;
    if let Some(content_type) = content_type
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("content-type".into(), content_type.into()));
    }
    let request = HttpRequest {
        method: method.to_string(),
        url: url.to_string(),
        headers,
        body,
        timeout_ms,
    };
    let response = host
        .http_fetch(&request)
        .map_err(|e| sdk_error(function, e))?;
    let text = String::from_utf8_lossy(&response.body).into_owned();
    let json = crate::convert::from_json_text(&text).unwrap_or(Dynamic::UNIT);
    let mut map = Map::new();
    map.insert("status".into(), Dynamic::from_int(response.status.into()));
    map.insert(
        "headers".into(),
        Dynamic::from_map(pairs_to_map(&response.headers, true)),
    );
    map.insert("body".into(), text.into());
    map.insert("json".into(), json);
    Ok(map)
}

/// The bytes of a request body and the content type that fits it (`None` for no body).
fn encode_body(function: &str, body: &Dynamic) -> RhaiResultOf<(Vec<u8>, Option<&'static str>)> {
    let body = body.flatten_clone();
    if body.is_unit() {
        return Ok((Vec::new(), None));
    }
    if let Ok(s) = body.clone().into_immutable_string() {
        return Ok((s.as_bytes().to_vec(), Some("text/plain; charset=utf-8")));
    }
    if let Some(blob) = body.clone().try_cast::<Blob>() {
        return Ok((blob, Some("application/octet-stream")));
    }
    Ok((
        json_arg(function, &body)?.into_bytes(),
        Some("application/json"),
    ))
}
