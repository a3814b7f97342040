//! The standard helper modules of a Rhai script: `json`, `base64`, `hex`, `url`, `time`,
//! `random` and `regex`. Bad input throws a Rhai runtime error naming the function
//! (`json::parse: invalid JSON: …`).

mod base64;
mod hex;
mod json;
mod random;
mod regex;
mod time;
mod url;

use crate::host::Host;
use crate::sdk::RhaiResultOf;
use crate::sdk::error;
use rhai::{Blob, Dynamic, Engine, Module, Shared};
use std::rc::Rc;

/// Registers every helper module on `engine`; `time` reads the clock through `host`.
pub(crate) fn register(engine: &mut Engine, host: &Rc<dyn Host>) {
    let modules: [(&str, Module); 7] = [
        ("json", json::module()),
        ("base64", base64::module()),
        ("hex", hex::module()),
        ("url", url::module()),
        ("time", time::module(host)),
        ("random", random::module()),
        ("regex", regex::module()),
    ];
    for (name, module) in modules {
        engine.register_static_module(name, Shared::new(module));
    }
}

/// The bytes of a string or blob argument of `function`.
fn bytes_arg(function: &str, value: &Dynamic) -> RhaiResultOf<Vec<u8>> {
    let value = value.flatten_clone();
    if let Ok(s) = value.clone().into_immutable_string() {
        return Ok(s.as_bytes().to_vec());
    }
    if let Some(blob) = value.clone().try_cast::<Blob>() {
        return Ok(blob);
    }
    Err(error(format!(
        "{function}: expected a string or a blob, got {}",
        value.type_name()
    )))
}

/// Decoded bytes as text, or an error pointing at the blob variant of `function`.
fn text_of(function: &str, bytes: Vec<u8>) -> RhaiResultOf<String> {
    String::from_utf8(bytes).map_err(|_| {
        error(format!(
            "{function}: the decoded bytes are not UTF-8 text; use {function}_blob"
        ))
    })
}

pub(crate) use url::query_map;
