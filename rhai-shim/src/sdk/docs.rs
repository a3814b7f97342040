//! `docs`: JSON documents per collection, with queries.
//!
//! ```rhai
//! let id = docs::insert("orders", #{ total: 12, status: "open" });   // generated id
//! docs::insert("orders", "o-7", #{ total: 3 });                      // given id
//! let order = docs::get("orders", id);            // the document, or ()
//! docs::replace("orders", id, #{ total: 15, status: "open" });
//! let merged = docs::patch("orders", id, #{ status: "paid" });       // the merged document
//! let open = docs::find("orders", #{ status: "open", total: #{ "$gt": 10 } },
//!                       #{ sort: ["-total"], limit: 20, skip: 0 });
//! for d in open { print(`${d.id}: ${d.body.total}`) }    // each result is #{ id, body }
//! let n = docs::count("orders", #{ status: "paid" });
//! docs::delete("orders", id);                      // true when it existed
//! ```

use super::{Fields, add_fn, int_of, json_arg, json_value, sdk_error, strings_arg};
use crate::host::{FindOptions, Host};
use crate::sdk::RhaiResultOf;
use rhai::{Array, Dynamic, Map, Module};
use std::rc::Rc;

pub(super) fn register(module: &mut Module, host: &Rc<dyn Host>) {
    let h = host.clone();
    add_fn(module, "insert", move |collection: &str, body: Dynamic| {
        let json = json_arg("docs::insert", &body)?;
        h.docs_insert(collection, None, &json)
            .map_err(|e| sdk_error("docs::insert", e))
    });

    let h = host.clone();
    add_fn(
        module,
        "insert",
        move |collection: &str, id: &str, body: Dynamic| {
            let json = json_arg("docs::insert", &body)?;
            h.docs_insert(collection, Some(id), &json)
                .map_err(|e| sdk_error("docs::insert", e))
        },
    );

    let h = host.clone();
    add_fn(
        module,
        "get",
        move |collection: &str, id: &str| -> RhaiResultOf<Dynamic> {
            match h
                .docs_get(collection, id)
                .map_err(|e| sdk_error("docs::get", e))?
            {
                Some(json) => json_value("docs::get", &json),
                None => Ok(Dynamic::UNIT),
            }
        },
    );

    let h = host.clone();
    add_fn(
        module,
        "replace",
        move |collection: &str, id: &str, body: Dynamic| {
            let json = json_arg("docs::replace", &body)?;
            h.docs_replace(collection, id, &json)
                .map_err(|e| sdk_error("docs::replace", e))
        },
    );

    let h = host.clone();
    add_fn(
        module,
        "patch",
        move |collection: &str, id: &str, patch: Dynamic| {
            let json = json_arg("docs::patch", &patch)?;
            let merged = h
                .docs_patch(collection, id, &json)
                .map_err(|e| sdk_error("docs::patch", e))?;
            json_value("docs::patch", &merged)
        },
    );

    let h = host.clone();
    add_fn(module, "delete", move |collection: &str, id: &str| {
        h.docs_delete(collection, id)
            .map_err(|e| sdk_error("docs::delete", e))
    });

    let h = host.clone();
    add_fn(module, "find", move |collection: &str, query: Dynamic| {
        find(&*h, collection, &query, FindOptions::default())
    });

    let h = host.clone();
    add_fn(
        module,
        "find",
        move |collection: &str, query: Dynamic, options: Dynamic| {
            let fields = Fields::of("docs::find", &options)?;
            let sort = match fields.get("sort") {
                Some(sort) => strings_arg("docs::find", "sort", &sort)?,
                None => Vec::new(),
            };
            let options = FindOptions {
                sort,
                limit: fields.u32("limit")?,
                skip: fields.u32("skip")?,
            };
            find(&*h, collection, &query, options)
        },
    );

    let h = host.clone();
    add_fn(module, "count", move |collection: &str, query: Dynamic| {
        let json = json_arg("docs::count", &query)?;
        h.docs_count(collection, &json)
            .map(int_of)
            .map_err(|e| sdk_error("docs::count", e))
    });
}

/// The matching documents as `[#{ id, body }]`.
fn find(
    host: &dyn Host,
    collection: &str,
    query: &Dynamic,
    options: FindOptions,
) -> RhaiResultOf<Array> {
    let query = json_arg("docs::find", query)?;
    let documents = host
        .docs_find(collection, &query, &options)
        .map_err(|e| sdk_error("docs::find", e))?;
    documents
        .into_iter()
        .map(|document| {
            let mut item = Map::new();
            item.insert("id".into(), document.id.into());
            item.insert("body".into(), json_value("docs::find", &document.body)?);
            Ok(Dynamic::from_map(item))
        })
        .collect()
}
