//! Key-value store of the app, by collection and key; values are JSON.
//!
//! ```no_run
//! let visits = picloud_sdk::kv::increment("stats", "visits", 1)?;
//! picloud_sdk::kv::set("users", "ada", &serde_json::json!({"name": "Ada"}))?;
//! let ada: Option<serde_json::Value> = picloud_sdk::kv::get("users", "ada")?;
//! # Ok::<(), picloud_sdk::Error>(())
//! ```

use crate::wit::picloud::sdk::kv as raw;
use crate::{Result, invalid_json};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// One page of [`list`]: entries in key order and the cursor of the next page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// Key and value of each entry.
    pub entries: Vec<(String, T)>,
    /// Pass to [`list`] to continue; `None` when the listing is complete.
    pub cursor: Option<String>,
}

/// The value at `key`, deserialised into `T`.
pub fn get<T: DeserializeOwned>(collection: &str, key: &str) -> Result<Option<T>> {
    raw::get(collection, key)?
        .map(|json| serde_json::from_str(&json).map_err(invalid_json))
        .transpose()
}

/// Stores `value` at `key`.
pub fn set<T: Serialize + ?Sized>(collection: &str, key: &str, value: &T) -> Result<()> {
    let json = serde_json::to_string(value).map_err(invalid_json)?;
    raw::set(collection, key, &json, None)
}

/// Stores `value` at `key`; the entry disappears after `ttl`.
pub fn set_with_ttl<T: Serialize + ?Sized>(
    collection: &str,
    key: &str,
    value: &T,
    ttl: Duration,
) -> Result<()> {
    let json = serde_json::to_string(value).map_err(invalid_json)?;
    raw::set(
        collection,
        key,
        &json,
        Some(ttl.as_millis().min(u64::MAX as u128) as u64),
    )
}

/// Removes `key`; `true` when it existed.
pub fn delete(collection: &str, key: &str) -> Result<bool> {
    raw::delete(collection, key)
}

/// Entries whose key starts with `prefix`, in key order, `limit` at a time (default
/// 100, at most 1000), continuing after `cursor`.
pub fn list<T: DeserializeOwned>(
    collection: &str,
    prefix: &str,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<Page<T>> {
    let page = raw::list(collection, prefix, cursor, limit)?;
    let entries = page
        .entries
        .into_iter()
        .map(|(k, json)| Ok((k, serde_json::from_str(&json).map_err(invalid_json)?)))
        .collect::<Result<_>>()?;
    Ok(Page {
        entries,
        cursor: page.cursor,
    })
}

/// Adds `by` to the integer at `key` (a missing key counts as 0); returns the new value.
pub fn increment(collection: &str, key: &str, by: i64) -> Result<i64> {
    raw::increment(collection, key, by)
}
