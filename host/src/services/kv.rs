//! `picloud:sdk/kv`: JSON values by collection and key, scoped to the invocation's app.

use super::common::{
    MAX_KEY_BYTES, check_collection, check_key, check_len, guest_error, page, page_limit,
};
use crate::storage::kv::IncrementError;
use crate::storage::{Db, now_ms};
use picloud_runtime::kv::{Host, Page};
use picloud_runtime::{Answer, GuestError};
use tracing::instrument;

/// Largest value, JSON text bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

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
            let limit = page_limit(limit).map_err(GuestError::Invalid)?;
            let entries = self
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
            let (entries, cursor) = page(entries, limit, |(key, _)| key.clone());
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
