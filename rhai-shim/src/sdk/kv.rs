//! `kv`: the app's key-value store; values are any JSON-able Rhai value.
//!
//! ```rhai
//! kv::set("carts", "ada", #{ items: [1, 2] });
//! kv::set("sessions", "s1", "x", 60000);      // expires after 60 000 ms
//! let cart = kv::get("carts", "ada");         // the value, or () when absent
//! let existed = kv::delete("carts", "ada");   // true when it existed
//! let page = kv::list("carts", #{ prefix: "a", limit: 10 });
//! for entry in page.entries { print(entry.key) }  // page.cursor: () when complete
//! let visits = kv::increment("stats", "visits");  // or kv::increment(c, k, by)
//! ```

use super::{Fields, add_fn, json_arg, json_value, or_unit, sdk_error};
use crate::host::{Host, KvPage};
use crate::sdk::RhaiResultOf;
use rhai::{Dynamic, INT, Map, Module};
use std::rc::Rc;

pub(super) fn register(module: &mut Module, host: &Rc<dyn Host>) {
    let h = host.clone();
    add_fn(
        module,
        "get",
        move |collection: &str, key: &str| -> RhaiResultOf<Dynamic> {
            match h
                .kv_get(collection, key)
                .map_err(|e| sdk_error("kv::get", e))?
            {
                Some(json) => json_value("kv::get", &json),
                None => Ok(Dynamic::UNIT),
            }
        },
    );

    let h = host.clone();
    add_fn(
        module,
        "set",
        move |collection: &str, key: &str, value: Dynamic| {
            let json = json_arg("kv::set", &value)?;
            h.kv_set(collection, key, &json, None)
                .map_err(|e| sdk_error("kv::set", e))
        },
    );

    let h = host.clone();
    add_fn(
        module,
        "set",
        move |collection: &str, key: &str, value: Dynamic, ttl_ms: INT| {
            let json = json_arg("kv::set", &value)?;
            let ttl = u64::try_from(ttl_ms).map_err(|_| {
                super::error("kv::set: the TTL must be a non-negative number of milliseconds")
            })?;
            h.kv_set(collection, key, &json, Some(ttl))
                .map_err(|e| sdk_error("kv::set", e))
        },
    );

    let h = host.clone();
    add_fn(module, "delete", move |collection: &str, key: &str| {
        h.kv_delete(collection, key)
            .map_err(|e| sdk_error("kv::delete", e))
    });

    let h = host.clone();
    add_fn(module, "list", move |collection: &str| {
        list(&*h, collection, "", None, None)
    });

    let h = host.clone();
    add_fn(
        module,
        "list",
        move |collection: &str, prefix_or_options: Dynamic| {
            if prefix_or_options.is_map() {
                let options = Fields::of("kv::list", &prefix_or_options)?;
                let prefix = options.string("prefix")?.unwrap_or_default();
                let cursor = options.string("cursor")?;
                let limit = options.u32("limit")?;
                list(&*h, collection, &prefix, cursor.as_deref(), limit)
            } else {
                let prefix = super::display(&prefix_or_options);
                list(&*h, collection, &prefix, None, None)
            }
        },
    );

    let h = host.clone();
    add_fn(module, "increment", move |collection: &str, key: &str| {
        h.kv_increment(collection, key, 1)
            .map_err(|e| sdk_error("kv::increment", e))
    });

    let h = host.clone();
    add_fn(
        module,
        "increment",
        move |collection: &str, key: &str, by: INT| {
            h.kv_increment(collection, key, by)
                .map_err(|e| sdk_error("kv::increment", e))
        },
    );
}

/// One page as `#{ entries: [#{ key, value }], cursor }`.
fn list(
    host: &dyn Host,
    collection: &str,
    prefix: &str,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> RhaiResultOf<Map> {
    let KvPage { entries, cursor } = host
        .kv_list(collection, prefix, cursor, limit)
        .map_err(|e| sdk_error("kv::list", e))?;
    let mut items = Vec::with_capacity(entries.len());
    for (key, json) in entries {
        let mut entry = Map::new();
        entry.insert("key".into(), key.into());
        entry.insert("value".into(), json_value("kv::list", &json)?);
        items.push(Dynamic::from_map(entry));
    }
    let mut page = Map::new();
    page.insert("entries".into(), Dynamic::from_array(items));
    page.insert("cursor".into(), or_unit(cursor));
    Ok(page)
}
