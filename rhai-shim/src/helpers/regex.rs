//! `regex`: regular expressions (Rust `regex` syntax: no look-around or back-references,
//! linear-time matching). Arguments are `(pattern, text)`.
//!
//! ```rhai
//! regex::is_match("^\\d+$", "123")                  // true
//! regex::find("\\d+", "ab12cd345")                  // "12", or () without a match
//! regex::find_all("\\d+", "ab12cd345")              // ["12", "345"]
//! regex::captures("(\\w+)@(\\w+)", "ada@example")   // ["ada@example", "ada", "example"], or ()
//! regex::replace("\\d", "a1b2", "#")                // "a#b#" (all matches; `$1` refers to groups)
//! regex::split(",\\s*", "a, b,c")                   // ["a", "b", "c"]
//! ```

use crate::sdk::RhaiResultOf;
use crate::sdk::{add_fn, error, or_unit};
use regex::{Regex, RegexBuilder};
use rhai::{Array, Dynamic, Module};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Compiled size cap of one pattern: large enough for any hand-written pattern, small
/// enough that a pathological one fails fast instead of eating the memory limit.
const SIZE_LIMIT: usize = 1 << 20;
/// Compiled patterns kept for reuse (a loop calling `regex::*` compiles once).
const CACHE_SIZE: usize = 64;

/// Compiled patterns by source, shared by the functions of the module.
#[derive(Default)]
struct Cache(RefCell<BTreeMap<String, Regex>>);

impl Cache {
    fn get(&self, function: &str, pattern: &str) -> RhaiResultOf<Regex> {
        if let Some(re) = self.0.borrow().get(pattern) {
            return Ok(re.clone());
        }
        let re = RegexBuilder::new(pattern)
            .size_limit(SIZE_LIMIT)
            .build()
            .map_err(|e| error(format!("{function}: invalid pattern: {e}")))?;
        let mut cache = self.0.borrow_mut();
        if cache.len() >= CACHE_SIZE {
            cache.clear();
        }
        cache.insert(pattern.to_string(), re.clone());
        Ok(re)
    }
}

pub(super) fn module() -> Module {
    let mut module = Module::new();
    let cache = Rc::new(Cache::default());

    let c = cache.clone();
    add_fn(&mut module, "is_match", move |pattern: &str, text: &str| {
        Ok(c.get("regex::is_match", pattern)?.is_match(text))
    });
    let c = cache.clone();
    add_fn(
        &mut module,
        "find",
        move |pattern: &str, text: &str| -> RhaiResultOf<Dynamic> {
            let re = c.get("regex::find", pattern)?;
            Ok(or_unit(re.find(text).map(|m| m.as_str().to_string())))
        },
    );
    let c = cache.clone();
    add_fn(
        &mut module,
        "find_all",
        move |pattern: &str, text: &str| -> RhaiResultOf<Array> {
            let re = c.get("regex::find_all", pattern)?;
            Ok(re.find_iter(text).map(|m| m.as_str().into()).collect())
        },
    );
    let c = cache.clone();
    add_fn(
        &mut module,
        "captures",
        move |pattern: &str, text: &str| -> RhaiResultOf<Dynamic> {
            let re = c.get("regex::captures", pattern)?;
            Ok(re.captures(text).map_or(Dynamic::UNIT, |caps| {
                Dynamic::from_array(
                    caps.iter()
                        .map(|g| or_unit(g.map(|m| m.as_str().to_string())))
                        .collect(),
                )
            }))
        },
    );
    let c = cache.clone();
    add_fn(
        &mut module,
        "replace",
        move |pattern: &str, text: &str, replacement: &str| {
            let re = c.get("regex::replace", pattern)?;
            Ok(re.replace_all(text, replacement).into_owned())
        },
    );
    let c = cache;
    add_fn(
        &mut module,
        "split",
        move |pattern: &str, text: &str| -> RhaiResultOf<Array> {
            let re = c.get("regex::split", pattern)?;
            Ok(re.split(text).map(Into::into).collect())
        },
    );
    module
}
