//! `picloud:sdk/files`: blobs by path, scoped to the invocation's app.

use super::common::{check_len, guest_error, page, page_limit};
use crate::storage::Db;
use crate::storage::files::{FileStat, FilesError, MAX_PATH_BYTES, normalize_path};
use picloud_runtime::files::{Host, Page, Stat};
use picloud_runtime::{Answer, GuestError};
use tracing::instrument;

/// Longest content type.
pub const MAX_CONTENT_TYPE_BYTES: usize = 255;

/// The files service of one invocation.
pub struct FilesService {
    db: Db,
    app_id: std::sync::Arc<str>,
}

impl FilesService {
    /// files of app `app_id`.
    pub fn new(db: Db, app_id: std::sync::Arc<str>) -> Self {
        Self { db, app_id }
    }
}

fn path_of(path: &str) -> Result<String, GuestError> {
    normalize_path(path).map_err(GuestError::Invalid)
}

fn stat(s: FileStat) -> Stat {
    Stat {
        path: s.path,
        size: s.size,
        content_type: s.content_type,
        sha256: s.sha256,
        modified: u64::try_from(s.modified).unwrap_or(0),
    }
}

/// A content type as stored: `application/octet-stream` when empty; printable ASCII.
pub fn content_type_of(content_type: &str) -> Result<String, String> {
    let content_type = content_type.trim();
    if content_type.is_empty() {
        return Ok("application/octet-stream".into());
    }
    if content_type.len() > MAX_CONTENT_TYPE_BYTES
        || !content_type.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        return Err(format!(
            "content type must be 1-{MAX_CONTENT_TYPE_BYTES} printable ASCII characters"
        ));
    }
    Ok(content_type.to_owned())
}

impl Host for FilesService {
    #[instrument(name = "picloud.files.put", skip_all)]
    async fn put(&mut self, path: String, content: Vec<u8>, content_type: String) -> Answer<Stat> {
        Ok(async {
            let path = path_of(&path)?;
            let content_type = content_type_of(&content_type).map_err(GuestError::Invalid)?;
            self.db
                .files_put(&self.app_id, &path, &content, &content_type)
                .await
                .map(stat)
                .map_err(|e| match e {
                    FilesError::FileTooLarge { .. } | FilesError::AppFull { .. } => {
                        GuestError::Limit(e.to_string())
                    }
                    FilesError::Storage(e) => guest_error(e),
                })
        }
        .await)
    }

    #[instrument(name = "picloud.files.get", skip_all)]
    async fn get(&mut self, path: String) -> Answer<Option<(Stat, Vec<u8>)>> {
        Ok(async {
            let path = path_of(&path)?;
            let found = self
                .db
                .files_get(&self.app_id, &path)
                .await
                .map_err(guest_error)?;
            Ok(found.map(|(s, content)| (stat(s), content)))
        }
        .await)
    }

    #[instrument(name = "picloud.files.head", skip_all)]
    async fn head(&mut self, path: String) -> Answer<Option<Stat>> {
        Ok(async {
            let path = path_of(&path)?;
            let found = self
                .db
                .files_head(&self.app_id, &path)
                .await
                .map_err(guest_error)?;
            Ok(found.map(stat))
        }
        .await)
    }

    #[instrument(name = "picloud.files.delete", skip_all)]
    async fn delete(&mut self, path: String) -> Answer<bool> {
        Ok(async {
            let path = path_of(&path)?;
            self.db
                .files_delete(&self.app_id, &path)
                .await
                .map_err(guest_error)
        }
        .await)
    }

    #[instrument(name = "picloud.files.list", skip_all)]
    async fn list(
        &mut self,
        prefix: String,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> Answer<Page> {
        Ok(async {
            check_len("a prefix", &prefix, MAX_PATH_BYTES)?;
            if let Some(cursor) = &cursor {
                check_len("a cursor", cursor, MAX_PATH_BYTES)?;
            }
            let limit = page_limit(limit).map_err(GuestError::Invalid)?;
            let files = self
                .db
                .files_list(&self.app_id, &prefix, cursor.as_deref(), limit + 1)
                .await
                .map_err(guest_error)?;
            let (files, cursor) = page(files, limit, |f| f.path.clone());
            Ok(Page {
                files: files.into_iter().map(stat).collect(),
                cursor,
            })
        }
        .await)
    }
}
