//! `url`: percent-encoding and URL parsing.
//!
//! ```rhai
//! url::encode("a b&c/d")               // "a%20b%26c%2Fd" (like encodeURIComponent)
//! url::decode("a%20b%26c")             // "a b&c" (`+` stays `+`)
//! url::encode_query(#{ q: "a b", n: 2 })   // "n=2&q=a+b" (form encoding, keys in order)
//! let u = url::parse("https://ada:pw@example.com:8443/p/a?q=1&x=a+b#top");
//! // #{ scheme: "https", username: "ada", password: "pw", host: "example.com", port: 8443,
//! //    path: "/p/a", query: #{ q: "1", x: "a b" }, query_string: "q=1&x=a+b", fragment: "top" }
//! ```
//!
//! Absent parts are `()` (`port` is the explicit port only). A repeated query parameter
//! keeps its last value, as in `ctx.request.query`.

use crate::sdk::RhaiResultOf;
use crate::sdk::{add_fn, display, error, map_arg, or_unit};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use rhai::{Dynamic, Map, Module};

/// What `encodeURIComponent` leaves alone: letters, digits and `-_.!~*'()`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

pub(super) fn module() -> Module {
    let mut module = Module::new();
    add_fn(&mut module, "encode", |text: &str| {
        Ok(utf8_percent_encode(text, COMPONENT).to_string())
    });
    add_fn(&mut module, "decode", |text: &str| {
        percent_decode_str(text)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| error("url::decode: the decoded bytes are not UTF-8 text"))
    });
    add_fn(&mut module, "encode_query", |params: Dynamic| {
        let params = map_arg("url::encode_query", &params)?;
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &params {
            query.append_pair(name, &display(value));
        }
        Ok(query.finish())
    });
    add_fn(&mut module, "parse", |text: &str| -> RhaiResultOf<Map> {
        let parsed =
            ::url::Url::parse(text).map_err(|e| error(format!("url::parse: invalid URL: {e}")))?;
        let mut map = Map::new();
        map.insert("scheme".into(), parsed.scheme().into());
        map.insert(
            "username".into(),
            or_unit(Some(parsed.username()).filter(|u| !u.is_empty())),
        );
        map.insert("password".into(), or_unit(parsed.password()));
        map.insert("host".into(), or_unit(parsed.host_str()));
        map.insert(
            "port".into(),
            parsed
                .port()
                .map_or(Dynamic::UNIT, |p| Dynamic::from_int(p.into())),
        );
        map.insert("path".into(), parsed.path().into());
        map.insert(
            "query".into(),
            Dynamic::from_map(query_map(parsed.query().unwrap_or(""))),
        );
        map.insert("query_string".into(), or_unit(parsed.query()));
        map.insert("fragment".into(), or_unit(parsed.fragment()));
        Ok(map)
    });
    module
}

/// The decoded parameters of a query string; a repeated name keeps its last value.
pub(crate) fn query_map(query: &str) -> Map {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.as_ref().into(), Dynamic::from(v.into_owned())))
        .collect()
}
