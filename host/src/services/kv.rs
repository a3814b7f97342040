//! `picloud:sdk/kv`: JSON values by collection and key, scoped to the invocation's app.

use crate::storage::kv::IncrementError;
use crate::storage::{Db, StorageError, now_ms};
use picloud_runtime::kv::{Host, Page};
use picloud_runtime::{Answer, GuestError};
use tracing::instrument;

/// Longest collection name, in bytes.
pub const MAX_COLLECTION_BYTES: usize = 64;
/// Longest key, in bytes: long enough for composite keys, short enough to index well.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest value, JSON text bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Default and largest page of `list`.
pub const DEFAULT_LIST_LIMIT: u32 = 100;
/// Largest page of `list`.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// The kv service of one invocation.
pub struct KvService {
    db: Db,
    app_id: std::sync::Arc<str>,
}

impl KvService {
    /// kv of app `app_id`.
    pub fn new(db: Db, app_id: std::sync::Arc<str>) -> Self {
        Self { db, app_id }
    }
}

/// The one place where storage failures become guest-visible errors.
pub(crate) fn guest_error(e: StorageError) -> GuestError {
    match e {
        StorageError::Conflict => GuestError::Invalid("conflicting write".into()),
        StorageError::Deadline | StorageError::Quota(_) => GuestError::Limit(e.to_string()),
        StorageError::Contention(what) => {
            GuestError::Unavailable(format!("too much contention on {what}, retry"))
        }
        StorageError::Database(e) => {
            tracing::error!(error = %e, "storage failed");
            GuestError::Unavailable("storage is unavailable".into())
        }
        StorageError::Io(e) => {
            tracing::error!(error = %e, "file store failed");
            GuestError::Unavailable("the file store is unavailable".into())
        }
        StorageError::Corrupt(what) => {
            tracing::error!(%what, "stored data is corrupt");
            GuestError::Internal("stored data is corrupt".into())
        }
    }
}

pub(crate) fn check_collection(collection: &str) -> Result<(), GuestError> {
    let valid = !collection.is_empty()
        && collection.len() <= MAX_COLLECTION_BYTES
        && collection
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(GuestError::Invalid(format!(
            "collection name {collection:?} must be 1-{MAX_COLLECTION_BYTES} characters of A-Z a-z 0-9 _ - ."
        )))
    }
}

/// Refuses a guest string longer than `max` bytes before the host works with it
/// (`what` names it in the error).
pub(crate) fn check_len(what: &str, value: &str, max: usize) -> Result<(), GuestError> {
    if value.len() > max {
        return Err(GuestError::Invalid(format!(
            "{what} is at most {max} bytes, got {}",
            value.len()
        )));
    }
    Ok(())
}

pub(crate) fn check_key(key: &str) -> Result<(), GuestError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(GuestError::Invalid(format!(
            "key must be 1-{MAX_KEY_BYTES} bytes, got {}",
            key.len()
        )));
    }
    if key.contains('\0') {
        return Err(GuestError::Invalid(
            "key must not contain NUL characters".into(),
        ));
    }
    Ok(())
}

fn check_value(value: &str) -> Result<(), GuestError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(GuestError::Invalid(format!(
            "value is {} bytes; the limit is {MAX_VALUE_BYTES}",
            value.len()
        )));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(value)
        .map_err(|e| GuestError::Invalid(format!("value is not valid JSON: {e}")))?;
    Ok(())
}

impl Host for KvService {
    #[instrument(name = "picloud.kv.get", skip_all)]
    async fn get(&mut self, collection: String, key: String) -> Answer<Option<String>> {
        Ok(async {
            check_collection(&collection)?;
            check_key(&key)?;
            self.db
                .kv_get(&self.app_id, &collection, &key)
                .await
                .map_err(guest_error)
        }
        .await)
    }

    #[instrument(name = "picloud.kv.set", skip_all)]
    async fn set(
        &mut self,
        collection: String,
        key: String,
        value: String,
        ttl_ms: Option<u64>,
    ) -> Answer<()> {
        Ok(async {
            check_collection(&collection)?;
            check_key(&key)?;
            check_value(&value)?;
            let expires_at = match ttl_ms {
                None => None,
                Some(0) => return Err(GuestError::Invalid("ttl must be at least 1 ms".into())),
                Some(ttl) => Some(now_ms().saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX))),
            };
            self.db
                .kv_set(&self.app_id, &collection, &key, &value, expires_at)
                .await
                .map_err(guest_error)
        }
        .await)
    }

    #[instrument(name = "picloud.kv.delete", skip_all)]
    async fn delete(&mut self, collection: String, key: String) -> Answer<bool> {
        Ok(async {
            check_collection(&collection)?;
            check_key(&key)?;
            self.db
                .kv_delete(&self.app_id, &collection, &key)
                .await
                .map_err(guest_error)
        }
        .await)
    }

    #[instrument(name = "picloud.kv.list", skip_all)]
    async fn list(
        &mut self,
        collection: String,
        prefix: String,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> Answer<Page> {
        Ok(async {
            check_collection(&collection)?;
            check_len("a prefix", &prefix, MAX_KEY_BYTES)?;
            if let Some(cursor) = &cursor {
                check_len("a cursor", cursor, MAX_KEY_BYTES)?;
            }
            let limit = limit.unwrap_or(DEFAULT_LIST_LIMIT);
            if !(1..=MAX_LIST_LIMIT).contains(&limit) {
                return Err(GuestError::Invalid(format!(
                    "limit must be 1-{MAX_LIST_LIMIT}, got {limit}"
                )));
            }
            let mut entries = self
                .db
                .kv_list(
                    &self.app_id,
                    &collection,
                    &prefix,
                    cursor.as_deref(),
                    limit + 1,
                )
                .await
                .map_err(guest_error)?;
            let more = entries.len() > limit as usize;
            entries.truncate(limit as usize);
            let cursor = if more {
                entries.last().map(|(k, _)| k.clone())
            } else {
                None
            };
            Ok(Page { entries, cursor })
        }
        .await)
    }

    #[instrument(name = "picloud.kv.increment", skip_all)]
    async fn increment(&mut self, collection: String, key: String, by: i64) -> Answer<i64> {
        Ok(async {
            check_collection(&collection)?;
            check_key(&key)?;
            self.db
                .kv_increment(&self.app_id, &collection, &key, by)
                .await
                .map_err(|e| match e {
                    IncrementError::Storage(e) => guest_error(e),
                    other => GuestError::Invalid(other.to_string()),
                })
        }
        .await)
    }
}
