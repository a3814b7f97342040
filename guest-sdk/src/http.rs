//! Outbound HTTP through PiCloud's SSRF guard: the host resolves names itself, refuses
//! private, loopback and other internal addresses, follows redirects (at most 10) and
//! caps the response size, the time and the calls per invocation.
//!
//! A non-2xx status is an answer, not an error; errors are `denied` (the guard or the
//! app's allow-list), `invalid` (a bad URL, method or header), `limit` (size, time,
//! redirects, calls) and `unavailable` (the host cannot be reached).
//!
//! ```no_run
//! let page = picloud_sdk::http::get("https://api.example.com/items")?;
//! if page.status == 200 {
//!     let items: serde_json::Value = page.json()?;
//! }
//! let created = picloud_sdk::http::post_json(
//!     "https://api.example.com/items",
//!     &serde_json::json!({ "name": "a" }),
//! )?;
//! # Ok::<(), picloud_sdk::Error>(())
//! ```

use crate::wit::picloud::sdk::http as raw;
use crate::{Result, invalid_json};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use raw::{IncomingResponse as HttpResponse, OutgoingRequest as HttpRequest};

/// Sends `request` as it is.
pub fn fetch(request: &HttpRequest) -> Result<HttpResponse> {
    raw::fetch(request)
}

/// `GET url`.
pub fn get(url: &str) -> Result<HttpResponse> {
    fetch(&HttpRequest {
        method: "GET".into(),
        url: url.into(),
        headers: Vec::new(),
        body: Vec::new(),
        timeout_ms: None,
    })
}

/// `POST url` with `body` of type `content_type`.
pub fn post(url: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Result<HttpResponse> {
    fetch(&HttpRequest {
        method: "POST".into(),
        url: url.into(),
        headers: vec![("content-type".into(), content_type.into())],
        body: body.into(),
        timeout_ms: None,
    })
}

/// `POST url` with `value` as a JSON body.
pub fn post_json<T: Serialize + ?Sized>(url: &str, value: &T) -> Result<HttpResponse> {
    let body = serde_json::to_vec(value).map_err(invalid_json)?;
    post(url, "application/json", body)
}

impl HttpResponse {
    /// The first value of header `name` (names are lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(invalid_json)
    }
}
