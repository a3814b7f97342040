//! JSON documents of the app, by collection, with queries that run in the database.
//!
//! Bodies are JSON objects; any `serde` type that serialises to one works. Queries are
//! JSON objects in the query DSL: equality (`{"status": "open"}`), comparisons
//! (`$gt $gte $lt $lte $ne`), lists (`$in $nin`), `$exists`, `$contains`, `$and`/`$or`,
//! and dotted paths into nested objects (`"address.city"`).
//!
//! ```no_run
//! use picloud_sdk::docs::{self, Find};
//! use serde::{Deserialize, Serialize};
//! use serde_json::json;
//!
//! #[derive(Serialize, Deserialize)]
//! struct Order { customer: String, total: i64, status: String }
//!
//! let id = docs::insert("orders", &Order { customer: "ada".into(), total: 42, status: "open".into() })?;
//! let order: Option<Order> = docs::get("orders", &id)?;
//! let updated: Order = docs::patch("orders", &id, &json!({"status": "paid"}))?;
//!
//! // The ten biggest open orders over 10, biggest first.
//! let big: Vec<docs::Document<Order>> = docs::find(
//!     "orders",
//!     &json!({"status": "open", "total": {"$gt": 10}}),
//!     Find::new().sort("-total").limit(10),
//! )?;
//! let paid = docs::count("orders", &json!({"status": "paid"}))?;
//! # Ok::<(), picloud_sdk::Error>(())
//! ```

use crate::wit::picloud::sdk::docs as raw;
use crate::{Result, invalid_json};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A document and its id.
#[derive(Debug, Clone, PartialEq)]
pub struct Document<T> {
    /// The document's id.
    pub id: String,
    /// The document's body.
    pub body: T,
}

/// Options of [`find`]: sort fields, limit (default 100, at most 1000) and skip.
#[derive(Debug, Clone, Default)]
pub struct Find {
    sort: Vec<String>,
    limit: Option<u32>,
    skip: Option<u32>,
}

impl Find {
    /// No sort (by id), the default limit, no skip.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sorts by `field` (a dotted path; a leading `-` sorts descending), after any sort
    /// fields given before.
    pub fn sort(mut self, field: &str) -> Self {
        self.sort.push(field.to_owned());
        self
    }

    /// At most `limit` documents.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Skips the first `skip` matches.
    pub fn skip(mut self, skip: u32) -> Self {
        self.skip = Some(skip);
        self
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(invalid_json)
}

fn from_json<T: DeserializeOwned>(json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(invalid_json)
}

/// Stores `body` under a generated id (time-ordered) and returns the id.
pub fn insert<T: Serialize + ?Sized>(collection: &str, body: &T) -> Result<String> {
    raw::insert(collection, None, &to_json(body)?)
}

/// Stores `body` under `id`; [`Error::Invalid`](crate::Error::Invalid) when the id is taken.
pub fn insert_with_id<T: Serialize + ?Sized>(collection: &str, id: &str, body: &T) -> Result<()> {
    raw::insert(collection, Some(id), &to_json(body)?).map(|_| ())
}

/// The document `id`, deserialised into `T`.
pub fn get<T: DeserializeOwned>(collection: &str, id: &str) -> Result<Option<T>> {
    raw::get(collection, id)?
        .map(|json| from_json(&json))
        .transpose()
}

/// Replaces the whole document `id`; [`Error::NotFound`](crate::Error::NotFound) when there is none.
pub fn replace<T: Serialize + ?Sized>(collection: &str, id: &str, body: &T) -> Result<()> {
    raw::replace(collection, id, &to_json(body)?)
}

/// Merges `patch` into document `id` (JSON merge patch: `null` removes a field) and
/// returns the merged document; [`Error::NotFound`](crate::Error::NotFound) when there is none.
pub fn patch<P: Serialize + ?Sized, T: DeserializeOwned>(
    collection: &str,
    id: &str,
    patch: &P,
) -> Result<T> {
    from_json(&raw::patch(collection, id, &to_json(patch)?)?)
}

/// Removes document `id`; `true` when it existed.
pub fn delete(collection: &str, id: &str) -> Result<bool> {
    raw::delete(collection, id)
}

/// The documents matching `query` (a JSON object in the query DSL).
pub fn find<T: DeserializeOwned>(
    collection: &str,
    query: &serde_json::Value,
    options: Find,
) -> Result<Vec<Document<T>>> {
    let options = raw::FindOptions {
        sort: options.sort,
        limit: options.limit,
        skip: options.skip,
    };
    raw::find(collection, &to_json(query)?, &options)?
        .into_iter()
        .map(|doc| {
            Ok(Document {
                body: from_json(&doc.body)?,
                id: doc.id,
            })
        })
        .collect()
}

/// How many documents match `query`.
pub fn count(collection: &str, query: &serde_json::Value) -> Result<u64> {
    raw::count(collection, &to_json(query)?)
}
