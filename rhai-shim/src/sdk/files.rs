//! `files`: the app's blobs, by path.
//!
//! ```rhai
//! let stat = files::put("notes/a.txt", "hello", "text/plain");  // #{ path, size, content_type, sha256, modified }
//! files::put("img/dot.bin", base64::decode_blob("AAE="));       // a blob; content type application/octet-stream
//! let f = files::get("notes/a.txt");   // () when absent, else the stat plus `body` and `bytes`
//! f.body                               // the content as a string, or () when it is not UTF-8
//! f.bytes                              // the content as a blob
//! let s = files::head("notes/a.txt");  // the stat, or ()
//! let page = files::list("notes/", #{ limit: 50 });   // #{ files: [stat], cursor }
//! files::delete("notes/a.txt");        // true when it existed
//! ```

use super::{Fields, add_fn, error, int_of, or_unit, sdk_error};
use crate::host::{FileStat, Host};
use crate::sdk::RhaiResultOf;
use rhai::{Blob, Dynamic, Map, Module};
use std::rc::Rc;

pub(super) fn register(module: &mut Module, host: &Rc<dyn Host>) {
    let h = host.clone();
    add_fn(module, "put", move |path: &str, content: Dynamic| {
        let (bytes, default_type) = content_bytes(&content)?;
        put(&*h, path, &bytes, default_type)
    });

    let h = host.clone();
    add_fn(
        module,
        "put",
        move |path: &str, content: Dynamic, content_type: &str| {
            let (bytes, _) = content_bytes(&content)?;
            put(&*h, path, &bytes, content_type)
        },
    );

    let h = host.clone();
    add_fn(module, "get", move |path: &str| -> RhaiResultOf<Dynamic> {
        let Some((stat, content)) = h.files_get(path).map_err(|e| sdk_error("files::get", e))?
        else {
            return Ok(Dynamic::UNIT);
        };
        let mut map = stat_map(stat);
        map.insert(
            "body".into(),
            or_unit(String::from_utf8(content.clone()).ok()),
        );
        map.insert("bytes".into(), Dynamic::from_blob(content));
        Ok(Dynamic::from_map(map))
    });

    let h = host.clone();
    add_fn(module, "head", move |path: &str| -> RhaiResultOf<Dynamic> {
        let stat = h
            .files_head(path)
            .map_err(|e| sdk_error("files::head", e))?;
        Ok(stat.map_or(Dynamic::UNIT, |s| Dynamic::from_map(stat_map(s))))
    });

    let h = host.clone();
    add_fn(module, "delete", move |path: &str| {
        h.files_delete(path)
            .map_err(|e| sdk_error("files::delete", e))
    });

    let h = host.clone();
    add_fn(module, "list", move || list(&*h, "", None, None));

    let h = host.clone();
    add_fn(module, "list", move |prefix: &str| {
        list(&*h, prefix, None, None)
    });

    let h = host.clone();
    add_fn(module, "list", move |prefix: &str, options: Dynamic| {
        let options = Fields::of("files::list", &options)?;
        let cursor = options.string("cursor")?;
        list(&*h, prefix, cursor.as_deref(), options.u32("limit")?)
    });
}

/// The bytes of a `files::put` content argument and the content type that fits it.
fn content_bytes(content: &Dynamic) -> RhaiResultOf<(Vec<u8>, &'static str)> {
    let content = content.flatten_clone();
    if let Ok(s) = content.clone().into_immutable_string() {
        return Ok((s.as_bytes().to_vec(), "text/plain; charset=utf-8"));
    }
    if let Some(blob) = content.clone().try_cast::<Blob>() {
        return Ok((blob, "application/octet-stream"));
    }
    Err(error(format!(
        "files::put: the content must be a string or a blob, got {}",
        content.type_name()
    )))
}

fn put(host: &dyn Host, path: &str, content: &[u8], content_type: &str) -> RhaiResultOf<Map> {
    host.files_put(path, content, content_type)
        .map(stat_map)
        .map_err(|e| sdk_error("files::put", e))
}

fn list(
    host: &dyn Host,
    prefix: &str,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> RhaiResultOf<Map> {
    let page = host
        .files_list(prefix, cursor, limit)
        .map_err(|e| sdk_error("files::list", e))?;
    let mut map = Map::new();
    map.insert(
        "files".into(),
        Dynamic::from_array(
            page.files
                .into_iter()
                .map(|s| Dynamic::from_map(stat_map(s)))
                .collect(),
        ),
    );
    map.insert("cursor".into(), or_unit(page.cursor));
    Ok(map)
}

/// A stat as `#{ path, size, content_type, sha256, modified }`.
fn stat_map(stat: FileStat) -> Map {
    let mut map = Map::new();
    map.insert("path".into(), stat.path.into());
    map.insert("size".into(), int_of(stat.size));
    map.insert("content_type".into(), stat.content_type.into());
    map.insert("sha256".into(), stat.sha256.into());
    map.insert("modified".into(), int_of(stat.modified));
    map
}
