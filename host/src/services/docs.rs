//! `picloud:sdk/docs`: JSON documents with queries, scoped to the invocation's app.

use super::common::{check_collection, check_key, guest_error, page_limit};
use crate::storage::docs::{DocsError, Patched};
use crate::storage::{Db, StorageError, new_id};
use picloud_runtime::docs::{Document, FindOptions, Host};
use picloud_runtime::{Answer, GuestError};
use serde_json::Value;
use tracing::instrument;

/// Largest document, JSON text bytes.
pub const MAX_DOC_BYTES: usize = 1024 * 1024;
/// Largest query, JSON text bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;
/// Largest `skip` of `find`: the database walks every skipped document, so deep pages
/// cost as much as reading them all. Page deeper with a range on the sort field (a
/// cursor: `{"field": {"$gt": <last value of the previous page>}}`).
pub const MAX_SKIP: u32 = 10_000;

/// The docs service of one invocation.
pub struct DocsService {
    db: Db,
    app_id: std::sync::Arc<str>,
}

impl DocsService {
    /// docs of app `app_id`.
    pub fn new(db: Db, app_id: std::sync::Arc<str>) -> Self {
        Self { db, app_id }
    }
}

fn docs_error(e: DocsError) -> GuestError {
    match e {
        DocsError::Query(e) => GuestError::Invalid(format!("invalid query: {e}")),
        DocsError::TooManyIndexes => GuestError::Limit(e.to_string()),
        DocsError::Storage(e) => guest_error(e),
    }
}

/// Parses a document body: a JSON object within the size cap.
fn check_body(what: &str, body: &str) -> Result<Value, GuestError> {
    if body.len() > MAX_DOC_BYTES {
        return Err(GuestError::Invalid(format!(
            "{what} is {} bytes; the limit is {MAX_DOC_BYTES}",
            body.len()
        )));
    }
    let value: Value = serde_json::from_str(body)
        .map_err(|e| GuestError::Invalid(format!("{what} is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(GuestError::Invalid(format!("{what} must be a JSON object")));
    }
    Ok(value)
}

fn check_query(query: &str) -> Result<Value, GuestError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(GuestError::Invalid(format!(
            "the query is {} bytes; the limit is {MAX_QUERY_BYTES}",
            query.len()
        )));
    }
    serde_json::from_str(query)
        .map_err(|e| GuestError::Invalid(format!("the query is not valid JSON: {e}")))
}

impl Host for DocsService {
    #[instrument(name = "picloud.docs.insert", skip_all)]
    async fn insert(
        &mut self,
        collection: String,
        id: Option<String>,
        body: String,
    ) -> Answer<String> {
        Ok(async {
            check_collection(&collection)?;
            let id = match id {
                Some(id) => {
                    check_key(&id)?;
                    id
                }
                None => new_id(),
            };
            let value = check_body("the document", &body)?;
            let body = value.to_string();
            match self
                .db
                .docs_insert(&self.app_id, &collection, &id, &body)
                .await
            {
                Ok(()) => Ok(id),
                Err(StorageError::Conflict) => Err(GuestError::Invalid(format!(
                    "a document with id {id:?} already exists in {collection:?}"
                ))),
                Err(e) => Err(guest_error(e)),
            }
        }
        .await)
    }

    #[instrument(name = "picloud.docs.get", skip_all)]
    async fn get(&mut self, collection: String, id: String) -> Answer<Option<String>> {
        Ok(async {
            check_collection(&collection)?;
            check_key(&id)?;
            self.db
                .docs_get(&self.app_id, &collection, &id)
                .await
                .map_err(guest_error)
        }
        .await)
    }

    #[instrument(name = "picloud.docs.replace", skip_all)]
    async fn replace(&mut self, collection: String, id: String, body: String) -> Answer<()> {
        Ok(async {
            check_collection(&collection)?;
            check_key(&id)?;
            let body = check_body("the document", &body)?.to_string();
            match self
                .db
                .docs_replace(&self.app_id, &collection, &id, &body)
                .await
            {
                Ok(true) => Ok(()),
                Ok(false) => Err(GuestError::NotFound),
                Err(e) => Err(guest_error(e)),
            }
        }
        .await)
    }

    #[instrument(name = "picloud.docs.patch", skip_all)]
    async fn patch(&mut self, collection: String, id: String, patch: String) -> Answer<String> {
        Ok(async {
            check_collection(&collection)?;
            check_key(&id)?;
            let patch = check_body("the patch", &patch)?;
            match self
                .db
                .docs_patch(&self.app_id, &collection, &id, &patch, MAX_DOC_BYTES)
                .await
            {
                Ok(Patched::Done(merged)) => Ok(merged),
                Ok(Patched::Missing) => Err(GuestError::NotFound),
                Ok(Patched::TooLarge(size)) => Err(GuestError::Invalid(format!(
                    "the patched document would be {size} bytes; the limit is {MAX_DOC_BYTES}"
                ))),
                Err(e) => Err(guest_error(e)),
            }
        }
        .await)
    }

    #[instrument(name = "picloud.docs.delete", skip_all)]
    async fn delete(&mut self, collection: String, id: String) -> Answer<bool> {
        Ok(async {
            check_collection(&collection)?;
            check_key(&id)?;
            self.db
                .docs_delete(&self.app_id, &collection, &id)
                .await
                .map_err(guest_error)
        }
        .await)
    }

    #[instrument(name = "picloud.docs.find", skip_all)]
    async fn find(
        &mut self,
        collection: String,
        query: String,
        options: FindOptions,
    ) -> Answer<Vec<Document>> {
        Ok(async {
            check_collection(&collection)?;
            let query = check_query(&query)?;
            let limit = page_limit(options.limit).map_err(GuestError::Invalid)?;
            let skip = options.skip.unwrap_or(0);
            if skip > MAX_SKIP {
                return Err(GuestError::Invalid(format!(
                    "skip is at most {MAX_SKIP}, got {skip}; page deeper with a range query on the sort field"
                )));
            }
            let rows = self
                .db
                .docs_find(
                    &self.app_id,
                    &collection,
                    &query,
                    &options.sort,
                    limit,
                    skip,
                )
                .await
                .map_err(docs_error)?;
            Ok(rows
                .into_iter()
                .map(|(id, body)| Document { id, body })
                .collect())
        }
        .await)
    }

    #[instrument(name = "picloud.docs.count", skip_all)]
    async fn count(&mut self, collection: String, query: String) -> Answer<u64> {
        Ok(async {
            check_collection(&collection)?;
            let query = check_query(&query)?;
            self.db
                .docs_count(&self.app_id, &collection, &query)
                .await
                .map_err(docs_error)
        }
        .await)
    }
}
